//! The embedded SQLite store of signoff: one file, created and migrated on start.
//!
//! Implements `signoff_core::store::{Store, Tx}` with plain `sqlx` queries. Times are stored as
//! Unix milliseconds, secret hashes as 32-byte blobs.

mod migrate;
mod rows;
pub mod serving;

use async_trait::async_trait;
use signoff_core::secret::SecretHash;
use signoff_core::store::RefreshToken;
use signoff_core::store::{Ended, Session, Store, StoreError, Tx, User, UserCredentials};
use signoff_core::{SessionId, UserId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;

use rows::{backend, db_err, refresh_from, session_from, user_from};

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
        "s.id, s.secret_hash, s.user_id, s.created_at, s.last_active_at, s.expires_at, s.ip, s.user_agent, s.series, \
         s.signin_id, s.authenticated_at"
    };
}
// RETURNING cannot name a table alias.
macro_rules! session_returning {
    () => {
        "id, secret_hash, user_id, created_at, last_active_at, expires_at, ip, user_agent, series, signin_id, \
         authenticated_at"
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
    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(db_err)
    }
}
