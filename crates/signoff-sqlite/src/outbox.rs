//! The outbox on SQLite: [`signoff_core::store::OutboxStore`] and [`signoff_core::store::OutboxTx`].

use crate::rows::{backend, db_err, delivery_from, ms};
use crate::{ENQUEUE_CHUNK, SqliteStore, SqliteTx};
use async_trait::async_trait;
use signoff_core::clients::EndpointKind;
use signoff_core::outbox::{Delivery, DeliveryPage, DeliveryStatus};
use signoff_core::store::StoreError;
use signoff_core::store::{OutboxStore, OutboxTx};
use time::OffsetDateTime;

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
        per_endpoint: u32,
        skip: &[String],
    ) -> Result<Vec<Delivery>, StoreError> {
        let skip = serde_json::to_string(skip).map_err(backend)?;
        // The pending URLs one by one off the index (a loose index scan), the oldest due few of
        // each, ranked within their URL: every URL's first before any URL's second.
        let rows = sqlx::query(
            "UPDATE deliveries SET claimed_until = ?1, claim_token = ?2 WHERE id IN (\
               WITH RECURSIVE urls(url) AS (\
                 SELECT min(url) FROM deliveries WHERE status = 'pending' \
                 UNION ALL \
                 SELECT (SELECT min(url) FROM deliveries WHERE status = 'pending' AND url > urls.url) FROM urls \
                 WHERE urls.url IS NOT NULL) \
               SELECT id FROM (\
                 SELECT d.id, d.next_attempt_at, row_number() OVER (PARTITION BY d.url ORDER BY d.next_attempt_at, d.id) AS rn \
                 FROM urls JOIN deliveries d ON d.id IN (\
                   SELECT id FROM deliveries WHERE status = 'pending' AND url = urls.url AND next_attempt_at <= ?3 \
                   AND (claimed_until IS NULL OR claimed_until < ?3) ORDER BY next_attempt_at LIMIT ?4) \
                 WHERE urls.url NOT IN (SELECT value FROM json_each(?6))) \
               ORDER BY rn, next_attempt_at LIMIT ?5) \
             RETURNING id, client_id, kind, event, url, payload, status, attempts, last_status_code, last_error, next_attempt_at, created_at, claim_token",
        )
        .bind(ms(until))
        .bind(signoff_core::secret::random_id())
        .bind(ms(now))
        .bind(i64::from(per_endpoint))
        .bind(i64::from(limit))
        .bind(skip)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(delivery_from).collect()
    }
    async fn release_deliveries(&self, claim: &str, ids: &[String]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for id in ids {
            sqlx::query(
                "UPDATE deliveries SET claimed_until = NULL, claim_token = NULL WHERE id = ? AND claim_token = ?",
            )
            .bind(id)
            .bind(claim)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }
    async fn record_delivery(&self, d: &Delivery) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = ?, attempts = ?, last_status_code = ?, last_error = ?, next_attempt_at = ?, \
             claimed_until = NULL, claim_token = NULL WHERE id = ? AND status = 'pending' AND claim_token = ?",
        )
        .bind(d.status.as_str())
        .bind(d.attempts)
        .bind(d.last_status_code)
        .bind(d.last_error.as_deref())
        .bind(ms(d.next_attempt_at))
        .bind(&d.id)
        .bind(d.claim.as_deref())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM deliveries WHERE status <> 'pending' AND created_at < ?")
            .bind(ms(before))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
    async fn pending_among(&self, ids: &[String]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND id IN (SELECT value FROM json_each(?))",
        )
        .bind(serde_json::to_string(ids).map_err(crate::rows::backend)?)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(pending.unsigned_abs())
    }
    async fn client_deliveries(&self, client: &str, page: &DeliveryPage) -> Result<Vec<Delivery>, StoreError> {
        let (before_ms, before_id) = match &page.before {
            Some((at, id)) => (Some(ms(*at)), Some(id.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT id, client_id, kind, event, url, payload, status, attempts, last_status_code, last_error, next_attempt_at, \
             created_at, claim_token FROM deliveries WHERE client_id = ?1 AND (?2 IS NULL OR status = ?2) \
             AND (?3 IS NULL OR created_at < ?3 OR (created_at = ?3 AND id < ?4)) \
             ORDER BY created_at DESC, id DESC LIMIT ?5",
        )
        .bind(client)
        .bind(page.status.map(|s| s.as_str()))
        .bind(before_ms)
        .bind(before_id)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(delivery_from).collect()
    }
    async fn waiting_deliveries(&self, url: &str, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, client_id, kind, event, url, payload, status, attempts, last_status_code, last_error, next_attempt_at, \
             created_at, claim_token FROM deliveries WHERE status = 'waiting' AND url = ?1 ORDER BY next_attempt_at, id LIMIT ?2",
        )
        .bind(url)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(delivery_from).collect()
    }
    async fn settle_waiting(
        &self,
        url: &str,
        ids: Option<&[String]>,
        status: DeliveryStatus,
        error: Option<&str>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE deliveries SET status = ?1, last_error = ?2 WHERE status = 'waiting' AND url = ?3 AND (?4 OR id IN (SELECT value FROM json_each(?5)))")
        .bind(status.as_str())
        .bind(error)
        .bind(url)
        .bind(ids.is_none())
        .bind(serde_json::to_string(ids.unwrap_or_default()).unwrap_or_default())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
    async fn retry_delivery(&self, client: &str, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = CASE WHEN url LIKE 'poll:%' THEN 'waiting' ELSE 'pending' END, next_attempt_at = ?, created_at = ?, attempts = 0, claimed_until = NULL, claim_token = NULL \
             WHERE client_id = ? AND id = ? AND status = 'failed'",
        )
        .bind(ms(now))
        .bind(ms(now))
        .bind(client)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn drop_callback(&self, client: &str, url: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for sql in [
            "UPDATE clients SET backchannel_logout_uri = NULL WHERE id = ? AND backchannel_logout_uri = ?",
            "UPDATE clients SET webhook_url = NULL WHERE id = ? AND webhook_url = ?",
            "UPDATE deliveries SET status = 'failed', claimed_until = NULL WHERE client_id = ? AND url = ? AND status = 'pending'",
        ] {
            sqlx::query(sql).bind(client).bind(url).execute(&mut *tx).await.map_err(db_err)?;
        }
        for kind in EndpointKind::ALL.into_iter().filter(|k| k.is_callback()) {
            sqlx::query("DELETE FROM client_endpoints WHERE client_id = ? AND url = ? AND kind = ?")
                .bind(client)
                .bind(url)
                .bind(kind.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }
    async fn delivery_counts(&self) -> Result<(i64, i64), StoreError> {
        let (pending, failed): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) FROM deliveries \
             WHERE kind <> 'mail'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok((pending, failed))
    }
}

#[async_trait]
impl OutboxTx for SqliteTx {
    async fn enqueue_deliveries(&mut self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        // Many rows per statement: a user with many sessions and many clients makes hundreds.
        for chunk in deliveries.chunks(ENQUEUE_CHUNK) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO deliveries (id, client_id, kind, event, url, payload, status, attempts, last_status_code, \
                 next_attempt_at, created_at) ",
            );
            insert.push_values(chunk, |mut row, d| {
                row.push_bind(d.id.clone())
                    .push_bind(d.client_id.clone())
                    .push_bind(d.kind.as_str())
                    .push_bind(d.event.clone())
                    .push_bind(d.url.clone())
                    .push_bind(d.payload.clone())
                    .push_bind(d.status.as_str())
                    .push_bind(d.attempts)
                    .push_bind(d.last_status_code)
                    .push_bind(ms(d.next_attempt_at))
                    .push_bind(ms(d.created_at));
            });
            insert.build().execute(self.conn()).await.map_err(db_err)?;
        }
        Ok(())
    }
}
