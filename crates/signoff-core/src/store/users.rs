//! Accounts: who they are, their password hash and their token version.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::secret::UserId;

/// A user as the lifecycle sees it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    /// Bumped by "log out everywhere" and security events; access tokens carry it.
    pub token_version: i64,
    pub created_at: OffsetDateTime,
}

/// A user with the password hash, for checking a password.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

/// User reads, outside any transaction (part of [`Store`](super::Store)).
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>, StoreError>;
    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserCredentials>, StoreError>;
}

/// User changes and locked reads, inside one transaction (part of [`Tx`](super::Tx)).
#[async_trait]
pub trait UserTx: Send {
    /// Takes the user's lock until the transaction ends. Every transaction that decides about a
    /// user's credentials takes it first (the authority's `batch_for`), so concurrent ones queue
    /// in one order instead of deadlocking over their rows. A no-op where transactions are
    /// serial anyway (SQLite).
    async fn lock_user(&mut self, user: &UserId) -> Result<(), StoreError>;
    async fn user_by_id(&mut self, id: &UserId) -> Result<Option<UserCredentials>, StoreError>;
    /// Inserts a user; `Conflict` when the e-mail is taken.
    async fn create_user(&mut self, user: &User, password_hash: &str) -> Result<(), StoreError>;
    async fn set_password(&mut self, user: &UserId, password_hash: &str) -> Result<(), StoreError>;
    /// `Conflict` when the e-mail is taken.
    async fn set_email(&mut self, user: &UserId, email: &str) -> Result<(), StoreError>;
    /// Increments the user's token version and returns the new value.
    async fn bump_token_version(&mut self, user: &UserId) -> Result<i64, StoreError>;
}
