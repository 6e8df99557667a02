//! signoff's store in memory: the store contract ([`signoff_core::store`]) written as plainly as
//! it can be, for reading beside the SQL stores and for fast tests of the authority. Nothing is
//! kept when the process ends, and it serves one process only.
//!
//! A transaction works on its own copy of the state and replaces the committed state when it
//! commits; dropping it discards the copy. Transactions run one at a time (like SQLite's
//! `BEGIN IMMEDIATE`), and so do the few changes made outside one, so none is lost to another.
//! Reads outside a transaction see the last commit. Unlike SQLite, a second transaction begun
//! while one is open in the same task waits for ever rather than failing as busy, and times are
//! kept as given (the authority already keeps them to the millisecond).
//!
//! One file per concept of the contract, named as in the SQL stores.

use async_trait::async_trait;
use signoff_core::audit::AuditEvent;
use signoff_core::clients::RegisteredClient;
use signoff_core::feed::FeedEntry;
use signoff_core::mail::MailToken;
use signoff_core::outbox::Delivery;
use signoff_core::store::{RefreshToken, RememberToken, Session, Store, StoreError, Tx, User};
use signoff_core::token::SigningKeyPair;
use signoff_core::{SessionId, UserId};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use time::OffsetDateTime;
use tokio::sync::OwnedMutexGuard;

mod audit;
mod clients;
mod feed;
mod keys;
mod mail;
mod outbox;
mod sessions;
mod signals;
mod signins;
mod tokens;
mod users;

/// Everything a store keeps, as plain collections.
#[derive(Clone, Default)]
struct State {
    /// Users by id, with their password hashes.
    users: BTreeMap<UserId, (User, String)>,
    sessions: BTreeMap<SessionId, Session>,
    /// Remember-me series by selector.
    remember: BTreeMap<String, RememberToken>,
    /// Refresh tokens by id.
    refresh: BTreeMap<String, RefreshToken>,
    /// Denied access tokens: `(issuer, jti)` → `exp`.
    denied: BTreeMap<(String, String), i64>,
    /// In the order they were made.
    keys: Vec<SigningKeyPair>,
    /// Oldest first.
    audit: Vec<AuditEvent>,
    /// `(position, time it is dated by, entry)`, oldest first.
    feed: Vec<(i64, OffsetDateTime, FeedEntry)>,
    /// The last position handed out (positions are never reused, even after a trim).
    feed_seq: i64,
    clients: Vec<RegisteredClient>,
    /// Deliveries by id, and until when each claimed one is held.
    deliveries: BTreeMap<String, Delivery>,
    claimed_until: BTreeMap<String, OffsetDateTime>,
    mail_tokens: Vec<MailToken>,
    /// Authorization codes by hash.
    codes: BTreeMap<[u8; 32], signins::KeptCode>,
    links: signins::Links,
    /// Shared Signals streams, as they were made.
    signal_streams: Vec<signoff_core::signals::SignalStream>,
    /// Upstream transmitters, and the SETs received from them: `(upstream, jti, kept until)`.
    signal_upstreams: Vec<signoff_core::signals::upstream::Upstream>,
    signal_received: Vec<(String, String, OffsetDateTime)>,
}

struct Shared {
    committed: Mutex<Arc<State>>,
    /// Held by the transaction in progress, and by each change made outside one.
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// The committed state of a [`MemoryStore`] at one moment ([`MemoryStore::copy`]).
pub struct MemoryCopy(Arc<State>);

/// A signoff store in this process's memory.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        let shared =
            Shared { committed: Mutex::new(Arc::new(State::default())), writer: Arc::new(tokio::sync::Mutex::new(())) };
        Self { shared: Arc::new(shared) }
    }

    /// A copy of the committed state, as a backup holds it.
    pub fn copy(&self) -> MemoryCopy {
        MemoryCopy(self.read())
    }

    /// Puts a copy back in place of the committed state (a restore): whatever was committed
    /// since is gone, the revocation feed's positions included.
    pub async fn restore(&self, copy: &MemoryCopy) {
        self.write(|state| *state = State::clone(&copy.0)).await;
    }

    /// The last committed state.
    fn read(&self) -> Arc<State> {
        self.shared.committed.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A change outside a transaction: waits for the one in progress, then applies `change` to
    /// the committed state.
    async fn write<R>(&self, change: impl FnOnce(&mut State) -> R) -> R {
        let _writer = self.shared.writer.lock().await;
        let mut committed = self.shared.committed.lock().unwrap_or_else(PoisonError::into_inner);
        change(Arc::make_mut(&mut committed))
    }
}

/// A transaction: its own copy of the state, the only writer until it ends.
pub struct MemoryTx {
    shared: Arc<Shared>,
    state: State,
    _writer: OwnedMutexGuard<()>,
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError> {
        let writer = self.shared.writer.clone().lock_owned().await;
        let state = State::clone(&self.read());
        Ok(Box::new(MemoryTx { shared: self.shared.clone(), state, _writer: writer }))
    }
}

#[async_trait]
impl Tx for MemoryTx {
    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let MemoryTx { shared, state, _writer } = *self;
        *shared.committed.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(state);
        Ok(())
    }
}
