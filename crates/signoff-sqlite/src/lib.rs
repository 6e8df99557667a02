//! The embedded SQLite store of signoff: one file, created and migrated on start.
//!
//! Implements `signoff_core::store::{Store, Tx}` with plain `sqlx` queries. Times are stored as
//! Unix milliseconds, secret hashes as 32-byte blobs.

mod migrate;
mod rows;
pub mod serving;

use async_trait::async_trait;
use signoff_core::audit::AuditEvent;
use signoff_core::clients::RegisteredClient;
use signoff_core::mail::{MailPurpose, MailToken};
use signoff_core::outbox::{Delivery, DeliveryPage};
use signoff_core::revocation::FeedEntry;
use signoff_core::secret::SecretHash;
use signoff_core::store::RefreshToken;
use signoff_core::store::{
    Ended, RememberFilter, RememberToken, Session, SessionFilter, Store, StoreError, Tx, User, UserCredentials,
};
use signoff_core::token::SigningKeyPair;
use signoff_core::{SessionId, UserId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;

use rows::{
    audit_from, backend, client_from, db_err, delivery_from, feed_from, feed_row, mail_token_from, ms, refresh_from,
    remember_from, session_from, signing_key_from, user_from,
};

/// A signoff store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// The file a `sqlite://PATH` URL names.
    pub fn path_of(url: &str) -> Result<std::path::PathBuf, StoreError> {
        Ok(SqliteConnectOptions::from_str(url).map_err(backend)?.get_filename().to_owned())
    }

    /// Opens (creating if needed) the database at a `sqlite://PATH` URL and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(backend)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL, not NORMAL: in WAL mode NORMAL survives a crash of this process but may
            // roll back the last commits on a power cut or an OS crash, and a logout that was
            // answered must never come back. The price is one fsync of the WAL per commit
            // (sign-ins, logouts, refreshes; validation writes at most once a minute per session).
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        restrict_permissions(options.get_filename())?;
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(backend)?;
        migrate::run(&pool).await?;
        Ok(Self { pool })
    }
}

/// Writes a consistent copy of the database at `url` to `dest` while servers may be using it
/// (`VACUUM INTO`: one read transaction, so the copy is the database as of one commit). The
/// copy is created owner-only; an existing `dest` is refused, and so is a `dest` that another
/// process swapped for something else meanwhile (the file written must be the one created,
/// or the copy is refused). Returns its size in bytes.
pub async fn backup(url: &str, dest: &std::path::Path) -> Result<u64, BackupError> {
    let source = SqliteStore::path_of(url).map_err(|e| BackupError::Source(e.to_string()))?;
    if !source.is_file() {
        return Err(BackupError::Source(format!("{} does not exist", source.display())));
    }
    let mut create = std::fs::OpenOptions::new();
    create.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
    let created = create.open(dest).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AlreadyExists => "already exists (choose a new file)".to_owned(),
            _ => e.to_string(),
        };
        BackupError::Dest(format!("{}: {why}", dest.display()))
    })?;
    let made = created.metadata().map_err(|e| BackupError::Dest(e.to_string()))?;
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| BackupError::Source(e.to_string()))?
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    let copy = async {
        let mut conn = <SqliteConnection as sqlx::Connection>::connect_with(&options).await?;
        let dest = dest.to_str().ok_or_else(|| sqlx::Error::Protocol("the backup path is not UTF-8".into()))?;
        sqlx::query("VACUUM INTO ?").bind(dest).execute(&mut conn).await?;
        sqlx::Connection::close(conn).await
    };
    let copied = copy.await;
    // The path must still be the file created above (not a link or another file put there).
    let now = std::fs::symlink_metadata(dest).map_err(|e| BackupError::Dest(e.to_string()))?;
    if !same_file(&made, &now) {
        return Err(BackupError::Dest(format!("{} was replaced while the copy was written", dest.display())));
    }
    if let Err(e) = copied {
        let _ = std::fs::remove_file(dest);
        return Err(BackupError::Copy(e.to_string()));
    }
    Ok(now.len())
}

/// Whether two metadata are of one regular file.
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        b.is_file() && a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        a.is_file() && b.is_file()
    }
}

/// Why a backup was not made (a half-written copy is removed).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the SQLite database to back up: {0}")]
    Source(String),
    #[error("the backup file {0}")]
    Dest(String),
    #[error("copying failed: {0}")]
    Copy(String),
}

/// The database holds signing keys and secret hashes: owner-only, like a key file. It is
/// created (or tightened) before SQLite opens it, so the `-wal` and `-shm` files SQLite makes
/// beside it get the same mode.
fn restrict_permissions(path: &std::path::Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    if !path.as_os_str().is_empty() && path != std::path::Path::new(":memory:") {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(backend)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(backend)?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

// Column lists as macros so every query stays a `&'static str` built with `concat!`.
macro_rules! session_columns {
    () => {
        "s.id, s.secret_hash, s.user_id, s.created_at, s.last_active_at, s.expires_at, s.ip, s.user_agent, s.series"
    };
}
// RETURNING cannot name a table alias.
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
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    async fn close(&self) {
        // The log into the database file, and the log emptied: after a clean stop the file
        // alone holds everything (a copy of it is a whole copy). Closing the last connection
        // would checkpoint too, but only if nothing else has the file open.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await {
            tracing::warn!(error = %e, "could not checkpoint the SQLite write-ahead log");
        }
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError> {
        // IMMEDIATE: the write lock is taken at once, so every read inside the transaction sees
        // the newest commit and nothing commits under it (see `Tx`).
        Ok(Box::new(SqliteTx { tx: self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)? }))
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.email = ?"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserCredentials>, StoreError> {
        read::user_by_id(&self.pool, id).await
    }

    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<(Session, User)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.secret_hash = ?"
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
            " FROM sessions s WHERE s.user_id = ? ORDER BY s.last_active_at DESC, s.created_at DESC"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(session_from).collect()
    }

    async fn remember_by_selector(&self, selector: &str) -> Result<Option<RememberToken>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", remember_columns!(), " FROM remember_tokens WHERE selector = ?"))
            .bind(selector)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(remember_from).transpose()
    }

    async fn user_remember(&self, user: &UserId) -> Result<Vec<RememberToken>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", remember_columns!(), " FROM remember_tokens WHERE user_id = ?"))
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(remember_from).collect()
    }

    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_active_at = max(last_active_at, ?) WHERE id = ?")
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
            "SELECT user_id FROM sessions WHERE expires_at <= ? OR last_active_at <= ? \
             UNION SELECT user_id FROM remember_tokens WHERE expires_at <= ? LIMIT ?",
        )
        .bind(ms(now))
        .bind(ms(idle_cutoff))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(ids.into_iter().map(UserId::from_string).collect())
    }

    async fn user_audit(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, session_id, kind, scope, reason, detail, actor, ip, user_agent, at FROM audit_events \
             WHERE user_id = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(user.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(audit_from).collect()
    }

    async fn revocations_since(&self, after: i64, limit: u32) -> Result<Vec<(i64, FeedEntry)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, kind, subject, user_id, issuer, reason, value, at, next FROM revocations WHERE seq > ? \
             ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(feed_from).collect()
    }

    async fn revocation_head(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM revocations").fetch_one(&self.pool).await.map_err(db_err)
    }

    async fn trim_revocations(&self, before: OffsetDateTime, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM revocations WHERE at < ?")
            .bind(ms(before))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM denied_tokens WHERE exp < ?")
            .bind(now.unix_timestamp() - 60)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn session_by_id(&self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError> {
        read::session_by_id(&self.pool, id).await
    }

    async fn refresh_by_hash(&self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError> {
        read::refresh_by_hash(&self.pool, hash).await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyPair>, StoreError> {
        let rows = sqlx::query("SELECT kid, private_key, created_at, retired_at FROM signing_keys")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(signing_key_from).collect()
    }

    async fn denied_tokens(&self, now: i64) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT issuer, jti, exp FROM denied_tokens WHERE exp >= ?")
                .bind(now - 60)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(rows)
    }

    async fn client_by_id(&self, id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", client_columns!(), " FROM clients WHERE id = ?"))
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
        let skip = serde_json::to_string(skip).map_err(backend)?;
        // The pending URLs one by one off the index (a loose index scan), the oldest due few of
        // each, ranked within their URL: every URL's first before any URL's second.
        let rows = sqlx::query(
            "UPDATE deliveries SET claimed_until = ?1, claim_token = ?2 WHERE id IN (\
               WITH RECURSIVE urls(url) AS (\
                 SELECT min(url) FROM deliveries WHERE status = 'pending' \
                 UNION ALL \
                 SELECT (SELECT min(url) FROM deliveries WHERE status = 'pending' AND url > urls.url) FROM urls \
                 WHERE urls.url IS NOT NULL) \
               SELECT id FROM (\
                 SELECT d.id, d.next_attempt_at, row_number() OVER (PARTITION BY d.url ORDER BY d.next_attempt_at, d.id) AS rn \
                 FROM urls JOIN deliveries d ON d.id IN (\
                   SELECT id FROM deliveries WHERE status = 'pending' AND url = urls.url AND next_attempt_at <= ?3 \
                   AND (claimed_until IS NULL OR claimed_until < ?3) ORDER BY next_attempt_at LIMIT ?4) \
                 WHERE urls.url NOT IN (SELECT value FROM json_each(?6))) \
               ORDER BY rn, next_attempt_at LIMIT ?5) \
             RETURNING id, client_id, kind, event, url, payload, status, attempts, last_status_code, last_error, next_attempt_at, created_at, claim_token",
        )
        .bind(ms(until))
        .bind(signoff_core::secret::random_id())
        .bind(ms(now))
        .bind(i64::from(per_endpoint))
        .bind(i64::from(limit))
        .bind(skip)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(delivery_from).collect()
    }

    async fn release_deliveries(&self, claim: &str, ids: &[String]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for id in ids {
            sqlx::query(
                "UPDATE deliveries SET claimed_until = NULL, claim_token = NULL WHERE id = ? AND claim_token = ?",
            )
            .bind(id)
            .bind(claim)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn record_delivery(&self, d: &Delivery) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = ?, attempts = ?, last_status_code = ?, last_error = ?, next_attempt_at = ?, \
             claimed_until = NULL, claim_token = NULL WHERE id = ? AND status = 'pending' AND claim_token = ?",
        )
        .bind(d.status.as_str())
        .bind(d.attempts)
        .bind(d.last_status_code)
        .bind(d.last_error.as_deref())
        .bind(ms(d.next_attempt_at))
        .bind(&d.id)
        .bind(d.claim.as_deref())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM deliveries WHERE status <> 'pending' AND created_at < ?")
            .bind(ms(before))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn mail_token(&self, hash: &SecretHash) -> Result<Option<MailToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM mail_tokens WHERE token_hash = ?")
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
            "SELECT * FROM mail_tokens WHERE user_id = ? AND purpose = ? AND used_at IS NULL \
             AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
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
        let done = sqlx::query("DELETE FROM mail_tokens WHERE expires_at < ?")
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
             created_at, claim_token FROM deliveries WHERE client_id = ?1 AND (?2 IS NULL OR status = ?2) \
             AND (?3 IS NULL OR created_at < ?3 OR (created_at = ?3 AND id < ?4)) \
             ORDER BY created_at DESC, id DESC LIMIT ?5",
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
            "UPDATE clients SET previous_webhook_secret = CASE WHEN ?1 > ?2 THEN webhook_secret END, \
             previous_webhook_secret_until = CASE WHEN ?1 > ?2 THEN ?1 END, webhook_secret = ?3 \
             WHERE id = ?4 AND webhook_url IS NOT NULL",
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
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, created_at = ?, attempts = 0, claimed_until = NULL, claim_token = NULL \
             WHERE client_id = ? AND id = ? AND status = 'failed'",
        )
        .bind(ms(now))
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
            "UPDATE clients SET backchannel_logout_uri = NULL WHERE id = ? AND backchannel_logout_uri = ?",
            "UPDATE clients SET webhook_url = NULL WHERE id = ? AND webhook_url = ?",
            "UPDATE deliveries SET status = 'failed', claimed_until = NULL WHERE client_id = ? AND url = ? AND status = 'pending'",
        ] {
            sqlx::query(sql).bind(client).bind(url).execute(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn forget_replaced_webhook_secrets(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET previous_webhook_secret = NULL, previous_webhook_secret_until = NULL \
             WHERE previous_webhook_secret_until <= ?",
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

/// One open SQLite transaction.
struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
}

impl SqliteTx {
    fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }

    /// What follows every deletion of sessions or series: the sessions opened from the deleted
    /// series (`selectors`) end too, and refresh tokens die with their sessions, whatever ended
    /// them.
    async fn cascade(&mut self, selectors: &[String], ended: &mut Ended) -> Result<(), StoreError> {
        for selector in selectors {
            let rows = sqlx::query(concat!("DELETE FROM sessions WHERE series = ? RETURNING ", session_returning!()))
                .bind(selector)
                .fetch_all(self.conn())
                .await
                .map_err(db_err)?;
            for row in &rows {
                ended.sessions.push(session_from(row)?);
            }
        }
        if !ended.sessions.is_empty() {
            sqlx::query("DELETE FROM refresh_tokens WHERE session_id NOT IN (SELECT id FROM sessions)")
                .execute(self.conn())
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }
}

/// Reads shared by the pool (`Store`) and an open transaction (`Tx`).
mod read {
    use super::*;
    use sqlx::SqliteExecutor;

    pub async fn user_by_id(e: impl SqliteExecutor<'_>, id: &UserId) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ?"))
            .bind(id.as_str())
            .fetch_optional(e)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from).transpose()
    }

    pub async fn session_by_id(
        e: impl SqliteExecutor<'_>,
        id: &SessionId,
    ) -> Result<Option<(Session, User)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(e)
        .await
        .map_err(db_err)?;
        row.map(|r| Ok((session_from(&r)?, user_from(&r)?.user))).transpose()
    }

    pub async fn refresh_by_hash(
        e: impl SqliteExecutor<'_>,
        hash: &SecretHash,
    ) -> Result<Option<RefreshToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = ?")
            .bind(&hash.0[..])
            .fetch_optional(e)
            .await
            .map_err(db_err)?;
        row.as_ref().map(refresh_from).transpose()
    }
}

#[async_trait]
impl Tx for SqliteTx {
    async fn lock_user(&mut self, _user: &UserId) -> Result<(), StoreError> {
        // `BEGIN IMMEDIATE` already made this transaction the only writer.
        Ok(())
    }

    async fn lock_signing_keys(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn user_by_id(&mut self, id: &UserId) -> Result<Option<UserCredentials>, StoreError> {
        read::user_by_id(self.conn(), id).await
    }

    async fn session_by_id(&mut self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError> {
        read::session_by_id(self.conn(), id).await
    }

    async fn remember_by_selector(&mut self, selector: &str) -> Result<Option<RememberToken>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", remember_columns!(), " FROM remember_tokens WHERE selector = ?"))
            .bind(selector)
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        row.as_ref().map(remember_from).transpose()
    }

    async fn refresh_by_hash(&mut self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError> {
        read::refresh_by_hash(self.conn(), hash).await
    }

    async fn refresh_by_id(&mut self, id: &str) -> Result<Option<RefreshToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM refresh_tokens WHERE id = ?")
            .bind(id)
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        row.as_ref().map(refresh_from).transpose()
    }

    async fn create_user(&mut self, user: &User, password_hash: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO users (id, email, password_hash, token_version, created_at) VALUES (?, ?, ?, ?, ?)")
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
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(user.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn set_email(&mut self, user: &UserId, email: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET email = ? WHERE id = ?")
            .bind(email)
            .bind(user.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn bump_token_version(&mut self, user: &UserId) -> Result<i64, StoreError> {
        sqlx::query_scalar("UPDATE users SET token_version = token_version + 1 WHERE id = ? RETURNING token_version")
            .bind(user.as_str())
            .fetch_one(self.conn())
            .await
            .map_err(db_err)
    }

    async fn insert_session(&mut self, s: &Session) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, secret_hash, user_id, created_at, last_active_at, expires_at, ip, user_agent, \
             series) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        sqlx::query("UPDATE sessions SET series = NULL WHERE id = ?")
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
        let done = sqlx::query("UPDATE sessions SET id = ?, secret_hash = ? WHERE id = ?")
            .bind(new.as_str())
            .bind(&hash.0[..])
            .bind(old.as_str())
            .execute(&mut *self.tx)
            .await
            .map_err(db_err)?;
        sqlx::query("UPDATE remember_tokens SET session_id = ? WHERE session_id = ?")
            .bind(new.as_str())
            .bind(old.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn end_sessions(&mut self, filter: SessionFilter<'_>) -> Result<Ended, StoreError> {
        let (sessions, remember) = match filter {
            SessionFilter::One { user, id } => (
                sqlx::query(concat!(
                    "DELETE FROM sessions WHERE id = ? AND user_id = ? RETURNING ",
                    session_returning!()
                ))
                .bind(id.as_str())
                .bind(user.as_str()),
                Some(
                    sqlx::query("DELETE FROM remember_tokens WHERE session_id = ? AND user_id = ? RETURNING selector")
                        .bind(id.as_str())
                        .bind(user.as_str()),
                ),
            ),
            SessionFilter::AllOf { user, keep, keep_series } => {
                let keep =
                    serde_json::to_string(&keep.iter().map(SessionId::as_str).collect::<Vec<_>>()).map_err(backend)?;
                (
                    sqlx::query(concat!(
                        "DELETE FROM sessions WHERE user_id = ? AND id NOT IN (SELECT value FROM json_each(?)) \
                         RETURNING ",
                        session_returning!()
                    ))
                    .bind(user.as_str())
                    .bind(keep.clone()),
                    // The kept sessions' own series survive (the kept sessions are not deleted).
                    Some(
                        sqlx::query(
                            "DELETE FROM remember_tokens WHERE user_id = ? AND selector NOT IN (SELECT series FROM \
                             sessions WHERE id IN (SELECT value FROM json_each(?)) AND series IS NOT NULL) \
                             AND selector IS NOT ? RETURNING selector",
                        )
                        .bind(user.as_str())
                        .bind(keep)
                        .bind(keep_series),
                    ),
                )
            }
            SessionFilter::Lapsed { user, id } => (
                sqlx::query(concat!(
                    "DELETE FROM sessions WHERE id = ? AND user_id = ? RETURNING ",
                    session_returning!()
                ))
                .bind(id.as_str())
                .bind(user.as_str()),
                None,
            ),
            SessionFilter::Expired { user, now, idle_cutoff } => (
                sqlx::query(concat!(
                    "DELETE FROM sessions WHERE user_id = ? AND (expires_at <= ? OR last_active_at <= ?) RETURNING ",
                    session_returning!()
                ))
                .bind(user.as_str())
                .bind(ms(now))
                .bind(ms(idle_cutoff)),
                None,
            ),
            SessionFilter::OldestBeyond { user, keep, spare } => (
                sqlx::query(concat!(
                    "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE user_id = ? AND id <> ? \
                     ORDER BY created_at DESC, id LIMIT -1 OFFSET ?) RETURNING ",
                    session_returning!()
                ))
                .bind(user.as_str())
                .bind(spare.as_str())
                .bind(keep.saturating_sub(1)),
                None,
            ),
        };
        let rows = sessions.fetch_all(self.conn()).await.map_err(db_err)?;
        let mut ended = Ended { sessions: rows.iter().map(session_from).collect::<Result<Vec<_>, _>>()?, series: 0 };
        let mut selectors: Vec<String> = Vec::new();
        if let Some(remember) = remember {
            selectors = remember.fetch_all(self.conn()).await.map_err(db_err)?.iter().map(|r| r.get(0)).collect();
        } else if let SessionFilter::OldestBeyond { .. } = filter {
            // Sessions ended by the cap take the series they back along.
            for s in &ended.sessions {
                let gone: Vec<String> =
                    sqlx::query_scalar("DELETE FROM remember_tokens WHERE session_id = ? RETURNING selector")
                        .bind(s.id.as_str())
                        .fetch_all(self.conn())
                        .await
                        .map_err(db_err)?;
                selectors.extend(gone);
            }
        }
        ended.series = selectors.len() as u64;
        self.cascade(&selectors, &mut ended).await?;
        Ok(ended)
    }

    async fn insert_remember(&mut self, t: &RememberToken) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO remember_tokens (",
            remember_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
            "UPDATE remember_tokens SET validator_hash = ?, previous_hash = validator_hash, rotated_at = ?, \
             grace_used = 0, session_id = ?, ip = ?, user_agent = ? WHERE selector = ? AND validator_hash = ?",
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
            "UPDATE remember_tokens SET grace_used = 1 WHERE selector = ? AND previous_hash = ? AND grace_used = 0",
        )
        .bind(selector)
        .bind(&previous.0[..])
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_remember(&mut self, filter: RememberFilter<'_>) -> Result<Ended, StoreError> {
        let query = match filter {
            RememberFilter::Selector(s) => {
                sqlx::query_scalar("DELETE FROM remember_tokens WHERE selector = ? RETURNING selector").bind(s)
            }
            RememberFilter::AllOfUser(u) => {
                sqlx::query_scalar("DELETE FROM remember_tokens WHERE user_id = ? RETURNING selector").bind(u.as_str())
            }
            RememberFilter::Expired { user, now } => sqlx::query_scalar(
                "DELETE FROM remember_tokens WHERE user_id = ? AND expires_at <= ? RETURNING selector",
            )
            .bind(user.as_str())
            .bind(ms(now)),
            // The spared series counts as the newest: one place fewer for the others.
            RememberFilter::OldestBeyond { user, keep, spare } => sqlx::query_scalar(
                "DELETE FROM remember_tokens WHERE selector IN (SELECT selector FROM remember_tokens WHERE user_id = ? \
                 AND selector IS NOT ? ORDER BY coalesce(rotated_at, created_at) DESC, selector LIMIT -1 OFFSET ?) \
                 RETURNING selector",
            )
            .bind(user.as_str())
            .bind(spare)
            .bind(if spare.is_some() { keep.saturating_sub(1) } else { keep }),
        };
        let selectors: Vec<String> = query.fetch_all(self.conn()).await.map_err(db_err)?;
        let mut ended = Ended { sessions: Vec::new(), series: selectors.len() as u64 };
        self.cascade(&selectors, &mut ended).await?;
        Ok(ended)
    }

    async fn append_audit(&mut self, e: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (user_id, session_id, kind, scope, reason, detail, actor, ip, user_agent, at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        // One statement for any number: the rows travel as one JSON array.
        let rows: Vec<serde_json::Value> = events
            .iter()
            .map(|e| {
                serde_json::json!([
                    e.user_id.as_ref().map(UserId::as_str),
                    e.session_id.as_ref().map(SessionId::as_str),
                    e.kind.as_str(),
                    e.scope,
                    e.reason,
                    e.detail,
                    e.actor.as_str(),
                    e.ip,
                    e.user_agent,
                    ms(e.at),
                ])
            })
            .collect();
        sqlx::query(
            "INSERT INTO audit_events (user_id, session_id, kind, scope, reason, detail, actor, ip, user_agent, at) \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, \
             value->>8, value->>9 FROM json_each(?) ORDER BY key",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn record_revocations(&mut self, entries: &[FeedEntry], at: OffsetDateTime) -> Result<i64, StoreError> {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .filter_map(|e| feed_row(e, at))
            .map(|r| serde_json::json!([r.kind, r.subject, r.user_id, r.issuer, r.reason, r.value, r.at, r.next]))
            .collect();
        if rows.is_empty() {
            return Ok(0);
        }
        // One statement for any number, positions in the entries' order (AUTOINCREMENT).
        let done = sqlx::query(
            "INSERT INTO revocations (kind, subject, user_id, issuer, reason, value, at, next) \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7 \
             FROM json_each(?) ORDER BY key",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.last_insert_rowid())
    }

    async fn insert_mail_token(&mut self, t: &MailToken) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM mail_tokens WHERE user_id = ? AND purpose = ? AND used_at IS NULL")
            .bind(t.user_id.as_str())
            .bind(t.purpose.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO mail_tokens (token_hash, purpose, user_id, new_email, fingerprint, created_at, \
             expires_at, used_at, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            "UPDATE mail_tokens SET token_hash = ? WHERE request = ? AND used_at IS NULL \
             AND expires_at > ? RETURNING *",
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
            "UPDATE mail_tokens SET used_at = ? WHERE token_hash = ? AND purpose = ? \
             AND used_at IS NULL AND expires_at > ? RETURNING *",
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
             used_at, replaced_by, successor_salt, grace_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            "UPDATE refresh_tokens SET used_at = ?, replaced_by = ?, successor_salt = ?, grace_used = 0 \
             WHERE id = ? AND used_at IS NULL",
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
            "UPDATE refresh_tokens SET grace_used = 1 WHERE id = ? AND used_at IS NOT NULL AND grace_used = 0",
        )
        .bind(id)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_refresh_family(&mut self, family: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM refresh_tokens WHERE family_id = ?")
            .bind(family)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn revoke_user_refresh(&mut self, user: &UserId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM refresh_tokens WHERE user_id = ?")
            .bind(user.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn deny_token(&mut self, issuer: &str, jti: &str, exp: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO denied_tokens (issuer, jti, exp) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(issuer)
            .bind(jti)
            .bind(exp)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_signing_key(&mut self, key: &SigningKeyPair) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO signing_keys (kid, private_key, created_at, retired_at) VALUES (?, ?, ?, ?)")
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
        let done = sqlx::query("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL AND kid != ?")
            .bind(ms(at))
            .bind(keep)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn delete_signing_key(&mut self, kid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM signing_keys WHERE kid = ?")
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
             VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        sqlx::query("DELETE FROM deliveries WHERE client_id = ?")
            .bind(id)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        let done =
            sqlx::query("DELETE FROM clients WHERE id = ?").bind(id).execute(self.conn()).await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(db_err)
    }
}
