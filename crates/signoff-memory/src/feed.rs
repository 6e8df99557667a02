//! The revocation feed in memory: [`signoff_core::store::FeedStore`] and
//! [`signoff_core::store::FeedTx`].

use crate::{MemoryStore, MemoryTx};
use async_trait::async_trait;
use signoff_core::feed::FeedEntry;
use signoff_core::store::{Announce, FeedPage, FeedStore, FeedTx, StoreError};
use time::OffsetDateTime;

/// The time an entry is kept by: its own, or when it was recorded.
fn dated(entry: &FeedEntry, recorded: OffsetDateTime) -> OffsetDateTime {
    match entry {
        FeedEntry::Session(r) => r.at,
        _ => recorded,
    }
}

/// Up to `limit` entries after `after`, with their positions.
fn later(feed: &[(i64, OffsetDateTime, FeedEntry)], after: i64, limit: u32) -> Vec<(i64, FeedEntry)> {
    let later = feed.iter().filter(|(seq, _, _)| *seq > after).take(limit as usize);
    later.map(|(seq, _, entry)| (*seq, entry.clone())).collect()
}

#[async_trait]
impl FeedStore for MemoryStore {
    async fn revocations_since(&self, after: i64, limit: u32) -> Result<Vec<(i64, FeedEntry)>, StoreError> {
        Ok(later(&self.read().feed, after, limit))
    }
    async fn revocation_head(&self) -> Result<i64, StoreError> {
        Ok(self.read().feed_seq)
    }
    async fn feed_page(&self, after: i64, limit: u32) -> Result<FeedPage, StoreError> {
        let state = self.read();
        Ok(FeedPage { head: state.feed_seq, entries: later(&state.feed, after, limit) })
    }
    async fn skip_positions(&self, past: i64) -> Result<i64, StoreError> {
        Ok(self
            .write(|state| {
                state.feed_seq = state.feed_seq.max(past);
                state.feed_seq
            })
            .await)
    }
    async fn trim_revocations(&self, before: OffsetDateTime, now: OffsetDateTime) -> Result<u64, StoreError> {
        let trimmed = self
            .write(|state| {
                let count = state.feed.len();
                state.feed.retain(|(_, at, _)| *at >= before);
                // Denials are kept a minute past their expiry, as the SQL stores keep them.
                let cutoff = now.unix_timestamp() - 60;
                state.denied.retain(|_, exp| *exp >= cutoff);
                count - state.feed.len()
            })
            .await;
        Ok(trimmed as u64)
    }
}

#[async_trait]
impl FeedTx for MemoryTx {
    // One process: no other node to tell (`_announce`).
    async fn record_revocations(
        &mut self,
        entries: &[FeedEntry],
        at: OffsetDateTime,
        _announce: Announce,
    ) -> Result<i64, StoreError> {
        let mut last = 0;
        // An entry of a kind this version does not know is not written (as in the SQL stores).
        for entry in entries.iter().filter(|e| !matches!(e, FeedEntry::Unknown { .. })) {
            self.state.feed_seq += 1;
            last = self.state.feed_seq;
            self.state.feed.push((last, dated(entry, at), entry.clone()));
        }
        Ok(last)
    }
}
