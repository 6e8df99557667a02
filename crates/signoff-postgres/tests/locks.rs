//! `lock_user_and_read_session`: the user's lock and the read of a session in one statement, with
//! transactions side by side on real PostgreSQL. The lock is held to the end of the transaction
//! (whether or not the session exists), it is taken before the session's row (so a transaction
//! that holds the user and then reads the session never deadlocks with it), and a session
//! ended or rotated while the statement waited is not found (the read is of its newest
//! version, as a second statement after the lock would read it).

use signoff_core::secret::SigninId;
use signoff_core::store::{SessionFilter, Store, Tx, User};
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

/// A transaction that locks `user` and reads `id` in one statement, in a task of its own; it
/// sends its transaction back, with whether it found the session.
fn lock_and_read(store: &Arc<PgStore>, user: &UserId, id: &SessionId) -> JoinHandle<(Box<dyn Tx>, bool)> {
    let (store, user, id) = (store.clone(), user.clone(), id.clone());
    tokio::spawn(async move {
        let mut tx = store.begin().await.expect("begin");
        let found = tx.lock_user_and_read_session(&user, &id).await.expect("lock and read");
        (tx, found.is_some())
    })
}

async fn waits<T>(task: &JoinHandle<T>) -> bool {
    tokio::time::sleep(Duration::from_millis(300)).await;
    !task.is_finished()
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
    assert!(!finish(other).await.1, "another user's lock is free");
    assert!(waits(&second).await, "the user's lock is held");
    first.commit().await.expect("commit");
    finish(second).await;

    // A session ended while the statement waited for the lock is not found.
    let s = create_session(&store, &a).await;
    let mut first = store.begin().await.expect("begin");
    first.lock_user(&a).await.expect("lock");
    let second = lock_and_read(&store, &a, &s);
    assert!(waits(&second).await, "waits for the user's lock");
    let ended = first.end_sessions(SessionFilter::One { user: &a, id: &s }).await.expect("end");
    assert_eq!(ended.sessions.len(), 1);
    first.commit().await.expect("commit");
    assert!(!finish(second).await.1, "the session ended meanwhile is not found");

    // Nor is one rotated meanwhile by its old id; its new id is.
    let s = create_session(&store, &a).await;
    let rotated = SessionId::generate();
    let mut first = store.begin().await.expect("begin");
    first.lock_user(&a).await.expect("lock");
    let second = lock_and_read(&store, &a, &s);
    assert!(waits(&second).await, "waits for the user's lock");
    let hash = signoff_core::secret::SecretHash::of(b"locks", b"rotated");
    assert!(first.rotate_session(&s, &rotated, &hash).await.expect("rotate"));
    first.commit().await.expect("commit");
    assert!(!finish(second).await.1, "the old id is gone");
    assert!(finish(lock_and_read(&store, &a, &rotated)).await.1, "the new id is found");

    // The user first, then the session: a transaction that holds the user and then reads the
    // session (`FOR UPDATE`) is not kept waiting by one queued behind it for the user, so the
    // two do not deadlock (PostgreSQL would end one of them after a second).
    let mut first = store.begin().await.expect("begin");
    first.lock_user(&a).await.expect("lock");
    let second = lock_and_read(&store, &a, &rotated);
    assert!(waits(&second).await, "waits for the user's lock");
    let read = tokio::time::timeout(Duration::from_millis(500), first.session_by_id(&rotated)).await;
    assert!(read.expect("the session's row is not locked by the waiting one").expect("read").is_some());
    first.commit().await.expect("commit");
    let (tx, found) = finish(second).await;
    assert!(found);
    tx.commit().await.expect("commit");
    store.close().await;
}
