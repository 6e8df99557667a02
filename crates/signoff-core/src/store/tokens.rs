//! Refresh tokens (families rotated by compare-and-swap) and denied access tokens.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::secret::{SecretHash, SessionId, UserId};

/// A refresh token. Current while `used_at` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub id: String,
    pub token_hash: SecretHash,
    pub family_id: String,
    pub session_id: SessionId,
    pub user_id: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub replaced_by: Option<String>,
    /// Set at rotation: the random salt the successor's secret was derived from (with this
    /// token's secret, which is never stored), so the grace can hand out the same successor.
    pub successor_salt: Option<[u8; 32]>,
    /// Whether the grace of this token's rotation was used (once only).
    pub grace_used: bool,
    /// The relying party it was issued to at the OpenID token endpoint, which alone may use it;
    /// `None` for signoff's own token endpoint.
    pub client_id: Option<String>,
}

/// Token reads, outside any transaction (part of [`Store`](super::Store)).
#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn refresh_by_hash(&self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError>;
    /// Denied access tokens that have not expired a minute before `now` (Unix seconds; the
    /// minute allows for nodes' clocks that differ): `(issuer, jti, exp)`.
    async fn denied_tokens(&self, now: i64) -> Result<Vec<(String, String, i64)>, StoreError>;
}

/// Token changes and locked reads, inside one transaction (part of [`Tx`](super::Tx)).
#[async_trait]
pub trait TokenTx: Send {
    async fn refresh_by_hash(&mut self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError>;
    async fn refresh_by_id(&mut self, id: &str) -> Result<Option<RefreshToken>, StoreError>;
    async fn insert_refresh(&mut self, token: &RefreshToken) -> Result<(), StoreError>;
    /// Marks a current refresh token used and replaced by `successor` (derived with `salt`),
    /// only if it is still current (compare-and-swap); `false` when another request got there
    /// first.
    async fn consume_refresh(
        &mut self,
        id: &str,
        successor: &str,
        salt: &[u8; 32],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Marks the grace of a used refresh token taken, only if it was not (compare-and-swap).
    async fn use_refresh_grace(&mut self, id: &str) -> Result<bool, StoreError>;
    /// Deletes a whole refresh family; returns how many tokens it held.
    async fn revoke_refresh_family(&mut self, family: &str) -> Result<u64, StoreError>;
    /// Deletes every refresh token of a user.
    async fn revoke_user_refresh(&mut self, user: &UserId) -> Result<u64, StoreError>;
    /// Denies an access token until `exp` (Unix seconds).
    async fn deny_token(&mut self, issuer: &str, jti: &str, exp: i64) -> Result<(), StoreError>;
}
