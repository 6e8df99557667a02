//! Tokens of mailed links on SQLite: [`signoff_core::store::MailStore`] and [`signoff_core::store::MailTx`].

use crate::rows::{db_err, mail_token_from, ms};
use crate::{SqliteStore, SqliteTx};
use async_trait::async_trait;
use signoff_core::UserId;
use signoff_core::mail::{MailPurpose, MailToken};
use signoff_core::secret::SecretHash;
use signoff_core::store::StoreError;
use signoff_core::store::{MailStore, MailTx};
use time::OffsetDateTime;

#[async_trait]
impl MailStore for SqliteStore {
    async fn mail_token(&self, hash: &SecretHash) -> Result<Option<MailToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM mail_tokens WHERE token_hash = ?")
            .bind(&hash.0[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(mail_token_from).transpose()
    }
    async fn pending_mail_token(
        &self,
        user: &UserId,
        purpose: MailPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM mail_tokens WHERE user_id = ? AND purpose = ? AND used_at IS NULL \
             AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
        )
        .bind(user.as_str())
        .bind(purpose.as_str())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(mail_token_from).transpose()
    }
    async fn prune_mail_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM mail_tokens WHERE expires_at < ?")
            .bind(ms(before))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl MailTx for SqliteTx {
    async fn insert_mail_token(&mut self, t: &MailToken) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM mail_tokens WHERE user_id = ? AND purpose = ? AND used_at IS NULL")
            .bind(t.user_id.as_str())
            .bind(t.purpose.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO mail_tokens (token_hash, purpose, user_id, new_email, fingerprint, created_at, \
             expires_at, used_at, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.hash.0[..])
        .bind(t.purpose.as_str())
        .bind(t.user_id.as_str())
        .bind(t.new_email.as_deref())
        .bind(&t.fingerprint.0[..])
        .bind(ms(t.created_at))
        .bind(ms(t.expires_at))
        .bind(t.used_at.map(ms))
        .bind(t.request.as_ref().map(|r| r.0.to_vec()))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn replace_mail_token(
        &mut self,
        request: &SecretHash,
        new: &SecretHash,
        at: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError> {
        let row = sqlx::query(
            "UPDATE mail_tokens SET token_hash = ? WHERE request = ? AND used_at IS NULL \
             AND expires_at > ? RETURNING *",
        )
        .bind(&new.0[..])
        .bind(&request.0[..])
        .bind(ms(at))
        .fetch_optional(self.conn())
        .await
        .map_err(db_err)?;
        row.as_ref().map(mail_token_from).transpose()
    }
    async fn consume_mail_token(
        &mut self,
        hash: &SecretHash,
        purpose: MailPurpose,
        at: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError> {
        let row = sqlx::query(
            "UPDATE mail_tokens SET used_at = ? WHERE token_hash = ? AND purpose = ? \
             AND used_at IS NULL AND expires_at > ? RETURNING *",
        )
        .bind(ms(at))
        .bind(&hash.0[..])
        .bind(purpose.as_str())
        .bind(ms(at))
        .fetch_optional(self.conn())
        .await
        .map_err(db_err)?;
        row.as_ref().map(mail_token_from).transpose()
    }
}
