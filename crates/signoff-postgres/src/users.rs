//! Accounts on PostgreSQL: [`signoff_core::store::UserStore`] and [`signoff_core::store::UserTx`].

use crate::rows::{db_err, ms, user_from};
use crate::{PgStore, PgTx};
use async_trait::async_trait;
use signoff_core::UserId;
use signoff_core::store::{StoreError, User, UserCredentials};
use signoff_core::store::{UserStore, UserTx};

#[async_trait]
impl UserStore for PgStore {
    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.email = $1"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from).transpose()
    }
    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from).transpose()
    }
}

#[async_trait]
impl UserTx for PgTx {
    async fn lock_user(&mut self, user: &UserId) -> Result<(), StoreError> {
        sqlx::query(concat!(lock_user!(), "$1", lock_user!(end)))
            .bind(user.as_str())
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }
    async fn user_by_id(&mut self, id: &UserId) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = $1 FOR NO KEY UPDATE"))
            .bind(id.as_str())
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from).transpose()
    }
    async fn create_user(&mut self, user: &User, password_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, token_version, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.id.as_str())
        .bind(&user.email)
        .bind(password_hash)
        .bind(user.token_version)
        .bind(ms(user.created_at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn set_password(&mut self, user: &UserId, password_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }
    async fn set_email(&mut self, user: &UserId, email: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
            .bind(email)
            .bind(user.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }
    async fn bump_token_version(&mut self, user: &UserId) -> Result<i64, StoreError> {
        sqlx::query_scalar("UPDATE users SET token_version = token_version + 1 WHERE id = $1 RETURNING token_version")
            .bind(user.as_str())
            .fetch_one(self.conn())
            .await
            .map_err(db_err)
    }
}
