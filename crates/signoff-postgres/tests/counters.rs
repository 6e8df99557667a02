//! The shared rate counters on PostgreSQL: one take per attempt, refused at the limit, with
//! attempts in flight told apart from settled ones, including attempts a dead node left behind.

use signoff_core::throttle::{Counted, Limit, SharedCounters, SharedRefusal};
use signoff_postgres::{PgStore, PoolOptions};
use signoff_testdb::TestDatabase;
use time::{Duration, OffsetDateTime};

#[tokio::test]
async fn takes_stop_at_the_limit_and_tell_in_flight_from_settled() {
    let db = TestDatabase::create("signoff_counters").await;
    let store = PgStore::connect(&db.url, PoolOptions::default()).await.expect("store");
    let limit = Limit::new(2, Duration::minutes(15));
    let counted = [Counted::new("test", "k", &limit)];
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");

    // Two in flight fill it: a third is busy, not throttled (they may still be given back).
    let a = store.take(&counted, t0, true).await.expect("take").expect("first");
    let _b = store.take(&counted, t0, true).await.expect("take").expect("second");
    assert_eq!(store.take(&counted, t0, true).await.expect("take"), Err(SharedRefusal::Busy));
    // One succeeds and is given back: room for one more.
    store.settle(&a, false).await.expect("settle");
    let c = store.take(&counted, t0, true).await.expect("take").expect("third");
    // Both failures settled and kept: throttled for the rest of the window.
    store.settle(&c, true).await.expect("settle");
    let refused = store.take(&counted, t0 + Duration::minutes(1), true).await.expect("take");
    assert!(matches!(refused, Err(SharedRefusal::Busy)), "one still in flight (b): {refused:?}");
    // b's node died: past a minute its attempt counts as settled, and the limit is a 429.
    let later = t0 + Duration::minutes(2);
    match store.take(&counted, later, true).await.expect("take") {
        Err(SharedRefusal::Throttled { wait, full }) => {
            assert_eq!(wait, Duration::minutes(13));
            assert_eq!(full, vec![(0, Duration::minutes(13))]);
        }
        other => panic!("expected throttled, got {other:?}"),
    }
    // A new window starts over.
    assert!(store.take(&counted, t0 + Duration::minutes(15), true).await.expect("take").is_ok());
    // Not in flight (registrations): throttled as soon as the settled count is full.
    let other = [Counted::new("test", "r", &Limit::new(1, Duration::hours(1)))];
    assert!(store.take(&other, t0, false).await.expect("take").is_ok());
    assert!(matches!(store.take(&other, t0, false).await.expect("take"), Err(SharedRefusal::Throttled { .. })));
}
