//! The store conformance suite (`signoff_core::conformance`) against SQLite: one test per rule,
//! each on a fresh database file in a folder of its own, removed when the test ends.

use signoff_core::Store;
use signoff_sqlite::SqliteStore;
use std::sync::Arc;

/// Removes the test's folder when dropped.
struct Folder(std::path::PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn fresh() -> (Arc<dyn Store>, Folder) {
    let dir = std::env::temp_dir().join(format!("signoff-conformance-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}", dir.join("store.db").display());
    let store = SqliteStore::connect(&url).await.expect("store");
    (Arc::new(store) as Arc<dyn Store>, Folder(dir))
}

signoff_core::store_conformance!(fresh);
