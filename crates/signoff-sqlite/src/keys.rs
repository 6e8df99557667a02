//! Signing keys on SQLite: [`signoff_core::store::KeyStore`] and [`signoff_core::store::KeyTx`].

use crate::rows::{db_err, ms, signing_key_from};
use crate::{SqliteStore, SqliteTx};
use async_trait::async_trait;
use signoff_core::store::StoreError;
use signoff_core::store::{KeyStore, KeyTx};
use signoff_core::token::SigningKeyPair;
use time::OffsetDateTime;

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyPair>, StoreError> {
        let rows = sqlx::query("SELECT kid, private_key, created_at, retired_at FROM signing_keys")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(signing_key_from).collect()
    }
}

#[async_trait]
impl KeyTx for SqliteTx {
    async fn lock_signing_keys(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn insert_signing_key(&mut self, key: &SigningKeyPair) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO signing_keys (kid, private_key, created_at, retired_at) VALUES (?, ?, ?, ?)")
            .bind(&key.kid)
            .bind(&key.private_bytes()[..])
            .bind(ms(key.created_at))
            .bind(key.retired_at.map(ms))
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }
    async fn retire_signing_keys(&mut self, keep: &str, at: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL AND kid != ?")
            .bind(ms(at))
            .bind(keep)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
    async fn delete_signing_key(&mut self, kid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM signing_keys WHERE kid = ?")
            .bind(kid)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn has_signer(&mut self) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL)")
            .fetch_one(self.conn())
            .await
            .map_err(db_err)
    }
}
