//! Tokens of mailed links, stored as hashes and consumed by compare-and-swap.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::mail::{MailPurpose, MailToken};
use crate::secret::{SecretHash, UserId};

/// Mail reads, outside any transaction (part of [`Store`](super::Store)).
#[async_trait]
pub trait MailStore: Send + Sync {
    /// The mail token with `hash`, used or not, expired or not (a look before the transaction
    /// that consumes it; the decision is [`MailTx::consume_mail_token`]'s).
    async fn mail_token(&self, hash: &SecretHash) -> Result<Option<MailToken>, StoreError>;
    /// The user's newest unused token for `purpose` that has not expired by `now`.
    async fn pending_mail_token(
        &self,
        user: &UserId,
        purpose: MailPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError>;
    /// Deletes mail tokens that expired before `before`.
    async fn prune_mail_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

/// Mail changes and locked reads, inside one transaction (part of [`Tx`](super::Tx)).
#[async_trait]
pub trait MailTx: Send {
    /// Stores a mailed link's token, deleting the user's unused tokens of the same purpose: only
    /// the newest link works, and a user has at most one outstanding per purpose.
    async fn insert_mail_token(&mut self, token: &MailToken) -> Result<(), StoreError>;
    /// Gives the unused, unexpired token of change request `request` the hash `new`, keeping
    /// everything else, and returns it; `None` when the request's row is gone (a newer request
    /// replaced it), used or expired.
    async fn replace_mail_token(
        &mut self,
        request: &SecretHash,
        new: &SecretHash,
        at: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError>;
    /// Marks the token with `hash` used, only if it is for `purpose`, unused and not expired at
    /// `at` (compare-and-swap), and returns it; `None` otherwise (unknown, used, expired, or
    /// meant for something else).
    async fn consume_mail_token(
        &mut self,
        hash: &SecretHash,
        purpose: MailPurpose,
        at: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError>;
}
