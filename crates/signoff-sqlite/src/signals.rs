//! Shared Signals streams on SQLite: [`signoff_core::store::SignalStore`] and
//! [`signoff_core::store::SignalTx`].

use crate::rows::{db_err, signal_stream_from};
use crate::{SqliteStore, SqliteTx};
use async_trait::async_trait;
use signoff_core::signals::SignalStream;
use signoff_core::store::{SignalStore, SignalTx, StoreError};
use signoff_sql::columns::signal_stream_row;
use signoff_sql::signal_stream_columns;

#[async_trait]
impl SignalStore for SqliteStore {
    async fn signal_streams(&self, client: &str) -> Result<Vec<SignalStream>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            signal_stream_columns!(),
            " FROM signal_streams WHERE client_id = ? ORDER BY created_at, id"
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
            " FROM signal_streams WHERE client_id = ? AND id = ?"
        ))
        .bind(client)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(signal_stream_from).transpose()
    }
}

#[async_trait]
impl SignalTx for SqliteTx {
    async fn insert_signal_stream(&mut self, s: &SignalStream) -> Result<(), StoreError> {
        let row = signal_stream_row(s);
        sqlx::query(concat!(
            "INSERT INTO signal_streams (",
            signal_stream_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
            "UPDATE signal_streams SET description = ?, events_requested = ?, delivery_method = ?, \
             endpoint_url = ?, authorization_header = ?, status = ?, reason = ?, excluded_subjects = ?, \
             updated_at = ?, version = version + 1 WHERE id = ? AND client_id = ? AND version = ?",
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
        let done = sqlx::query("DELETE FROM signal_streams WHERE client_id = ? AND id = ?")
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
            " FROM signal_streams WHERE status <> 'disabled' ORDER BY created_at, id"
        ))
        .fetch_all(self.conn())
        .await
        .map_err(db_err)?;
        rows.iter().map(signal_stream_from).collect()
    }
}
