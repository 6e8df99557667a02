//! Converting between PostgreSQL rows and core records, and store errors.

use signoff_core::audit::{Actor, AuditEvent, AuditKind};
use signoff_core::revocation::FeedEntry;
use signoff_core::secret::SecretHash;
use signoff_core::store::{RefreshToken, RememberToken, Session, StoreError, User, UserCredentials};
use signoff_core::token::SigningKeyPair;
use signoff_core::{Revocation, SessionId, UserId};
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

pub fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Unique violations are conflicts; lock and serialisation failures, deadlocks, cancelled
/// statements and an exhausted pool are load (`Busy`, answered 503): a retry may succeed.
pub fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(d)
            if d.code().is_some_and(|c| matches!(c.as_ref(), "40001" | "40P01" | "55P03" | "57014")) =>
        {
            StoreError::Busy(e.to_string())
        }
        sqlx::Error::PoolTimedOut => StoreError::Busy(e.to_string()),
        _ => backend(e),
    }
}

pub fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_ms(v: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(v as i128 * 1_000_000).map_err(backend)
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r PgRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col).map_err(backend)
}

fn hash(row: &PgRow, col: &str) -> Result<SecretHash, StoreError> {
    let bytes: Vec<u8> = get(row, col)?;
    SecretHash::from_slice(&bytes).ok_or_else(|| backend(format!("corrupt hash in {col}")))
}

pub fn session_from(row: &PgRow) -> Result<Session, StoreError> {
    Ok(Session {
        id: SessionId::from_string(get(row, "id")?),
        user_id: UserId::from_string(get(row, "user_id")?),
        secret_hash: hash(row, "secret_hash")?,
        created_at: from_ms(get(row, "created_at")?)?,
        last_active_at: from_ms(get(row, "last_active_at")?)?,
        expires_at: from_ms(get(row, "expires_at")?)?,
        ip: get(row, "ip")?,
        user_agent: get(row, "user_agent")?,
        series: get(row, "series")?,
    })
}

pub fn user_from(row: &PgRow) -> Result<UserCredentials, StoreError> {
    Ok(UserCredentials {
        user: User {
            id: UserId::from_string(get(row, "u_id")?),
            email: get(row, "email")?,
            token_version: get(row, "token_version")?,
            created_at: from_ms(get(row, "u_created_at")?)?,
        },
        password_hash: get(row, "password_hash")?,
    })
}

pub fn remember_from(row: &PgRow) -> Result<RememberToken, StoreError> {
    let previous: Option<Vec<u8>> = get(row, "previous_hash")?;
    let rotated_at: Option<i64> = get(row, "rotated_at")?;
    Ok(RememberToken {
        selector: get(row, "selector")?,
        validator_hash: hash(row, "validator_hash")?,
        previous_hash: previous.as_deref().and_then(SecretHash::from_slice),
        rotated_at: rotated_at.map(from_ms).transpose()?,
        user_id: UserId::from_string(get(row, "user_id")?),
        session_id: SessionId::from_string(get(row, "session_id")?),
        created_at: from_ms(get(row, "created_at")?)?,
        expires_at: from_ms(get(row, "expires_at")?)?,
        grace_used: get(row, "grace_used")?,
        ip: get(row, "ip")?,
        user_agent: get(row, "user_agent")?,
    })
}

pub fn audit_from(r: &PgRow) -> Result<AuditEvent, StoreError> {
    let kind: String = get(r, "kind")?;
    let actor: String = get(r, "actor")?;
    Ok(AuditEvent {
        kind: AuditKind::parse(&kind).ok_or_else(|| backend(format!("unknown audit kind {kind}")))?,
        at: from_ms(get(r, "at")?)?,
        user_id: get::<Option<String>>(r, "user_id")?.map(UserId::from_string),
        session_id: get::<Option<String>>(r, "session_id")?.map(SessionId::from_string),
        scope: get(r, "scope")?,
        reason: get(r, "reason")?,
        detail: get(r, "detail")?,
        actor: Actor::parse(&actor).ok_or_else(|| backend(format!("unknown actor {actor}")))?,
        ip: get(r, "ip")?,
        user_agent: get(r, "user_agent")?,
    })
}

pub fn feed_from(r: &PgRow) -> Result<(i64, FeedEntry), StoreError> {
    let kind: String = get(r, "kind")?;
    let subject: String = get(r, "subject")?;
    let value: Option<i64> = get(r, "value")?;
    let entry = match kind.as_str() {
        "session" => FeedEntry::Session(Revocation {
            session_id: SessionId::from_string(subject),
            user_id: UserId::from_string(get::<Option<String>>(r, "user_id")?.unwrap_or_default()),
            reason: get::<Option<String>>(r, "reason")?.unwrap_or_default(),
            at: from_ms(get(r, "at")?)?,
        }),
        "token" => FeedEntry::Token {
            issuer: get::<Option<String>>(r, "issuer")?.unwrap_or_default(),
            jti: subject,
            exp: value.unwrap_or_default(),
        },
        "token_version" => {
            FeedEntry::TokenVersion { user_id: UserId::from_string(subject), version: value.unwrap_or_default() }
        }
        "keys" => FeedEntry::Keys { kid: subject },
        "rekeyed" => FeedEntry::Rekeyed {
            old: SessionId::from_string(subject),
            new: SessionId::from_string(get::<Option<String>>(r, "next")?.unwrap_or_default()),
        },
        other => FeedEntry::Unknown { kind: other.to_owned() },
    };
    Ok((get(r, "seq")?, entry))
}

pub fn refresh_from(r: &PgRow) -> Result<RefreshToken, StoreError> {
    Ok(RefreshToken {
        id: get(r, "id")?,
        token_hash: hash(r, "token_hash")?,
        family_id: get(r, "family_id")?,
        session_id: SessionId::from_string(get(r, "session_id")?),
        user_id: UserId::from_string(get(r, "user_id")?),
        created_at: from_ms(get(r, "created_at")?)?,
        expires_at: from_ms(get(r, "expires_at")?)?,
        used_at: get::<Option<i64>>(r, "used_at")?.map(from_ms).transpose()?,
        replaced_by: get(r, "replaced_by")?,
        successor_salt: get::<Option<Vec<u8>>>(r, "successor_salt")?.and_then(|s| s.try_into().ok()),
        grace_used: get(r, "grace_used")?,
    })
}

pub fn signing_key_from(r: &PgRow) -> Result<SigningKeyPair, StoreError> {
    let private: Vec<u8> = get(r, "private_key")?;
    let private: [u8; 32] = private.try_into().map_err(|_| backend("corrupt signing key"))?;
    Ok(SigningKeyPair::from_parts(
        get(r, "kid")?,
        private,
        from_ms(get(r, "created_at")?)?,
        get::<Option<i64>>(r, "retired_at")?.map(from_ms).transpose()?,
    ))
}
