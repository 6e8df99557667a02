//! Signing keys on SQLite: [`signoff_core::store::KeyStore`] and [`signoff_core::store::KeyTx`].

use crate::rows::{backend, db_err, ms, signing_key_from};
use crate::{SqliteStore, SqliteTx};
use async_trait::async_trait;
use signoff_core::clients::SigningAlg;
use signoff_core::store::StoreError;
use signoff_core::store::{KeyStore, KeyTx};
use signoff_core::token::SigningKeyPair;
use signoff_sql::columns::SELECT_SIGNING_KEYS;
use time::OffsetDateTime;

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyPair>, StoreError> {
        let rows = sqlx::query(SELECT_SIGNING_KEYS).fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(signing_key_from).collect()
    }
}

#[async_trait]
impl KeyTx for SqliteTx {
    async fn lock_signing_keys(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn insert_signing_key(&mut self, key: &SigningKeyPair) -> Result<(), StoreError> {
        let private = key.private_bytes().map_err(backend)?;
        let alg = key.alg();
        let query = match alg {
            SigningAlg::EdDsa => {
                "INSERT INTO signing_keys (kid, private_key, created_at, retired_at) VALUES (?, ?, ?, ?)"
            }
            SigningAlg::Rs256 | SigningAlg::Es256 => {
                "INSERT INTO jws_keys (kid, private_key, created_at, retired_at, alg) VALUES (?, ?, ?, ?, ?)"
            }
        };
        let mut insert =
            sqlx::query(query).bind(&key.kid).bind(&private[..]).bind(ms(key.created_at)).bind(key.retired_at.map(ms));
        if alg != SigningAlg::EdDsa {
            insert = insert.bind(alg.as_str());
        }
        insert.execute(self.conn()).await.map_err(db_err)?;
        Ok(())
    }
    async fn retire_signing_keys(
        &mut self,
        alg: SigningAlg,
        keep: &str,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let query = match alg {
            SigningAlg::EdDsa => "UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL AND kid != ?",
            SigningAlg::Rs256 | SigningAlg::Es256 => {
                "UPDATE jws_keys SET retired_at = ? WHERE retired_at IS NULL AND kid != ? AND alg = ?"
            }
        };
        let mut update = sqlx::query(query).bind(ms(at)).bind(keep);
        if alg != SigningAlg::EdDsa {
            update = update.bind(alg.as_str());
        }
        Ok(update.execute(self.conn()).await.map_err(db_err)?.rows_affected())
    }
    async fn delete_signing_key(&mut self, kid: &str) -> Result<Option<SigningAlg>, StoreError> {
        let done = sqlx::query("DELETE FROM signing_keys WHERE kid = ?")
            .bind(kid)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 1 {
            return Ok(Some(SigningAlg::EdDsa));
        }
        let alg: Option<String> = sqlx::query_scalar("DELETE FROM jws_keys WHERE kid = ? RETURNING alg")
            .bind(kid)
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        alg.map(|a| SigningAlg::parse(&a).ok_or_else(|| backend("a signing key of an unknown algorithm"))).transpose()
    }
    async fn has_signer(&mut self, alg: SigningAlg) -> Result<bool, StoreError> {
        let query = match alg {
            SigningAlg::EdDsa => "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL)",
            SigningAlg::Rs256 | SigningAlg::Es256 => {
                "SELECT EXISTS (SELECT 1 FROM jws_keys WHERE retired_at IS NULL AND alg = ?)"
            }
        };
        let mut exists = sqlx::query_scalar(query);
        if alg != SigningAlg::EdDsa {
            exists = exists.bind(alg.as_str());
        }
        exists.fetch_one(self.conn()).await.map_err(db_err)
    }
}
