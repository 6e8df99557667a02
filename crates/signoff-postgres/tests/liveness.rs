//! Pooled connections the server ended while they sat idle. A transaction's `BEGIN`, the feed's
//! read and the count of nodes behind take an idle connection without pinging it first (its
//! first statement is the check); a dead one costs a second attempt on a checked connection, never
//! an error. With the second attempt taken out, the first read after the cut fails; with the
//! ping made anyway, no operation is run twice and the count of second attempts says so.

use signoff_core::cluster::Leases;
use signoff_core::store::{FeedStore, Store};
use signoff_postgres::{PgStore, PoolOptions};
use signoff_testdb::TestDatabase;
use std::time::Duration;

/// Waits until the server has no connection to the database left (its backends exit a moment
/// after `pg_terminate_backend` returns).
async fn until_gone(db: &TestDatabase) {
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&signoff_testdb::server_url()).await.expect("admin");
    for _ in 0..200 {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
            .bind(&db.name)
            .fetch_one(&mut admin)
            .await
            .expect("count");
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the database's connections did not go");
}

#[tokio::test]
async fn connections_ended_while_idle_cost_a_retry_not_an_error() {
    let db = TestDatabase::create("signoff_liveness").await;
    let store =
        PgStore::connect(&db.url, PoolOptions { max_connections: 4, ..PoolOptions::default() }).await.expect("store");
    let cluster = store.cluster();
    for round in 0..3 {
        // Four transactions open at once: four idle connections once they commit; and one on
        // the cluster's pool.
        let mut open = Vec::new();
        for _ in 0..4 {
            open.push(store.begin().await.expect("begin"));
        }
        for tx in open {
            tx.commit().await.expect("commit");
        }
        assert_eq!(cluster.behind("node-a", 1).await.expect("behind"), 0);

        assert!(db.terminate_connections().await >= 5, "round {round}: the pools' connections were cut");
        until_gone(&db).await;

        // The idle queue is first in, first out: the feed's read meets a dead connection (and
        // the pool's check one more before it opens a new one), the count of nodes behind the
        // cluster pool's, and the first `BEGIN` the last two of the main pool.
        let retried = signoff_postgres::lost_and_retried();
        let page = store.feed_page(0, 10).await.unwrap_or_else(|e| panic!("round {round}, feed: {e}"));
        assert_eq!((page.head, page.entries.len()), (0, 0));
        assert_eq!(cluster.behind("node-a", 1).await.unwrap_or_else(|e| panic!("round {round}, behind: {e}")), 0);
        for i in 0..6 {
            let tx = store.begin().await.unwrap_or_else(|e| panic!("round {round}, begin {i}: {e}"));
            tx.commit().await.unwrap_or_else(|e| panic!("round {round}, commit {i}: {e}"));
        }
        let retried = signoff_postgres::lost_and_retried() - retried;
        assert!(retried >= 3, "round {round}: {retried} operations met a dead connection unchecked, not 3");
    }
    store.close().await;
}
