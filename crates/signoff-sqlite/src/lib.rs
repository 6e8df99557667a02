//! The embedded SQLite store of signoff: one file, created and migrated on start.
//!
//! Implements the `signoff_core::store` traits with plain `sqlx` queries. Times are stored as
//! Unix milliseconds, secret hashes as 32-byte blobs.

mod migrate;

use async_trait::async_trait;
use signoff_core::audit::{Actor, AuditEvent, AuditKind};
use signoff_core::secret::SecretHash;
use signoff_core::store::{
    AuditStore, Session, SessionFilter, SessionStore, Store, StoreError, User, UserCredentials, UserStore,
};
use signoff_core::{SessionId, UserId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;

/// A signoff store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at a `sqlite://PATH` URL and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(backend)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(backend)?;
        migrate::run(&pool).await?;
        Ok(Self { pool })
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ => backend(e),
    }
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(v: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(v as i128 * 1_000_000).map_err(backend)
}

// Column lists as macros so every query stays a `&'static str` built with `concat!`.
macro_rules! session_columns {
    () => {
        "s.id, s.secret_hash, s.user_id, s.created_at, s.last_active_at, s.expires_at, s.ip, s.user_agent"
    };
}
// RETURNING cannot name a table alias.
macro_rules! session_returning {
    () => {
        "id, secret_hash, user_id, created_at, last_active_at, expires_at, ip, user_agent"
    };
}
macro_rules! user_columns {
    () => {
        "u.id AS u_id, u.email, u.token_version, u.created_at AS u_created_at"
    };
}

fn session_from(row: &SqliteRow) -> Result<Session, StoreError> {
    let hash: Vec<u8> = row.try_get("secret_hash").map_err(backend)?;
    Ok(Session {
        id: SessionId::from_string(row.try_get("id").map_err(backend)?),
        user_id: UserId::from_string(row.try_get("user_id").map_err(backend)?),
        secret_hash: SecretHash::from_slice(&hash).ok_or_else(|| backend("corrupt secret hash"))?,
        created_at: from_ms(row.try_get("created_at").map_err(backend)?)?,
        last_active_at: from_ms(row.try_get("last_active_at").map_err(backend)?)?,
        expires_at: from_ms(row.try_get("expires_at").map_err(backend)?)?,
        ip: row.try_get("ip").map_err(backend)?,
        user_agent: row.try_get("user_agent").map_err(backend)?,
    })
}

fn user_from(row: &SqliteRow) -> Result<User, StoreError> {
    Ok(User {
        id: UserId::from_string(row.try_get("u_id").map_err(backend)?),
        email: row.try_get("email").map_err(backend)?,
        token_version: row.try_get("token_version").map_err(backend)?,
        created_at: from_ms(row.try_get("u_created_at").map_err(backend)?)?,
    })
}

async fn insert_audit(conn: &mut SqliteConnection, e: &AuditEvent) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (user_id, session_id, kind, scope, reason, actor, ip, user_agent, at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.user_id.as_ref().map(UserId::as_str))
    .bind(e.session_id.as_ref().map(SessionId::as_str))
    .bind(e.kind.as_str())
    .bind(e.scope.as_deref())
    .bind(e.reason.as_deref())
    .bind(e.actor.as_str())
    .bind(e.ip.as_deref())
    .bind(e.user_agent.as_deref())
    .bind(ms(e.at))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: &User, password_hash: &str, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query("INSERT INTO users (id, email, password_hash, token_version, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(user.id.as_str())
            .bind(&user.email)
            .bind(password_hash)
            .bind(user.token_version)
            .bind(ms(user.created_at))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), ", u.password_hash FROM users u WHERE u.email = ?"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(UserCredentials { user: user_from(&r)?, password_hash: r.try_get("password_hash").map_err(backend)? })
        })
        .transpose()
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from).transpose()
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, s: &Session, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO sessions (id, secret_hash, user_id, created_at, last_active_at, expires_at, ip, user_agent) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.id.as_str())
        .bind(&s.secret_hash.0[..])
        .bind(s.user_id.as_str())
        .bind(ms(s.created_at))
        .bind(ms(s.last_active_at))
        .bind(ms(s.expires_at))
        .bind(s.ip.as_deref())
        .bind(s.user_agent.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<(Session, User)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.secret_hash = ?"
        ))
        .bind(&hash.0[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| Ok((session_from(&r)?, user_from(&r)?))).transpose()
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

    async fn end_sessions(&self, filter: SessionFilter<'_>, audit: &AuditEvent) -> Result<Vec<Session>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let query = match filter {
            SessionFilter::One { user, id } => sqlx::query(concat!(
                "DELETE FROM sessions WHERE id = ? AND user_id = ? RETURNING ",
                session_returning!()
            ))
            .bind(id.as_str())
            .bind(user.as_str()),
            SessionFilter::AllOf { user, keep } => sqlx::query(concat!(
                "DELETE FROM sessions WHERE user_id = ? AND id IS NOT ? RETURNING ",
                session_returning!()
            ))
            .bind(user.as_str())
            .bind(keep.map(SessionId::as_str)),
            SessionFilter::Expired { now, idle_cutoff } => sqlx::query(concat!(
                "DELETE FROM sessions WHERE expires_at <= ? OR last_active_at <= ? RETURNING ",
                session_returning!()
            ))
            .bind(ms(now))
            .bind(ms(idle_cutoff)),
        };
        let rows = query.fetch_all(&mut *tx).await.map_err(db_err)?;
        let ended = rows.iter().map(session_from).collect::<Result<Vec<_>, _>>()?;
        for session in &ended {
            insert_audit(&mut tx, &audit.about(session)).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(ended)
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
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, e: &AuditEvent) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        insert_audit(&mut conn, e).await
    }

    async fn user_audit(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, session_id, kind, scope, reason, actor, ip, user_agent, at FROM audit_events \
             WHERE user_id = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(user.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind").map_err(backend)?;
                let actor: String = r.try_get("actor").map_err(backend)?;
                Ok(AuditEvent {
                    kind: AuditKind::parse(&kind).ok_or_else(|| backend(format!("unknown audit kind {kind}")))?,
                    at: from_ms(r.try_get("at").map_err(backend)?)?,
                    user_id: r.try_get::<Option<String>, _>("user_id").map_err(backend)?.map(UserId::from_string),
                    session_id: r
                        .try_get::<Option<String>, _>("session_id")
                        .map_err(backend)?
                        .map(SessionId::from_string),
                    scope: r.try_get("scope").map_err(backend)?,
                    reason: r.try_get("reason").map_err(backend)?,
                    actor: Actor::parse(&actor).ok_or_else(|| backend(format!("unknown actor {actor}")))?,
                    ip: r.try_get("ip").map_err(backend)?,
                    user_agent: r.try_get("user_agent").map_err(backend)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }
}
