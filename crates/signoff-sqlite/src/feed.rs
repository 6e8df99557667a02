//! The revocation feed on SQLite: [`signoff_core::store::FeedStore`] and [`signoff_core::store::FeedTx`].

use crate::rows::{db_err, feed_from, feed_page_from, feed_row, ms};
use crate::{SqliteStore, SqliteTx};
use async_trait::async_trait;
use signoff_core::feed::FeedEntry;
use signoff_core::store::StoreError;
use signoff_core::store::{Announce, FeedPage, FeedStore, FeedTx};
use time::OffsetDateTime;

/// The feed's head: the last position ever written (`AUTOINCREMENT` keeps it in
/// `sqlite_sequence`, in the same transaction), which trimming every entry does not move back.
macro_rules! head {
    () => {
        "coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'revocations'), 0)"
    };
}

#[async_trait]
impl FeedStore for SqliteStore {
    async fn revocations_since(&self, after: i64, limit: u32) -> Result<Vec<(i64, FeedEntry)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, kind, subject, user_id, issuer, reason, value, at, next FROM revocations WHERE seq > ? \
             ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(feed_from).collect()
    }
    async fn revocation_head(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(concat!("SELECT ", head!())).fetch_one(&self.pool).await.map_err(db_err)
    }
    async fn feed_page(&self, after: i64, limit: u32) -> Result<FeedPage, StoreError> {
        // One statement, one snapshot. A row with no entry (`seq` NULL) carries the head when
        // there is nothing after `after`.
        let rows = sqlx::query(concat!(
            "SELECT h.head, r.seq, r.kind, r.subject, r.user_id, r.issuer, r.reason, r.value, r.at, r.next \
             FROM (SELECT ",
            head!(),
            " AS head) h LEFT JOIN (SELECT * FROM revocations WHERE seq > ? ORDER BY seq LIMIT ?) r ON 1 ORDER BY r.seq",
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        feed_page_from(&rows)
    }
    async fn skip_positions(&self, past: i64) -> Result<i64, StoreError> {
        // `sqlite_sequence` has a row for the table once anything was written to it.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let moved = sqlx::query("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'revocations'")
            .bind(past)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if moved.rows_affected() == 0 {
            sqlx::query("INSERT INTO sqlite_sequence (name, seq) VALUES ('revocations', ?)")
                .bind(past)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let head = sqlx::query_scalar(concat!("SELECT ", head!())).fetch_one(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(head)
    }
    async fn trim_revocations(&self, before: OffsetDateTime, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM revocations WHERE at < ?")
            .bind(ms(before))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM denied_tokens WHERE exp < ?")
            .bind(now.unix_timestamp() - 60)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl FeedTx for SqliteTx {
    // One process: no other node to tell (`_announce`).
    async fn record_revocations(
        &mut self,
        entries: &[FeedEntry],
        at: OffsetDateTime,
        _announce: Announce,
    ) -> Result<i64, StoreError> {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .filter_map(|e| feed_row(e, at))
            .map(|r| serde_json::json!([r.kind, r.subject, r.user_id, r.issuer, r.reason, r.value, r.at, r.next]))
            .collect();
        if rows.is_empty() {
            return Ok(0);
        }
        // One statement for any number, positions in the entries' order (AUTOINCREMENT).
        let done = sqlx::query(
            "INSERT INTO revocations (kind, subject, user_id, issuer, reason, value, at, next) \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7 \
             FROM json_each(?) ORDER BY key",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.last_insert_rowid())
    }
}
