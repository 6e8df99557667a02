//! The store conformance suite (`signoff_core::conformance`) against PostgreSQL: each store in
//! a database of its own, created on the server `SIGNOFF_TEST_POSTGRES_URL` names (`.ci/run`
//! and `scripts/test` set it) and dropped afterwards. A missing server fails the test.

use signoff_core::Store;
use signoff_postgres::{PgStore, PoolOptions};
use signoff_testdb::TestDatabase;
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn the_postgres_store_conforms() {
    let created = Arc::new(Mutex::new(Vec::<TestDatabase>::new()));
    let fresh = {
        let created = created.clone();
        move || {
            let created = created.clone();
            async move {
                let db = TestDatabase::create("signoff_conformance").await;
                let store = PgStore::connect(&db.url, PoolOptions::default()).await.expect("store");
                created.lock().expect("lock").push(db);
                Arc::new(store) as Arc<dyn Store>
            }
        }
    };
    signoff_core::conformance::run(fresh).await;
    // Dropping the databases drops them on the server.
    created.lock().expect("lock").clear();
}
