//! Registered clients on PostgreSQL: [`signoff_core::store::ClientStore`] and [`signoff_core::store::ClientTx`].

use crate::rows::{backend, clients_from, db_err, ms};
use crate::{PgStore, PgTx};
use async_trait::async_trait;
use signoff_core::clients::RegisteredClient;
use signoff_core::secret::SecretHash;
use signoff_core::store::StoreError;
use signoff_core::store::{ClientStore, ClientTx};
use signoff_sql::columns::{endpoint_rows, legacy_endpoint_columns};
use signoff_sql::{clients_order, select_clients};
use time::OffsetDateTime;

#[async_trait]
impl ClientStore for PgStore {
    async fn client_by_id(&self, id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        let rows = sqlx::query(concat!(select_clients!(), " WHERE c.id = $1", clients_order!()))
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(clients_from(&rows)?.pop())
    }
    async fn clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        let rows =
            sqlx::query(concat!(select_clients!(), clients_order!())).fetch_all(&self.pool).await.map_err(db_err)?;
        clients_from(&rows)
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
        let (backchannel, webhook) = legacy_endpoint_columns(client);
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, backchannel_logout_uri, webhook_url, webhook_secret, created_at, \
             profile) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&client.id)
        .bind(&client.name)
        .bind(&client.secret_hash.0[..])
        .bind(backchannel)
        .bind(webhook)
        .bind(client.webhook_secret.as_deref())
        .bind(ms(client.created_at))
        .bind(client.profile.to_json())
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        for (id, kind, url) in endpoint_rows(client) {
            sqlx::query("INSERT INTO client_endpoints (client_id, kind, url) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(kind)
                .bind(url)
                .execute(self.conn())
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }
    async fn delete_client(&mut self, id: &str) -> Result<Option<SecretHash>, StoreError> {
        for sql in ["DELETE FROM deliveries WHERE client_id = $1", "DELETE FROM client_endpoints WHERE client_id = $1"]
        {
            sqlx::query(sql).bind(id).execute(self.conn()).await.map_err(db_err)?;
        }
        let gone: Option<Vec<u8>> = sqlx::query_scalar("DELETE FROM clients WHERE id = $1 RETURNING secret_hash")
            .bind(id)
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        gone.map(|bytes| SecretHash::from_slice(&bytes).ok_or_else(|| backend("corrupt hash in clients.secret_hash")))
            .transpose()
    }
    async fn set_client_secret(&mut self, id: &str, old: &SecretHash, new: &SecretHash) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE clients SET secret_hash = $3 WHERE id = $1 AND secret_hash = $2")
            .bind(id)
            .bind(&old.0[..])
            .bind(&new.0[..])
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn callback_clients(&mut self) -> Result<Vec<RegisteredClient>, StoreError> {
        // Clients with no URL at all (resource servers, feed readers) are left out here; those
        // with only browser URLs by `has_callbacks`.
        let rows = sqlx::query(concat!(select_clients!(), " WHERE ", has_callback!(), clients_order!()))
            .fetch_all(self.conn())
            .await
            .map_err(db_err)?;
        Ok(clients_from(&rows)?.into_iter().filter(RegisteredClient::has_callbacks).collect())
    }
}
