//! The revocation feed as relying services see it: the commit-ordered feed this process
//! follows, kept in memory for as long as any of it can matter.
//!
//! A service that verifies access tokens on its own needs to know the tokens revoked, the
//! sessions ended and the token versions moved, but only for the last access-token lifetime:
//! anything older concerns tokens that have expired anyway. So the window keeps each entry for
//! that lifetime (plus a margin for clocks) after it arrived here, and a client's whole state is
//! bounded. Entries arrive strictly in sequence order (from [`Authority`](crate::Authority)'s
//! feed reader), so "the events after `n`" is always exact from the window's floor on; a
//! client behind the floor is given the whole current state instead, marked `reset`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use time::{Duration, OffsetDateTime};
use tokio::sync::watch;

use crate::feed::FeedEntry;
use crate::feed::delivery::Deliveries;

/// How long after its `exp` a revoked token is still part of the whole state (seconds).
const EXPIRED_MARGIN: i64 = 120;

/// One event of the relying services' feed (the `type` of the contract).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FeedEvent {
    /// An access token revoked; dead until `exp` (Unix seconds).
    Token { jti: String, exp: i64 },
    /// A session ended at `at` (Unix seconds); tokens naming it are dead.
    Session { sid: String, at: i64 },
    /// A user's token version moved to `tv`; tokens with a smaller one are dead.
    User { sub: String, tv: i64 },
    /// The signing keys changed: `kid` added (refetch the JWKS) or withdrawn (refuse its tokens
    /// at once, whatever a JWKS fetched from a lagging node or cache still says). An extension
    /// of the contract's three types; verifiers that do not know it pass over it.
    Keys { kid: String, withdrawn: bool },
}

impl FeedEvent {
    /// What relying services are told of a feed entry, if anything.
    fn of(entry: &FeedEntry, now: OffsetDateTime) -> Option<Self> {
        Some(match entry {
            FeedEntry::Session(r) => Self::Session { sid: r.session_id.to_string(), at: r.at.unix_timestamp() },
            FeedEntry::Token { jti, exp, .. } => Self::Token { jti: jti.clone(), exp: *exp },
            FeedEntry::TokenVersion { user_id, version } => Self::User { sub: user_id.to_string(), tv: *version },
            FeedEntry::Keys { kid, withdrawn } => Self::Keys { kid: kid.clone(), withdrawn: *withdrawn },
            // The old id is dead: tokens naming it are refused like those of an ended session.
            FeedEntry::Rekeyed { old, .. } => Self::Session { sid: old.to_string(), at: now.unix_timestamp() },
            // A machine client's tokens name its grant as their session: they die like one.
            FeedEntry::ClientGrantEnded { sid, .. } => Self::Session { sid: sid.to_string(), at: now.unix_timestamp() },
            FeedEntry::ClientRemoved { .. } | FeedEntry::Unknown { .. } => return None,
        })
    }

    /// The event as far as telling two apart goes: an ended session is the same whenever it
    /// is said to have ended (a rekeyed session's end is dated when it is applied).
    fn same(&self) -> Self {
        match self {
            Self::Session { sid, .. } => Self::Session { sid: sid.clone(), at: 0 },
            other => other.clone(),
        }
    }

    /// The contract's JSON form.
    pub fn to_json(&self, seq: i64) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Token { jti, exp } => json!({ "seq": seq, "type": "token", "jti": jti, "exp": exp }),
            Self::Session { sid, at } => json!({ "seq": seq, "type": "session", "sid": sid, "at": at }),
            Self::User { sub, tv } => json!({ "seq": seq, "type": "user", "sub": sub, "tv": tv }),
            Self::Keys { kid, withdrawn } => {
                json!({ "seq": seq, "type": "keys", "kid": kid, "withdrawn": withdrawn })
            }
        }
    }
}

/// What a client asked for: the events after its position, or everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub events: Vec<(i64, FeedEvent)>,
    /// The position the client holds once it has these.
    pub head: i64,
    /// The events are the whole current state and replace what the client held.
    pub reset: bool,
}

#[derive(Debug)]
struct Held {
    seq: i64,
    event: FeedEvent,
    arrived: OffsetDateTime,
}

#[derive(Debug, Default)]
struct Window {
    events: VecDeque<Held>,
    /// The last feed position applied here (events or not).
    head: i64,
    /// Positions at or below it may be missing from `events` (dropped as too old, trimmed
    /// from the store before this process read them, or before it started).
    floor: i64,
    /// Clients deleted while this process ran: their open streams end.
    removed: HashSet<String>,
    /// Where each client's grant last ended (a secret rotated) while this process ran: streams
    /// opened before that position end, so an old secret keeps nothing open.
    grants_ended: HashMap<String, i64>,
    /// An entry of a kind this version does not know was applied: what it revoked cannot be
    /// told, so this process no longer serves the feed (until it is upgraded).
    poisoned: bool,
}

impl Window {
    /// What an entry at `seq` changes besides the events: clients deleted, grants ended, a
    /// kind this version does not know.
    fn note(&mut self, seq: i64, entry: &FeedEntry) {
        match entry {
            FeedEntry::ClientRemoved { client_id } => {
                self.removed.insert(client_id.clone());
            }
            FeedEntry::ClientGrantEnded { client_id, .. } => {
                let at = self.grants_ended.entry(client_id.clone()).or_insert(seq);
                *at = (*at).max(seq);
            }
            FeedEntry::Unknown { kind } => {
                tracing::error!(
                    kind,
                    "a revocation-feed entry of a kind this version does not know: no longer serving the feed to relying services"
                );
                self.poisoned = true;
            }
            _ => {}
        }
    }

    fn prune(&mut self, now: OffsetDateTime, keep: Duration) {
        while let Some(front) = self.events.front() {
            if front.arrived + keep > now {
                break;
            }
            self.floor = self.floor.max(front.seq);
            self.events.pop_front();
        }
    }
}

/// The window, shared by every feed request of this process.
#[derive(Debug)]
pub struct ClientFeed {
    window: Mutex<Window>,
    /// Bumped whenever the head moves or a client is removed; waiting requests wake on it.
    changed: watch::Sender<u64>,
    keep: Duration,
    /// How far each open stream has sent the window.
    deliveries: Deliveries,
}

impl ClientFeed {
    /// A window that keeps each event for `keep` after it arrives: the access-token lifetime
    /// and a margin for clocks.
    pub fn new(keep: Duration) -> Self {
        Self {
            window: Mutex::new(Window::default()),
            changed: watch::Sender::new(0),
            keep,
            deliveries: Deliveries::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Starts the window at `head`: `history` is what the store still holds up to it (which
    /// may begin after 1, if older entries were trimmed).
    pub fn start(&self, history: &[(i64, FeedEntry)], head: i64, now: OffsetDateTime) {
        self.fill(history, head, history.first().map_or(head, |(seq, _)| seq - 1), now);
    }

    /// Starts the window again at `head` (as [`start`](Self::start)), with every client behind
    /// it starting over: the feed went back and its positions moved past the old ones (see
    /// `Authority::feed_went_back`), so no position a client holds names an entry of this feed.
    pub fn start_over(&self, history: &[(i64, FeedEntry)], head: i64, now: OffsetDateTime) {
        self.fill(history, head, head, now);
    }

    fn fill(&self, history: &[(i64, FeedEntry)], head: i64, floor: i64, now: OffsetDateTime) {
        let mut w = self.lock();
        w.events.clear();
        w.floor = floor;
        w.head = head;
        // A kind this version does not know: what it revoked cannot be told (as in `apply`).
        w.poisoned |= history.iter().any(|(_, e)| matches!(e, FeedEntry::Unknown { .. }));
        for (seq, entry) in history.iter().filter(|(seq, _)| *seq <= head) {
            if let Some(event) = FeedEvent::of(entry, now) {
                w.events.push_back(Held { seq: *seq, event, arrived: now });
            }
        }
        drop(w);
        self.bump();
    }

    /// Applies feed entries in sequence order (positions at or below the head are passed
    /// over). A position after a gap moves the floor up to it: what was in the gap is unknown.
    pub fn apply(&self, entries: &[(i64, FeedEntry)], now: OffsetDateTime) {
        let mut w = self.lock();
        let before = w.head;
        for (seq, entry) in entries {
            if *seq <= w.head {
                continue;
            }
            if *seq != w.head + 1 {
                w.floor = w.floor.max(seq - 1);
            }
            w.head = *seq;
            w.note(*seq, entry);
            if let Some(event) = FeedEvent::of(entry, now) {
                w.events.push_back(Held { seq: *seq, event, arrived: now });
            }
        }
        w.prune(now, self.keep);
        let moved = w.head != before;
        drop(w);
        if moved {
            self.bump();
        }
    }

    /// The feed moved on past entries this process never saw (trimmed from the store): the
    /// window holds what it held, and clients behind `head` start over.
    pub fn skip_to(&self, head: i64) {
        let mut w = self.lock();
        if head > w.head {
            w.head = head;
            w.floor = w.floor.max(head);
            drop(w);
            self.bump();
        }
    }

    /// The feed moved on to `head` past entries written at positions this window had reached
    /// before the feed went back (another process moved it on, see
    /// `Authority::feed_went_back`): the window keeps what it holds and adds what the store
    /// holds up to `head` (`history`), and clients behind `head` start over, given the whole
    /// state that both make.
    pub fn refill(&self, history: &[(i64, FeedEntry)], head: i64, now: OffsetDateTime) {
        let mut w = self.lock();
        if head <= w.head {
            return;
        }
        let held: HashSet<(i64, FeedEvent)> = w.events.iter().map(|h| (h.seq, h.event.same())).collect();
        for (seq, entry) in history.iter().filter(|(seq, _)| *seq <= head) {
            w.note(*seq, entry);
            if let Some(event) = FeedEvent::of(entry, now)
                && !held.contains(&(*seq, event.same()))
            {
                w.events.push_back(Held { seq: *seq, event, arrived: now });
            }
        }
        w.head = head;
        w.floor = w.floor.max(head);
        drop(w);
        self.bump();
    }

    pub fn head(&self) -> i64 {
        self.lock().head
    }

    /// Whether an entry of an unknown kind has been applied (see `Window::poisoned`).
    pub fn poisoned(&self) -> bool {
        self.lock().poisoned
    }

    /// The events after `after` (oldest first), or, with no `after`, one behind the floor or
    /// one ahead of the head (a client of another database), the whole current state.
    pub fn since(&self, after: Option<i64>, now: OffsetDateTime) -> Page {
        let mut w = self.lock();
        w.prune(now, self.keep);
        let now_secs = now.unix_timestamp();
        let reset = after.is_none_or(|a| a < w.floor || a > w.head);
        let from = if reset { i64::MIN } else { after.unwrap_or_default() };
        let mut events: Vec<(i64, FeedEvent)> = w
            .events
            .iter()
            .filter(|h| h.seq > from)
            // A revoked token that has expired (by more than any verifier's clock may be off)
            // is nobody's concern.
            .filter(|h| !(reset && matches!(h.event, FeedEvent::Token { exp, .. } if exp + EXPIRED_MARGIN < now_secs)))
            .map(|h| (h.seq, h.event.clone()))
            .collect();
        if reset {
            // Oldest first: a refill adds events out of order.
            events.sort_by_key(|(seq, _)| *seq);
        }
        Page { events, head: w.head, reset }
    }

    /// Whether a client was deleted while this process ran.
    pub fn removed(&self, client_id: &str) -> bool {
        self.lock().removed.contains(client_id)
    }

    /// Whether `client_id`'s grant ended (its secret was rotated) after feed position `since`:
    /// a stream or long poll it opened at `since` was opened with a secret that is dead now.
    pub fn grant_ended_after(&self, client_id: &str, since: i64) -> bool {
        self.lock().grants_ended.get(client_id).is_some_and(|at| *at > since)
    }

    /// Marks a client deleted here (this process deleted it; other processes learn from the feed).
    pub fn remove(&self, client_id: &str) {
        self.lock().removed.insert(client_id.to_owned());
        self.bump();
    }

    /// Resolves whenever the head moves or a client is removed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The open streams' marks of what they have sent.
    pub fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }

    /// Events held (for metrics and tests).
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Revocation;
    use crate::secret::{SessionId, UserId};

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).expect("time")
    }

    fn token(jti: &str, exp: i64) -> FeedEntry {
        FeedEntry::Token { issuer: "i".into(), jti: jti.into(), exp, user_id: None }
    }

    #[test]
    fn clients_get_what_came_after_them_or_the_whole_state() {
        let feed = ClientFeed::new(Duration::minutes(17));
        feed.start(&[(3, token("a", t(900).unix_timestamp()))], 4, t(0));
        let all = feed.since(None, t(0));
        assert!(all.reset);
        assert_eq!(all.head, 4);
        assert_eq!(all.events.len(), 1);
        // Position 2 was trimmed before start: a client there starts over.
        assert!(feed.since(Some(1), t(0)).reset);
        let none = feed.since(Some(4), t(0));
        assert!(!none.reset && none.events.is_empty());
        let user = UserId::generate();
        let session = SessionId::generate();
        feed.apply(
            &[
                (5, FeedEntry::TokenVersion { user_id: user.clone(), version: 2 }),
                (6, FeedEntry::ClientRemoved { client_id: "c1".into() }),
                (
                    7,
                    FeedEntry::Session(Revocation {
                        session_id: session.clone(),
                        user_id: user.clone(),
                        reason: "logout".into(),
                        at: t(1),
                    }),
                ),
            ],
            t(1),
        );
        let page = feed.since(Some(4), t(1));
        assert!(!page.reset);
        assert_eq!(page.head, 7);
        assert_eq!(
            page.events,
            vec![
                (5, FeedEvent::User { sub: user.to_string(), tv: 2 }),
                (7, FeedEvent::Session { sid: session.to_string(), at: t(1).unix_timestamp() }),
            ]
        );
        assert!(feed.removed("c1") && !feed.removed("c2"));
        // A client of another database (ahead of the head) starts over.
        assert!(feed.since(Some(99), t(1)).reset);
    }

    #[test]
    fn old_events_leave_the_window_and_a_gap_moves_the_floor() {
        let feed = ClientFeed::new(Duration::minutes(17));
        feed.start(&[], 0, t(0));
        feed.apply(&[(1, token("a", t(900).unix_timestamp()))], t(0));
        feed.apply(&[(2, token("b", t(1900).unix_timestamp()))], t(1000));
        // At t(1100) the first has been held 17 minutes: gone, and the floor passed it.
        let page = feed.since(Some(0), t(1100));
        assert!(page.reset, "position 1 is no longer held");
        assert_eq!(page.events.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![2]);
        assert!(!feed.since(Some(1), t(1100)).reset);
        feed.apply(&[(5, token("c", t(2000).unix_timestamp()))], t(1100));
        assert!(feed.since(Some(2), t(1100)).reset, "3 and 4 were never seen here");
        assert!(!feed.since(Some(4), t(1100)).reset);
        feed.skip_to(9);
        assert!(feed.since(Some(5), t(1100)).reset);
        assert_eq!(feed.since(Some(9), t(1100)).head, 9);
    }

    #[test]
    fn a_refill_adds_what_the_store_holds_and_keeps_what_the_window_held() {
        let feed = ClientFeed::new(Duration::minutes(17));
        feed.start(&[], 0, t(0));
        let exp = t(900).unix_timestamp();
        feed.apply(&[(1, token("a", exp)), (2, token("b", exp))], t(0));
        // The store went back to 1 and was written again at 2 (another token), then moved on
        // to 100 by another node: this window never read the new 2.
        feed.refill(&[(1, token("a", exp)), (2, token("c", exp)), (3, token("d", exp))], 100, t(1));
        let page = feed.since(Some(2), t(1));
        assert!(page.reset, "a client at an old position starts over");
        assert_eq!(page.head, 100);
        let mut jtis: Vec<String> = page
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                FeedEvent::Token { jti, .. } => Some(jti.clone()),
                _ => None,
            })
            .collect();
        jtis.sort();
        assert_eq!(jtis, ["a", "b", "c", "d"], "what it held, and what the store holds, each once");
        let seqs: Vec<i64> = page.events.iter().map(|(seq, _)| *seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "oldest first: {seqs:?}");
        assert!(!feed.since(Some(100), t(1)).reset);
        feed.refill(&[], 50, t(1));
        assert_eq!(feed.head(), 100, "never back");
    }
}
