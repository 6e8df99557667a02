//! Refresh tokens and denied access tokens on SQLite: [`signoff_core::store::TokenStore`] and [`signoff_core::store::TokenTx`].

use crate::rows::{db_err, ms, refresh_from};
use crate::{SqliteStore, SqliteTx, read};
use async_trait::async_trait;
use signoff_core::UserId;
use signoff_core::secret::SecretHash;
use signoff_core::store::RefreshToken;
use signoff_core::store::StoreError;
use signoff_core::store::{TokenStore, TokenTx};
use time::OffsetDateTime;

#[async_trait]
impl TokenStore for SqliteStore {
    async fn refresh_by_hash(&self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError> {
        read::refresh_by_hash(&self.pool, hash).await
    }
    async fn denied_tokens(&self, now: i64) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT issuer, jti, exp FROM denied_tokens WHERE exp >= ?")
                .bind(now - 60)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(rows)
    }
}

#[async_trait]
impl TokenTx for SqliteTx {
    async fn refresh_by_hash(&mut self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError> {
        read::refresh_by_hash(self.conn(), hash).await
    }
    async fn refresh_by_id(&mut self, id: &str) -> Result<Option<RefreshToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM refresh_tokens WHERE id = ?")
            .bind(id)
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        row.as_ref().map(refresh_from).transpose()
    }
    async fn insert_refresh(&mut self, t: &RefreshToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (id, token_hash, family_id, session_id, user_id, created_at, expires_at, \
             used_at, replaced_by, successor_salt, grace_used, client_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.token_hash.0[..])
        .bind(&t.family_id)
        .bind(t.session_id.as_str())
        .bind(t.user_id.as_str())
        .bind(ms(t.created_at))
        .bind(ms(t.expires_at))
        .bind(t.used_at.map(ms))
        .bind(t.replaced_by.as_deref())
        .bind(t.successor_salt.as_ref().map(|s| s.to_vec()))
        .bind(t.grace_used)
        .bind(t.client_id.as_deref())
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn consume_refresh(
        &mut self,
        id: &str,
        successor: &str,
        salt: &[u8; 32],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET used_at = ?, replaced_by = ?, successor_salt = ?, grace_used = 0 \
             WHERE id = ? AND used_at IS NULL",
        )
        .bind(ms(at))
        .bind(successor)
        .bind(&salt[..])
        .bind(id)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn use_refresh_grace(&mut self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET grace_used = 1 WHERE id = ? AND used_at IS NOT NULL AND grace_used = 0",
        )
        .bind(id)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn revoke_refresh_family(&mut self, family: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM refresh_tokens WHERE family_id = ?")
            .bind(family)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
    async fn revoke_user_refresh(&mut self, user: &UserId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM refresh_tokens WHERE user_id = ?")
            .bind(user.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
    async fn deny_token(&mut self, issuer: &str, jti: &str, exp: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO denied_tokens (issuer, jti, exp) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(issuer)
            .bind(jti)
            .bind(exp)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
