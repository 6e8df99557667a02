//! The session authority: the one owner of sign-in, authentication and logout.
//!
//! Every entry point (JSON API, HTML forms, CLI, admin) goes through these methods, so "what
//! happens at logout" has exactly one answer: [`Authority::logout`], which like every other way
//! of ending sessions ends them in a `Batch` (one transaction, announced once it commits).
//!
//! One file per job: `signin` (sign-in, resume), `lookup` (the session behind a cookie),
//! `logout` (logout, revoking a device), `triggers` (security events as [`crate::policy`]
//! says), `accounts`, `reading`, `maintenance` (sweep, trim); `tokens`, `clients`, `mail`,
//! `notify` and `sync` (the node protocol) likewise; `batch` is the transaction they share.

use std::sync::Arc;
use time::{Duration, OffsetDateTime};

mod accounts;
mod batch;
mod clients;
mod logout;
mod lookup;
mod machine;
mod mail;
mod maintenance;
mod notify;
mod provider;
mod reading;
mod signals;
mod signature_memo;
mod signin;
mod sync;
mod tokens;
mod triggers;
mod upstream;

pub use crate::audit::ClientInfo;
use crate::audit::{Actor, AuditEvent, AuditKind};
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::error::CoreError;
use crate::feed::follow::{FeedCursor, FeedHealth};
use crate::feed::window::ClientFeed;
use crate::password::Passwords;
pub use crate::policy::{LogoutRule, LogoutScope};
use crate::revocation::RevocationHub;
use crate::session_cache::SessionCache;
use crate::store::{Session, Store};
use crate::throttle::{Limits, SharedCounters, ThrottlePolicy};
use batch::{Batch, BatchKind};
pub use logout::LoggedOut;
pub use lookup::SessionContext;
pub use machine::{MachineContext, MachineToken, is_machine};
pub use mail::{EmailConfirmed, PendingEmail};
pub use provider::{CODE_LIFETIME, CodeRequest, IdTokenHint, OidcTokens, pkce_matches};
pub use reading::Device;
pub use signals::{LONG_POLL, MAX_POLLED, MAX_REMOVED_SUBJECTS, MAX_STREAMS_PER_CLIENT, Poll, Polled, StreamConfig};
pub use signin::{Resume, SignedIn};
pub use tokens::{AccessContext, Presented, TokenPair, TokenPolicy, TokenState};
pub use upstream::upstream_secret_hash;

/// How long sessions live. Its defaults are the server's (`signoff-server`'s config registry,
/// where every setting has its one default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused for this long is over.
    pub idle_timeout: Duration,
    /// A session is over this long after sign-in, however busy.
    pub absolute_lifetime: Duration,
    /// How long a remember-me series lasts.
    pub remember_lifetime: Duration,
    /// How long the immediate predecessor of a rotated remember-me validator is still honoured
    /// (once, for a racing tab); zero turns the grace off.
    pub race_grace: Duration,
    /// Live sessions a user may have; signing in beyond it ends the oldest.
    pub max_sessions_per_user: u32,
}

impl SessionPolicy {
    /// How often `last_active_at` is written at most, so validation stays read-mostly: once a
    /// minute, or a quarter of the idle timeout when that is shorter, so a session in use never
    /// idles out.
    pub fn touch_interval(&self) -> Duration {
        Duration::minutes(1).min(self.idle_timeout / 4)
    }
}

pub struct Authority {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    passwords: Passwords,
    limits: Arc<Limits>,
    policy: SessionPolicy,
    hub: RevocationHub,
    tokens: TokenState,
    sessions: SessionCache,
    /// How far this process has applied the revocation feed. It starts at the feed's head as
    /// read before the denylist and keys were loaded: following from there cannot miss an
    /// entry committed while they loaded.
    feed: tokio::sync::Mutex<FeedCursor>,
    /// Set when this process is one node of several (see [`crate::cluster`]).
    cluster: Option<Cluster>,
    /// Rate-limit counters every node sees (several nodes); the in-memory limits apply too.
    counters: Option<Arc<dyn SharedCounters>>,
    /// The feed relying services follow, as far as this process has applied it.
    client_feed: ClientFeed,
    feed_health: FeedHealth,
    /// Woken when deliveries were enqueued, so the outbox worker sends them at once.
    outbox_ready: tokio::sync::Notify,
    /// Woken when security events were written for poll streams (their long polls look again).
    signals_ready: tokio::sync::Notify,
    /// Told how long each read of the revocation feed took (the server's metrics).
    on_feed_read: Option<FeedReadTimer>,
    /// How long a mailed link works.
    mail_link_ttl: Duration,
}

/// Called with the duration of every read of the revocation feed.
pub type FeedReadTimer = Arc<dyn Fn(std::time::Duration) + Send + Sync>;

/// How full this process's caches are (for operators).
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheSizes {
    pub sessions: usize,
    pub denied_tokens: usize,
    pub verified_tokens: usize,
}

/// How long past the access-token lifetime relying services are still told of a revocation:
/// clocks of the nodes and of the verifiers differ.
const FEED_CLOCK_MARGIN: Duration = Duration::minutes(2);

impl Authority {
    /// Builds the authority over `store`, loading (or on first start creating) the signing
    /// keys and the denylist.
    pub async fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: SessionPolicy,
        throttle: ThrottlePolicy,
        token_policy: TokenPolicy,
        passwords: Passwords,
    ) -> Result<Self, CoreError> {
        let token_policy_ttl = token_policy.access_ttl;
        let tokens = TokenState::new(token_policy);
        let feed_start = store.revocation_head().await?;
        let authority = Self {
            store,
            clock,
            passwords,
            limits: Arc::new(Limits::new(throttle)),
            policy,
            hub: RevocationHub::default(),
            tokens,
            sessions: SessionCache::default(),
            feed: tokio::sync::Mutex::new(FeedCursor::new(feed_start)),
            cluster: None,
            counters: None,
            client_feed: ClientFeed::new(token_policy_ttl + FEED_CLOCK_MARGIN),
            feed_health: FeedHealth::new(),
            outbox_ready: tokio::sync::Notify::new(),
            signals_ready: tokio::sync::Notify::new(),
            on_feed_read: None,
            mail_link_ttl: Duration::hours(1),
        };
        authority.load_token_state().await?;
        authority.start_client_feed(feed_start).await?;
        Ok(authority)
    }

    /// Where ended sessions are announced.
    pub fn hub(&self) -> &RevocationHub {
        &self.hub
    }

    /// Now, to the millisecond: the precision stores keep, so a record read back equals the
    /// one written.
    pub fn now(&self) -> OffsetDateTime {
        let now = self.clock.now();
        now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now)
    }

    pub async fn ready(&self) -> Result<(), CoreError> {
        Ok(self.store.ping().await?)
    }

    /// When `session` ends if nothing else happens: the earlier of its absolute end and its
    /// idle end.
    pub fn effective_expiry(&self, session: &Session) -> OffsetDateTime {
        session.expires_at.min(session.last_active_at + self.policy.idle_timeout)
    }

    fn is_live(&self, session: &Session, now: OffsetDateTime) -> bool {
        now < self.effective_expiry(session)
    }

    fn event(&self, kind: AuditKind, actor: Actor, client: &ClientInfo) -> AuditEvent {
        AuditEvent::new(kind, actor, self.now(), client)
    }

    /// Reports the duration of every read of the revocation feed to `timer`.
    pub fn with_feed_read_timer(mut self, timer: FeedReadTimer) -> Self {
        self.on_feed_read = Some(timer);
        self
    }

    /// How full the caches are now.
    pub fn cache_sizes(&self) -> CacheSizes {
        let (denied_tokens, verified_tokens) = self.tokens.sizes();
        CacheSizes { sessions: self.sessions.len(), denied_tokens, verified_tokens }
    }

    /// Counts rate limits on counters every node shares, besides this process's memory.
    pub fn with_shared_counters(mut self, counters: Arc<dyn SharedCounters>) -> Self {
        self.counters = Some(counters);
        self
    }
}
