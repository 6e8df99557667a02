//! What the lifecycle needs from storage, and the records it keeps there.
//!
//! Backends (SQLite now, PostgreSQL next) implement these traits; nothing in the core knows
//! which one it talks to. Every method is a single statement or transaction, so a backend
//! never leaves a half-written change behind. In particular, ending many sessions of one
//! user is one statement on an indexed column, not a loop.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::secret::{SecretHash, SessionId, UserId};

/// A user as the lifecycle sees it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    /// Bumped by "log out everywhere" and security events; tokens carry it.
    pub token_version: i64,
    pub created_at: OffsetDateTime,
}

/// A user with the password hash, for sign-in only.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

/// A live session. `expires_at` is the absolute end; the idle end follows `last_active_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub secret_hash: SecretHash,
    pub created_at: OffsetDateTime,
    pub last_active_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was hit (an e-mail that is taken).
    #[error("conflict")]
    Conflict,
    /// The backend failed; the message is for operators' logs only.
    #[error("backend: {0}")]
    Backend(String),
}

/// Which sessions [`SessionStore::end_sessions`] ends.
#[derive(Debug, Clone, Copy)]
pub enum SessionFilter<'a> {
    /// One session of one user (a session id of another user matches nothing).
    One { user: &'a UserId, id: &'a SessionId },
    /// Every session of a user, except `keep`.
    AllOf { user: &'a UserId, keep: Option<&'a SessionId> },
    /// Every session past its absolute end, or idle since before `idle_cutoff`.
    Expired { now: OffsetDateTime, idle_cutoff: OffsetDateTime },
}

/// Every change a store makes is recorded in the audit log in the same transaction: either
/// both land or neither does.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user; `Conflict` when the e-mail is taken.
    async fn create_user(&self, user: &User, password_hash: &str, audit: &AuditEvent) -> Result<(), StoreError>;
    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>, StoreError>;
    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert_session(&self, session: &Session, audit: &AuditEvent) -> Result<(), StoreError>;
    /// The session with this secret hash and its user, whether or not it has expired.
    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<(Session, User)>, StoreError>;
    /// Records activity; never moves `last_active_at` backwards.
    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Deletes the sessions matching `filter` in one statement and appends one audit event per
    /// ended session (`audit` with that session's user and id filled in), in one transaction.
    /// Returns the sessions it ended.
    async fn end_sessions(&self, filter: SessionFilter<'_>, audit: &AuditEvent) -> Result<Vec<Session>, StoreError>;
    /// Sessions of `user`, most recently active first (expired ones included; callers filter).
    async fn user_sessions(&self, user: &UserId) -> Result<Vec<Session>, StoreError>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event that goes with no other change (a failed sign-in).
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// A user's events, newest first.
    async fn user_audit(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;
}

/// Everything a backend provides.
#[async_trait]
pub trait Store: UserStore + SessionStore + AuditStore + 'static {
    /// Cheap reachability check for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;
}
