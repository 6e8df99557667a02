//! The store conformance suite (`signoff_core::conformance`) against PostgreSQL: one test per
//! rule, each store in a database of its own, created on the server `SIGNOFF_TEST_POSTGRES_URL`
//! names (`.ci/run` and `scripts/test` set it) and dropped when the test ends. A missing server
//! fails the tests.

use signoff_core::Store;
use signoff_postgres::{PgStore, PoolOptions};
use signoff_testdb::TestDatabase;
use std::sync::Arc;

async fn fresh() -> (Arc<dyn Store>, TestDatabase) {
    let db = TestDatabase::create("signoff_conformance").await;
    // The rules run side by side, each on its own database: a few connections each.
    let options = PoolOptions { max_connections: 4, ..PoolOptions::default() };
    let store = PgStore::connect(&db.url, options).await.expect("store");
    (Arc::new(store) as Arc<dyn Store>, db)
}

signoff_core::store_conformance!(fresh);
