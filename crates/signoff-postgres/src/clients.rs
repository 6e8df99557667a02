//! Registered clients on PostgreSQL: [`signoff_core::store::ClientStore`] and [`signoff_core::store::ClientTx`].

use crate::rows::{client_from, db_err, ms};
use crate::{PgStore, PgTx};
use async_trait::async_trait;
use signoff_core::clients::RegisteredClient;
use signoff_core::store::StoreError;
use signoff_core::store::{ClientStore, ClientTx};
use time::OffsetDateTime;

#[async_trait]
impl ClientStore for PgStore {
    async fn client_by_id(&self, id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", client_columns!(), " FROM clients WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(client_from).transpose()
    }
    async fn clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", client_columns!(), " FROM clients ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(client_from).collect()
    }
    async fn rotate_webhook_secret(
        &self,
        client: &str,
        secret: &str,
        previous_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET previous_webhook_secret = CASE WHEN $1 > $2 THEN webhook_secret END, \
             previous_webhook_secret_until = CASE WHEN $1 > $2 THEN $1 END, webhook_secret = $3 \
             WHERE id = $4 AND webhook_url IS NOT NULL",
        )
        .bind(ms(previous_until))
        .bind(ms(now))
        .bind(secret)
        .bind(client)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn forget_replaced_webhook_secrets(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET previous_webhook_secret = NULL, previous_webhook_secret_until = NULL \
             WHERE previous_webhook_secret_until <= $1",
        )
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl ClientTx for PgTx {
    async fn insert_client(&mut self, client: &RegisteredClient) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, backchannel_logout_uri, webhook_url, webhook_secret, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&client.id)
        .bind(&client.name)
        .bind(&client.secret_hash.0[..])
        .bind(client.backchannel_logout_uri.as_deref())
        .bind(client.webhook_url.as_deref())
        .bind(client.webhook_secret.as_deref())
        .bind(ms(client.created_at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn delete_client(&mut self, id: &str) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM deliveries WHERE client_id = $1")
            .bind(id)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        let done =
            sqlx::query("DELETE FROM clients WHERE id = $1").bind(id).execute(self.conn()).await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn callback_clients(&mut self) -> Result<Vec<RegisteredClient>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE backchannel_logout_uri IS NOT NULL OR webhook_url IS NOT NULL ORDER BY created_at, id"
        ))
        .fetch_all(self.conn())
        .await
        .map_err(db_err)?;
        rows.iter().map(client_from).collect()
    }
}
