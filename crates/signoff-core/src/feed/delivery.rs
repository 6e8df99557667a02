//! How far each open stream of the relying services' feed has sent what the window holds, so
//! that a revocation is answered only once the streams of this process have sent it: a verifier
//! that keeps up then holds it before the revoker can ask anything of the verifier's app.
//!
//! A stream marks a position sent when it has handed everything up to it to its connection and
//! the connection has then written all it holds to the socket (the HTTP edge tells it: see
//! `listener::Written` in the server). A stream is waited for from the moment it opens (one
//! that reconnects while a revocation commits must hold it before the revoker is answered). A
//! wait is bounded: a stream that does not send in time is *lagging*, and no later wait waits
//! for it until it has sent what it missed, so one slow client (or one that opens a stream and
//! never reads it) costs one bounded wait, not one per revocation.
//!
//! What this cannot see: written to the socket is not read by the client. The kernel's buffers
//! (its send buffer grows to megabytes) take what a slow client has not read, so only a client
//! far behind leaves its stream unmarked, and a proxy in between reads everything at once.
//! A verifier that keeps up reads what is written at once; one that does not is behind,
//! whatever signoff waits for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// The open streams of this process and what each has sent.
#[derive(Debug, Default)]
pub struct Deliveries {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    marks: Mutex<Marks>,
    /// Told whenever a stream marks something sent or closes.
    moved: Notify,
}

#[derive(Debug, Default)]
struct Marks {
    next_id: u64,
    streams: HashMap<u64, Mark>,
}

#[derive(Debug)]
struct Mark {
    /// Every position up to this one has been sent.
    sent: i64,
    /// Missed a wait for this position: not waited for again until it has sent it.
    lagging: Option<i64>,
}

impl Mark {
    fn holds_back(&self, seq: i64) -> bool {
        self.sent < seq && self.lagging.is_none()
    }
}

/// One open stream's mark; it leaves the marks when dropped (the stream ended).
#[derive(Debug)]
pub struct Delivery {
    id: u64,
    shared: Arc<Shared>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.marks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Deliveries {
    /// A new stream's mark: nothing sent yet (not even its first page).
    pub fn open(&self) -> Delivery {
        let mut marks = self.shared.lock();
        let id = marks.next_id;
        marks.next_id += 1;
        marks.streams.insert(id, Mark { sent: -1, lagging: None });
        Delivery { id, shared: self.shared.clone() }
    }

    /// Waits, at most `limit`, until every stream that keeps up has sent position `seq`;
    /// returns how many did not (they are lagging from now on).
    pub async fn sent_everywhere(&self, seq: i64, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let moved = self.shared.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if !self.shared.lock().streams.values().any(|m| m.holds_back(seq)) {
                return 0;
            }
            if tokio::time::timeout_at(deadline, moved).await.is_err() {
                let mut marks = self.shared.lock();
                let mut lagging = 0;
                for mark in marks.streams.values_mut().filter(|m| m.holds_back(seq)) {
                    mark.lagging = Some(seq);
                    lagging += 1;
                }
                return lagging;
            }
        }
    }

    /// Streams open (for tests).
    pub fn open_streams(&self) -> usize {
        self.shared.lock().streams.len()
    }
}

impl Delivery {
    /// Everything up to `seq` has been sent.
    pub fn sent(&self, seq: i64) {
        {
            let mut marks = self.shared.lock();
            let Some(mark) = marks.streams.get_mut(&self.id) else { return };
            mark.sent = mark.sent.max(seq);
            if mark.lagging.is_some_and(|missed| mark.sent >= missed) {
                mark.lagging = None;
            }
        }
        self.shared.moved.notify_waiters();
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.shared.lock().streams.remove(&self.id);
        self.shared.moved.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn a_wait_ends_when_every_stream_has_sent_the_position() {
        let deliveries = Arc::new(Deliveries::default());
        let (a, b) = (deliveries.open(), deliveries.open());
        a.sent(4);
        b.sent(4);
        let waiting = {
            let d = deliveries.clone();
            tokio::spawn(async move { d.sent_everywhere(5, LIMIT).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "neither stream has sent 5");
        a.sent(5);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the second stream has not sent 5");
        b.sent(6);
        let lagging = tokio::time::timeout(Duration::from_millis(100), waiting).await.expect("ended").expect("task");
        assert_eq!(lagging, 0);
    }

    #[tokio::test]
    async fn a_stream_that_misses_a_wait_lags_until_it_has_sent_what_it_missed() {
        let deliveries = Deliveries::default();
        let (slow, quick) = (deliveries.open(), deliveries.open());
        slow.sent(2);
        quick.sent(3);
        let started = tokio::time::Instant::now();
        assert_eq!(deliveries.sent_everywhere(3, LIMIT).await, 1);
        assert!(started.elapsed() >= LIMIT);
        // The next wait is not held back by it, but by the quick one, which keeps up.
        let started = tokio::time::Instant::now();
        quick.sent(4);
        assert_eq!(deliveries.sent_everywhere(4, LIMIT).await, 0);
        assert!(started.elapsed() < LIMIT);
        // Once it has sent what it missed it keeps up again, and is waited for.
        slow.sent(3);
        assert_eq!(deliveries.sent_everywhere(4, LIMIT).await, 1);
        drop(slow);
        quick.sent(5);
        assert_eq!(deliveries.sent_everywhere(5, LIMIT).await, 0);
        assert_eq!(deliveries.open_streams(), 1);
    }

    #[tokio::test]
    async fn a_stream_never_read_costs_one_bounded_wait() {
        let deliveries = Deliveries::default();
        let _never_read = deliveries.open();
        let started = tokio::time::Instant::now();
        assert_eq!(deliveries.sent_everywhere(7, LIMIT).await, 1, "waited for from the start");
        assert!(started.elapsed() >= LIMIT);
        let started = tokio::time::Instant::now();
        assert_eq!(deliveries.sent_everywhere(8, LIMIT).await, 0);
        assert!(started.elapsed() < LIMIT, "lagging from then on");
    }

    #[tokio::test]
    async fn a_stream_that_ends_holds_nothing_back() {
        let deliveries = Arc::new(Deliveries::default());
        let stream = deliveries.open();
        stream.sent(0);
        let waiting = {
            let d = deliveries.clone();
            tokio::spawn(async move { d.sent_everywhere(1, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(stream);
        let lagging = tokio::time::timeout(Duration::from_millis(500), waiting).await.expect("ended").expect("task");
        assert_eq!(lagging, 0);
    }
}
