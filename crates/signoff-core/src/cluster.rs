//! Several nodes, one truth: what a node needs to keep its in-memory checks exact while other
//! nodes revoke credentials, and to prove to a revoker that it has.
//!
//! The protocol is Chubby's cache rule (OSDI'06 §2.7–2.8) on the revocation feed:
//!
//! - the feed is commit-ordered with no gaps (a counter row orders the appending commits);
//! - each node holds a **lease** in the database, timed by the database's clock, that says how
//!   far it has applied the feed (`applied`); it renews it every `renew_every` and trusts its
//!   caches only until `sent + lease − margin`, where `sent` is when the renewal left;
//! - a revoker, after its commit, waits until every live lease has applied its position, or
//!   **fences** the ones that have not (their renewals fail from then on) and waits until their
//!   leases have run out; only then does it answer success;
//! - a node that cannot vouch for its caches (no lease, a lost fan-out, a fenced or failed
//!   renewal, a pause past its lease) is in **jeopardy**: before it answers from memory it reads
//!   the feed up to the database's present, or answers `503` when it cannot.
//!
//! Fan-out ([`Fanout`]: Redis pub/sub, or PostgreSQL `LISTEN/NOTIFY`) only makes this fast: a
//! lost message costs a fence and a wait, never a revoked credential accepted.

use async_trait::async_trait;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

use crate::store::StoreError;

/// Revokers looking at the lease table at once, per node (the protocol pool has 8 connections;
/// the listener holds one, renewals and acknowledgements need the rest).
const LOOKERS: usize = 3;

fn wall_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Node leases, kept where the truth is (the database), timed by its clock.
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// Takes (or takes back, unfenced, under a new `incarnation`) this node's lease of `lease`,
    /// recording `applied`.
    async fn register(&self, node: &str, incarnation: i64, applied: i64, lease: Duration) -> Result<(), StoreError>;
    /// Extends the lease by `lease` from the database's now and records `applied`; `false` when
    /// the lease is fenced, has run out, or belongs to another incarnation (nothing changes then).
    async fn renew(&self, node: &str, incarnation: i64, applied: i64, lease: Duration) -> Result<bool, StoreError>;
    /// Records `applied` without extending the lease (the acknowledgement a revoker waits for;
    /// it may skip the disk flush: a lost acknowledgement only makes a revoker wait or fence).
    /// `false` when the lease is fenced, has run out, or belongs to another incarnation.
    async fn acknowledge(&self, node: &str, incarnation: i64, applied: i64) -> Result<bool, StoreError>;
    /// How many live leases other than `node`'s have not applied position `seq`.
    async fn behind(&self, node: &str, seq: i64) -> Result<u64, StoreError>;
    /// Fences every live lease other than `node`'s that has not applied `seq`, and says how long
    /// the longest of them still runs (zero when none).
    async fn fence_behind(&self, node: &str, seq: i64) -> Result<Duration, StoreError>;
    /// Gives the lease up (a node going away, or one that can no longer follow the feed): that
    /// incarnation's, or whichever the node holds.
    async fn release(&self, node: &str, incarnation: Option<i64>) -> Result<(), StoreError>;
}

/// What a fan-out tells a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Listening (again): messages sent from now on arrive.
    Connected,
    /// The feed has reached this position.
    Head(i64),
    /// A node acknowledged a position (revokers waiting here look at the leases again).
    Acked,
    /// The connection was lost: messages may have been missed.
    Lost,
}

/// The fast path between nodes: hints that the feed moved on. Losing one is allowed.
#[async_trait]
pub trait Fanout: Send + Sync + 'static {
    /// Tells every node that the feed has reached `seq` (a fan-out whose store announces each
    /// position as it commits it has nothing left to send).
    async fn publish(&self, seq: i64) -> Result<(), StoreError>;
    /// Tells every node that this one acknowledged a position (likewise, one whose leases
    /// announce each acknowledgement as they record it).
    async fn publish_ack(&self) -> Result<(), StoreError>;
    /// Listens until `signals` is closed, reconnecting as needed; starts with
    /// [`Signal::Connected`] once listening and sends [`Signal::Lost`] whenever it stops.
    async fn listen(&self, signals: mpsc::Sender<Signal>);
}

/// The protocol's timings.
#[derive(Debug, Clone, Copy)]
pub struct ClusterPolicy {
    /// A lease's length (L).
    pub lease: Duration,
    /// How often a lease is renewed (L/4).
    pub renew_every: Duration,
    /// How much earlier than the database a node stops trusting its lease.
    pub margin: Duration,
    /// How long a revoker waits for acknowledgements before it fences.
    pub ack_wait: Duration,
    /// How often the feed is read when no hint came (the backstop).
    pub poll: Duration,
}

/// A node's membership: its lease, the fan-out, and whether it may answer from memory now.
pub struct Cluster {
    pub(crate) node: String,
    pub(crate) leases: std::sync::Arc<dyn Leases>,
    pub(crate) fanout: std::sync::Arc<dyn Fanout>,
    pub(crate) policy: ClusterPolicy,
    /// When this process started: instants are kept as nanoseconds since then.
    epoch: Instant,
    /// Until when (nanoseconds since `epoch`) the caches are vouched for; 0 = not at all.
    trusted_until: AtomicU64,
    /// The same end on the wall clock (Unix nanoseconds): the monotonic clock stands still
    /// while the machine is suspended, the wall clock does not, and both must agree.
    trusted_until_wall: AtomicU64,
    /// Bumped by every [`distrust`](Self::distrust): a catch-up that began before one cannot
    /// restore trust after it.
    distrusts: AtomicU64,
    /// Whether fan-out is connected and the lease registered and caught up.
    synced: AtomicBool,
    /// When the present jeopardy began, for the log and `/readyz`.
    jeopardy_since: Mutex<Option<Instant>>,
    /// Woken when any node acknowledges: revokers waiting for acknowledgements look again.
    pub(crate) acks: tokio::sync::Notify,
    /// How many revokers may look at the leases at once: a burst of logouts must not take every
    /// protocol connection from this node's own renewals and acknowledgements.
    pub(crate) lookers: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).field("vouches", &self.vouches()).finish_non_exhaustive()
    }
}

impl Cluster {
    pub fn new(leases: std::sync::Arc<dyn Leases>, fanout: std::sync::Arc<dyn Fanout>, policy: ClusterPolicy) -> Self {
        let node = crate::secret::SessionId::generate().as_str().chars().take(16).collect();
        Self {
            node,
            leases,
            fanout,
            policy,
            epoch: Instant::now(),
            trusted_until: AtomicU64::new(0),
            trusted_until_wall: AtomicU64::new(0),
            distrusts: AtomicU64::new(0),
            synced: AtomicBool::new(false),
            jeopardy_since: Mutex::new(Some(Instant::now())),
            acks: tokio::sync::Notify::new(),
            lookers: tokio::sync::Semaphore::new(LOOKERS),
        }
    }

    /// The fan-out this node listens to.
    pub fn fanout(&self) -> &std::sync::Arc<dyn Fanout> {
        &self.fanout
    }

    /// This node's name in the lease table.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether this node may answer from memory right now: synced, and inside its lease by
    /// both clocks.
    pub fn vouches(&self) -> bool {
        self.synced.load(Ordering::Acquire)
            && self.nanos(Instant::now()) < self.trusted_until.load(Ordering::Acquire)
            && wall_nanos(SystemTime::now()) < self.trusted_until_wall.load(Ordering::Acquire)
    }

    /// Where distrust stands; pass it to [`set_synced`](Self::set_synced).
    pub(crate) fn distrusts(&self) -> u64 {
        self.distrusts.load(Ordering::Acquire)
    }

    /// Since when the node has not vouched for its caches (`None` while it does).
    pub fn jeopardy_since(&self) -> Option<Instant> {
        if self.vouches() {
            return None;
        }
        let mut since = self.jeopardy_since.lock().unwrap_or_else(PoisonError::into_inner);
        Some(*since.get_or_insert_with(Instant::now))
    }

    /// A renewal sent at `sent` (`sent_wall` on the wall clock) succeeded: the caches are
    /// vouched for until `sent + L − margin`.
    pub(crate) fn renewed(&self, sent: Instant, sent_wall: SystemTime) {
        let trust = self.policy.lease.saturating_sub(self.policy.margin);
        self.trusted_until.store(self.nanos(sent + trust), Ordering::Release);
        self.trusted_until_wall.store(wall_nanos(sent_wall + trust), Ordering::Release);
    }

    /// Fully synced (registered, listening, caught up and renewed), unless something distrusted
    /// the caches since `distrusts` was read (before the catch-up began).
    pub(crate) fn set_synced(&self, distrusts: u64) {
        if self.distrusts() != distrusts {
            return;
        }
        self.synced.store(true, Ordering::Release);
        let began = self.jeopardy_since.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(began) = began {
            tracing::info!(node = %self.node, after_ms = began.elapsed().as_millis() as u64, "caches vouched for");
        }
    }

    /// Enters jeopardy: from now on memory is trusted only after reading the feed.
    pub(crate) fn distrust(&self, why: &str) {
        self.distrusts.fetch_add(1, Ordering::AcqRel);
        let was = self.synced.swap(false, Ordering::AcqRel);
        self.trusted_until.store(0, Ordering::Release);
        let mut since = self.jeopardy_since.lock().unwrap_or_else(PoisonError::into_inner);
        since.get_or_insert_with(Instant::now);
        if was {
            tracing::warn!(node = %self.node, why, "jeopardy: caches not vouched for until caught up");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    #[async_trait]
    impl Leases for Nothing {
        async fn register(&self, _: &str, _: i64, _: i64, _: Duration) -> Result<(), StoreError> {
            Ok(())
        }
        async fn renew(&self, _: &str, _: i64, _: i64, _: Duration) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn acknowledge(&self, _: &str, _: i64, _: i64) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn behind(&self, _: &str, _: i64) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn fence_behind(&self, _: &str, _: i64) -> Result<Duration, StoreError> {
            Ok(Duration::ZERO)
        }
        async fn release(&self, _: &str, _: Option<i64>) -> Result<(), StoreError> {
            Ok(())
        }
    }
    #[async_trait]
    impl Fanout for Nothing {
        async fn publish(&self, _: i64) -> Result<(), StoreError> {
            Ok(())
        }
        async fn publish_ack(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn listen(&self, _: mpsc::Sender<Signal>) {}
    }

    #[test]
    fn a_node_vouches_only_while_synced_and_inside_its_lease() {
        let policy = ClusterPolicy {
            lease: Duration::from_millis(300),
            margin: Duration::from_millis(100),
            renew_every: Duration::from_millis(500),
            ack_wait: Duration::from_millis(100),
            poll: Duration::from_secs(1),
        };
        let c = Cluster::new(std::sync::Arc::new(Nothing), std::sync::Arc::new(Nothing), policy);
        assert!(!c.vouches(), "a new node vouches for nothing");
        c.renewed(Instant::now(), SystemTime::now());
        assert!(!c.vouches(), "a lease alone is not enough: the node must have caught up");
        c.set_synced(c.distrusts());
        assert!(c.vouches());
        assert!(c.jeopardy_since().is_none());
        std::thread::sleep(Duration::from_millis(220));
        assert!(!c.vouches(), "trust ends a margin before the lease does");
        c.renewed(Instant::now(), SystemTime::now());
        assert!(c.vouches());
        c.renewed(Instant::now(), SystemTime::now() - Duration::from_secs(1));
        assert!(!c.vouches(), "a wall clock past the lease (a suspended machine) ends trust too");
        c.renewed(Instant::now(), SystemTime::now());
        let before = c.distrusts();
        c.distrust("test");
        assert!(!c.vouches());
        assert!(c.jeopardy_since().is_some());
        c.renewed(Instant::now(), SystemTime::now());
        assert!(!c.vouches(), "after jeopardy a renewal alone does not restore trust");
        c.set_synced(before);
        assert!(!c.vouches(), "a catch-up that began before the distrust cannot restore trust");
        c.set_synced(c.distrusts());
        assert!(c.vouches());
    }
}
