//! The feed's statement on PostgreSQL, which also carries a transaction's audit events and the
//! nodes' hint. Hints go out with the changes they announce: a feed position with the commit
//! that writes it, an acknowledgement with the statement that records it. Heard here through the
//! fan-out's own listener (`Fanout::listen`), as a node hears them; a rollback, a transaction
//! that writes no feed entry or leaves it to the nodes' poll, and an acknowledgement that
//! records nothing send none. Audit events are written before the feed's counter is locked, and
//! without feed entries they never wait for it.

use signoff_core::cluster::{Fanout, Leases, Signal};
use signoff_core::feed::{FeedEntry, Revocation};
use signoff_core::store::{Announce, FeedStore, Store};
use signoff_core::{SessionId, UserId};
use signoff_postgres::{PgStore, PoolOptions};
use signoff_testdb::TestDatabase;
use std::time::Duration;
use tokio::sync::mpsc;

fn ended(reason: &str) -> FeedEntry {
    FeedEntry::Session(Revocation {
        session_id: SessionId::generate(),
        user_id: UserId::generate(),
        reason: reason.into(),
        at: time::OffsetDateTime::now_utc(),
    })
}

/// The next signal within `wait`, or `None`.
async fn next(signals: &mut mpsc::Receiver<Signal>, wait: Duration) -> Option<Signal> {
    tokio::time::timeout(wait, signals.recv()).await.ok().flatten()
}

/// Commits (or, with `commit` false, rolls back) a transaction writing `entries` on the feed,
/// announced as `announce` says; the position it returned.
async fn write(store: &PgStore, entries: &[FeedEntry], commit: bool, announce: Announce) -> i64 {
    let mut tx = store.begin().await.expect("begin");
    let seq = tx.record_revocations(entries, time::OffsetDateTime::now_utc(), announce).await.expect("record");
    if commit {
        tx.commit().await.expect("commit");
    }
    seq
}

#[tokio::test]
async fn hints_go_out_with_the_changes_they_announce_and_only_then() {
    let db = TestDatabase::create("signoff_hints").await;
    let store =
        PgStore::connect(&db.url, PoolOptions { max_connections: 4, ..PoolOptions::default() }).await.expect("store");
    let cluster = store.cluster();
    let (send, mut signals) = mpsc::channel(16);
    let listening = cluster.clone();
    let listener = tokio::spawn(async move { listening.listen(send).await });
    assert_eq!(next(&mut signals, Duration::from_secs(10)).await, Some(Signal::Connected));

    // A committed feed write: its last position, as it commits.
    let seq = write(&store, &[ended("a"), ended("b")], true, Announce::Now).await;
    assert!(seq > 0);
    assert_eq!(next(&mut signals, Duration::from_secs(5)).await, Some(Signal::Head(seq)));
    // The fan-out's own `publish` adds nothing (the commit said it).
    cluster.publish(seq).await.expect("publish");

    // Rolled back: nothing. Audit events alone: nothing. Left to the poll: nothing. Then the
    // next commit is heard, and nothing came between.
    write(&store, &[ended("rolled back")], false, Announce::Now).await;
    let mut tx = store.begin().await.expect("begin");
    tx.append_audit(&signoff_core::audit::AuditEvent::new(
        signoff_core::audit::AuditKind::Login,
        signoff_core::audit::Actor::User,
        time::OffsetDateTime::now_utc(),
        &signoff_core::ClientInfo::default(),
    ))
    .await
    .expect("audit");
    tx.commit().await.expect("commit");
    let quiet = write(&store, &[ended("expired")], true, Announce::OnPoll).await;
    assert_eq!(quiet, seq + 1, "the rollback took no position");
    let later = write(&store, &[ended("c")], true, Announce::Now).await;
    assert_eq!(later, quiet + 1);
    assert_eq!(next(&mut signals, Duration::from_secs(5)).await, Some(Signal::Head(later)), "nothing before it");

    // An acknowledgement is announced when it is recorded, and only then.
    cluster.register("node-a", 7, 0, Duration::from_secs(30)).await.expect("register");
    assert!(cluster.acknowledge("node-a", 7, later).await.expect("acknowledge"));
    assert_eq!(next(&mut signals, Duration::from_secs(5)).await, Some(Signal::Acked));
    cluster.publish_ack().await.expect("publish_ack");
    assert!(!cluster.acknowledge("node-a", 8, later).await.expect("acknowledge"), "another incarnation's lease");
    assert!(!cluster.acknowledge("node-b", 7, later).await.expect("acknowledge"), "no lease at all");
    assert_eq!(next(&mut signals, Duration::from_millis(500)).await, None, "nothing recorded, nothing announced");
    assert_eq!(cluster.behind("node-b", later).await.expect("behind"), 0, "node-a has acknowledged");
    assert_eq!(cluster.behind("node-b", later + 1).await.expect("behind"), 1);

    listener.abort();
    store.close().await;
    drop(db);
}

#[tokio::test]
async fn audit_events_go_before_the_counter_is_locked_and_alone_never_wait_for_it() {
    let db = TestDatabase::create("signoff_feed_lock").await;
    let store =
        PgStore::connect(&db.url, PoolOptions { max_connections: 4, ..PoolOptions::default() }).await.expect("store");
    // One transaction holds the counter's row lock (it appended, and has not committed)...
    let mut holder = store.begin().await.expect("begin");
    let seq = holder
        .record_revocations(&[ended("held")], time::OffsetDateTime::now_utc(), Announce::Now)
        .await
        .expect("record");
    // ...while another writes audit events alone and commits: it must not queue behind it.
    let event = signoff_core::audit::AuditEvent::new(
        signoff_core::audit::AuditKind::Login,
        signoff_core::audit::Actor::User,
        time::OffsetDateTime::now_utc(),
        &signoff_core::ClientInfo::default(),
    )
    .user(&UserId::generate());
    let alone = async {
        let mut tx = store.begin().await.expect("begin");
        tx.append_audits(&[event.clone(), event.clone()]).await.expect("audit");
        tx.commit().await.expect("commit");
    };
    tokio::time::timeout(Duration::from_secs(3), alone).await.expect("audit events alone waited for the counter");
    // A second appender does wait, and follows on once the first commits; its audit events are
    // written before it waits (the audit log's sequence, which no rollback takes back, has
    // moved on while it is blocked).
    let audit_seq = || async {
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        let n: i64 =
            sqlx::query_scalar("SELECT last_value FROM audit_events_seq_seq").fetch_one(&pool).await.expect("sequence");
        pool.close().await;
        n
    };
    let before = audit_seq().await;
    let store2 = store.clone();
    let second = tokio::spawn(async move {
        let mut tx = store2.begin().await.expect("begin");
        tx.append_audits(&[event.clone(), event]).await.expect("audit");
        let seq = tx
            .record_revocations(&[ended("after")], time::OffsetDateTime::now_utc(), Announce::Now)
            .await
            .expect("record");
        tx.commit().await.expect("commit");
        seq
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "a second appender waits for the counter");
    assert_eq!(audit_seq().await, before + 2, "its audit events were written before it waited");
    holder.commit().await.expect("commit");
    assert_eq!(second.await.expect("second"), seq + 1);
    store.close().await;
    drop(db);
}

/// A page of the feed carries the head as the same statement saw it, so a node whose position
/// was trimmed away finds no entries and a head past its position (and reloads its caches),
/// where the entries alone could not tell it from being up to date.
#[tokio::test]
async fn a_page_of_the_feed_tells_a_trim_from_being_up_to_date() {
    let db = TestDatabase::create("signoff_feed_page").await;
    let store =
        PgStore::connect(&db.url, PoolOptions { max_connections: 4, ..PoolOptions::default() }).await.expect("store");
    let start = store.revocation_head().await.expect("head");
    let last = write(&store, &[ended("a"), ended("b"), ended("c")], true, Announce::OnPoll).await;
    let page = store.feed_page(start, 2).await.expect("page");
    assert_eq!(page.entries.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [last - 2, last - 1]);
    assert_eq!(page.head, last, "the head, not the page's end");
    let page = store.feed_page(last, 100).await.expect("up to date");
    assert_eq!((page.head, page.entries.len()), (last, 0));
    // Every entry trimmed (no node holds a lease): behind them, nothing to read, the head past.
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(store.trim_revocations(now + time::Duration::minutes(1), now).await.expect("trim"), 3);
    let page = store.feed_page(start, 100).await.expect("trimmed");
    assert_eq!((page.head, page.entries.len()), (last, 0), "no entries, the head past this position");
}
