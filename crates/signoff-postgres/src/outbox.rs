//! The outbox on PostgreSQL: [`signoff_core::store::OutboxStore`] and [`signoff_core::store::OutboxTx`].

use crate::rows::{db_err, delivery_from, ms};
use crate::{ENQUEUE_CHUNK, PgStore, PgTx};
use async_trait::async_trait;
use signoff_core::clients::EndpointKind;
use signoff_core::outbox::{Delivery, DeliveryPage, DeliveryStatus};
use signoff_core::store::StoreError;
use signoff_core::store::{OutboxStore, OutboxTx};
use time::OffsetDateTime;

#[async_trait]
impl OutboxStore for PgStore {
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
        per_endpoint: u32,
        skip: &[String],
    ) -> Result<Vec<Delivery>, StoreError> {
        // The pending URLs one by one off the index (a loose index scan), then the oldest due
        // few of each that no other transaction holds (SKIP LOCKED), ranked within their URL:
        // every URL's first before any URL's second.
        let rows = sqlx::query(
            "WITH RECURSIVE urls(url) AS (\
               (SELECT url FROM deliveries WHERE status = 'pending' ORDER BY url LIMIT 1) \
               UNION ALL \
               SELECT (SELECT d.url FROM deliveries d WHERE d.status = 'pending' AND d.url > urls.url ORDER BY d.url LIMIT 1) \
               FROM urls WHERE urls.url IS NOT NULL), \
             due AS (SELECT c.id, c.next_attempt_at, row_number() OVER (PARTITION BY urls.url ORDER BY c.next_attempt_at, c.id) AS rn \
               FROM urls CROSS JOIN LATERAL (\
                 SELECT id, next_attempt_at FROM deliveries WHERE status = 'pending' AND url = urls.url \
                 AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2) \
                 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) c \
               WHERE NOT (urls.url = ANY($6))), \
             pick AS (SELECT id FROM due ORDER BY rn, next_attempt_at LIMIT $4) \
             UPDATE deliveries d SET claimed_until = $1, claim_token = $5 FROM pick WHERE d.id = pick.id \
             RETURNING d.id, d.client_id, d.kind, d.event, d.url, d.payload, d.status, d.attempts, d.last_status_code, d.last_error, \
             d.next_attempt_at, d.created_at, d.claim_token",
        )
        .bind(ms(until))
        .bind(ms(now))
        .bind(i64::from(per_endpoint))
        .bind(i64::from(limit))
        .bind(signoff_core::secret::random_id())
        .bind(skip)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(delivery_from).collect()
    }
    async fn release_deliveries(&self, claim: &str, ids: &[String]) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET claimed_until = NULL, claim_token = NULL WHERE claim_token = $1 AND id = ANY($2)",
        )
        .bind(claim)
        .bind(ids)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn record_delivery(&self, d: &Delivery) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = $1, attempts = $2, last_status_code = $3, last_error = $7, \
             next_attempt_at = $4, claimed_until = NULL, claim_token = NULL \
             WHERE id = $5 AND status = 'pending' AND claim_token = $6",
        )
        .bind(d.status.as_str())
        .bind(d.attempts)
        .bind(d.last_status_code)
        .bind(ms(d.next_attempt_at))
        .bind(&d.id)
        .bind(d.claim.as_deref())
        .bind(d.last_error.as_deref())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM deliveries WHERE status <> 'pending' AND created_at < $1")
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
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND id = ANY($1)")
                .bind(ids)
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
             created_at, claim_token FROM deliveries WHERE client_id = $1 AND ($2::text IS NULL OR status = $2) \
             AND ($3::bigint IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) \
             ORDER BY created_at DESC, id DESC LIMIT $5",
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
             created_at, claim_token FROM deliveries WHERE status = 'waiting' AND url = $1 ORDER BY next_attempt_at, id LIMIT $2",
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
        let done = sqlx::query("UPDATE deliveries SET status = $1, last_error = $2 WHERE status = 'waiting' AND url = $3 AND ($4 OR id = ANY($5))")
        .bind(status.as_str())
        .bind(error)
        .bind(url)
        .bind(ids.is_none())
        .bind(ids.unwrap_or_default())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
    async fn retry_delivery(&self, client: &str, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = CASE WHEN url LIKE 'poll:%' THEN 'waiting' ELSE 'pending' END, next_attempt_at = $1, created_at = $1, attempts = 0, claimed_until = NULL, claim_token = NULL \
             WHERE client_id = $2 AND id = $3 AND status = 'failed'",
        )
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
            "UPDATE clients SET backchannel_logout_uri = NULL WHERE id = $1 AND backchannel_logout_uri = $2",
            "UPDATE clients SET webhook_url = NULL WHERE id = $1 AND webhook_url = $2",
            "UPDATE deliveries SET status = 'failed', claimed_until = NULL WHERE client_id = $1 AND url = $2 AND status = 'pending'",
        ] {
            sqlx::query(sql).bind(client).bind(url).execute(&mut *tx).await.map_err(db_err)?;
        }
        for kind in EndpointKind::ALL.into_iter().filter(|k| k.is_callback()) {
            sqlx::query("DELETE FROM client_endpoints WHERE client_id = $1 AND url = $2 AND kind = $3")
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
impl OutboxTx for PgTx {
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
