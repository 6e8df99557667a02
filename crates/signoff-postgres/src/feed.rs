//! The revocation feed on PostgreSQL: [`signoff_core::store::FeedStore`] and [`signoff_core::store::FeedTx`].

use crate::audit::bind_audits;
use crate::rows::{FeedRow, backend, db_err, feed_from, feed_page_from, feed_row, ms};
use crate::{PgStore, PgTx, column};
use async_trait::async_trait;
use signoff_core::feed::FeedEntry;
use signoff_core::store::StoreError;
use signoff_core::store::{Announce, FeedPage, FeedStore, FeedTx};
use time::OffsetDateTime;

#[async_trait]
impl FeedStore for PgStore {
    async fn revocations_since(&self, after: i64, limit: u32) -> Result<Vec<(i64, FeedEntry)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, kind, subject, user_id, issuer, reason, value, at, next FROM revocations WHERE seq > $1 \
             ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(feed_from).collect()
    }
    async fn revocation_head(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT seq FROM revocation_counter WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }
    async fn feed_page(&self, after: i64, limit: u32) -> Result<FeedPage, StoreError> {
        // One statement, one snapshot: the counter and the entries it counted commit together.
        // A row with no entry (`seq` NULL) carries the head when there is nothing after `after`.
        // A read, on the path of every revocation (its relay): the connection's check is the
        // statement itself.
        let rows = crate::liveness::first_is_check(&self.pool, || {
            sqlx::query(
                "SELECT c.seq AS head, r.seq, r.kind, r.subject, r.user_id, r.issuer, r.reason, r.value, r.at, r.next \
                 FROM revocation_counter c LEFT JOIN LATERAL (SELECT * FROM revocations WHERE seq > $1 \
                 ORDER BY seq LIMIT $2) r ON true WHERE c.id = 1 ORDER BY r.seq",
            )
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
        })
        .await
        .map_err(db_err)?;
        feed_page_from(&rows)
    }
    async fn skip_positions(&self, past: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar("UPDATE revocation_counter SET seq = GREATEST(seq, $1) WHERE id = 1 RETURNING seq")
            .bind(past)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| backend("the revocation feed's counter row is missing"))
    }
    async fn trim_revocations(&self, before: OffsetDateTime, now: OffsetDateTime) -> Result<u64, StoreError> {
        // Never past what a node holding a live lease has applied: a node with a fast clock
        // trimming early must not take entries from under the others.
        let done = sqlx::query(
            "DELETE FROM revocations WHERE at < $1 AND seq <= COALESCE( \
             (SELECT min(applied_seq) FROM node_leases WHERE lease_until > clock_timestamp()), seq)",
        )
        .bind(ms(before))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM denied_tokens WHERE exp < $1")
            .bind(now.unix_timestamp() - 60)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

/// One statement writes what a transaction leaves behind: its pending audit events (`$10` to
/// `$19`, see `PgTx::audits`) and its feed entries (`$1` to `$9`). The counter's row lock orders
/// appending transactions, so positions follow commit order; with no entries (`$1` = 0) the
/// counter is left alone (its lock not taken) and no row comes back. The counter waits for the
/// audit events (its condition counts them), so they are not written while its lock is held.
///
/// With entries and a channel in `$20` it also sends the nodes' hint (`NOTIFY`, the new position
/// as its payload, see `cluster.rs`): PostgreSQL delivers it when the transaction commits and
/// never if it rolls back, so the other nodes hear of the commit as it happens, with no round
/// trip after it. (A full notification queue, 8 GB held by a listener stuck in a transaction,
/// would then fail the commit: RELIABILITY.md.)
const RECORD: &str = "WITH audited AS (INSERT INTO audit_events (user_id, session_id, kind, scope, reason, detail, \
     actor, ip, user_agent, at) SELECT u, s, k, sc, r, d, a, i, ua, t FROM UNNEST($10::text[], $11::text[], \
     $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::bigint[]) \
     WITH ORDINALITY AS x(u, s, k, sc, r, d, a, i, ua, t, n) ORDER BY n RETURNING 1), \
     counter AS (UPDATE revocation_counter SET seq = seq + $1 \
     WHERE id = 1 AND $1 > 0 AND (SELECT count(*) FROM audited) >= 0 RETURNING seq), \
     appended AS (INSERT INTO revocations (seq, kind, subject, user_id, issuer, reason, value, at, next) \
     SELECT counter.seq - $1 + n, k, s, u, i, r, v, t, x FROM counter, UNNEST($2::text[], $3::text[], \
     $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::text[]) WITH ORDINALITY \
     AS e(k, s, u, i, r, v, t, x, n)) \
     SELECT seq FROM counter \
     LEFT JOIN LATERAL (SELECT pg_notify($20, counter.seq::text) WHERE $20::text IS NOT NULL) AS hint ON true";

impl PgTx {
    /// Writes the pending audit events and `rows` on the feed, in one statement, telling the
    /// other nodes as `announce` says. Returns the position of the last entry written (0 when
    /// none was).
    pub(crate) async fn write_out(&mut self, rows: &[FeedRow<'_>], announce: Announce) -> Result<i64, StoreError> {
        if rows.is_empty() && self.audits.is_empty() {
            return Ok(0);
        }
        let audits = std::mem::take(&mut self.audits);
        let query = sqlx::query(RECORD)
            .bind(rows.len() as i64)
            .bind(column(rows, |r| Some(r.kind)))
            .bind(column(rows, |r| Some(r.subject)))
            .bind(column(rows, |r| r.user_id))
            .bind(column(rows, |r| r.issuer))
            .bind(column(rows, |r| r.reason))
            .bind(rows.iter().map(|r| r.value).collect::<Vec<Option<i64>>>())
            .bind(rows.iter().map(|r| r.at).collect::<Vec<i64>>())
            .bind(column(rows, |r| r.next));
        let channel = (announce == Announce::Now).then_some(crate::cluster::CHANNEL);
        let query = bind_audits(query, &audits).bind(channel);
        match query.fetch_optional(&mut *self.tx).await.map_err(db_err)? {
            Some(row) => sqlx::Row::try_get::<i64, _>(&row, 0).map_err(db_err),
            None if rows.is_empty() => Ok(0),
            // Entries must never be dropped quietly: the revocation would reach no other node.
            None => Err(backend("the revocation feed's counter row is missing")),
        }
    }
}

#[async_trait]
impl FeedTx for PgTx {
    async fn record_revocations(
        &mut self,
        entries: &[FeedEntry],
        at: OffsetDateTime,
        announce: Announce,
    ) -> Result<i64, StoreError> {
        let rows: Vec<FeedRow<'_>> = entries.iter().filter_map(|e| feed_row(e, at)).collect();
        self.write_out(&rows, announce).await
    }
}
