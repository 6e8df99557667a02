//! `lock_user_and_read_session`: the user's lock and the read of a session in one statement, with
//! transactions side by side on real PostgreSQL. The lock is held to the end of the transaction
//! (whether or not the session exists), it is taken before the session's row (so a transaction
//! that holds the user and then reads the session never deadlocks with it), and a session
//! ended or rotated while the statement waited is not found (the read is of its newest
//! version, as a second statement after the lock would read it).

use signoff_core::secret::SigninId;
use signoff_core::store::{Session, SessionFilter, SessionStore, Store, Tx, User};
use signoff_core::{Clock, SessionId, SystemClock, UserId};
use signoff_postgres::{PgStore, PoolOptions};
use signoff_testdb::TestDatabase;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

async fn create_user(store: &PgStore, email: &str) -> UserId {
    let user = User { id: UserId::generate(), email: email.into(), token_version: 0, created_at: SystemClock.now() };
    let mut tx = store.begin().await.expect("begin");
    tx.create_user(&user, "hash").await.expect("create");
    tx.commit().await.expect("commit");
    user.id
}

async fn create_session(store: &PgStore, user: &UserId) -> SessionId {
    let now = SystemClock.now();
    let session = signoff_core::store::Session {
        id: SessionId::generate(),
        user_id: user.clone(),
        secret_hash: signoff_core::secret::SecretHash::of(b"locks", SessionId::generate().as_str().as_bytes()),
        created_at: now,
        last_active_at: now,
        expires_at: now + time::Duration::hours(1),
        ip: None,
        user_agent: None,
        series: None,
        signin: SigninId::generate(),
        authenticated_at: now,
    };
    let mut tx = store.begin().await.expect("begin");
    tx.insert_session(&session).await.expect("insert");
    tx.commit().await.expect("commit");
    session.id
}

/// What a transaction read: the session with its user, if found.
type Read = Option<(Session, User)>;

/// A transaction that locks `user` and reads `id` in one statement, in a task of its own; it
/// sends its transaction back, with what it read.
fn lock_and_read(store: &Arc<PgStore>, user: &UserId, id: &SessionId) -> JoinHandle<(Box<dyn Tx>, Read)> {
    let (store, user, id) = (store.clone(), user.clone(), id.clone());
    tokio::spawn(async move {
        let mut tx = store.begin().await.expect("begin");
        let read = tx.lock_user_and_read_session(&user, &id).await.expect("lock and read");
        (tx, read)
    })
}

/// Whether `task` is waiting for a lock: PostgreSQL shows one of the database's connections
/// waiting for one (the test has one waiter at a time) within 5 s, and the task has not ended.
async fn waits<T>(db: &TestDatabase, task: &JoinHandle<T>) -> bool {
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&signoff_testdb::server_url()).await.expect("admin");
    for _ in 0..500 {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'")
                .bind(&db.name)
                .fetch_one(&mut admin)
                .await
                .expect("activity");
        if waiting > 0 {
            return !task.is_finished();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn finish<T>(task: JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("done within 5 s").expect("task")
}

#[tokio::test]
async fn the_lock_comes_first_is_held_and_the_read_sees_what_committed_while_it_waited() {
    let db = TestDatabase::create("signoff_locks").await;
    let store = Arc::new(PgStore::connect(&db.url, PoolOptions::default()).await.expect("store"));
    let a = create_user(&store, "a@example.com").await;
    let b = create_user(&store, "b@example.com").await;

    // Held to the end of the transaction, even for a session that is not there; another
    // user's lock is free meanwhile.
    let mut first = store.begin().await.expect("begin");
    assert!(first.lock_user_and_read_session(&a, &SessionId::generate()).await.expect("read").is_none());
    let second = lock_and_read(&store, &a, &SessionId::generate());
    let other = lock_and_read(&store, &b, &SessionId::generate());
    assert!(finish(other).await.1.is_none(), "another user's lock is free");
    assert!(waits(&db, &second).await, "the user's lock is held");
    first.commit().await.expect("commit");
    finish(second).await;

    // A session ended while the statement waited for the lock is not found.
    let s = create_session(&store, &a).await;
    let mut first = store.begin().await.expect("begin");
    first.lock_user(&a).await.expect("lock");
    let second = lock_and_read(&store, &a, &s);
    assert!(waits(&db, &second).await, "waits for the user's lock");
    let ended = first.end_sessions(SessionFilter::One { user: &a, id: &s }).await.expect("end");
    assert_eq!(ended.sessions.len(), 1);
    first.commit().await.expect("commit");
    assert!(finish(second).await.1.is_none(), "the session ended meanwhile is not found");

    // Nor is one rotated meanwhile by its old id; its new id is.
    let s = create_session(&store, &a).await;
    let rotated = SessionId::generate();
    let mut first = store.begin().await.expect("begin");
    first.lock_user(&a).await.expect("lock");
    let second = lock_and_read(&store, &a, &s);
    assert!(waits(&db, &second).await, "waits for the user's lock");
    let hash = signoff_core::secret::SecretHash::of(b"locks", b"rotated");
    assert!(first.rotate_session(&s, &rotated, &hash).await.expect("rotate"));
    first.commit().await.expect("commit");
    assert!(finish(second).await.1.is_none(), "the old id is gone");
    assert!(finish(lock_and_read(&store, &a, &rotated)).await.1.is_some(), "the new id is found");

    // The user first, then the session: a transaction that holds the user and then reads the
    // session (`FOR UPDATE`) is not kept waiting by one queued behind it for the user, so the
    // two do not deadlock (PostgreSQL would end one of them after a second).
    let mut first = store.begin().await.expect("begin");
    first.lock_user(&a).await.expect("lock");
    let second = lock_and_read(&store, &a, &rotated);
    assert!(waits(&db, &second).await, "waits for the user's lock");
    // (A deadlock would end one of them with an error within PostgreSQL's deadlock_timeout.)
    let read = tokio::time::timeout(Duration::from_secs(5), first.session_by_id(&rotated)).await;
    assert!(read.expect("the session's row is not locked by the waiting one").expect("read").is_some());
    first.commit().await.expect("commit");
    let (tx, read) = finish(second).await;
    assert!(read.is_some());
    tx.commit().await.expect("commit");

    // What changed while it waited is read as it now is: the user's token version bumped under
    // the lock, the session's activity moved by a write that takes no lock of the user.
    let mut first = store.begin().await.expect("begin");
    first.lock_user(&a).await.expect("lock");
    let second = lock_and_read(&store, &a, &rotated);
    assert!(waits(&db, &second).await, "waits for the user's lock");
    let version = first.bump_token_version(&a).await.expect("bump");
    let at = SystemClock.now() + time::Duration::minutes(5);
    store.touch_session(&rotated, at).await.expect("touch");
    first.commit().await.expect("commit");
    let (_, read) = finish(second).await;
    let (session, user) = read.expect("found");
    assert_eq!(user.token_version, version, "the newest version of the user");
    assert_eq!(session.last_active_at.unix_timestamp(), at.unix_timestamp(), "the newest version of the session");

    // Another user's session is not read, nor is its user locked.
    let theirs = create_session(&store, &b).await;
    let mut first = store.begin().await.expect("begin");
    assert!(first.lock_user_and_read_session(&a, &theirs).await.expect("read").is_none());
    let other = lock_and_read(&store, &b, &theirs);
    assert!(finish(other).await.1.is_some(), "b's lock is free");
    drop(first);
    store.close().await;
}
