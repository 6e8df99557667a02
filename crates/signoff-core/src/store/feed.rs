//! The revocation feed: entries appended in order with the change that made them.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::feed::FeedEntry;

/// Feed reads, outside any transaction (part of [`Store`](super::Store)).
#[async_trait]
pub trait FeedStore: Send + Sync {
    /// Feed entries recorded after position `after`, oldest first, at most `limit`, each with
    /// its position.
    async fn revocations_since(&self, after: i64, limit: u32) -> Result<Vec<(i64, FeedEntry)>, StoreError>;
    /// The feed's newest position: the last one ever written (0 when none), which trimming the
    /// entries does not move back.
    async fn revocation_head(&self) -> Result<i64, StoreError>;
    /// [`revocations_since`](Self::revocations_since) with the feed's head, as one read sees
    /// them (one statement: a poll that finds nothing new costs one): no entries with a head
    /// past `after` means what lay between was trimmed away.
    async fn feed_page(&self, after: i64, limit: u32) -> Result<FeedPage, StoreError>;
    /// Moves the head to `past` unless it is there already, so that no entry is ever written at
    /// a position at or below it; returns the head. For a feed that went back (a restored
    /// database) under nodes and clients that hold positions of the old one.
    async fn skip_positions(&self, past: i64) -> Result<i64, StoreError>;
    /// Drops feed entries older than `before`, and denylist entries past their expiry.
    async fn trim_revocations(&self, before: OffsetDateTime, now: OffsetDateTime) -> Result<u64, StoreError>;
}

/// A page of the feed after a position, and its head as the same read saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    /// The newest position.
    pub head: i64,
    /// Positions and entries, oldest first.
    pub entries: Vec<(i64, FeedEntry)>,
}

/// Whether the other nodes are told of a feed write as it commits (a store that can sends their
/// hint with the commit), or left to find it on their next read of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// A change whose caller waits for every node to apply it.
    Now,
    /// What every node already refuses from memory (expired sessions): found on the next poll.
    OnPoll,
}

/// Feed changes and locked reads, inside one transaction (part of [`Tx`](super::Tx)).
#[async_trait]
pub trait FeedTx: Send {
    /// Appends entries to the revocation feed, in order and in one statement; `at` dates those
    /// that carry no time of their own.
    /// Returns the position of the last entry written (0 when none was).
    async fn record_revocations(
        &mut self,
        entries: &[FeedEntry],
        at: OffsetDateTime,
        announce: Announce,
    ) -> Result<i64, StoreError>;
}
