//! Shared rate-limit counters (`signoff_core::throttle::SharedCounters`) in `rate_counters`:
//! one upsert per attempt counts it on every node's behalf, before the work it limits.

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
    /// One transaction: the upsert counts in every counter (locking their rows in key order, so
    /// racing takes queue on them) and returns the new counts; any above its maximum rolls the
    /// whole take back.
    async fn take(&self, counted: &[Counted], now: OffsetDateTime) -> Result<Result<(), Duration>, StoreError> {
        let (keys, windows, maxima) = columns(counted);
        let mut tx = self.pool().begin().await.map_err(db_err)?;
        let over: Option<i64> = sqlx::query_scalar(
            "WITH q AS (SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::INT[]) AS q(key, window_ms, max)), \
             counted AS ( \
               INSERT INTO rate_counters (key, window_start, window_ms, count) \
               SELECT key, $4, window_ms, 1 FROM q ORDER BY key \
               ON CONFLICT (key) DO UPDATE SET \
                 count = CASE WHEN rate_counters.window_start + rate_counters.window_ms <= $4 THEN 1 \
                              ELSE rate_counters.count + 1 END, \
                 window_start = CASE WHEN rate_counters.window_start + rate_counters.window_ms <= $4 THEN $4 \
                                     ELSE rate_counters.window_start END, \
                 window_ms = excluded.window_ms \
               RETURNING key, window_start, window_ms, count) \
             SELECT max(c.window_start + c.window_ms - $4) FROM counted c JOIN q ON c.key = q.key \
             WHERE c.count > q.max",
        )
        .bind(&keys)
        .bind(&windows)
        .bind(&maxima)
        .bind(ms(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        match over {
            Some(wait) => {
                tx.rollback().await.map_err(db_err)?;
                Ok(Err(Duration::milliseconds(wait.max(1))))
            }
            None => {
                tx.commit().await.map_err(db_err)?;
                Ok(Ok(()))
            }
        }
    }

    /// Rows are locked in key order first, as `take` locks them, so the two never deadlock.
    async fn give_back(&self, counted: &[Counted], now: OffsetDateTime) -> Result<(), StoreError> {
        let (keys, _, _) = columns(counted);
        sqlx::query(
            "WITH locked AS (SELECT key FROM rate_counters WHERE key = ANY($1::TEXT[]) ORDER BY key FOR UPDATE) \
             UPDATE rate_counters c SET count = c.count - 1 FROM locked \
             WHERE c.key = locked.key AND c.count > 0 AND c.window_start + c.window_ms > $2",
        )
        .bind(&keys)
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
