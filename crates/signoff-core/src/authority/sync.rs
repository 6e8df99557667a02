//! The authority's half of the node protocol (see [`crate::cluster`]): following the revocation
//! feed, vouching for the in-memory checks before they answer, and proving a revocation has
//! reached every node before it is answered.

use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::Authority;
use crate::cluster::{Cluster, Signal};
use crate::error::CoreError;
use crate::feed::follow::FeedCursor;
use crate::feed::{FeedEntry, Revocation};
use crate::store::FeedPage;

/// Entries read from the feed per round trip.
const PAGE: u32 = 500;

/// How far past a node's position the feed's head is moved when the feed went back (see
/// `Authority::feed_went_back`): more than any node's feed can run ahead of another's.
const REWOUND_JUMP: i64 = 1 << 32;

/// How often at most a hint behind the acknowledged position makes a node read the feed.
const STALE_HINT_READS: Duration = Duration::from_millis(100);

/// How long a request waits for a catch-up before it is answered 503.
const VOUCH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a revocation waits for the feed streams of a process to send it (they do within a
/// millisecond unless a client reads too slowly; see `feed::delivery`). A node waits at most a
/// quarter of the acknowledgement wait, so its revokers never fence it for a slow stream.
const STREAM_SEND_WAIT: Duration = Duration::from_millis(20);

impl Authority {
    /// Makes this authority one node of several: it vouches for its caches only under its lease
    /// and proves every revocation it commits to the other nodes' leases.
    pub fn with_cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// Whether the in-memory checks may answer now (always, for a single node).
    pub fn vouches(&self) -> bool {
        self.cluster.as_ref().is_none_or(Cluster::vouches)
    }

    /// Before answering from memory: when this node cannot vouch for its caches, reads the
    /// feed up to the database's present first (one read, shared by the requests waiting for
    /// it), so whatever was revoked before this request arrived is applied. `Busy` (503) when
    /// the database cannot be read.
    pub(super) async fn vouch(&self) -> Result<(), CoreError> {
        if self.vouches() {
            return Ok(());
        }
        // Boxed: the catch-up's state would otherwise be carried (and moved) by the future of
        // every request that vouches, though few ever wait for one.
        Box::pin(self.vouch_by_reading()).await
    }

    /// [`vouch`](Self::vouch) when the node cannot vouch as it stands.
    async fn vouch_by_reading(&self) -> Result<(), CoreError> {
        let arrived = Instant::now();
        let unavailable = || CoreError::Busy(time::Duration::seconds(1));
        // The wait for the lock counts too: behind a hung catch-up, requests get 503 in time.
        let caught_up = tokio::time::timeout(VOUCH_TIMEOUT, async {
            let mut cursor = self.feed.lock().await;
            // A catch-up that began after this request arrived has read everything it must see;
            // one that began after it and failed says the store is out of reach: no retry.
            if cursor.caught_up_from.is_some_and(|from| from >= arrived) {
                return Ok(());
            }
            if cursor.failed_from.is_some_and(|from| from >= arrived) {
                return Err(unavailable());
            }
            self.catch_up_locked(&mut cursor).await.map(|_| ()).map_err(|e| {
                tracing::warn!(error = %e, "cannot vouch for the caches: the revocation feed is unreadable");
                unavailable()
            })
        })
        .await;
        caught_up.unwrap_or_else(|_| {
            tracing::warn!("cannot vouch for the caches: reading the revocation feed timed out");
            Err(unavailable())
        })
    }

    /// Applies every feed entry after the applied position and returns the new one (`Busy`
    /// when that takes longer than a request may wait).
    pub async fn catch_up(&self) -> Result<i64, CoreError> {
        tokio::time::timeout(VOUCH_TIMEOUT, async {
            let mut cursor = self.feed.lock().await;
            self.catch_up_locked(&mut cursor).await
        })
        .await
        .unwrap_or(Err(CoreError::Busy(time::Duration::seconds(1))))
    }

    /// Waits (briefly) until this process's open feed streams have sent everything up to `seq`:
    /// a verifier that keeps up then holds a revocation before its revoker is answered, or,
    /// on another node, before that node acknowledges it.
    pub(super) async fn relayed(&self, seq: i64) {
        let limit = self.cluster.as_ref().map_or(STREAM_SEND_WAIT, |c| STREAM_SEND_WAIT.min(c.policy.ack_wait / 4));
        let lagging = self.client_feed.deliveries().sent_everywhere(seq, limit).await;
        if lagging > 0 {
            tracing::warn!(
                seq,
                lagging,
                "revocation-feed streams did not send a revocation in time; not waiting for them until they catch up"
            );
        }
    }

    /// Applies the feed (as [`catch_up`](Self::catch_up)), then waits until this process's feed
    /// streams have sent it: what a node acknowledges, its verifiers hold.
    async fn catch_up_and_relay(&self) -> Result<i64, CoreError> {
        let applied = self.catch_up().await?;
        self.relayed(applied).await;
        Ok(applied)
    }

    /// Reads the feed unless a read that began at or after `since` has already succeeded (so
    /// requests that arrive together share one read), within `limit`.
    pub(super) async fn catch_up_since(&self, since: Instant, limit: Duration) -> Result<i64, CoreError> {
        tokio::time::timeout(limit, async {
            let mut cursor = self.feed.lock().await;
            if cursor.caught_up_from.is_some_and(|from| from >= since) {
                return Ok(cursor.applied);
            }
            self.catch_up_locked(&mut cursor).await
        })
        .await
        .unwrap_or(Err(CoreError::Busy(time::Duration::seconds(1))))
    }

    async fn catch_up_locked(&self, cursor: &mut FeedCursor) -> Result<i64, CoreError> {
        let started = Instant::now();
        let result = self.read_feed(cursor, started).await;
        if let Some(timer) = &self.on_feed_read {
            timer(started.elapsed());
        }
        match result {
            Ok(_) => self.feed_health.caught_up(started),
            Err(_) => cursor.failed_from = Some(started),
        }
        result
    }

    async fn read_feed(&self, cursor: &mut FeedCursor, started: Instant) -> Result<i64, CoreError> {
        loop {
            // The entries and the head in one read (a poll that finds nothing new is one
            // statement), from the entry at this node's position on: the one applied there must
            // still be there, unless trimmed. A feed that went back (a restored database) and
            // was written again past this position has another one there.
            let checks = cursor.applied > 0;
            let FeedPage { head, mut entries } = self.store.feed_page(cursor.applied - i64::from(checks), PAGE).await?;
            let full = entries.len() == PAGE as usize;
            if checks && entries.first().is_some_and(|(seq, _)| *seq == cursor.applied) {
                let (_, there) = entries.remove(0);
                match &cursor.at_applied {
                    Some(applied) if *applied != there => {
                        self.feed_went_back(cursor, head).await?;
                        continue;
                    }
                    Some(_) => {}
                    None => cursor.at_applied = Some(there),
                }
            }
            let Some((last, at_last)) = entries.last().cloned() else {
                // Nothing after this node's position: unless it was all trimmed away (a node
                // suspended for longer than the feed keeps, or one another node's clock ran
                // ahead of), or the feed moved on past positions written again after it went
                // back, the head is where this node is (the head is committed with its entries,
                // and `feed_page` reads them together).
                if head > cursor.applied {
                    tracing::warn!(
                        applied = cursor.applied,
                        head,
                        "revocation feed trimmed or moved past this node; reloading every cache"
                    );
                    self.reload_everything().await?;
                    self.pass_over_to(head, cursor.applied, &[]).await?;
                    cursor.applied = head;
                    cursor.at_applied = None;
                } else if head < cursor.applied {
                    self.feed_went_back(cursor, head).await?;
                }
                break;
            };
            let mut expected = cursor.applied;
            let contiguous = entries.iter().all(|(seq, _)| {
                expected += 1;
                *seq == expected
            });
            if !contiguous {
                // Positions have no gaps: entries were trimmed before this node read them, so
                // what they revoked is unknown here.
                tracing::warn!(applied = cursor.applied, "revocation feed read past a gap; reloading every cache");
                self.reload_everything().await?;
            }
            self.apply_feed(entries.iter().map(|(_, e)| e.clone()).collect()).await?;
            // Relying services are told only what this process has applied (its keys reloaded
            // before a verifier told of new keys asks for them; a gap moves the window's floor:
            // clients behind it start over).
            if contiguous {
                self.client_feed.apply(&entries, self.now());
            } else {
                self.pass_over_to(last, cursor.applied, &entries).await?;
            }
            cursor.applied = last;
            cursor.at_applied = Some(at_last);
            if !full {
                break;
            }
        }
        cursor.caught_up_from = Some(started);
        Ok(cursor.applied)
    }

    /// After a read past entries this process never read, up to `head` from `applied`, with
    /// `page` (what the read found after them): the relying services' clients behind `head` start
    /// over. Entries trimmed are gone; but when another node moved the feed on past a restore
    /// ([`feed_went_back`](Self::feed_went_back): by more than half its jump), entries were
    /// written at positions this process had read before, and the window adds what the store
    /// holds up to `head` (read once an incident: the feed's whole retention).
    async fn pass_over_to(&self, head: i64, applied: i64, page: &[(i64, FeedEntry)]) -> Result<(), CoreError> {
        let now = self.now();
        if head.saturating_sub(applied) <= REWOUND_JUMP / 2 {
            self.client_feed.skip_to(head.min(page.first().map_or(head, |(seq, _)| seq - 1)));
            self.client_feed.apply(page, now);
            return Ok(());
        }
        let mut history = self.feed_history(head).await?;
        // What this read found, whatever was trimmed since.
        let read: std::collections::HashSet<i64> = history.iter().map(|(seq, _)| *seq).collect();
        history.extend(page.iter().filter(|(seq, _)| !read.contains(seq)).cloned());
        history.sort_by_key(|(seq, _)| *seq);
        self.client_feed.refill(&history, head, now);
        Ok(())
    }

    /// The feed's head is behind this node's position: the store was restored from a copy (or
    /// replaced), so the positions after `head` would be written again, naming other entries
    /// than those this node (and others, and relying services) applied there. Left alone, this
    /// node would pass them over as read, and go on acknowledging them.
    ///
    /// So no position is ever written twice: the store's head is moved far past every position
    /// the old feed can have reached ([`REWOUND_JUMP`]), before anything else. A node still
    /// behind that head then reads it as a trim and reloads; one ahead of it (impossible unless
    /// its feed ran more than the jump) finds it went back and moves it again. This node
    /// distrusts its caches meanwhile, reloads them from the store as it is after the move, and
    /// starts the relying services' window again at the new head (every client starts over: a
    /// client of the old feed holds what the restored store has and more revocations, never
    /// fewer).
    async fn feed_went_back(&self, cursor: &mut FeedCursor, head: i64) -> Result<(), CoreError> {
        tracing::error!(
            applied = cursor.applied,
            head,
            "the revocation feed is behind this node: the database was restored or replaced; \
             moving the feed's positions past the old ones and reloading every cache (restart every verifier)"
        );
        if let Some(cluster) = &self.cluster {
            cluster.distrust("the revocation feed went back");
        }
        let head = self.store.skip_positions(cursor.applied.saturating_add(REWOUND_JUMP)).await?;
        if let Some(cluster) = &self.cluster {
            // The other nodes read at once: the head is past them (see above).
            hint(cluster, head);
        }
        self.reload_everything().await?;
        let history = self.feed_history(head).await?;
        self.client_feed.start_over(&history, head, self.now());
        cursor.applied = head;
        cursor.at_applied = None;
        self.feed_health.rewound();
        Ok(())
    }

    /// After a commit written (from its first entry on) at a position this process had applied
    /// already (`applied` and `rewinds` as they stood before the commit; `seq` its last
    /// position): the feed went back, and no lease's acknowledged position says anything
    /// about it. Unless a read has found that out since, this process moves the feed on past
    /// the old positions and reloads ([`feed_went_back`]), also when a read has passed over the
    /// entries meanwhile (the one at its position trimmed, so it could not tell), or read past
    /// a head another node moved on (one more jump is harmless). Then every other node is
    /// fenced, and the revoker waits at least a lease: a node's lease of the copy's has run out
    /// and one registered since the copy has none, so neither is found to fence, but each
    /// trusts its caches for at most a lease after its last renewal, and renews only after
    /// reading the feed, which finds it behind or the head moved past it.
    ///
    /// [`feed_went_back`]: Self::feed_went_back
    pub(super) async fn propagate_reused(&self, seq: i64, applied: i64, rewinds: u64) -> Result<(), CoreError> {
        let unproven = |e: &dyn std::fmt::Display| unproven(seq, e);
        tracing::error!(
            seq,
            applied,
            "a revocation was written at a position this node had applied: the revocation feed went back"
        );
        let head = {
            let mut cursor = self.feed.lock().await;
            if self.feed_health.rewinds() == rewinds {
                let head = self.store.revocation_head().await.map_err(|e| unproven(&e))?;
                self.feed_went_back(&mut cursor, head).await.map_err(|e| unproven(&e))?;
            }
            cursor.applied
        };
        self.relayed(head).await;
        let Some(cluster) = &self.cluster else { return Ok(()) };
        let remaining = cluster.leases.fence_behind(&cluster.node, i64::MAX).await.map_err(|e| unproven(&e))?;
        let wait = remaining.max(cluster.policy.lease);
        tracing::warn!(seq, wait_ms = wait.as_millis() as u64, "every other node fenced: waiting out their leases");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Applies feed entries to this process's caches and event streams (re-applying one is
    /// harmless).
    async fn apply_feed(&self, entries: Vec<FeedEntry>) -> Result<(), CoreError> {
        let (sessions, tokens): (Vec<FeedEntry>, Vec<FeedEntry>) =
            entries.into_iter().partition(|e| matches!(e, FeedEntry::Session(_)));
        if tokens.iter().any(|e| matches!(e, FeedEntry::Keys { .. })) {
            self.reload_keys().await?;
        }
        if let Some(FeedEntry::Unknown { kind }) = tokens.iter().find(|e| matches!(e, FeedEntry::Unknown { .. })) {
            // Written by a newer version: what it revoked is unknown here, so trust no cache
            // and let validation read the store until the caches refill.
            tracing::warn!(kind, "a revocation-feed entry of a kind this version does not know; dropping caches");
            self.sessions.clear();
            self.tokens.distrust();
        }
        self.tokens.apply(&tokens);
        for e in &tokens {
            if let FeedEntry::Rekeyed { old, new, .. } = e {
                // The old id's secret is dead here too; open pages follow the new id.
                self.sessions.remove([old]);
                self.hub.rekey(old, new);
            }
        }
        let revoked: Vec<Revocation> = sessions
            .into_iter()
            .filter_map(|e| match e {
                FeedEntry::Session(r) => Some(r),
                _ => None,
            })
            .collect();
        self.sessions.remove(revoked.iter().map(|r| &r.session_id));
        self.hub.publish(&revoked);
        Ok(())
    }

    /// After a commit that put entries up to `seq` on the feed: returns once every other node
    /// has applied them or has been fenced and its lease has run out. `Busy` (503) when that
    /// cannot be proven (the revocation is committed; repeating it is safe).
    pub(super) async fn propagate(&self, seq: i64) -> Result<(), CoreError> {
        let Some(cluster) = &self.cluster else { return Ok(()) };
        let unproven = |e: crate::StoreError| unproven(seq, &e);
        // The hint is sent on the side: a slow fan-out must not hold the revoker (nodes that
        // miss it read the feed on their poll, or are fenced below).
        hint(cluster, seq);
        // Look at the leases whenever a node acknowledges (and every few milliseconds in case
        // an acknowledgement's announcement was lost), until all caught up or time is up.
        let deadline = tokio::time::Instant::now() + cluster.policy.ack_wait;
        loop {
            let acked = cluster.acks.notified();
            tokio::pin!(acked);
            acked.as_mut().enable();
            let behind = {
                let _turn = cluster.lookers.acquire().await.map_err(|_| CoreError::Busy(time::Duration::seconds(1)))?;
                cluster.leases.behind(&cluster.node, seq).await.map_err(unproven)?
            };
            if behind == 0 {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            let _ = tokio::time::timeout_at(deadline.min(now + Duration::from_millis(5)), acked).await;
        }
        let remaining = cluster.leases.fence_behind(&cluster.node, seq).await.map_err(unproven)?;
        if !remaining.is_zero() {
            tracing::warn!(
                seq,
                wait_ms = remaining.as_millis() as u64,
                "a node did not acknowledge a revocation: fenced, waiting out its lease"
            );
            // The fenced node stops trusting its caches a margin before this.
            tokio::time::sleep(remaining).await;
        }
        Ok(())
    }

    /// Like [`propagate`](Self::propagate), up to the feed's head: for a revocation that found
    /// nothing (left) to revoke, which may be the retry of one that committed and then could
    /// not prove itself.
    pub(super) async fn propagate_head(&self) -> Result<(), CoreError> {
        if self.cluster.is_none() {
            return Ok(());
        }
        let head = self.store.revocation_head().await?;
        if head > 0 { self.propagate(head).await } else { Ok(()) }
    }

    /// Follows the feed for as long as the process runs: applies what the fan-out announces
    /// (or the poll finds), keeps the lease renewed with the applied position (the
    /// acknowledgement revokers wait for), and goes into jeopardy whenever it cannot vouch.
    /// Without a cluster it just polls the feed.
    pub async fn follow_feed(&self, mut signals: mpsc::Receiver<Signal>, poll: Duration) {
        let every = self.cluster.as_ref().map_or(poll, |c| c.policy.poll);
        self.feed_health.expect_reads_every(every);
        let Some(cluster) = &self.cluster else {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.catch_up().await {
                    tracing::warn!(error = %e, "revocation relay failed; retrying");
                }
            }
        };
        let mut follower = Follower {
            authority: self,
            cluster,
            listening: false,
            incarnation: None,
            applied: 0,
            recheck_at: None,
            rechecked: None,
        };
        let mut renew = tokio::time::interval(cluster.policy.renew_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut poll = tokio::time::interval(cluster.policy.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut fanout_gone = false;
        loop {
            tokio::select! {
                signal = signals.recv(), if !fanout_gone => match signal {
                    Some(Signal::Connected) => {
                        follower.listening = true;
                        follower.join().await;
                    }
                    Some(Signal::Head(seq)) => {
                        if seq > follower.applied {
                            follower.advance().await;
                        } else {
                            follower.recheck_soon();
                        }
                    }
                    Some(Signal::Acked) => cluster.acks.notify_waiters(),
                    Some(Signal::Lost) => follower.leave("fan-out lost").await,
                    None => {
                        // The listener ended: no hints from now on, so no lease either.
                        fanout_gone = true;
                        follower.leave("fan-out ended").await;
                    }
                },
                _ = renew.tick() => follower.renew().await,
                _ = poll.tick() => follower.advance().await,
                () = sleep_until_some(follower.recheck_at), if follower.recheck_at.is_some() => follower.recheck().await,
            }
        }
    }

    /// Gives this node's lease up (at shutdown), so no revoker waits for it.
    pub async fn leave_cluster(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.distrust("shutting down");
            if let Err(e) = cluster.leases.release(&cluster.node, None).await {
                tracing::warn!(error = %e, "could not release the node lease");
            }
        }
    }

    /// Closes the store when the server stops (see [`crate::Store::close`]).
    pub async fn close_store(&self) {
        self.store.close().await;
    }

    /// Replaces every cache with what the store holds now.
    async fn reload_everything(&self) -> Result<(), CoreError> {
        self.sessions.clear();
        self.tokens.distrust();
        self.reload_keys().await?;
        for (issuer, jti, exp) in self.store.denied_tokens(self.now().unix_timestamp()).await? {
            self.tokens.deny(&issuer, &jti, exp);
        }
        Ok(())
    }
}

/// Tells the other nodes the feed's head is `seq`, on the side: a slow fan-out holds nobody
/// (a node that misses it reads the feed on its poll).
fn hint(cluster: &Cluster, seq: i64) {
    let fanout = cluster.fanout.clone();
    tokio::spawn(async move {
        if let Err(e) = fanout.publish(seq).await {
            tracing::warn!(seq, error = %e, "revocation hint not published");
        }
    });
}

/// A revocation committed whose reach to the other nodes cannot be proven: said, and answered
/// 503 (repeating it is safe).
fn unproven(seq: i64, e: &dyn std::fmt::Display) -> CoreError {
    tracing::error!(seq, error = %e, "revocation committed but its propagation is unproven; answering 503");
    CoreError::Busy(time::Duration::seconds(1))
}

/// The follow loop's state.
struct Follower<'a> {
    authority: &'a Authority,
    cluster: &'a Cluster,
    /// Whether the fan-out is connected (messages from now on arrive).
    listening: bool,
    /// The lease held, if any.
    incarnation: Option<i64>,
    /// The position last acknowledged.
    applied: i64,
    /// When a hint at or behind `applied` is to be read after (see `recheck_soon`).
    recheck_at: Option<tokio::time::Instant>,
    /// When the last such read began.
    rechecked: Option<tokio::time::Instant>,
}

/// Sleeps until `at` (never, for `None`: the `select!` arm is disabled then).
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Follower<'_> {
    /// Takes a lease (a new incarnation), then catches up, then renews: only a node that
    /// registered before reading the feed can be sure no revoker passed it by.
    async fn join(&mut self) {
        self.cluster.distrust("joining");
        let incarnation =
            i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX);
        let c = self.cluster;
        let applied = self.authority.feed.lock().await.applied;
        if let Err(e) = c.leases.register(&c.node, incarnation, applied, c.policy.lease).await {
            tracing::warn!(error = %e, "could not take a node lease; retrying");
            self.incarnation = None;
            return;
        }
        self.incarnation = Some(incarnation);
        self.renew_lease().await;
    }

    /// Gives the lease up and distrusts the caches (fan-out lost: revokers must not wait for a
    /// node that cannot hear them, and this node must not answer from memory meanwhile).
    async fn leave(&mut self, why: &str) {
        self.listening = false;
        self.cluster.distrust(why);
        if let Some(incarnation) = self.incarnation.take()
            && let Err(e) = self.cluster.leases.release(&self.cluster.node, Some(incarnation)).await
        {
            // The lease runs out on its own; revokers fence it meanwhile.
            tracing::warn!(error = %e, "could not release the node lease");
        }
    }

    /// Reads the feed and acknowledges what was applied.
    async fn advance(&mut self) {
        let applied = match self.authority.catch_up_and_relay().await {
            Ok(applied) => applied,
            Err(e) => return tracing::warn!(error = %e, "revocation feed unreadable; retrying"),
        };
        if applied <= self.applied || !self.listening {
            return;
        }
        let Some(incarnation) = self.incarnation else { return self.join().await };
        let c = self.cluster;
        match c.leases.acknowledge(&c.node, incarnation, applied).await {
            Ok(true) => {
                self.applied = applied;
                let fanout = c.fanout.clone();
                tokio::spawn(async move {
                    if let Err(e) = fanout.publish_ack().await {
                        // Revokers look at the leases again within milliseconds anyway.
                        tracing::debug!(error = %e, "acknowledgement not announced");
                    }
                });
            }
            Ok(false) => {
                c.distrust("lease lost");
                self.incarnation = None;
                self.join().await;
            }
            Err(e) => tracing::warn!(error = %e, "acknowledgement failed; the next renewal carries it"),
        }
    }

    /// A hint at or behind the acknowledged position: one this node read ahead of (a burst of
    /// revocations), or one the feed wrote again because it went back (a restored database,
    /// see `Authority::feed_went_back`). A read that begins after it tells which: at once, or
    /// (in a burst) [`STALE_HINT_READS`] after the last such read, so every hint is followed
    /// by a read and a burst costs ten reads a second at most.
    fn recheck_soon(&mut self) {
        if self.recheck_at.is_none() {
            let now = tokio::time::Instant::now();
            self.recheck_at = Some(self.rechecked.map_or(now, |last| (last + STALE_HINT_READS).max(now)));
        }
    }

    async fn recheck(&mut self) {
        self.recheck_at = None;
        self.rechecked = Some(tokio::time::Instant::now());
        self.advance().await;
    }

    /// Renews the lease (taking a new one when it has none).
    async fn renew(&mut self) {
        if !self.listening {
            // Without fan-out the node holds no lease and answers only after reading the feed.
            let _ = self.authority.catch_up().await;
            return;
        }
        if self.incarnation.is_none() || !self.renew_lease().await {
            self.join().await;
        }
    }

    /// Catches up, then renews the lease with the applied position. `false` when the renewal
    /// was refused (fenced by a revoker, or run out during a pause or a slow database): what
    /// this node holds may be stale and a revoker may have passed it by, so it is in jeopardy
    /// and needs a new lease.
    async fn renew_lease(&mut self) -> bool {
        let Some(incarnation) = self.incarnation else { return false };
        let distrusts = self.cluster.distrusts();
        let applied = match self.authority.catch_up_and_relay().await {
            Ok(applied) => applied,
            Err(e) => {
                tracing::warn!(error = %e, "revocation feed unreadable; lease not renewed");
                return true;
            }
        };
        let c = self.cluster;
        let (sent, sent_wall) = (Instant::now(), std::time::SystemTime::now());
        match c.leases.renew(&c.node, incarnation, applied, c.policy.lease).await {
            Ok(true) => {
                self.applied = applied;
                c.renewed(sent, sent_wall);
                c.set_synced(distrusts);
                true
            }
            Ok(false) => {
                c.distrust("lease lost");
                self.incarnation = None;
                false
            }
            Err(e) => {
                // Trust runs out with the lease; the next tick tries again.
                tracing::warn!(error = %e, "lease renewal failed");
                true
            }
        }
    }
}
