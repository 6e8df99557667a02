//! Refresh tokens and denied access tokens in memory: [`signoff_core::store::TokenStore`] and
//! [`signoff_core::store::TokenTx`].

use crate::{MemoryStore, MemoryTx};
use async_trait::async_trait;
use signoff_core::UserId;
use signoff_core::secret::SecretHash;
use signoff_core::store::{RefreshToken, StoreError, TokenStore, TokenTx};
use time::OffsetDateTime;

#[async_trait]
impl TokenStore for MemoryStore {
    async fn refresh_by_hash(&self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError> {
        Ok(self.read().refresh.values().find(|t| t.token_hash == *hash).cloned())
    }
    async fn denied_tokens(&self, now: i64) -> Result<Vec<(String, String, i64)>, StoreError> {
        let state = self.read();
        // A minute's margin, as the SQL stores keep: nodes' clocks differ a little.
        let live = state.denied.iter().filter(|(_, exp)| **exp >= now - 60);
        Ok(live.map(|((issuer, jti), exp)| (issuer.clone(), jti.clone(), *exp)).collect())
    }
}

#[async_trait]
impl TokenTx for MemoryTx {
    async fn refresh_by_hash(&mut self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError> {
        Ok(self.state.refresh.values().find(|t| t.token_hash == *hash).cloned())
    }
    async fn refresh_by_id(&mut self, id: &str) -> Result<Option<RefreshToken>, StoreError> {
        Ok(self.state.refresh.get(id).cloned())
    }
    async fn insert_refresh(&mut self, token: &RefreshToken) -> Result<(), StoreError> {
        self.state.owner(&token.user_id)?;
        let hash_taken = self.state.refresh.values().any(|t| t.token_hash == token.token_hash);
        if self.state.refresh.contains_key(&token.id) || hash_taken {
            return Err(StoreError::Conflict);
        }
        self.state.refresh.insert(token.id.clone(), token.clone());
        Ok(())
    }
    async fn consume_refresh(
        &mut self,
        id: &str,
        successor: &str,
        salt: &[u8; 32],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let Some(t) = self.state.refresh.get_mut(id).filter(|t| t.used_at.is_none()) else { return Ok(false) };
        t.used_at = Some(at);
        t.replaced_by = Some(successor.to_owned());
        t.successor_salt = Some(*salt);
        t.grace_used = false;
        Ok(true)
    }
    async fn use_refresh_grace(&mut self, id: &str) -> Result<bool, StoreError> {
        let unused = |t: &&mut RefreshToken| t.used_at.is_some() && !t.grace_used;
        let Some(t) = self.state.refresh.get_mut(id).filter(unused) else { return Ok(false) };
        t.grace_used = true;
        Ok(true)
    }
    async fn revoke_refresh_family(&mut self, family: &str) -> Result<u64, StoreError> {
        let before = self.state.refresh.len();
        self.state.refresh.retain(|_, t| t.family_id != family);
        Ok((before - self.state.refresh.len()) as u64)
    }
    async fn revoke_user_refresh(&mut self, user: &UserId) -> Result<u64, StoreError> {
        let before = self.state.refresh.len();
        self.state.refresh.retain(|_, t| &t.user_id != user);
        Ok((before - self.state.refresh.len()) as u64)
    }
    async fn deny_token(&mut self, issuer: &str, jti: &str, exp: i64) -> Result<(), StoreError> {
        self.state.denied.entry((issuer.to_owned(), jti.to_owned())).or_insert(exp);
        Ok(())
    }
}
