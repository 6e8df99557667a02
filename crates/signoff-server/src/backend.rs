//! The one place where backends are chosen: the store from the database URL's scheme, and, on
//! PostgreSQL, the node protocol's leases and fan-out (Redis when configured, else the
//! database's `LISTEN/NOTIFY`); the mail transport (SMTP when configured, else `.eml` files).

use signoff_core::Store;
use signoff_core::cluster::{Cluster, ClusterPolicy, Fanout, Leases};
use signoff_core::throttle::SharedCounters;
use std::sync::Arc;

use crate::config::Config;

/// Why a backend could not be opened: each says what, and where (never a password).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("unsupported database URL scheme `{0}` in SIGNOFF_DATABASE_URL (use sqlite://PATH or postgres://…)")]
    Unsupported(String),
    #[error("cannot open the store: {0}")]
    Open(signoff_core::StoreError),
    #[error(transparent)]
    Postgres(#[from] signoff_postgres::OpenError),
    #[error(
        "the folder {folder} of the SQLite database {file} does not exist (SIGNOFF_DATABASE_URL): create it, or name another path"
    )]
    SqliteFolder { folder: String, file: String },
    #[error("cannot set up mail: {0}")]
    Mail(signoff_core::mail::MailError),
    #[error(transparent)]
    Claimed(#[from] signoff_sqlite::serving::ClaimError),
}

// By hand, not `#[from]`: the message already carries the cause, and a source would repeat it
// in the error chain.
impl From<signoff_core::StoreError> for BackendError {
    fn from(e: signoff_core::StoreError) -> Self {
        Self::Open(e)
    }
}

impl From<signoff_core::mail::MailError> for BackendError {
    fn from(e: signoff_core::mail::MailError) -> Self {
        Self::Mail(e)
    }
}

/// The file of a `sqlite:` URL, whose folder must exist (SQLite creates the file, not folders).
fn sqlite_file(url: &str) -> Result<std::path::PathBuf, BackendError> {
    let path = signoff_sqlite::SqliteStore::path_of(url)?;
    let in_memory = path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || url.contains("mode=memory");
    if !in_memory {
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        if !folder.is_dir() {
            return Err(BackendError::SqliteFolder {
                folder: folder.display().to_string(),
                file: path.display().to_string(),
            });
        }
    }
    Ok(path)
}

/// What this process holds while it serves: on SQLite, the claim on the file (one serving
/// process per file; see `signoff_sqlite::serving`).
#[derive(Debug)]
pub struct Serving {
    _claim: Option<signoff_sqlite::serving::ServingLock>,
}

/// Claims the store `config` names for a server process, before it is opened: a SQLite file
/// that another process serves is refused, naming the file and pointing to PostgreSQL.
pub fn claim_for_serving(config: &Config) -> Result<Serving, BackendError> {
    let url = config.database_url.expose();
    if !url.starts_with("sqlite:") {
        return Ok(Serving { _claim: None });
    }
    let path = sqlite_file(url)?;
    // An in-memory database is this process's alone.
    let in_memory = path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || url.contains("mode=memory");
    let claim = if in_memory { None } else { Some(signoff_sqlite::serving::claim(&path)?) };
    Ok(Serving { _claim: claim })
}

/// The mail transport `config` names: SMTP at `smtp_url`, else `.eml` files in `mail_dir`.
pub fn mailer(config: &Config) -> Result<Arc<dyn signoff_core::mail::Mailer>, BackendError> {
    use signoff_core::mail::MailError;
    let from: lettre::message::Mailbox =
        config.mail_from.parse().map_err(|e| MailError::Permanent(format!("mail_from: {e}")))?;
    let host = config.public_url.host_str().unwrap_or("localhost").to_owned();
    Ok(match &config.smtp_url {
        Some(url) => Arc::new(crate::mailer::Smtp::new(url.expose(), from, host)?),
        None => Arc::new(crate::mailer::FileInbox::new(config.mail_dir.clone(), from, host)),
    })
}

/// What a process runs on: a store, and for several nodes the protocol's two halves and the
/// rate-limit counters they share.
pub struct Backend {
    pub store: Arc<dyn Store>,
    pub cluster: Option<(Arc<dyn Leases>, Arc<dyn Fanout>)>,
    pub counters: Option<Arc<dyn SharedCounters>>,
}

impl From<Arc<dyn Store>> for Backend {
    /// A store alone: one process (SQLite, or a test).
    fn from(store: Arc<dyn Store>) -> Self {
        Self { store, cluster: None, counters: None }
    }
}

impl Backend {
    /// The node protocol's membership with the configured timings, if this backend has one.
    pub fn cluster(&self, config: &Config) -> Option<Cluster> {
        let (leases, fanout) = self.cluster.clone()?;
        let lease = config.node_lease;
        let policy = ClusterPolicy {
            lease,
            renew_every: lease / 4,
            margin: lease / 10,
            ack_wait: config.node_ack_wait,
            poll: config.revocation_poll,
        };
        Some(Cluster::new(leases, fanout, policy))
    }
}

/// Opens what `config` names. Errors never repeat the URLs (they may hold passwords).
pub async fn open(config: &Config) -> Result<Backend, BackendError> {
    let url = config.database_url.expose();
    if url.starts_with("sqlite:") {
        let file = sqlite_file(url)?;
        let store = signoff_sqlite::SqliteStore::connect(url).await.map_err(|e| {
            BackendError::Open(signoff_core::StoreError::Backend(format!("SQLite database {}: {e}", file.display())))
        })?;
        let store: Arc<dyn Store> = Arc::new(store);
        return Ok(store.into());
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let options = signoff_postgres::PoolOptions {
            max_connections: config.database_max_connections,
            acquire_timeout: config.database_acquire_timeout,
        };
        let store = Arc::new(signoff_postgres::PgStore::connect(url, options).await?);
        let leases = Arc::new(store.cluster());
        // With Redis, hints go through Redis and LISTEN/NOTIFY both: a Redis outage costs
        // nothing but Redis.
        let fanout: Arc<dyn Fanout> = match &config.redis_url {
            Some(redis) => Arc::new(signoff_core::fanouts::BothFanouts::new(
                (Arc::new(signoff_redis::RedisFanout::new(redis.expose(), &config.redis_key_prefix)?), "redis"),
                (leases.clone(), "postgres"),
            )),
            None => leases.clone(),
        };
        return Ok(Backend { store: store.clone(), cluster: Some((leases, fanout)), counters: Some(store) });
    }
    Err(BackendError::Unsupported(url.split(':').next().unwrap_or_default().to_owned()))
}

/// Opens the store of a database URL alone (tools and tests).
pub async fn open_store(database_url: &str) -> Result<Arc<dyn Store>, BackendError> {
    let mut config = Config::defaults();
    config.database_url = crate::config::SecretUrl(database_url.to_owned());
    Ok(open(&config).await?.store)
}

/// Why `signoff backup` made no copy.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "signoff backup copies a SQLite store; for PostgreSQL use pg_dump (e.g. pg_dump --format=custom --file=FILE DATABASE_URL) and pg_restore"
    )]
    NotSqlite,
    #[error(transparent)]
    Sqlite(#[from] signoff_sqlite::BackupError),
}

/// An online, consistent copy of the store `config` names, written to `dest`; its size in bytes.
pub async fn backup(config: &Config, dest: &std::path::Path) -> Result<u64, BackupError> {
    let url = config.database_url.expose();
    if !url.starts_with("sqlite:") {
        return Err(BackupError::NotSqlite);
    }
    Ok(signoff_sqlite::backup(url, dest).await?)
}
