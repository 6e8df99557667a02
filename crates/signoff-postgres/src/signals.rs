//! Shared Signals streams on PostgreSQL: [`signoff_core::store::SignalStore`] and
//! [`signoff_core::store::SignalTx`].

use crate::rows::{db_err, signal_stream_from, signal_upstream_from};
use crate::{PgStore, PgTx};
use async_trait::async_trait;
use signoff_core::signals::SignalStream;
use signoff_core::signals::upstream::Upstream;
use signoff_core::store::{SignalStore, SignalTx, StoreError};
use signoff_sql::columns::ms;
use signoff_sql::columns::signal_stream_row;
use signoff_sql::signal_stream_columns;
use time::OffsetDateTime;

#[async_trait]
impl SignalStore for PgStore {
    async fn signal_streams(&self, client: &str) -> Result<Vec<SignalStream>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            signal_stream_columns!(),
            " FROM signal_streams WHERE client_id = $1 ORDER BY created_at, id"
        ))
        .bind(client)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(signal_stream_from).collect()
    }
    async fn signal_stream(&self, client: &str, id: &str) -> Result<Option<SignalStream>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            signal_stream_columns!(),
            " FROM signal_streams WHERE client_id = $1 AND id = $2"
        ))
        .bind(client)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(signal_stream_from).transpose()
    }
    async fn signal_upstreams(&self) -> Result<Vec<Upstream>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, issuer, jwks_uri, audience, secret_hash, created_at FROM signal_upstreams ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(signal_upstream_from).collect()
    }
    async fn signal_upstream(&self, id: &str) -> Result<Option<Upstream>, StoreError> {
        let row = sqlx::query(
            "SELECT id, issuer, jwks_uri, audience, secret_hash, created_at FROM signal_upstreams WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(signal_upstream_from).transpose()
    }
}

#[async_trait]
impl SignalTx for PgTx {
    async fn insert_signal_stream(&mut self, s: &SignalStream) -> Result<(), StoreError> {
        let row = signal_stream_row(s);
        sqlx::query(concat!(
            "INSERT INTO signal_streams (",
            signal_stream_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&s.id)
        .bind(&s.client_id)
        .bind(s.description.as_deref())
        .bind(&row.events_requested)
        .bind(row.method)
        .bind(s.endpoint_url.as_deref())
        .bind(s.authorization_header.as_deref())
        .bind(row.status)
        .bind(s.reason.as_deref())
        .bind(&row.excluded_subjects)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(s.version)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn update_signal_stream(&mut self, s: &SignalStream) -> Result<bool, StoreError> {
        let row = signal_stream_row(s);
        let done = sqlx::query(
            "UPDATE signal_streams SET description = $1, events_requested = $2, delivery_method = $3, \
             endpoint_url = $4, authorization_header = $5, status = $6, reason = $7, excluded_subjects = $8, \
             updated_at = $9, version = version + 1 WHERE id = $10 AND client_id = $11 AND version = $12",
        )
        .bind(s.description.as_deref())
        .bind(&row.events_requested)
        .bind(row.method)
        .bind(s.endpoint_url.as_deref())
        .bind(s.authorization_header.as_deref())
        .bind(row.status)
        .bind(s.reason.as_deref())
        .bind(&row.excluded_subjects)
        .bind(row.updated_at)
        .bind(&s.id)
        .bind(&s.client_id)
        .bind(s.version)
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn delete_signal_stream(&mut self, client: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM signal_streams WHERE client_id = $1 AND id = $2")
            .bind(client)
            .bind(id)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn live_signal_streams(&mut self) -> Result<Vec<SignalStream>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            signal_stream_columns!(),
            " FROM signal_streams WHERE ",
            live_stream!(),
            " ORDER BY created_at, id"
        ))
        .fetch_all(self.conn())
        .await
        .map_err(db_err)?;
        rows.iter().map(signal_stream_from).collect()
    }
    async fn delete_signal_upstream(&mut self, id: &str) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM signal_received WHERE upstream_id = $1")
            .bind(id)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        let done = sqlx::query("DELETE FROM signal_upstreams WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn insert_signal_upstream(&mut self, u: &Upstream) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signal_upstreams (id, issuer, jwks_uri, audience, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&u.id)
        .bind(&u.issuer)
        .bind(&u.jwks_uri)
        .bind(&u.audience)
        .bind(u.secret_hash.hex())
        .bind(ms(u.created_at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn note_received_set(
        &mut self,
        upstream: &str,
        jti: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM signal_received WHERE upstream_id = $1 AND expires_at < $2")
            .bind(upstream)
            .bind(ms(now))
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        let done = sqlx::query(
            "INSERT INTO signal_received (upstream_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (upstream_id, jti) DO NOTHING",
        )
        .bind(upstream)
        .bind(jti)
        .bind(ms(until))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
