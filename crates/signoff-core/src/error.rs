//! The lifecycle's typed errors. The HTTP edge maps each to the contract's stable codes.

use crate::password::Weakness;
use crate::store::StoreError;
use time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many attempts; retry after {0}")]
    Throttled(Duration),
    #[error("weak password: {}", .0.message())]
    WeakPassword(Weakness),
    #[error("invalid e-mail address")]
    InvalidEmail,
    /// A token grant failed (RFC 6749 `invalid_grant`).
    #[error("invalid grant")]
    InvalidGrant,
    /// A mailed link's token is unknown, used, expired, or no longer matches the account.
    #[error("invalid token")]
    InvalidToken,
    #[error("not signed in")]
    Unauthenticated,
    #[error("not found")]
    NotFound,
    /// The caller is known but may not do this (a registered client without the permission).
    #[error("not allowed")]
    Forbidden,
    /// What was asked contradicts itself (a subject's aliases naming different users).
    #[error("contradictory request")]
    Conflict,
    /// Too many requests are waiting for scarce work (password hashing); retry after this.
    #[error("busy; retry after {0}")]
    Busy(Duration),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("internal: {0}")]
    Internal(String),
}
