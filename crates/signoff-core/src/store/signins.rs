//! What a browser's sign-in gave relying parties: authorization codes, each used once, and a
//! link from the sign-in to every app it signed in to (whose sessions end with it).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::secret::{SecretHash, SessionId, SigninId, UserId};

/// An authorization code as stored: only its hash, bound to the client, the redirect URI and
/// the PKCE challenge it was issued for, and to the sign-in that issued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub code_hash: SecretHash,
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: UserId,
    /// The session that was asked (its sign-in may have rotated it since).
    pub session_id: SessionId,
    pub signin: SigninId,
    /// The PKCE S256 challenge: base64url of SHA-256 of the verifier.
    pub code_challenge: String,
    pub nonce: Option<String>,
    /// When a password last signed the browser in (the ID token's `auth_time`).
    pub auth_time: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// What the first use of a code issued, kept with it so that a second use can revoke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeIssue {
    /// The refresh family (none when the client has no `refresh_token` grant).
    pub family: Option<String>,
    /// The access token: `jti` and `exp` (Unix seconds).
    pub access_jti: String,
    pub access_exp: i64,
}

/// The outcome of presenting a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// Its first use within its life: the code, now spent.
    First(AuthorizationCode),
    /// Spent already: who it was for and what its first use issued (`None` while that use is
    /// still in flight or failed).
    Again { user_id: UserId, issued: Option<CodeIssue> },
    /// Unknown, or expired unused.
    Unknown,
}

/// Reads outside a transaction (part of [`Store`](super::Store)).
#[async_trait]
pub trait SigninStore: Send + Sync {
    /// Whose a code is (a plain read, to take the user's lock before the transaction that
    /// spends it); `None` for an unknown one.
    async fn code_user(&self, hash: &SecretHash) -> Result<Option<UserId>, StoreError>;
    /// The clients a sign-in signed in to, by id.
    async fn signin_clients(&self, signin: &SigninId) -> Result<Vec<String>, StoreError>;
}

/// Changes inside a transaction (part of [`Tx`](super::Tx)).
#[async_trait]
pub trait SigninTx: Send {
    async fn insert_code(&mut self, code: &AuthorizationCode) -> Result<(), StoreError>;
    /// Whether the client exists, held until commit so that it cannot be deleted meanwhile:
    /// what this transaction then writes for it (a code, a sign-in's link) has its client. Taken
    /// before the code itself, in the order a deletion takes them.
    async fn hold_client(&mut self, client_id: &str) -> Result<bool, StoreError>;
    /// Spends a code (compare-and-swap: only an unspent one within its life is
    /// [`CodeUse::First`], on whichever node asks first).
    async fn use_code(&mut self, hash: &SecretHash, now: OffsetDateTime) -> Result<CodeUse, StoreError>;
    /// Records what the first use of a spent code issued.
    async fn record_code_issue(&mut self, hash: &SecretHash, issue: &CodeIssue) -> Result<(), StoreError>;
    /// Deletes codes that expired before `before` (spent or not); how many.
    async fn prune_codes(&mut self, before: OffsetDateTime) -> Result<u64, StoreError>;
    /// Links a sign-in to a client it signed in to (again: kept once).
    async fn link_signin(
        &mut self,
        signin: &SigninId,
        client_id: &str,
        user: &UserId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// The clients a sign-in signed in to, read under the transaction.
    async fn signin_clients(&mut self, signin: &SigninId) -> Result<Vec<String>, StoreError>;
    /// Ends the links of `users`' sign-ins that no session and no remember-me series carries
    /// any more (read under the transaction, after its own changes): each link deleted, as
    /// `(sign-in, user, client)`. A sign-in a session or series still carries (rotated,
    /// resumed, signed in again) keeps its links.
    async fn end_signins(&mut self, users: &[UserId]) -> Result<Vec<(SigninId, UserId, String)>, StoreError>;
}
