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
mod migrate;
mod rows;

pub use cluster::PgCluster;

use async_trait::async_trait;
use signoff_core::audit::AuditEvent;
use signoff_core::clients::RegisteredClient;
use signoff_core::mail::{MailPurpose, MailToken};
use signoff_core::outbox::{Delivery, DeliveryPage};
use signoff_core::revocation::FeedEntry;
use signoff_core::secret::SecretHash;
use signoff_core::store::{
    Ended, RefreshToken, RememberFilter, RememberToken, Session, SessionFilter, Store, StoreError, Tx, User,
    UserCredentials,
};
use signoff_core::token::SigningKeyPair;
use signoff_core::{SessionId, UserId};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;

use rows::{
    FeedRow, audit_from, client_from, db_err, delivery_from, feed_from, feed_row, mail_token_from, ms, refresh_from,
    remember_from, session_from, signing_key_from, user_from,
};

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
        "s.id, s.secret_hash, s.user_id, s.created_at, s.last_active_at, s.expires_at, s.ip, s.user_agent, s.series"
    };
}
macro_rules! session_returning {
    () => {
        "id, secret_hash, user_id, created_at, last_active_at, expires_at, ip, user_agent, series"
    };
}
macro_rules! user_columns {
    () => {
        "u.id AS u_id, u.email, u.token_version, u.created_at AS u_created_at, u.password_hash"
    };
}
/// Deliveries inserted per statement (11 parameters each).
const ENQUEUE_CHUNK: usize = 500;

macro_rules! client_columns {
    () => {
        "id, name, secret_hash, backchannel_logout_uri, webhook_url, webhook_secret, previous_webhook_secret, \
         previous_webhook_secret_until, created_at"
    };
}
macro_rules! remember_columns {
    () => {
        "selector, validator_hash, previous_hash, rotated_at, user_id, session_id, created_at, expires_at, grace_used, \
         ip, user_agent"
    };
}

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
        Ok(Box::new(PgTx { tx: self.pool.begin().await.map_err(db_err)? }))
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.email = $1"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<(Session, User)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.secret_hash = $1"
        ))
        .bind(&hash.0[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| Ok((session_from(&r)?, user_from(&r)?.user))).transpose()
    }

    async fn user_sessions(&self, user: &UserId) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s WHERE s.user_id = $1 ORDER BY s.last_active_at DESC, s.created_at DESC"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(session_from).collect()
    }

    async fn remember_by_selector(&self, selector: &str) -> Result<Option<RememberToken>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", remember_columns!(), " FROM remember_tokens WHERE selector = $1"))
            .bind(selector)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(remember_from).transpose()
    }

    async fn user_remember(&self, user: &UserId) -> Result<Vec<RememberToken>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", remember_columns!(), " FROM remember_tokens WHERE user_id = $1"))
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(remember_from).collect()
    }

    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_active_at = GREATEST(last_active_at, $1) WHERE id = $2")
            .bind(ms(at))
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn expired_owners(
        &self,
        now: OffsetDateTime,
        idle_cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT user_id FROM sessions WHERE expires_at <= $1 OR last_active_at <= $2 \
             UNION SELECT user_id FROM remember_tokens WHERE expires_at <= $1 LIMIT $3",
        )
        .bind(ms(now))
        .bind(ms(idle_cutoff))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(ids.into_iter().map(UserId::from_string).collect())
    }

    async fn user_audit(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, session_id, kind, scope, reason, detail, actor, ip, user_agent, at FROM audit_events \
             WHERE user_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(user.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(audit_from).collect()
    }

    async fn revocations_since(&self, after: i64, limit: u32) -> Result<Vec<(i64, FeedEntry)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, kind, subject, user_id, issuer, reason, value, at, next FROM revocations WHERE seq > $1 \
             ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(feed_from).collect()
    }

    async fn revocation_head(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT seq FROM revocation_counter WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn trim_revocations(&self, before: OffsetDateTime, now: OffsetDateTime) -> Result<u64, StoreError> {
        // Never past what a node holding a live lease has applied: a node with a fast clock
        // trimming early must not take entries from under the others.
        let done = sqlx::query(
            "DELETE FROM revocations WHERE at < $1 AND seq <= COALESCE( \
             (SELECT min(applied_seq) FROM node_leases WHERE lease_until > clock_timestamp()), seq)",
        )
        .bind(ms(before))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM denied_tokens WHERE exp < $1")
            .bind(now.unix_timestamp() - 60)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn session_by_id(&self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError> {
        read::session_by_id(&self.pool, id, false).await
    }

    async fn refresh_by_hash(&self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = $1")
            .bind(&hash.0[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(refresh_from).transpose()
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyPair>, StoreError> {
        let rows = sqlx::query("SELECT kid, private_key, created_at, retired_at FROM signing_keys")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(signing_key_from).collect()
    }

    async fn denied_tokens(&self, now: i64) -> Result<Vec<(String, String, i64)>, StoreError> {
        sqlx::query_as("SELECT issuer, jti, exp FROM denied_tokens WHERE exp >= $1")
            .bind(now - 60)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn client_by_id(&self, id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", client_columns!(), " FROM clients WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(client_from).transpose()
    }

    async fn clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", client_columns!(), " FROM clients ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(client_from).collect()
    }

    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
        per_endpoint: u32,
        skip: &[String],
    ) -> Result<Vec<Delivery>, StoreError> {
        // The pending URLs one by one off the index (a loose index scan), then the oldest due
        // few of each that no other transaction holds (SKIP LOCKED), ranked within their URL:
        // every URL's first before any URL's second.
        let rows = sqlx::query(
            "WITH RECURSIVE urls(url) AS (\
               (SELECT url FROM deliveries WHERE status = 'pending' ORDER BY url LIMIT 1) \
               UNION ALL \
               SELECT (SELECT d.url FROM deliveries d WHERE d.status = 'pending' AND d.url > urls.url ORDER BY d.url LIMIT 1) \
               FROM urls WHERE urls.url IS NOT NULL), \
             due AS (SELECT c.id, c.next_attempt_at, row_number() OVER (PARTITION BY urls.url ORDER BY c.next_attempt_at, c.id) AS rn \
               FROM urls CROSS JOIN LATERAL (\
                 SELECT id, next_attempt_at FROM deliveries WHERE status = 'pending' AND url = urls.url \
                 AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2) \
                 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) c \
               WHERE NOT (urls.url = ANY($6))), \
             pick AS (SELECT id FROM due ORDER BY rn, next_attempt_at LIMIT $4) \
             UPDATE deliveries d SET claimed_until = $1, claim_token = $5 FROM pick WHERE d.id = pick.id \
             RETURNING d.id, d.client_id, d.kind, d.event, d.url, d.payload, d.status, d.attempts, d.last_status_code, d.last_error, \
             d.next_attempt_at, d.created_at, d.claim_token",
        )
        .bind(ms(until))
        .bind(ms(now))
        .bind(i64::from(per_endpoint))
        .bind(i64::from(limit))
        .bind(signoff_core::secret::random_id())
        .bind(skip)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(delivery_from).collect()
    }

    async fn release_deliveries(&self, claim: &str, ids: &[String]) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET claimed_until = NULL, claim_token = NULL WHERE claim_token = $1 AND id = ANY($2)",
        )
        .bind(claim)
        .bind(ids)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn record_delivery(&self, d: &Delivery) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = $1, attempts = $2, last_status_code = $3, last_error = $7, \
             next_attempt_at = $4, claimed_until = NULL, claim_token = NULL \
             WHERE id = $5 AND status = 'pending' AND claim_token = $6",
        )
        .bind(d.status.as_str())
        .bind(d.attempts)
        .bind(d.last_status_code)
        .bind(ms(d.next_attempt_at))
        .bind(&d.id)
        .bind(d.claim.as_deref())
        .bind(d.last_error.as_deref())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM deliveries WHERE status <> 'pending' AND created_at < $1")
            .bind(ms(before))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn mail_token(&self, hash: &SecretHash) -> Result<Option<MailToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM mail_tokens WHERE token_hash = $1")
            .bind(&hash.0[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(mail_token_from).transpose()
    }

    async fn pending_mail_token(
        &self,
        user: &UserId,
        purpose: MailPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM mail_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL \
             AND expires_at > $3 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(user.as_str())
        .bind(purpose.as_str())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(mail_token_from).transpose()
    }

    async fn prune_mail_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM mail_tokens WHERE expires_at < $1")
            .bind(ms(before))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn client_deliveries(&self, client: &str, page: &DeliveryPage) -> Result<Vec<Delivery>, StoreError> {
        let (before_ms, before_id) = match &page.before {
            Some((at, id)) => (Some(ms(*at)), Some(id.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT id, client_id, kind, event, url, payload, status, attempts, last_status_code, last_error, next_attempt_at, \
             created_at, claim_token FROM deliveries WHERE client_id = $1 AND ($2::text IS NULL OR status = $2) \
             AND ($3::bigint IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) \
             ORDER BY created_at DESC, id DESC LIMIT $5",
        )
        .bind(client)
        .bind(page.status.map(|s| s.as_str()))
        .bind(before_ms)
        .bind(before_id)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(delivery_from).collect()
    }

    async fn rotate_webhook_secret(
        &self,
        client: &str,
        secret: &str,
        previous_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET previous_webhook_secret = CASE WHEN $1 > $2 THEN webhook_secret END, \
             previous_webhook_secret_until = CASE WHEN $1 > $2 THEN $1 END, webhook_secret = $3 \
             WHERE id = $4 AND webhook_url IS NOT NULL",
        )
        .bind(ms(previous_until))
        .bind(ms(now))
        .bind(secret)
        .bind(client)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn retry_delivery(&self, client: &str, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, created_at = $1, attempts = 0, claimed_until = NULL, claim_token = NULL \
             WHERE client_id = $2 AND id = $3 AND status = 'failed'",
        )
        .bind(ms(now))
        .bind(client)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn drop_callback(&self, client: &str, url: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for sql in [
            "UPDATE clients SET backchannel_logout_uri = NULL WHERE id = $1 AND backchannel_logout_uri = $2",
            "UPDATE clients SET webhook_url = NULL WHERE id = $1 AND webhook_url = $2",
            "UPDATE deliveries SET status = 'failed', claimed_until = NULL WHERE client_id = $1 AND url = $2 AND status = 'pending'",
        ] {
            sqlx::query(sql).bind(client).bind(url).execute(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn forget_replaced_webhook_secrets(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET previous_webhook_secret = NULL, previous_webhook_secret_until = NULL \
             WHERE previous_webhook_secret_until <= $1",
        )
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn delivery_counts(&self) -> Result<(i64, i64), StoreError> {
        let (pending, failed): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) FROM deliveries \
             WHERE kind <> 'mail'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok((pending, failed))
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
}

impl PgTx {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// What follows every deletion of sessions or series: the sessions opened from the deleted
    /// series end too (a statement of its own, so it sees every session committed before it,
    /// those resumed from a series a moment ago included), and refresh tokens die with their
    /// sessions.
    async fn cascade(&mut self, selectors: &[String], ended: &mut Ended) -> Result<(), StoreError> {
        if !selectors.is_empty() {
            let rows =
                sqlx::query(concat!("DELETE FROM sessions WHERE series = ANY($1) RETURNING ", session_returning!()))
                    .bind(selectors)
                    .fetch_all(self.conn())
                    .await
                    .map_err(db_err)?;
            for row in &rows {
                ended.sessions.push(session_from(row)?);
            }
        }
        if !ended.sessions.is_empty() {
            let ids: Vec<&str> = ended.sessions.iter().map(|s| s.id.as_str()).collect();
            sqlx::query("DELETE FROM refresh_tokens WHERE session_id = ANY($1)")
                .bind(&ids)
                .execute(self.conn())
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Tx for PgTx {
    async fn lock_user(&mut self, user: &UserId) -> Result<(), StoreError> {
        // NO KEY UPDATE: inserting a session or token (a foreign key to the user) still works.
        sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE")
            .bind(user.as_str())
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn lock_signing_keys(&mut self) -> Result<(), StoreError> {
        // Conflicts with itself and with writers, not with readers (verification reloads).
        sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn user_by_id(&mut self, id: &UserId) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = $1 FOR NO KEY UPDATE"))
            .bind(id.as_str())
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn session_by_id(&mut self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError> {
        read::session_by_id(self.conn(), id, true).await
    }

    async fn remember_by_selector(&mut self, selector: &str) -> Result<Option<RememberToken>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            remember_columns!(),
            " FROM remember_tokens WHERE selector = $1 FOR UPDATE"
        ))
        .bind(selector)
        .fetch_optional(self.conn())
        .await
        .map_err(db_err)?;
        row.as_ref().map(remember_from).transpose()
    }

    async fn refresh_by_hash(&mut self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE")
            .bind(&hash.0[..])
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        row.as_ref().map(refresh_from).transpose()
    }

    async fn refresh_by_id(&mut self, id: &str) -> Result<Option<RefreshToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM refresh_tokens WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        row.as_ref().map(refresh_from).transpose()
    }

    async fn create_user(&mut self, user: &User, password_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, token_version, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.id.as_str())
        .bind(&user.email)
        .bind(password_hash)
        .bind(user.token_version)
        .bind(ms(user.created_at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn set_password(&mut self, user: &UserId, password_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn set_email(&mut self, user: &UserId, email: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
            .bind(email)
            .bind(user.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn bump_token_version(&mut self, user: &UserId) -> Result<i64, StoreError> {
        sqlx::query_scalar("UPDATE users SET token_version = token_version + 1 WHERE id = $1 RETURNING token_version")
            .bind(user.as_str())
            .fetch_one(self.conn())
            .await
            .map_err(db_err)
    }

    async fn insert_session(&mut self, s: &Session) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, secret_hash, user_id, created_at, last_active_at, expires_at, ip, user_agent, \
             series) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(s.id.as_str())
        .bind(&s.secret_hash.0[..])
        .bind(s.user_id.as_str())
        .bind(ms(s.created_at))
        .bind(ms(s.last_active_at))
        .bind(ms(s.expires_at))
        .bind(s.ip.as_deref())
        .bind(s.user_agent.as_deref())
        .bind(s.series.as_deref())
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn unbind_series(&mut self, session: &SessionId) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET series = NULL WHERE id = $1")
            .bind(session.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn rotate_session(
        &mut self,
        old: &SessionId,
        new: &SessionId,
        hash: &SecretHash,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE sessions SET id = $1, secret_hash = $2 WHERE id = $3")
            .bind(new.as_str())
            .bind(&hash.0[..])
            .bind(old.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        sqlx::query("UPDATE remember_tokens SET session_id = $1 WHERE session_id = $2")
            .bind(new.as_str())
            .bind(old.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn end_sessions(&mut self, filter: SessionFilter<'_>) -> Result<Ended, StoreError> {
        let rows =
            match filter {
                SessionFilter::One { user, id } | SessionFilter::Lapsed { user, id } => {
                    sqlx::query(concat!(
                        "DELETE FROM sessions WHERE id = $1 AND user_id = $2 RETURNING ",
                        session_returning!()
                    ))
                    .bind(id.as_str())
                    .bind(user.as_str())
                    .fetch_all(self.conn())
                    .await
                }
                SessionFilter::AllOf { user, keep, .. } => {
                    let keep: Vec<&str> = keep.iter().map(SessionId::as_str).collect();
                    sqlx::query(concat!(
                        "DELETE FROM sessions WHERE user_id = $1 AND id <> ALL($2) RETURNING ",
                        session_returning!()
                    ))
                    .bind(user.as_str())
                    .bind(&keep)
                    .fetch_all(self.conn())
                    .await
                }
                SessionFilter::Expired { user, now, idle_cutoff } => sqlx::query(concat!(
                    "DELETE FROM sessions WHERE user_id = $3 AND (expires_at <= $1 OR last_active_at <= $2) RETURNING ",
                    session_returning!()
                ))
                .bind(ms(now))
                .bind(ms(idle_cutoff))
                .bind(user.as_str())
                .fetch_all(self.conn())
                .await,
                SessionFilter::OldestBeyond { user, keep, spare } => {
                    sqlx::query(concat!(
                        "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE user_id = $1 AND id <> $2 \
                     ORDER BY created_at DESC, id OFFSET $3) RETURNING ",
                        session_returning!()
                    ))
                    .bind(user.as_str())
                    .bind(spare.as_str())
                    .bind(i64::from(keep.saturating_sub(1)))
                    .fetch_all(self.conn())
                    .await
                }
            }
            .map_err(db_err)?;
        let mut ended = Ended { sessions: rows.iter().map(session_from).collect::<Result<Vec<_>, _>>()?, series: 0 };
        // The series the ended sessions back go with them (see `SessionFilter`).
        let selectors: Vec<String> = match filter {
            SessionFilter::One { user, id } => {
                sqlx::query_scalar(
                    "DELETE FROM remember_tokens WHERE session_id = $1 AND user_id = $2 RETURNING selector",
                )
                .bind(id.as_str())
                .bind(user.as_str())
                .fetch_all(self.conn())
                .await
            }
            SessionFilter::AllOf { user, keep, keep_series } => {
                let keep: Vec<&str> = keep.iter().map(SessionId::as_str).collect();
                sqlx::query_scalar(
                    "DELETE FROM remember_tokens WHERE user_id = $1 AND selector NOT IN (SELECT series FROM sessions \
                     WHERE id = ANY($2) AND series IS NOT NULL) AND selector IS DISTINCT FROM $3 RETURNING selector",
                )
                .bind(user.as_str())
                .bind(&keep)
                .bind(keep_series)
                .fetch_all(self.conn())
                .await
            }
            SessionFilter::OldestBeyond { .. } => {
                let ids: Vec<&str> = ended.sessions.iter().map(|s| s.id.as_str()).collect();
                sqlx::query_scalar("DELETE FROM remember_tokens WHERE session_id = ANY($1) RETURNING selector")
                    .bind(&ids)
                    .fetch_all(self.conn())
                    .await
            }
            SessionFilter::Expired { .. } | SessionFilter::Lapsed { .. } => Ok(Vec::new()),
        }
        .map_err(db_err)?;
        ended.series = selectors.len() as u64;
        self.cascade(&selectors, &mut ended).await?;
        Ok(ended)
    }

    async fn insert_remember(&mut self, t: &RememberToken) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO remember_tokens (",
            remember_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&t.selector)
        .bind(&t.validator_hash.0[..])
        .bind(t.previous_hash.as_ref().map(|h| h.0.to_vec()))
        .bind(t.rotated_at.map(ms))
        .bind(t.user_id.as_str())
        .bind(t.session_id.as_str())
        .bind(ms(t.created_at))
        .bind(ms(t.expires_at))
        .bind(t.grace_used)
        .bind(t.ip.as_deref())
        .bind(t.user_agent.as_deref())
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn rotate_remember(
        &mut self,
        selector: &str,
        expected: &SecretHash,
        validator_hash: &SecretHash,
        session: &Session,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE remember_tokens SET validator_hash = $1, previous_hash = validator_hash, rotated_at = $2, \
             grace_used = FALSE, session_id = $3, ip = $4, user_agent = $5 WHERE selector = $6 AND validator_hash = $7",
        )
        .bind(&validator_hash.0[..])
        .bind(ms(at))
        .bind(session.id.as_str())
        .bind(session.ip.as_deref())
        .bind(session.user_agent.as_deref())
        .bind(selector)
        .bind(&expected.0[..])
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_remember_grace(&mut self, selector: &str, previous: &SecretHash) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE remember_tokens SET grace_used = TRUE WHERE selector = $1 AND previous_hash = $2 \
             AND NOT grace_used",
        )
        .bind(selector)
        .bind(&previous.0[..])
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_remember(&mut self, filter: RememberFilter<'_>) -> Result<Ended, StoreError> {
        let selectors: Vec<String> = match filter {
            RememberFilter::Selector(s) => {
                sqlx::query_scalar("DELETE FROM remember_tokens WHERE selector = $1 RETURNING selector")
                    .bind(s)
                    .fetch_all(self.conn())
                    .await
            }
            RememberFilter::AllOfUser(u) => {
                sqlx::query_scalar("DELETE FROM remember_tokens WHERE user_id = $1 RETURNING selector")
                    .bind(u.as_str())
                    .fetch_all(self.conn())
                    .await
            }
            RememberFilter::Expired { user, now } => {
                sqlx::query_scalar(
                    "DELETE FROM remember_tokens WHERE user_id = $1 AND expires_at <= $2 RETURNING selector",
                )
                .bind(user.as_str())
                .bind(ms(now))
                .fetch_all(self.conn())
                .await
            }
            RememberFilter::OldestBeyond { user, keep, spare } => {
                sqlx::query_scalar(
                    "DELETE FROM remember_tokens WHERE selector IN (SELECT selector FROM remember_tokens \
                     WHERE user_id = $1 AND selector IS DISTINCT FROM $2 \
                     ORDER BY coalesce(rotated_at, created_at) DESC, selector OFFSET $3) RETURNING selector",
                )
                .bind(user.as_str())
                .bind(spare)
                .bind(i64::from(if spare.is_some() { keep.saturating_sub(1) } else { keep }))
                .fetch_all(self.conn())
                .await
            }
        }
        .map_err(db_err)?;
        let mut ended = Ended { sessions: Vec::new(), series: selectors.len() as u64 };
        self.cascade(&selectors, &mut ended).await?;
        Ok(ended)
    }

    async fn append_audit(&mut self, e: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (user_id, session_id, kind, scope, reason, detail, actor, ip, user_agent, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(e.user_id.as_ref().map(UserId::as_str))
        .bind(e.session_id.as_ref().map(SessionId::as_str))
        .bind(e.kind.as_str())
        .bind(e.scope.as_deref())
        .bind(e.reason.as_deref())
        .bind(e.detail.as_deref())
        .bind(e.actor.as_str())
        .bind(e.ip.as_deref())
        .bind(e.user_agent.as_deref())
        .bind(ms(e.at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn append_audits(&mut self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        // One statement for any number: a column per array, rows in order (WITH ORDINALITY).
        sqlx::query(
            "INSERT INTO audit_events (user_id, session_id, kind, scope, reason, detail, actor, ip, user_agent, at) \
             SELECT u, s, k, sc, r, d, a, i, ua, t FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[]) WITH ORDINALITY \
             AS x(u, s, k, sc, r, d, a, i, ua, t, n) ORDER BY n",
        )
        .bind(column(events, |e| e.user_id.as_ref().map(UserId::as_str)))
        .bind(column(events, |e| e.session_id.as_ref().map(SessionId::as_str)))
        .bind(column(events, |e| Some(e.kind.as_str())))
        .bind(column(events, |e| e.scope.as_deref()))
        .bind(column(events, |e| e.reason.as_deref()))
        .bind(column(events, |e| e.detail.as_deref()))
        .bind(column(events, |e| Some(e.actor.as_str())))
        .bind(column(events, |e| e.ip.as_deref()))
        .bind(column(events, |e| e.user_agent.as_deref()))
        .bind(events.iter().map(|e| ms(e.at)).collect::<Vec<i64>>())
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn record_revocations(&mut self, entries: &[FeedEntry], at: OffsetDateTime) -> Result<i64, StoreError> {
        let rows: Vec<FeedRow<'_>> = entries.iter().filter_map(|e| feed_row(e, at)).collect();
        if rows.is_empty() {
            return Ok(0);
        }
        // The counter's row lock orders appending transactions: positions follow commit order.
        let last: i64 = sqlx::query_scalar("UPDATE revocation_counter SET seq = seq + $1 WHERE id = 1 RETURNING seq")
            .bind(rows.len() as i64)
            .fetch_one(self.conn())
            .await
            .map_err(db_err)?;
        let first = last - rows.len() as i64 + 1;
        // One statement for any number of entries.
        sqlx::query(
            "INSERT INTO revocations (seq, kind, subject, user_id, issuer, reason, value, at, next) \
             SELECT $1 + n - 1, k, s, u, i, r, v, t, x FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::bigint[], $8::bigint[], $9::text[]) WITH ORDINALITY AS e(k, s, u, i, r, v, t, x, n)",
        )
        .bind(first)
        .bind(column(&rows, |r| Some(r.kind)))
        .bind(column(&rows, |r| Some(r.subject)))
        .bind(column(&rows, |r| r.user_id))
        .bind(column(&rows, |r| r.issuer))
        .bind(column(&rows, |r| r.reason))
        .bind(rows.iter().map(|r| r.value).collect::<Vec<Option<i64>>>())
        .bind(rows.iter().map(|r| r.at).collect::<Vec<i64>>())
        .bind(column(&rows, |r| r.next))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(last)
    }

    async fn insert_mail_token(&mut self, t: &MailToken) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM mail_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
            .bind(t.user_id.as_str())
            .bind(t.purpose.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO mail_tokens (token_hash, purpose, user_id, new_email, fingerprint, created_at, \
             expires_at, used_at, request) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&t.hash.0[..])
        .bind(t.purpose.as_str())
        .bind(t.user_id.as_str())
        .bind(t.new_email.as_deref())
        .bind(&t.fingerprint.0[..])
        .bind(ms(t.created_at))
        .bind(ms(t.expires_at))
        .bind(t.used_at.map(ms))
        .bind(t.request.as_ref().map(|r| r.0.to_vec()))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn replace_mail_token(
        &mut self,
        request: &SecretHash,
        new: &SecretHash,
        at: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError> {
        let row = sqlx::query(
            "UPDATE mail_tokens SET token_hash = $1 WHERE request = $2 AND used_at IS NULL \
             AND expires_at > $3 RETURNING *",
        )
        .bind(&new.0[..])
        .bind(&request.0[..])
        .bind(ms(at))
        .fetch_optional(self.conn())
        .await
        .map_err(db_err)?;
        row.as_ref().map(mail_token_from).transpose()
    }

    async fn consume_mail_token(
        &mut self,
        hash: &SecretHash,
        purpose: MailPurpose,
        at: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError> {
        let row = sqlx::query(
            "UPDATE mail_tokens SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 \
             AND used_at IS NULL AND expires_at > $4 RETURNING *",
        )
        .bind(ms(at))
        .bind(&hash.0[..])
        .bind(purpose.as_str())
        .bind(ms(at))
        .fetch_optional(self.conn())
        .await
        .map_err(db_err)?;
        row.as_ref().map(mail_token_from).transpose()
    }

    async fn insert_refresh(&mut self, t: &RefreshToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (id, token_hash, family_id, session_id, user_id, created_at, expires_at, \
             used_at, replaced_by, successor_salt, grace_used) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&t.id)
        .bind(&t.token_hash.0[..])
        .bind(&t.family_id)
        .bind(t.session_id.as_str())
        .bind(t.user_id.as_str())
        .bind(ms(t.created_at))
        .bind(ms(t.expires_at))
        .bind(t.used_at.map(ms))
        .bind(t.replaced_by.as_deref())
        .bind(t.successor_salt.as_ref().map(|s| s.to_vec()))
        .bind(t.grace_used)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn consume_refresh(
        &mut self,
        id: &str,
        successor: &str,
        salt: &[u8; 32],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1, replaced_by = $2, successor_salt = $3, grace_used = FALSE \
             WHERE id = $4 AND used_at IS NULL",
        )
        .bind(ms(at))
        .bind(successor)
        .bind(&salt[..])
        .bind(id)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_refresh_grace(&mut self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET grace_used = TRUE WHERE id = $1 AND used_at IS NOT NULL AND NOT grace_used",
        )
        .bind(id)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_refresh_family(&mut self, family: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM refresh_tokens WHERE family_id = $1")
            .bind(family)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn revoke_user_refresh(&mut self, user: &UserId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM refresh_tokens WHERE user_id = $1")
            .bind(user.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn deny_token(&mut self, issuer: &str, jti: &str, exp: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO denied_tokens (issuer, jti, exp) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(issuer)
            .bind(jti)
            .bind(exp)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_signing_key(&mut self, key: &SigningKeyPair) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO signing_keys (kid, private_key, created_at, retired_at) VALUES ($1, $2, $3, $4)")
            .bind(&key.kid)
            .bind(&key.private_bytes()[..])
            .bind(ms(key.created_at))
            .bind(key.retired_at.map(ms))
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn retire_signing_keys(&mut self, keep: &str, at: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL AND kid <> $2")
            .bind(ms(at))
            .bind(keep)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn delete_signing_key(&mut self, kid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn has_signer(&mut self) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL)")
            .fetch_one(self.conn())
            .await
            .map_err(db_err)
    }

    async fn insert_client(&mut self, client: &RegisteredClient) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, backchannel_logout_uri, webhook_url, webhook_secret, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&client.id)
        .bind(&client.name)
        .bind(&client.secret_hash.0[..])
        .bind(client.backchannel_logout_uri.as_deref())
        .bind(client.webhook_url.as_deref())
        .bind(client.webhook_secret.as_deref())
        .bind(ms(client.created_at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn callback_clients(&mut self) -> Result<Vec<RegisteredClient>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE backchannel_logout_uri IS NOT NULL OR webhook_url IS NOT NULL ORDER BY created_at, id"
        ))
        .fetch_all(self.conn())
        .await
        .map_err(db_err)?;
        rows.iter().map(client_from).collect()
    }

    async fn enqueue_deliveries(&mut self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        // Many rows per statement: a user with many sessions and many clients makes hundreds.
        for chunk in deliveries.chunks(ENQUEUE_CHUNK) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO deliveries (id, client_id, kind, event, url, payload, status, attempts, last_status_code, \
                 next_attempt_at, created_at) ",
            );
            insert.push_values(chunk, |mut row, d| {
                row.push_bind(d.id.clone())
                    .push_bind(d.client_id.clone())
                    .push_bind(d.kind.as_str())
                    .push_bind(d.event.clone())
                    .push_bind(d.url.clone())
                    .push_bind(d.payload.clone())
                    .push_bind(d.status.as_str())
                    .push_bind(d.attempts)
                    .push_bind(d.last_status_code)
                    .push_bind(ms(d.next_attempt_at))
                    .push_bind(ms(d.created_at));
            });
            insert.build().execute(self.conn()).await.map_err(db_err)?;
        }
        Ok(())
    }

    async fn delete_client(&mut self, id: &str) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM deliveries WHERE client_id = $1")
            .bind(id)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        let done =
            sqlx::query("DELETE FROM clients WHERE id = $1").bind(id).execute(self.conn()).await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(db_err)
    }
}
