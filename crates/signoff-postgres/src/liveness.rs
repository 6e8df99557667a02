//! Whether a pooled connection still lives before it is used: checked with a round trip of its
//! own (a ping), or, on the paths that wait for every round trip, by its first statement.
//!
//! A connection idle in the pool can be dead: the server ended it (`pg_terminate_backend`, a
//! restart, `idle_session_timeout`) and its last words wait unread in the socket. The pool pings
//! every idle connection it hands out, which costs every transaction and every read one more
//! round trip before its first statement. [`first_is_check`] hands an idle connection out
//! unchecked, and when the first statement finds it lost, runs the whole operation once more on a
//! checked one. That is only right for what may run twice after a lost connection: beginning a
//! transaction (`BEGIN` changes nothing; a connection lost later fails the transaction as
//! before), and reads.

use sqlx::pool::PoolConnectionMetadata;
use sqlx::{PgConnection, PgPool};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

tokio::task_local! {
    /// Set while [`first_is_check`] runs its first attempt: the pool's check is left out.
    static UNCHECKED: ();
}

/// The pool's check of an idle connection before it is handed out (`before_acquire`): a ping,
/// unless it is handed to [`first_is_check`]'s first attempt. A connection that fails it is
/// closed and the pool takes another (or opens one).
pub(crate) fn before_acquire(
    conn: &mut PgConnection,
    _meta: PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        if UNCHECKED.try_with(|_| ()).is_err() {
            sqlx::Connection::ping(conn).await?;
        }
        Ok(true)
    })
}

/// How many operations found their unchecked connection lost and ran again (for the tests).
static RETRIED: AtomicU64 = AtomicU64::new(0);

/// How many operations so far found their unchecked connection lost and ran again.
#[doc(hidden)]
pub fn lost_and_retried() -> u64 {
    RETRIED.load(Ordering::Relaxed)
}

/// Runs `op` on a pooled connection handed out unchecked; when its first statement finds the
/// connection lost, runs it again on a checked one. `op` must be safe to run twice after a lost
/// connection (see the module's note). The lost connection is closed, not returned: the pool's
/// check when a connection comes back (a ping, always made) fails on it.
///
/// Both attempts together get the pool's `acquire_timeout`, as the ping did: a connection that
/// answers nothing (a network that drops its packets) is answered as a pool out of connections
/// (`PoolTimedOut`, a 503) within it, not after TCP gives up.
pub(crate) async fn first_is_check<T, F, Fut>(pool: &PgPool, op: F) -> Result<T, sqlx::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let deadline = tokio::time::Instant::now() + pool.options().get_acquire_timeout();
    let first = tokio::time::timeout_at(deadline, UNCHECKED.scope((), op())).await;
    match first {
        Err(_) => Err(sqlx::Error::PoolTimedOut),
        Ok(Err(e)) if lost(&e) => {
            RETRIED.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "a pooled connection was lost while idle; trying a checked one");
            tokio::time::timeout_at(deadline, op()).await.unwrap_or(Err(sqlx::Error::PoolTimedOut))
        }
        Ok(done) => done,
    }
}

/// Whether an error says the connection is gone: the socket failed, or the server ended the
/// session (57P01 terminated by an administrator, 57P02 crash, 57P03 cannot connect now, 57P04
/// database dropped, 57P05 idle session timeout; class 08, connection exceptions).
fn lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "57P04" | "57P05") || c.starts_with("08")
        }),
        _ => false,
    }
}
