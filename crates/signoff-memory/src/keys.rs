//! Signing keys in memory: [`signoff_core::store::KeyStore`] and [`signoff_core::store::KeyTx`].

use crate::{MemoryStore, MemoryTx};
use async_trait::async_trait;
use signoff_core::store::{KeyStore, KeyTx, StoreError};
use signoff_core::token::SigningKeyPair;
use time::OffsetDateTime;

#[async_trait]
impl KeyStore for MemoryStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyPair>, StoreError> {
        Ok(self.read().keys.clone())
    }
}

#[async_trait]
impl KeyTx for MemoryTx {
    async fn lock_signing_keys(&mut self) -> Result<(), StoreError> {
        // The transaction is the only writer already.
        Ok(())
    }
    async fn insert_signing_key(&mut self, key: &SigningKeyPair) -> Result<(), StoreError> {
        if self.state.keys.iter().any(|k| k.kid == key.kid) {
            return Err(StoreError::Conflict);
        }
        self.state.keys.push(key.clone());
        Ok(())
    }
    async fn retire_signing_keys(&mut self, keep: &str, at: OffsetDateTime) -> Result<u64, StoreError> {
        let mut retired = 0;
        for key in self.state.keys.iter_mut().filter(|k| k.retired_at.is_none() && k.kid != keep) {
            key.retired_at = Some(at);
            retired += 1;
        }
        Ok(retired)
    }
    async fn delete_signing_key(&mut self, kid: &str) -> Result<bool, StoreError> {
        let before = self.state.keys.len();
        self.state.keys.retain(|k| k.kid != kid);
        Ok(self.state.keys.len() < before)
    }
    async fn has_signer(&mut self) -> Result<bool, StoreError> {
        Ok(self.state.keys.iter().any(|k| k.retired_at.is_none()))
    }
}
