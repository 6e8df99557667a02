//! Tokens of mailed links in memory: [`signoff_core::store::MailStore`] and
//! [`signoff_core::store::MailTx`].

use crate::{MemoryStore, MemoryTx};
use async_trait::async_trait;
use signoff_core::UserId;
use signoff_core::mail::{MailPurpose, MailToken};
use signoff_core::secret::SecretHash;
use signoff_core::store::{MailStore, MailTx, StoreError};
use time::OffsetDateTime;

/// Unused and not expired at `at`.
fn usable(t: &MailToken, at: OffsetDateTime) -> bool {
    t.used_at.is_none() && t.expires_at > at
}

#[async_trait]
impl MailStore for MemoryStore {
    async fn mail_token(&self, hash: &SecretHash) -> Result<Option<MailToken>, StoreError> {
        Ok(self.read().mail_tokens.iter().find(|t| t.hash == *hash).cloned())
    }
    async fn pending_mail_token(
        &self,
        user: &UserId,
        purpose: MailPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError> {
        let state = self.read();
        let pending = state.mail_tokens.iter().filter(|t| &t.user_id == user && t.purpose == purpose && usable(t, now));
        Ok(pending.max_by_key(|t| t.created_at).cloned())
    }
    async fn prune_mail_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let pruned = self
            .write(|state| {
                let count = state.mail_tokens.len();
                state.mail_tokens.retain(|t| t.expires_at >= before);
                count - state.mail_tokens.len()
            })
            .await;
        Ok(pruned as u64)
    }
}

#[async_trait]
impl MailTx for MemoryTx {
    async fn insert_mail_token(&mut self, token: &MailToken) -> Result<(), StoreError> {
        // Only the newest link of a purpose works.
        let replaced = |t: &MailToken| t.user_id == token.user_id && t.purpose == token.purpose && t.used_at.is_none();
        self.state.mail_tokens.retain(|t| !replaced(t));
        self.state.owner(&token.user_id)?;
        let taken = |t: &MailToken| t.hash == token.hash || (token.request.is_some() && t.request == token.request);
        if self.state.mail_tokens.iter().any(taken) {
            return Err(StoreError::Conflict);
        }
        self.state.mail_tokens.push(token.clone());
        Ok(())
    }
    async fn replace_mail_token(
        &mut self,
        request: &SecretHash,
        new: &SecretHash,
        at: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError> {
        if self.state.mail_tokens.iter().any(|t| t.hash == *new) {
            return Err(StoreError::Conflict);
        }
        let mine = |t: &&mut MailToken| t.request == Some(*request) && usable(t, at);
        let Some(t) = self.state.mail_tokens.iter_mut().find(mine) else { return Ok(None) };
        t.hash = *new;
        Ok(Some(t.clone()))
    }
    async fn consume_mail_token(
        &mut self,
        hash: &SecretHash,
        purpose: MailPurpose,
        at: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError> {
        let meant = |t: &&mut MailToken| t.hash == *hash && t.purpose == purpose && usable(t, at);
        let Some(t) = self.state.mail_tokens.iter_mut().find(meant) else { return Ok(None) };
        t.used_at = Some(at);
        Ok(Some(t.clone()))
    }
}
