//! The store conformance suite (`signoff_core::conformance`) against SQLite files.

use signoff_core::Store;
use signoff_sqlite::SqliteStore;
use std::sync::Arc;

#[tokio::test]
async fn the_sqlite_store_conforms() {
    let dir = std::env::temp_dir().join(format!("signoff-conformance-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let fresh = || {
        let url = format!("sqlite://{}", dir.join(format!("{}.db", signoff_core::secret::random_id())).display());
        async move { Arc::new(SqliteStore::connect(&url).await.expect("store")) as Arc<dyn Store> }
    };
    signoff_core::conformance::run(fresh).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
