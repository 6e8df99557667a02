//! How a process follows the feed: how far it has applied it ([`FeedCursor`]) and whether its
//! copy is current enough to tell relying services ([`FeedHealth`]). The reading itself is the
//! authority's (`authority/sync.rs`), since applying an entry touches its caches.

use std::time::{Duration, Instant};

/// How far this process has applied the feed, and when the last successful (and the last
/// failed) catch-up began.
#[derive(Debug)]
pub(crate) struct FeedCursor {
    pub(crate) applied: i64,
    /// The entry read at `applied`, when one was: the next read finds it there unless it was
    /// trimmed, or the feed went back and was written again (`Authority::feed_went_back`).
    pub(crate) at_applied: Option<crate::feed::FeedEntry>,
    pub(crate) caught_up_from: Option<Instant>,
    pub(crate) failed_from: Option<Instant>,
}

impl FeedCursor {
    pub(crate) fn new(applied: i64) -> Self {
        Self { applied, at_applied: None, caught_up_from: None, failed_from: None }
    }
}

/// Whether this process's copy of the feed is current enough to tell relying services so:
/// every position this process committed is in the window, and a read of the feed has
/// succeeded lately. (Several nodes also vouch; a single process has no lease to lose, so a
/// feed reader that keeps failing must show here.)
#[derive(Debug)]
pub(crate) struct FeedHealth {
    started: Instant,
    /// Milliseconds after `started` at which the last successful read began (`u64::MAX`: none).
    caught_up_ms: std::sync::atomic::AtomicU64,
    /// The highest position this process committed.
    committed: std::sync::atomic::AtomicI64,
    /// How old the last successful read may be.
    max_quiet_ms: std::sync::atomic::AtomicU64,
    /// How many times the feed was found to have gone back (`Authority::feed_went_back`).
    rewinds: std::sync::atomic::AtomicU64,
}

impl FeedHealth {
    pub(crate) fn new() -> Self {
        use std::sync::atomic::{AtomicI64, AtomicU64};
        Self {
            started: Instant::now(),
            caught_up_ms: AtomicU64::new(0),
            committed: AtomicI64::new(0),
            max_quiet_ms: AtomicU64::new(2_000),
            rewinds: AtomicU64::new(0),
        }
    }

    pub(crate) fn caught_up(&self, at: Instant) {
        let ms = at.saturating_duration_since(self.started).as_millis() as u64;
        self.caught_up_ms.fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn expect_reads_every(&self, poll: Duration) {
        let ms = (poll.as_millis() as u64).saturating_mul(4).max(2_000);
        self.max_quiet_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn committed(&self, seq: i64) {
        self.committed.fetch_max(seq, std::sync::atomic::Ordering::Relaxed);
    }

    /// The feed was found to have gone back, and this process moved past it.
    pub(crate) fn rewound(&self) {
        self.rewinds.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub(crate) fn rewinds(&self) -> u64 {
        self.rewinds.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn current(&self, window_head: i64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let read = self.caught_up_ms.load(Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        window_head >= self.committed.load(Relaxed) && now.saturating_sub(read) <= self.max_quiet_ms.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::FeedHealth;

    #[test]
    fn the_window_is_current_only_with_every_commit_of_this_process_in_it() {
        let health = FeedHealth::new();
        assert!(health.current(0), "just started, just read");
        health.committed(5);
        assert!(!health.current(4), "a position this process committed is not in the window yet");
        assert!(health.current(5));
        health.committed(3);
        assert!(!health.current(4), "the highest commit counts");
    }
}
