//! Shared rate-limit counters (`signoff_core::throttle::SharedCounters`) in `rate_counters`:
//! one upsert per attempt counts it on every node's behalf.

use async_trait::async_trait;
use signoff_core::store::StoreError;
use signoff_core::throttle::{Counted, SharedCounters};
use time::{Duration, OffsetDateTime};

use crate::PgStore;
use crate::rows::{db_err, ms};

/// The keys, windows and maxima as parallel arrays, sorted by key (so concurrent upserts of
/// the same keys lock them in one order).
fn columns(counted: &[Counted]) -> (Vec<String>, Vec<i64>, Vec<i32>) {
    let mut sorted: Vec<&Counted> = counted.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    sorted.dedup_by(|a, b| a.key == b.key);
    (
        sorted.iter().map(|c| c.key.clone()).collect(),
        sorted.iter().map(|c| i64::try_from(c.window.whole_milliseconds()).unwrap_or(i64::MAX)).collect(),
        sorted.iter().map(|c| i32::try_from(c.max).unwrap_or(i32::MAX)).collect(),
    )
}

#[async_trait]
impl SharedCounters for PgStore {
    async fn over(&self, counted: &[Counted], now: OffsetDateTime) -> Result<Option<Duration>, StoreError> {
        let (keys, _, maxima) = columns(counted);
        let wait: Option<i64> = sqlx::query_scalar(
            "SELECT max(c.window_start + c.window_ms - $3) FROM rate_counters c \
             JOIN unnest($1::TEXT[], $2::INT[]) AS q(key, max) ON c.key = q.key \
             WHERE c.count >= q.max AND c.window_start + c.window_ms > $3",
        )
        .bind(&keys)
        .bind(&maxima)
        .bind(ms(now))
        .fetch_one(self.pool())
        .await
        .map_err(db_err)?;
        Ok(wait.map(Duration::milliseconds))
    }

    async fn hit(&self, counted: &[Counted], now: OffsetDateTime) -> Result<(), StoreError> {
        let (keys, windows, _) = columns(counted);
        sqlx::query(
            "INSERT INTO rate_counters (key, window_start, window_ms, count) \
             SELECT key, $3, window_ms, 1 FROM unnest($1::TEXT[], $2::BIGINT[]) AS q(key, window_ms) ORDER BY key \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN rate_counters.window_start + rate_counters.window_ms <= $3 THEN 1 \
                            ELSE rate_counters.count + 1 END, \
               window_start = CASE WHEN rate_counters.window_start + rate_counters.window_ms <= $3 THEN $3 \
                                   ELSE rate_counters.window_start END, \
               window_ms = excluded.window_ms",
        )
        .bind(&keys)
        .bind(&windows)
        .bind(ms(now))
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn clear(&self, counted: &Counted) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM rate_counters WHERE key = $1")
            .bind(&counted.key)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn purge(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM rate_counters WHERE window_start + window_ms <= $1")
            .bind(ms(now))
            .execute(self.pool())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
