//! The PostgreSQL store of signoff: the same `Store`/`Tx` contract as the SQLite store
//! (`signoff_core::conformance` checks both), on a `PgPool`.
//!
//! Where SQLite's single writer serialises transactions, PostgreSQL runs them side by side at
//! READ COMMITTED, so every read a `Tx` makes to decide about a credential locks its row
//! (`FOR UPDATE`): a revocation that wants the row waits for the decision to commit, and a
//! decision that comes second sees the revocation. The revocation feed takes its positions
//! from a one-row counter, so position order is commit order. Times are Unix milliseconds,
//! secret hashes 32-byte `BYTEA`.

mod cluster;
mod counters;
mod liveness;
mod migrate;
mod rows;

pub use cluster::PgCluster;
#[doc(hidden)]
pub use liveness::lost_and_retried;

use async_trait::async_trait;
use signoff_core::store::{Announce, Ended, Session, SessionFilter, Store, StoreError, Tx, User};
use signoff_core::{SessionId, UserId};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

use rows::{db_err, session_from, user_from};

/// One text column of several rows, for `UNNEST`.
fn column<'a, T>(rows: &'a [T], f: impl Fn(&'a T) -> Option<&'a str>) -> Vec<Option<&'a str>> {
    rows.iter().map(f).collect()
}

/// A signoff store in one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// A few connections of their own for the node protocol (leases, fan-out; the listener
    /// holds one).
    cluster: PgPool,
}

/// Why the store could not be opened. Never shows the password.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the PostgreSQL URL cannot be read (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)")]
    Url,
    #[error("cannot connect to PostgreSQL at {target}: {cause}")]
    Connect { target: Target, cause: String },
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] StoreError),
}

/// Where a connection goes: host, port, database and user (never the password).
#[derive(Debug, Clone)]
pub struct Target {
    host: String,
    port: u16,
    database: String,
    user: String,
}

impl Target {
    fn of(o: &PgConnectOptions) -> Self {
        Self {
            host: o.get_host().to_owned(),
            port: o.get_port(),
            database: o.get_database().unwrap_or(o.get_username()).to_owned(),
            user: o.get_username().to_owned(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { host, port, database, user } = self;
        write!(f, "{host}:{port} (database {database:?}, user {user:?})")
    }
}

/// What went wrong with a connection, in the server's or the system's words.
fn cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused (is PostgreSQL running, on this port?)".into(),
            std::io::ErrorKind::NotFound => "no such socket (is PostgreSQL running?)".into(),
            _ => io.to_string(),
        },
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some("3D000") => format!("{} (create it first, e.g. with createdb)", d.message()),
            _ => d.message().to_owned(),
        },
        sqlx::Error::PoolTimedOut => "no connection within the acquire timeout".into(),
        other => other.to_string(),
    }
}

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub max_connections: u32,
    /// How long a request waits for a connection before it is answered `503`.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(2) }
    }
}

impl PgStore {
    /// Connects to a `postgres://` URL and applies migrations. Errors never repeat the URL (it
    /// may hold a password).
    pub async fn connect(url: &str, options: PoolOptions) -> Result<Self, OpenError> {
        let connect = PgConnectOptions::from_str(url).map_err(|_| OpenError::Url)?;
        // One connection first, so that a server out of reach is named with its cause ("connection
        // refused", "database \"x\" does not exist") rather than as a pool that timed out.
        let target = Target::of(&connect);
        let wait = options.acquire_timeout.max(Duration::from_secs(5));
        match tokio::time::timeout(wait, <PgConnection as sqlx::Connection>::connect_with(&connect)).await {
            Err(_) => return Err(OpenError::Connect { target, cause: format!("no answer within {wait:?}") }),
            Ok(Err(e)) => return Err(OpenError::Connect { target, cause: cause(&e) }),
            Ok(Ok(first)) => {
                let _ = sqlx::Connection::close(first).await;
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // An idle connection is pinged before use but where its first statement is the check
            // (`liveness`).
            .test_before_acquire(false)
            .before_acquire(liveness::before_acquire)
            // A statement stuck on a dead connection or a lock ends in an error (503), not a hang;
            // a transaction left open by a paused process (between a statement and its commit)
            // is ended by the server after 5 s, so its row locks do not hold others up for long.
            .connect_with(connect.clone().options([
                ("statement_timeout", "30000"),
                ("lock_timeout", "10000"),
                ("idle_in_transaction_session_timeout", "5000"),
            ]))
            .await
            .map_err(|e| OpenError::Connect { target: Target::of(&connect), cause: cause(&e) })?;
        migrate::run(&pool).await?;
        // Leases and acknowledgements must not queue behind requests, nor hang: their own
        // pool, and a statement that takes over a second is cancelled (the lease then lapses,
        // which is safe).
        let cluster = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(1))
            .test_before_acquire(false)
            .before_acquire(liveness::before_acquire)
            .connect_lazy_with(connect.options([("statement_timeout", "1000")]));
        Ok(Self { pool, cluster })
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Leases and `LISTEN/NOTIFY` fan-out on this database, for running as one of several nodes.
    pub fn cluster(&self) -> PgCluster {
        PgCluster::new(self.cluster.clone())
    }
}

macro_rules! session_columns {
    () => {
        "s.id, s.secret_hash, s.user_id, s.created_at, s.last_active_at, s.expires_at, s.ip, s.user_agent, s.series, \
         s.signin_id, s.authenticated_at"
    };
}
macro_rules! session_returning {
    () => {
        "id, secret_hash, user_id, created_at, last_active_at, expires_at, ip, user_agent, series, signin_id, \
         authenticated_at"
    };
}
/// `lock_user`'s statement, up to the user's id and after it (`end`).
macro_rules! lock_user {
    () => {
        "SELECT 1 FROM users WHERE id = "
    };
    (end) => {
        // NO KEY UPDATE: inserting a session or token (a foreign key to the user) still works.
        " FOR NO KEY UPDATE"
    };
}
macro_rules! user_columns {
    () => {
        "u.id AS u_id, u.email, u.token_version, u.created_at AS u_created_at, u.password_hash"
    };
}
/// Deliveries inserted per statement (11 parameters each).
const ENQUEUE_CHUNK: usize = 500;

macro_rules! remember_columns {
    () => {
        "selector, validator_hash, previous_hash, rotated_at, user_id, session_id, created_at, expires_at, grace_used, \
         ip, user_agent, signin_id"
    };
}

/// One statement that ends sessions: `$sessions` deletes them (the CTE `gone`) and `$series` the
/// remember-me series they back, yielding each one's `selector` (`series`); the sessions opened
/// from those series go too (`bound`), and the refresh tokens of all of them. Its rows: each
/// ended session, then one more whose `series_ended` counts the series. Every part sees the
/// rows as they were when the statement began (so `bound` leaves out what `gone` took). That one
/// snapshot misses no session opened a moment before: every transaction that opens a session
/// or a series holds its user's lock (`lock_user`) until it commits, and so does every one that
/// ends them, before this statement.
///
/// With a third argument, the placeholder of the sessions' user, the statement also bumps that
/// user's token version and gives the new one as the last row's `token_version`
/// (`end_sessions_and_bump`); otherwise that column is null.
macro_rules! ending {
    ($sessions:expr, $series:expr) => {
        ending!(@ $sessions, $series, "", "NULL::bigint")
    };
    ($sessions:expr, $series:expr, $user:literal) => {
        ending!(@ $sessions, $series,
            concat!(", bumped AS (UPDATE users SET token_version = token_version + 1 WHERE id = ", $user,
                " RETURNING token_version)"),
            "(SELECT token_version FROM bumped)")
    };
    (@ $sessions:expr, $series:expr, $bump:expr, $version:expr) => {
        concat!(
            "WITH gone AS (",
            $sessions,
            " RETURNING ",
            session_returning!(),
            "), series AS (",
            $series,
            "), bound AS (DELETE FROM sessions WHERE series IN (SELECT selector FROM series) \
             AND NOT EXISTS (SELECT 1 FROM gone WHERE gone.id = sessions.id) RETURNING ",
            session_returning!(),
            "), refresh AS (DELETE FROM refresh_tokens WHERE session_id IN \
             (SELECT id FROM gone UNION ALL SELECT id FROM bound))",
            $bump,
            " SELECT ",
            session_returning!(),
            ", NULL::bigint AS series_ended, NULL::bigint AS token_version FROM gone UNION ALL SELECT ",
            session_returning!(),
            ", NULL, NULL FROM bound UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
             count(*), ",
            $version,
            " FROM series"
        )
    };
}

/// The links of the sign-ins of the users in `$1` that no session and no remember-me series
/// carries any more, deleted and returned (`end_signins`, and the recipients' statement).
macro_rules! end_signins_delete {
    () => {
        "DELETE FROM signin_clients WHERE user_id = ANY($1) \
         AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.signin_id = signin_clients.signin_id) \
         AND NOT EXISTS (SELECT 1 FROM remember_tokens r WHERE r.signin_id = signin_clients.signin_id) \
         RETURNING signin_id, user_id, client_id"
    };
}
/// Which clients (`c`) signoff calls back: a back-channel logout or webhook URL, as an endpoint
/// row or in the columns of the previous release (`callback_clients`, and the recipients').
macro_rules! has_callback {
    () => {
        "(c.backchannel_logout_uri IS NOT NULL OR c.webhook_url IS NOT NULL \
         OR EXISTS (SELECT 1 FROM client_endpoints x WHERE x.client_id = c.id))"
    };
}
/// Which Shared Signals streams are live (`live_signal_streams`, and the recipients').
macro_rules! live_stream {
    () => {
        "status <> 'disabled'"
    };
}

// One file per concept of the store contract, laid out alike in both SQL stores.
mod audit;
mod clients;
mod feed;
mod keys;
mod mail;
mod outbox;
mod sessions;
mod signals;
mod signins;
mod tokens;
mod users;

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
        self.cluster.close().await;
    }

    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError> {
        // `BEGIN` is the connection's check: no round trip before it on a live one.
        let tx = liveness::first_is_check(&self.pool, || self.pool.begin()).await.map_err(db_err)?;
        Ok(Box::new(PgTx { tx, audits: Vec::new() }))
    }
}

mod read {
    use super::*;
    use sqlx::PgExecutor;

    /// A session and its user, its row locked (`FOR UPDATE OF s`) when `lock` (inside a `Tx`).
    pub async fn session_by_id(
        e: impl PgExecutor<'_>,
        id: &SessionId,
        lock: bool,
    ) -> Result<Option<(Session, User)>, StoreError> {
        macro_rules! by_id {
            () => {
                concat!(
                    "SELECT ",
                    session_columns!(),
                    ", ",
                    user_columns!(),
                    " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1"
                )
            };
        }
        let sql = if lock { concat!(by_id!(), " FOR UPDATE OF s") } else { by_id!() };
        let row = sqlx::query(sql).bind(id.as_str()).fetch_optional(e).await.map_err(db_err)?;
        row.map(|r| Ok((session_from(&r)?, user_from(&r)?.user))).transpose()
    }
}

/// One open PostgreSQL transaction.
struct PgTx {
    tx: Transaction<'static, Postgres>,
    /// Audit events written behind (see `AuditTx for PgTx`): with the feed's statement, or at
    /// commit.
    audits: Vec<signoff_core::audit::AuditEvent>,
}

impl PgTx {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Runs one `ending!` statement and reads what it ended: the sessions, and the count of
    /// series on its last row.
    async fn ended_by(
        &mut self,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<(Ended, Option<i64>), StoreError> {
        let rows = query.fetch_all(self.conn()).await.map_err(db_err)?;
        let mut ended = Ended { sessions: Vec::with_capacity(rows.len()), series: 0 };
        let mut version = None;
        for row in &rows {
            match sqlx::Row::try_get::<Option<i64>, _>(row, "series_ended").map_err(db_err)? {
                Some(series) => {
                    ended.series = series as u64;
                    version = sqlx::Row::try_get::<Option<i64>, _>(row, "token_version").map_err(db_err)?;
                }
                None => ended.sessions.push(session_from(row)?),
            }
        }
        Ok((ended, version))
    }
}

#[async_trait]
impl Tx for PgTx {
    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.write_out(&[], Announce::OnPoll).await?;
        self.tx.commit().await.map_err(db_err)
    }
    async fn lock_user_and_read_session(
        &mut self,
        user: &UserId,
        id: &SessionId,
    ) -> Result<Option<(Session, User)>, StoreError> {
        // One round trip for two (sessions.rs).
        PgTx::lock_user_and_read_session(self, user, id).await
    }
    async fn end_sessions_and_bump(&mut self, filter: SessionFilter<'_>) -> Result<(Ended, i64), StoreError> {
        // One round trip for two (sessions.rs).
        match self.end(filter, true).await? {
            (ended, Some(version)) => Ok((ended, version)),
            // As `bump_token_version` fails when no row comes back.
            (_, None) => Err(StoreError::Backend(format!("no user {} to bump the token version of", filter.user()))),
        }
    }
    async fn end_signins_and_read_recipients(
        &mut self,
        users: &[signoff_core::UserId],
        clients: bool,
        streams: bool,
    ) -> Result<signoff_core::store::Recipients, StoreError> {
        // One round trip for three (signins.rs).
        PgTx::end_signins_and_read_recipients(self, users, clients, streams).await
    }
}
