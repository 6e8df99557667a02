//! Shared rate-limit counters (`signoff_core::throttle::SharedCounters`) in `rate_counters`:
//! one upsert per attempt counts it on every node's behalf, before the work it limits.

use async_trait::async_trait;
use signoff_core::store::StoreError;
use signoff_core::throttle::{Counted, SharedCounters, SharedRefusal, Taken};
use time::{Duration, OffsetDateTime};

use crate::PgStore;
use crate::rows::{db_err, ms};
use signoff_sql::columns::from_ms;

/// A sign-in is checked within seconds (the hashing queue's wait and a hash): attempts pending
/// for longer than this were left by a node that died, and count as settled.
const PENDING_FOR_AT_MOST_MS: i64 = 60_000;

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
    /// whole take back. The refusal is `Throttled` when the settled events alone fill a counter,
    /// `Busy` when it is full only with attempts still in flight.
    async fn take(
        &self,
        counted: &[Counted],
        now: OffsetDateTime,
        in_flight: bool,
    ) -> Result<Result<Taken, SharedRefusal>, StoreError> {
        let (keys, windows, maxima) = columns(counted);
        let mut tx = self.pool().begin().await.map_err(db_err)?;
        let rows: Vec<(String, i64, i64, bool, bool)> = sqlx::query_as(
            "WITH q AS (SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::INT[]) AS q(key, window_ms, max)), \
             counted AS ( \
               INSERT INTO rate_counters (key, window_start, window_ms, count, pending, pending_since) \
               SELECT key, $4, window_ms, 1, $5, $4 FROM q ORDER BY key \
               ON CONFLICT (key) DO UPDATE SET \
                 count = CASE WHEN rate_counters.window_start + rate_counters.window_ms <= $4 THEN 1 \
                              ELSE rate_counters.count + 1 END, \
                 pending = CASE WHEN rate_counters.window_start + rate_counters.window_ms <= $4 \
                                  OR rate_counters.pending_since < $4 - $6 THEN $5 \
                                ELSE rate_counters.pending + $5 END, \
                 pending_since = CASE WHEN $5 = 1 THEN $4 ELSE rate_counters.pending_since END, \
                 window_start = CASE WHEN rate_counters.window_start + rate_counters.window_ms <= $4 THEN $4 \
                                     ELSE rate_counters.window_start END, \
                 window_ms = excluded.window_ms \
               RETURNING key, window_start, window_ms, count, pending) \
             SELECT c.key, c.window_start, c.window_start + c.window_ms - $4, c.count > q.max, \
                    c.count - c.pending - (1 - $5) >= q.max \
             FROM counted c JOIN q ON c.key = q.key",
        )
        .bind(&keys)
        .bind(&windows)
        .bind(&maxima)
        .bind(ms(now))
        .bind(i32::from(in_flight))
        .bind(PENDING_FOR_AT_MOST_MS)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        if rows.iter().any(|(_, _, _, over, _)| *over) {
            tx.rollback().await.map_err(db_err)?;
            // Each full counter with its own wait (the rest of its window).
            let full: Vec<(usize, Duration)> = counted
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let row = rows.iter().find(|r| r.0 == c.key && r.3 && r.4)?;
                    Some((i, Duration::milliseconds(row.2.max(1))))
                })
                .collect();
            let Some(wait) = full.iter().map(|(_, w)| *w).max() else { return Ok(Err(SharedRefusal::Busy)) };
            return Ok(Err(SharedRefusal::Throttled { wait, full }));
        }
        tx.commit().await.map_err(db_err)?;
        let windows = rows.into_iter().map(|(key, start, ..)| Ok((key, from_ms(start)?))).collect::<Result<_, _>>()?;
        Ok(Ok(Taken { windows }))
    }

    /// Rows are locked in key order first, as `take` locks them, so the two never deadlock;
    /// only the window the take counted in is touched.
    async fn settle(&self, taken: &Taken, keep: bool) -> Result<(), StoreError> {
        let mut windows: Vec<&(String, OffsetDateTime)> = taken.windows.iter().collect();
        windows.sort_by(|a, b| a.0.cmp(&b.0));
        let keys: Vec<&str> = windows.iter().map(|(k, _)| k.as_str()).collect();
        let starts: Vec<i64> = windows.iter().map(|(_, at)| ms(*at)).collect();
        sqlx::query(
            "WITH t AS (SELECT * FROM unnest($1::TEXT[], $2::BIGINT[]) AS t(key, window_start)), \
             locked AS (SELECT c.key FROM rate_counters c JOIN t ON c.key = t.key AND c.window_start = t.window_start \
                        ORDER BY c.key FOR UPDATE OF c) \
             UPDATE rate_counters c SET pending = GREATEST(c.pending - 1, 0), \
               count = CASE WHEN $3 THEN c.count ELSE GREATEST(c.count - 1, 0) END \
             FROM locked WHERE c.key = locked.key",
        )
        .bind(&keys)
        .bind(&starts)
        .bind(keep)
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

    /// Rows in key order and only those no take holds, so a purge never deadlocks with one.
    async fn purge(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM rate_counters WHERE key IN (SELECT key FROM rate_counters \
             WHERE window_start + window_ms <= $1 ORDER BY key FOR UPDATE SKIP LOCKED)",
        )
        .bind(ms(now))
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
