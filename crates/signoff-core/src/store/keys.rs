//! The signing keys, retired ones included, changed one process at a time.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::clients::SigningAlg;
use crate::token::SigningKeyPair;

/// Key reads, outside any transaction (part of [`Store`](super::Store)).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every signing key of every algorithm, retired ones included. A key this release cannot
    /// read is an error (a corrupt store), never skipped.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyPair>, StoreError>;
}

/// Key changes and locked reads, inside one transaction (part of [`Tx`](super::Tx)).
#[async_trait]
pub trait KeyTx: Send {
    /// Takes the signing keys' lock until the transaction ends: key changes (the first key,
    /// a rotation, a withdrawal) from several processes then happen one after the other, so
    /// exactly one key of each algorithm signs. A no-op where transactions are serial anyway
    /// (SQLite).
    async fn lock_signing_keys(&mut self) -> Result<(), StoreError>;
    async fn insert_signing_key(&mut self, key: &SigningKeyPair) -> Result<(), StoreError>;
    /// Retires every unretired key of `alg` except `keep`.
    async fn retire_signing_keys(&mut self, alg: SigningAlg, keep: &str, at: OffsetDateTime)
    -> Result<u64, StoreError>;
    /// Deletes a key (withdrawn after a compromise); its algorithm, or `None` when there was none.
    async fn delete_signing_key(&mut self, kid: &str) -> Result<Option<SigningAlg>, StoreError>;
    /// Whether an unretired key of `alg` (one that signs) is left.
    async fn has_signer(&mut self, alg: SigningAlg) -> Result<bool, StoreError>;
}
