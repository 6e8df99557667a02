//! Signing keys in memory: [`signoff_core::store::KeyStore`] and [`signoff_core::store::KeyTx`].

use crate::{MemoryStore, MemoryTx};
use async_trait::async_trait;
use signoff_core::clients::SigningAlg;
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
    async fn retire_signing_keys(
        &mut self,
        alg: SigningAlg,
        keep: &str,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut retired = 0;
        for key in self.state.keys.iter_mut().filter(|k| k.retired_at.is_none() && k.kid != keep && k.alg() == alg) {
            key.retired_at = Some(at);
            retired += 1;
        }
        Ok(retired)
    }
    async fn delete_signing_key(&mut self, kid: &str) -> Result<Option<SigningAlg>, StoreError> {
        let alg = self.state.keys.iter().find(|k| k.kid == kid).map(|k| k.alg());
        self.state.keys.retain(|k| k.kid != kid);
        Ok(alg)
    }
    async fn has_signer(&mut self, alg: SigningAlg) -> Result<bool, StoreError> {
        Ok(self.state.keys.iter().any(|k| k.retired_at.is_none() && k.alg() == alg))
    }
}
