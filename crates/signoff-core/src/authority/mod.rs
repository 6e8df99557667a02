//! The session authority: the one owner of sign-in, authentication and logout.
//!
//! Every entry point (JSON API, HTML forms, CLI, admin) goes through these methods, so "what
//! happens at logout" has exactly one answer: [`Authority::logout`], which like every other way
//! of ending sessions goes through [`Authority::end`].

use std::sync::Arc;
use time::{Duration, OffsetDateTime};

mod clients;
mod mail;
mod notify;
mod sync;
mod tokens;

pub use crate::audit::ClientInfo;
use crate::audit::{Actor, AuditEvent, AuditKind};
use crate::client_feed::ClientFeed;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::email;
use crate::error::CoreError;
use crate::mail::{Letter, MailRequest};
use crate::outbox::{self, Notice};
use crate::password::{self, Passwords};
use crate::policy::{Ends, Trigger};
use crate::remember::RememberSecret;
use crate::revocation::{FeedEntry, Revocation, RevocationHub};
use crate::secret::{self, SessionId, SessionSecret, UserId};
use crate::session_cache::{Entry, SessionCache};
use crate::store::{
    Ended, RememberFilter, RememberToken, Session, SessionFilter, Store, StoreError, Tx, User, UserCredentials,
};
use crate::throttle::{
    Attempt, Counted, Limits, Outcome, Refusal, SharedCounters, SharedRefusal, ThrottlePolicy, address_key, take_all,
};
pub use mail::{EmailConfirmed, PendingEmail};
pub use tokens::{AccessContext, Presented, TokenPair, TokenPolicy, TokenState};

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A session unused for this long is over.
    pub idle_timeout: Duration,
    /// A session is over this long after sign-in, however busy.
    pub absolute_lifetime: Duration,
    /// `last_active_at` is written at most this often, so validation stays read-mostly.
    pub touch_interval: Duration,
    /// How long a remember-me series lasts.
    pub remember_lifetime: Duration,
    /// How long the immediate predecessor of a rotated remember-me validator is still honoured
    /// (once, for a racing tab); zero turns the grace off.
    pub race_grace: Duration,
    /// Live sessions a user may have; signing in beyond it ends the oldest.
    pub max_sessions_per_user: u32,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::minutes(30),
            absolute_lifetime: Duration::hours(10),
            touch_interval: Duration::minutes(1),
            remember_lifetime: Duration::days(30),
            race_grace: Duration::seconds(5),
            max_sessions_per_user: 100,
        }
    }
}

/// An authenticated session with its user and the secret that proved it.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub session: Arc<Session>,
    pub user: Arc<User>,
    pub secret: SessionSecret,
}

impl SessionContext {
    pub fn csrf_token(&self) -> String {
        self.secret.csrf_token()
    }
}

/// A new session, and the remember-me token to set with it, if any.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub ctx: SessionContext,
    pub remember: Option<RememberSecret>,
}

/// What a remember-me cookie led to.
#[derive(Debug)]
pub enum Resume {
    /// A fresh session (and the rotated token, unless this was a tab racing a rotation).
    Resumed(Box<SignedIn>),
    /// Unknown or expired: no session; the cookie is useless.
    Invalid,
    /// Another request rotated this token a moment ago: no session here, the other request's
    /// answer carries the new cookies.
    LostRace,
    /// An already-used validator: the series and its session were revoked.
    Theft,
}

/// A device the user is signed in on: a live session, or a remember-me series that can sign
/// the device back in although its session has ended. Its id is the session's (for a series,
/// the session it last backed), so `DELETE /auth/sessions/{id}` revokes either.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: SessionId,
    pub created_at: OffsetDateTime,
    pub last_active_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Whether a live session stands behind it (otherwise only a remember-me series).
    pub signed_in: bool,
    /// Whether a remember-me series can sign it back in.
    pub remembered: bool,
}

/// What a logout did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedOut {
    /// Sessions ended.
    pub ended: u64,
    /// Whether it acted for the browser: a live session (the cookie's, the access token's, or
    /// the one its remember-me series backs), or a live remember-me series whose session has
    /// lapsed (for "others" and "everywhere"). Without one it only killed what was presented,
    /// and "others" or "everywhere" reached no other device.
    pub as_session: bool,
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// This session only.
    Local,
    /// Every other session of the user; this one is kept.
    Others,
    /// Every session of the user, this one included.
    Global,
}

impl LogoutScope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Self::Local),
            "others" => Some(Self::Others),
            "global" => Some(Self::Global),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Others => "others",
            Self::Global => "global",
        }
    }

    /// Whether this browser's session ends, and so its cookies are cleared.
    pub fn ends_current(self) -> bool {
        self != Self::Others
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
    feed: tokio::sync::Mutex<sync::FeedCursor>,
    /// Set when this process is one node of several (see [`crate::cluster`]).
    cluster: Option<Cluster>,
    /// Rate-limit counters every node sees (several nodes); the in-memory limits apply too.
    counters: Option<Arc<dyn SharedCounters>>,
    /// The feed relying services follow, as far as this process has applied it.
    client_feed: ClientFeed,
    feed_health: sync::FeedHealth,
    /// Woken when deliveries were enqueued, so the outbox worker sends them at once.
    outbox_ready: tokio::sync::Notify,
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

/// Changes in flight: one store transaction plus the audit events and revocations to announce
/// once it commits. Dropping it uncommitted rolls everything back and announces nothing.
struct Batch<'a> {
    authority: &'a Authority,
    tx: Box<dyn Tx>,
    events: Vec<AuditEvent>,
    revoked: Vec<Revocation>,
    /// Token denials and token-version bumps, for the feed and the in-memory checks.
    token_feed: Vec<FeedEntry>,
    /// Ended sessions are not announced to their open pages (the feed and caches still learn).
    quiet: bool,
    rekeyed: Vec<(SessionId, SessionId)>,
    /// A revocation the caller will be told succeeded: even when it finds nothing left to
    /// revoke (a retry of one that committed and then answered 503), it answers only once
    /// every node has applied the feed as far as it goes.
    revoking: bool,
    /// Ends only what has expired (cleared as soon as a live session is among what ends):
    /// every node already refuses it from memory (an expiry is
    /// judged on times no node can see later than the store: the absolute end never moves and
    /// a cached `last_active_at` is never newer than the stored one), so the commit is not
    /// proven to the other nodes (the feed still tells their event streams).
    expiry: bool,
    /// What registered clients are told (the outbox), enqueued in the same transaction.
    notices: Vec<Notice>,
    /// Mail to users (the same outbox), enqueued in the same transaction.
    letters: Vec<outbox::Delivery>,
}

impl Batch<'_> {
    async fn audit(&mut self, event: AuditEvent) -> Result<(), CoreError> {
        self.tx.append_audit(&event).await?;
        self.events.push(event);
        Ok(())
    }

    /// Ends the sessions matching `filter` (with the remember-me series they back and the
    /// sessions bound to those), one `event` per ended session.
    async fn end(&mut self, filter: SessionFilter<'_>, event: &AuditEvent) -> Result<u64, CoreError> {
        let ended = self.tx.end_sessions(filter).await?;
        self.ended(ended, event).await
    }

    /// Deletes remember-me series and ends every session opened from them, one `event` each.
    async fn drop_series(&mut self, filter: RememberFilter<'_>, event: &AuditEvent) -> Result<u64, CoreError> {
        let ended = self.tx.delete_remember(filter).await?;
        self.ended(ended, event).await
    }

    /// Audits and queues for announcement what a store call ended.
    async fn ended(&mut self, ended: Ended, event: &AuditEvent) -> Result<u64, CoreError> {
        let ended = ended.sessions;
        // A session ended with its expired series may itself still be live (the series can be
        // configured shorter than a session): that is a revocation, and it is proven.
        let now = self.authority.now();
        if self.expiry && ended.iter().any(|s| self.authority.is_live(s, now)) {
            self.expiry = false;
        }
        let events: Vec<AuditEvent> = ended.iter().map(|s| event.about(s)).collect();
        if !events.is_empty() {
            self.tx.append_audits(&events).await?;
            self.events.extend(events);
        }
        for s in &ended {
            self.notices.push(Notice::SessionEnded {
                user_id: s.user_id.to_string(),
                session_id: s.id.to_string(),
                reason: event.reason.clone().unwrap_or_else(|| event.kind.as_str().to_owned()),
            });
            self.revoked.push(Revocation {
                session_id: s.id.clone(),
                user_id: s.user_id.clone(),
                reason: event.reason.clone().unwrap_or_else(|| event.kind.as_str().to_owned()),
                at: event.at,
            });
        }
        Ok(ended.len() as u64)
    }

    /// Commits (with the ended sessions on the revocation feed), then logs the events and
    /// tells this process's watchers of ended sessions; other processes learn from the feed.
    /// Bumps a user's token version: every access token issued before dies.
    async fn bump_token_version(&mut self, user: &UserId) -> Result<i64, CoreError> {
        let version = self.tx.bump_token_version(user).await?;
        self.token_feed.push(FeedEntry::TokenVersion { user_id: user.clone(), version });
        self.notices.push(Notice::TokenVersion { user_id: user.to_string(), tv: version });
        Ok(version)
    }

    /// Denies one access token (of `user`) until it expires.
    async fn deny(&mut self, issuer: &str, jti: &str, exp: i64, user: &UserId) -> Result<(), CoreError> {
        self.tx.deny_token(issuer, jti, exp).await?;
        self.notices.push(Notice::TokenRevoked { user_id: user.to_string(), jti: jti.to_owned(), exp });
        self.token_feed.push(FeedEntry::Token { issuer: issuer.to_owned(), jti: jti.to_owned(), exp });
        Ok(())
    }

    async fn commit(mut self) -> Result<(), CoreError> {
        let rekeyed = self.rekeyed.iter().map(|(old, new)| FeedEntry::Rekeyed { old: old.clone(), new: new.clone() });
        let feed: Vec<FeedEntry> = self
            .revoked
            .iter()
            .cloned()
            .map(FeedEntry::Session)
            .chain(self.token_feed.iter().cloned())
            .chain(rekeyed)
            .collect();
        // The outbox first: recording revocations takes the feed's sequence, held until commit.
        let mut notified = false;
        if !self.notices.is_empty() {
            let clients = self.tx.callback_clients().await?;
            let deliveries = outbox::deliveries_for(&self.notices, &clients, self.authority.now());
            self.tx.enqueue_deliveries(&deliveries).await?;
            notified = !deliveries.is_empty();
        }
        if !self.letters.is_empty() {
            self.tx.enqueue_deliveries(&self.letters).await?;
            notified = true;
        }
        let seq = if feed.is_empty() { 0 } else { self.tx.record_revocations(&feed, self.authority.now()).await? };
        let committed_at = std::time::Instant::now();
        self.tx.commit().await?;
        if notified {
            self.authority.outbox_ready.notify_one();
        }
        if seq > 0 {
            // Relying services' feed streams hear of it before the revoker is answered (one read
            // shared with whatever read began after the commit). Until the window has it, this
            // process tells relying services nothing (`FeedHealth`); the checks below do not
            // depend on it.
            let a = self.authority;
            a.feed_health.committed(seq);
            if a.client_feed.head() < seq
                && let Err(e) = a.catch_up_since(committed_at, std::time::Duration::from_millis(500)).await
            {
                tracing::warn!(seq, error = %e, "revocation committed; relaying it to the feed's clients on the next read");
            }
        }
        // In-memory checks first: a request answered after this returns must already see it.
        self.authority.tokens.apply(&self.token_feed);
        if self.token_feed.iter().any(|e| matches!(e, FeedEntry::Keys { .. })) {
            self.authority.reload_keys().await.inspect_err(|_| {
                // Committed, but this process still holds the old keys: until it has read the
                // feed again it must not answer from memory.
                if let Some(cluster) = &self.authority.cluster {
                    cluster.distrust("signing keys not reloaded");
                }
            })?;
        }
        for e in &self.events {
            e.log();
        }
        // The cache forgets ended (and re-keyed) sessions before anyone is told they ended.
        let gone = self.revoked.iter().map(|r| &r.session_id).chain(self.rekeyed.iter().map(|(old, _)| old));
        self.authority.sessions.remove(gone);
        for (old, new) in &self.rekeyed {
            self.authority.hub.rekey(old, new);
        }
        if !self.quiet {
            self.authority.hub.publish(&self.revoked);
        }
        // Success is answered only once every other node has applied it too.
        if self.expiry {
            // Nothing to prove (see `expiry`).
        } else if seq > 0 {
            self.authority.propagate(seq).await?;
        } else if self.revoking {
            self.authority.propagate_head().await?;
        }
        Ok(())
    }
}

/// Stores an audit event that goes with no other change, then logs it.
async fn store_event(store: &dyn Store, event: AuditEvent) -> Result<(), CoreError> {
    let mut tx = store.begin().await?;
    tx.append_audit(&event).await?;
    tx.commit().await?;
    event.log();
    Ok(())
}

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
            feed: tokio::sync::Mutex::new(sync::FeedCursor::new(feed_start)),
            cluster: None,
            counters: None,
            client_feed: ClientFeed::new(token_policy_ttl + FEED_CLOCK_MARGIN),
            feed_health: sync::FeedHealth::new(),
            outbox_ready: tokio::sync::Notify::new(),
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

    /// A batch that first takes the locks of `users` (in one global order), as every batch that
    /// decides about a user's credentials must: concurrent ones then queue instead of
    /// deadlocking (see [`Tx::lock_user`]).
    async fn batch_for(&self, users: &[&UserId]) -> Result<Batch<'_>, CoreError> {
        let mut users = users.to_vec();
        users.sort();
        users.dedup();
        let mut batch = self.batch().await?;
        for user in users {
            batch.tx.lock_user(user).await?;
        }
        Ok(batch)
    }

    async fn batch(&self) -> Result<Batch<'_>, CoreError> {
        Ok(Batch {
            authority: self,
            tx: self.store.begin().await?,
            events: Vec::new(),
            revoked: Vec::new(),
            token_feed: Vec::new(),
            quiet: false,
            rekeyed: Vec::new(),
            revoking: false,
            expiry: false,
            notices: Vec::new(),
            letters: Vec::new(),
        })
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

    // ---- accounts -------------------------------------------------------------------------

    /// Creates an account, failing with `StoreError::Conflict` when the address is taken.
    pub async fn create_user(&self, raw_email: &str, password: &str, client: &ClientInfo) -> Result<User, CoreError> {
        let email = email::normalize(raw_email).ok_or(CoreError::InvalidEmail)?;
        password::check_policy(password, &email).map_err(CoreError::WeakPassword)?;
        let hash = self.passwords.hash(password).await?;
        let user = User { id: UserId::generate(), email, token_version: 0, created_at: self.now() };
        let mut batch = self.batch().await?;
        batch.tx.create_user(&user, &hash).await?;
        batch.audit(self.event(AuditKind::Register, Actor::User, client).user(&user.id)).await?;
        batch.commit().await?;
        Ok(user)
    }

    /// Self-service registration. An address that already has an account gets the same
    /// answer as a new one (a user with a fresh id, never stored), so registration cannot be
    /// used to find out who has an account; the owner's audit log records the attempt.
    /// Valid attempts are limited per client address and per target address, whatever their outcome,
    /// and repeated attempts on one account leave one audit event per hour.
    pub async fn register(&self, raw_email: &str, password: &str, client: &ClientInfo) -> Result<User, CoreError> {
        let target = email::normalize(raw_email).ok_or(CoreError::InvalidEmail)?;
        // Input is judged first (cheap, and tells nothing about accounts): a person trying a few
        // passwords against the policy is not throttled for it.
        password::check_policy(password, &target).map_err(CoreError::WeakPassword)?;
        let l = &self.limits;
        let ip = address_key(&client.ip);
        take_all(&[(&l.register_ip, &ip), (&l.register_email, &target)], self.now()).map_err(CoreError::Throttled)?;
        self.take_shared(&[
            l.register_ip.counted("register-ip", &ip),
            l.register_email.counted("register-email", &target),
        ])
        .await?;
        let (user, request) = match self.create_user(raw_email, password, client).await {
            Err(CoreError::Store(StoreError::Conflict)) => {
                let email = target;
                let existing = self.store.user_by_email(&email).await?;
                if let Some(existing) = &existing
                    && l.register_existing.take(existing.user.id.as_str(), self.now()).is_ok()
                {
                    self.record(self.event(AuditKind::RegisterExisting, Actor::User, client).user(&existing.user.id))
                        .await?;
                }
                let request = MailRequest {
                    to: email.clone(),
                    user_id: existing.map(|e| e.user.id.to_string()),
                    ..MailRequest::default()
                };
                (User { id: UserId::generate(), email, token_version: 0, created_at: self.now() }, request)
            }
            Ok(user) => {
                let request = MailRequest {
                    to: user.email.clone(),
                    user_id: Some(user.id.to_string()),
                    created: true,
                    ..MailRequest::default()
                };
                (user, request)
            }
            Err(e) => return Err(e),
        };
        // Every registration queues the same letter (sent only to a taken address).
        let mut batch = self.batch().await?;
        batch.letters.push(Letter::Registration.delivery(&request, self.now()));
        batch.commit().await?;
        Ok(user)
    }

    // ---- sign-in --------------------------------------------------------------------------

    /// Checks credentials and opens a brand-new session. `previous` and `previous_remember`
    /// are whatever session and remember-me secrets the client sent along: they are never
    /// reused, and are ended if live, so a planted cookie cannot survive a sign-in.
    pub async fn login(
        &self,
        raw_email: &str,
        password: &str,
        remember_me: bool,
        previous: (Option<&SessionSecret>, Option<&RememberSecret>),
        client: &ClientInfo,
    ) -> Result<SignedIn, CoreError> {
        // An unparseable address is just another wrong credential: same answer, same cost.
        let key = email::account_key(raw_email);
        let verified = self.check_password(&key, password, client).await?;

        let old = match previous.0 {
            Some(secret) => self.peek(secret).await?,
            None => None,
        };
        // The leftover remember-me series is deleted too: its owner's lock goes with the others.
        let leftover = match previous.1 {
            Some(r) => self.store.remember_by_selector(r.selector()).await?.map(|t| t.user_id),
            None => None,
        };
        let users: Vec<&UserId> = std::iter::once(&verified.user.id)
            .chain(old.as_ref().map(|o| &o.user.id))
            .chain(leftover.as_ref())
            .collect();
        let mut batch = self.batch_for(&users).await?;
        // A password changed since it was checked opens nothing.
        let user = Self::password_still(&mut batch, &verified).await?;
        let event = self.event(AuditKind::SessionRevoked, Actor::Policy, client).reason("superseded");
        if let Some(old) = old {
            batch.end(SessionFilter::One { user: &old.user.id, id: &old.session.id }, &event).await?;
        }
        if let Some(r) = previous.1 {
            batch.drop_series(RememberFilter::Selector(r.selector()), &event).await?;
        }
        let signed_in = self.open_session(&mut batch, user, None, remember_me, "password", client).await?;
        self.cap_sessions(&mut batch, &signed_in, client).await?;
        batch.commit().await?;
        Ok(signed_in)
    }

    /// Verifies a password under the sign-in limits and returns the account with the hash it
    /// matched. A wrong password or an unknown account is `InvalidCredentials`, counted against
    /// the account and the address. Attempts in flight count as if they will fail (a burst of
    /// parallel guesses gets no more tries than the limit; the excess is `Busy`), and the
    /// look-up, the hash and the counting run as a task of their own, so a client that hangs
    /// up while its password is hashed is counted all the same. Only failures are recorded:
    /// successful sign-ins are never throttled.
    async fn check_password(
        &self,
        key: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<UserCredentials, CoreError> {
        let counted = self.limits.login.counted(key, &client.ip);
        let attempt = match Attempt::begin(&self.limits, key, &client.ip, self.now()) {
            Ok(attempt) => attempt,
            Err(Refusal::Throttled(wait)) => {
                tracing::warn!(target: "audit", event = "login_throttled", ip = %client.ip, "sign-in refused: too many failures");
                return Err(CoreError::Throttled(wait));
            }
            Err(Refusal::Busy) => return Err(CoreError::Busy(Duration::seconds(1))),
        };
        let (store, passwords, counters) = (self.store.clone(), self.passwords.clone(), self.counters.clone());
        let (key, password, now) = (key.to_owned(), password.to_owned(), self.now());
        let failed = self.event(AuditKind::LoginFailed, Actor::User, client).reason("bad_credentials");
        let (ip, limits) = (client.ip.clone(), self.limits.clone());
        let checked = tokio::spawn(async move {
            // On several nodes the attempt is counted on the shared counters before its password
            // is hashed, in flight, in one atomic take that refuses it at the limit: a burst
            // spread over the nodes gets no more guesses than one node would. Settled below.
            let taken = match &counters {
                Some(counters) => match counters.take(&counted, now, true).await? {
                    Ok(taken) => Some(taken),
                    Err(SharedRefusal::Throttled { wait, full }) => {
                        // Refused from memory from now on, without asking the database again.
                        limits.login.saturate(&key, &ip, &full, now);
                        tracing::warn!(target: "audit", event = "login_throttled", ip = %ip, "sign-in refused: too many failures (all nodes)");
                        return Err(CoreError::Throttled(wait));
                    }
                    // Full only with attempts still being checked, which may succeed.
                    Err(SharedRefusal::Busy) => return Err(CoreError::Busy(Duration::seconds(1))),
                },
                None => None,
            };
            let settle = async |keep: bool| {
                if let (Some(counters), Some(taken)) = (&counters, &taken)
                    && let Err(e) = counters.settle(taken, keep).await
                {
                    tracing::warn!(error = %e, "could not settle a sign-in on the shared counters");
                }
            };
            let checked = async {
                let account = store.user_by_email(&key).await?;
                let ok = passwords.verify(&password, account.as_ref().map(|a| a.password_hash.as_str())).await?;
                Ok::<_, CoreError>((account, ok))
            }
            .await;
            match checked {
                Ok((Some(account), true)) => {
                    attempt.finish(Outcome::Succeeded);
                    // Successes never count: taken back, and the pair's counter starts over.
                    settle(false).await;
                    if let (Some(counters), Some(pair)) = (&counters, counted.first())
                        && let Err(e) = counters.clear(pair).await
                    {
                        tracing::warn!(error = %e, "could not clear a shared sign-in counter");
                    }
                    Ok(account)
                }
                Ok((account, _)) => {
                    settle(true).await;
                    // Stored either way (bounded by the limiter, which refuses before this
                    // point); an unknown account's event has no user, so only operators see it.
                    let event = match account {
                        Some(account) => failed.user(&account.user.id),
                        None => failed.reason("unknown_account"),
                    };
                    let stored = store_event(&*store, event.clone()).await;
                    attempt.finish(Outcome::Failed);
                    if let Err(e) = stored {
                        // The client may be gone: leave a trace in the log at least.
                        event.log();
                        tracing::error!(error = %e, "could not store a failed sign-in's audit event");
                        return Err(e);
                    }
                    Err(CoreError::InvalidCredentials)
                }
                // Not checked: dropping the attempt ends it unchecked here, and the shared
                // counters take it back.
                Err(e) => {
                    settle(false).await;
                    Err(e)
                }
            }
        });
        checked.await.map_err(|e| CoreError::Internal(format!("password check: {e}")))?
    }

    /// Inserts a new session for `user` in `batch`: opened from the remember-me series `series`,
    /// or with a new series if `remember_me`. The caller applies the per-user cap last.
    async fn open_session(
        &self,
        batch: &mut Batch<'_>,
        user: User,
        series: Option<(&str, OffsetDateTime)>,
        remember_me: bool,
        how: &str,
        client: &ClientInfo,
    ) -> Result<SignedIn, CoreError> {
        let now = self.now();
        let secret = SessionSecret::generate();
        let remember = remember_me.then(RememberSecret::generate);
        let session = Session {
            id: SessionId::generate(),
            user_id: user.id.clone(),
            secret_hash: secret.hash(),
            created_at: now,
            last_active_at: now,
            // A session opened from a series ends no later than the series (it lives only while
            // the series does).
            expires_at: series
                .map_or(now + self.policy.absolute_lifetime, |(_, end)| end.min(now + self.policy.absolute_lifetime)),
            ip: Some(client.ip.clone()),
            user_agent: client.user_agent.clone(),
            series: series
                .map(|(selector, _)| selector)
                .or(remember.as_ref().map(RememberSecret::selector))
                .map(str::to_owned),
        };
        batch.tx.insert_session(&session).await?;
        if let Some(r) = &remember {
            batch
                .tx
                .insert_remember(&RememberToken {
                    selector: r.selector().to_owned(),
                    validator_hash: r.validator_hash(),
                    user_id: user.id.clone(),
                    session_id: session.id.clone(),
                    created_at: now,
                    expires_at: now + self.policy.remember_lifetime,
                    previous_hash: None,
                    rotated_at: None,
                    grace_used: false,
                    ip: session.ip.clone(),
                    user_agent: session.user_agent.clone(),
                })
                .await?;
        }
        batch.audit(self.event(AuditKind::Login, Actor::User, client).reason(how).about(&session)).await?;
        Ok(SignedIn { ctx: SessionContext { session: Arc::new(session), user: Arc::new(user), secret }, remember })
    }

    /// Ends a user's oldest sessions and least recently used remember-me series beyond the
    /// per-user cap. Called last in a sign-in's batch, after its compare-and-swaps; the session
    /// just opened and its series are spared whatever the clock says (ties included).
    async fn cap_sessions(&self, batch: &mut Batch<'_>, new: &SignedIn, client: &ClientInfo) -> Result<(), CoreError> {
        let event = self.event(AuditKind::SessionRevoked, Actor::Policy, client).reason("session_limit");
        let (user, session) = (&new.ctx.user.id, &new.ctx.session);
        let keep = self.policy.max_sessions_per_user;
        batch.end(SessionFilter::OldestBeyond { user, keep, spare: &session.id }, &event).await?;
        // Remembered devices count too (a series outlives its session).
        let spare = session.series.as_deref();
        batch.drop_series(RememberFilter::OldestBeyond { user, keep, spare }, &event).await?;
        Ok(())
    }

    /// Signs a browser back in from its remember-me cookie, rotating the validator. See
    /// [`crate::remember`] for the theft rule and the race grace.
    ///
    /// Everything is read and decided inside one transaction: a revocation that committed
    /// first has deleted the series (nothing is created), one that commits after finds the new
    /// session bound to the series and ends it with it.
    pub async fn resume(&self, presented: &RememberSecret, client: &ClientInfo) -> Result<Resume, CoreError> {
        let now = self.now();
        // A cheap look first: an unknown selector (anyone can send one) takes no write lock.
        let Some(seen) = self.store.remember_by_selector(presented.selector()).await? else {
            return Ok(Resume::Invalid);
        };
        let mut batch = self.batch_for(&[&seen.user_id]).await?;
        let Some(token) = batch.tx.remember_by_selector(presented.selector()).await? else {
            return Ok(Resume::Invalid);
        };
        let Some(user) = batch.tx.user_by_id(&token.user_id).await?.map(|c| c.user) else {
            return Ok(Resume::Invalid);
        };
        if now >= token.expires_at {
            let event = self.event(AuditKind::SessionRevoked, Actor::Policy, client).reason("remember_expired");
            // The series' sessions end no later than the series: all of it has expired.
            batch.expiry = true;
            batch.drop_series(RememberFilter::Selector(&token.selector), &event).await?;
            batch.commit().await?;
            return Ok(Resume::Invalid);
        }
        let hash = presented.validator_hash();
        if hash.ct_eq(&token.validator_hash) {
            let user_id = user.id.clone();
            let mut signed_in = self
                .open_session(&mut batch, user, Some((&token.selector, token.expires_at)), false, "remember_me", client)
                .await?;
            let next = presented.rotated();
            let swapped = batch
                .tx
                .rotate_remember(
                    &token.selector,
                    &token.validator_hash,
                    &next.validator_hash(),
                    &signed_in.ctx.session,
                    now,
                )
                .await?;
            if !swapped {
                return Ok(Resume::LostRace);
            }
            // The session the series backed before, if it still lives, is replaced. The series is
            // already bound to the new session, so ending the old one leaves it alone.
            let event = self.event(AuditKind::SessionRevoked, Actor::Policy, client).reason("superseded");
            batch.end(SessionFilter::One { user: &user_id, id: &token.session_id }, &event).await?;
            self.cap_sessions(&mut batch, &signed_in, client).await?;
            batch.commit().await?;
            signed_in.remember = Some(next);
            return Ok(Resume::Resumed(Box::new(signed_in)));
        }
        if self.replaced_within_grace(&token, &hash, now) {
            // Once per rotation: a second racer (or a replayed copy) gets nothing.
            if !batch.tx.use_remember_grace(&token.selector, &hash).await? {
                return Ok(Resume::LostRace);
            }
            let signed_in = self
                .open_session(&mut batch, user, Some((&token.selector, token.expires_at)), false, "remember_me", client)
                .await?;
            self.cap_sessions(&mut batch, &signed_in, client).await?;
            batch.commit().await?;
            return Ok(Resume::Resumed(Box::new(signed_in)));
        }
        // An old validator is back: the cookie was copied. The series and every session opened
        // from it die.
        let event = self.event(AuditKind::SessionRevoked, Actor::Reuse, client).reason("remember_token_reuse");
        batch.drop_series(RememberFilter::Selector(&token.selector), &event).await?;
        batch.audit(self.event(AuditKind::RememberTokenReuse, Actor::Reuse, client).user(&user.id)).await?;
        batch.commit().await?;
        Ok(Resume::Theft)
    }

    // ---- authentication -------------------------------------------------------------------

    /// The live session behind a cookie secret, recording activity (at most once per
    /// `touch_interval`). Expired sessions are ended on sight.
    pub async fn authenticate(&self, secret: &SessionSecret) -> Result<Option<SessionContext>, CoreError> {
        self.lookup(secret, true).await
    }

    /// Like [`authenticate`](Self::authenticate) but without recording activity.
    pub async fn peek(&self, secret: &SessionSecret) -> Result<Option<SessionContext>, CoreError> {
        self.lookup(secret, false).await
    }

    async fn lookup(&self, secret: &SessionSecret, touch: bool) -> Result<Option<SessionContext>, CoreError> {
        self.vouch().await?;
        let hash = secret.hash();
        let now = self.now();
        let found = match self.sessions.get(&hash) {
            // A cached entry may be stale about activity seen by another node: before calling a
            // cached session expired, ask the store.
            Some(hit) if self.is_live(&hit.0, now) => Some(hit),
            _ => self.read_through(self.store.session_by_hash(&hash)).await?,
        };
        let Some((mut session, user)) = found else {
            return Ok(None);
        };
        if !self.is_live(&session, now) {
            let event = self.event(AuditKind::SessionExpired, Actor::Policy, &ClientInfo::default()).reason("expired");
            let mut batch = self.batch_for(&[&user.id]).await?;
            batch.expiry = true;
            batch.end(SessionFilter::Lapsed { user: &user.id, id: &session.id }, &event).await?;
            batch.commit().await?;
            return Ok(None);
        }
        if touch && now - session.last_active_at >= self.policy.touch_interval {
            self.store.touch_session(&session.id, now).await?;
            self.sessions.touch(&session.id, now);
            Arc::make_mut(&mut session).last_active_at = now;
        }
        Ok(Some(SessionContext { session, user, secret: secret.clone() }))
    }

    /// A session and its user by the session's public id, from the cache when it can.
    pub(crate) async fn session_by_id(&self, id: &SessionId) -> Result<Option<Entry>, CoreError> {
        self.vouch().await?;
        self.vouched_session_by_id(id).await
    }

    /// [`session_by_id`](Self::session_by_id) for a caller that has just vouched.
    pub(crate) async fn vouched_session_by_id(&self, id: &SessionId) -> Result<Option<Entry>, CoreError> {
        if let Some(hit) = self.sessions.get_by_id(id).filter(|(s, _)| self.is_live(s, self.now())) {
            return Ok(Some(hit));
        }
        self.read_through(self.store.session_by_id(id)).await
    }

    /// Reads a session from the store and caches it, unless a removal raced the read (see
    /// [`SessionCache::insert`]). `read` must be a lazy future: the generation is taken before
    /// it is first polled, so before the store is asked.
    async fn read_through(
        &self,
        read: impl std::future::Future<Output = Result<Option<(Session, User)>, StoreError>>,
    ) -> Result<Option<Entry>, CoreError> {
        let generation = self.sessions.generation();
        let found = read.await?.map(|(s, u)| (Arc::new(s), Arc::new(u)));
        if let Some((s, u)) = &found {
            self.sessions.insert(generation, s, u);
        }
        Ok(found)
    }

    // ---- logout and revocation ------------------------------------------------------------

    /// Ends sessions for a logout and returns how many ended. `current` are the caller's live
    /// sessions: the cookie's and the access token's, when a request carries both (each after
    /// its own check). `credentials` are what it presented besides: with any scope that ends
    /// the current sessions they die too (the access token is denied until it expires, the
    /// refresh token's session and family end, the remember-me series ends with every session
    /// opened from it). Without a session this still kills what was presented.
    pub async fn logout(
        &self,
        current: &[Arc<Session>],
        scope: LogoutScope,
        credentials: &Presented<'_>,
        client: &ClientInfo,
    ) -> Result<LoggedOut, CoreError> {
        // The owners of the presented credentials are locked too: they may have no live session.
        let owners = if current.is_empty() || scope.ends_current() {
            self.presented_owners(credentials).await?
        } else {
            Vec::new()
        };
        let users: Vec<&UserId> = current.iter().map(|s| &s.user_id).chain(&owners).collect();
        let mut batch = self.batch_for(&users).await?;
        batch.revoking = true;
        // The sessions presented, as this transaction reads them under their users' locks: one
        // ended meanwhile (a racing logout elsewhere) speaks for nobody, so it can never end
        // sessions opened after its own end.
        let now = self.now();
        let mut still_live = Vec::with_capacity(current.len());
        for session in current {
            if batch
                .tx
                .session_by_id(&session.id)
                .await?
                .is_some_and(|(row, _)| row.user_id == session.user_id && self.is_live(&row, now))
            {
                still_live.push(session.clone());
            }
        }
        let current = still_live.as_slice();
        // A browser whose cookie names no live session may still hold a remember-me token that
        // would sign it back in (a tab's resume has just superseded the session, say): that
        // token speaks for the browser, and the series' session is its current one, whatever
        // the scope. Decided here, on the series as this transaction reads it.
        let remembered = match (current.is_empty(), credentials.remember) {
            (true, Some(presented)) => self.live_series(&mut batch, presented).await?,
            _ => None,
        };
        let (series_owner, series_session) = remembered.map_or((None, None), |(u, s)| (Some(u), s));
        let from_series = series_session.is_some();
        let current: Vec<Arc<Session>> = match series_session {
            Some(session) => vec![session],
            None => current.to_vec(),
        };
        // A series whose session is gone still speaks for the browser (it would sign it in again
        // on its next page): "everywhere" ends every session and series of its owner, "others"
        // all of them but this series, so the browser stays remembered and nothing the user
        // asked to end lives on; "this device" ends as without the token.
        let owner_only = series_owner.filter(|_| current.is_empty() && scope != LogoutScope::Local);
        let keep_series = match (&owner_only, scope) {
            (Some(_), LogoutScope::Others) => credentials.remember.map(RememberSecret::selector),
            _ => None,
        };
        let speaks = !current.is_empty() || owner_only.is_some();
        let mut ended = 0;
        if !speaks || scope.ends_current() {
            let event =
                self.event(AuditKind::Logout, Actor::SelfSession, client).scope(scope.as_str()).reason("logout");
            ended += self.revoke_presented(&mut batch, credentials, &event).await?;
        }
        if !speaks {
            batch.commit().await?;
            self.event(AuditKind::Logout, Actor::SelfSession, client).scope(scope.as_str()).reason("no_session").log();
            return Ok(LoggedOut { ended, as_session: false });
        }
        if from_series || owner_only.is_some() {
            self.event(AuditKind::Logout, Actor::SelfSession, client).scope(scope.as_str()).reason("remember_me").log();
        }
        let mut users: Vec<&UserId> = current.iter().map(|s| &s.user_id).chain(owner_only.as_ref()).collect();
        users.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        users.dedup();
        if scope != LogoutScope::Local {
            let event = self
                .event(AuditKind::SessionRevoked, Actor::OtherSession, client)
                .scope(scope.as_str())
                .reason("logout");
            for user in &users {
                let keep: Vec<SessionId> =
                    current.iter().filter(|s| &s.user_id == *user).map(|s| s.id.clone()).collect();
                ended += batch.end(SessionFilter::AllOf { user, keep: &keep, keep_series }, &event).await?;
            }
        }
        if scope.ends_current() {
            let event =
                self.event(AuditKind::Logout, Actor::SelfSession, client).scope(scope.as_str()).reason("logout");
            for session in &current {
                ended += batch.end(SessionFilter::One { user: &session.user_id, id: &session.id }, &event).await?;
            }
        }
        if scope == LogoutScope::Global {
            for user in users {
                batch.bump_token_version(user).await?;
            }
        }
        batch.commit().await?;
        Ok(LoggedOut { ended, as_session: true })
    }

    /// Inside a batch: the owner of the remember-me series `presented` belongs to, and the
    /// series' session if it lives, when the token would still sign its browser back in (the
    /// series lives and the validator is its current one, or the one it replaced within the
    /// race grace).
    async fn live_series(
        &self,
        batch: &mut Batch<'_>,
        presented: &RememberSecret,
    ) -> Result<Option<(UserId, Option<Arc<Session>>)>, CoreError> {
        let now = self.now();
        let Some(token) = batch.tx.remember_by_selector(presented.selector()).await? else { return Ok(None) };
        let hash = presented.validator_hash();
        // The replaced validator only while its once-per-rotation grace is unspent: a copy that
        // a resume would refuse speaks for nobody here either.
        let live =
            hash.ct_eq(&token.validator_hash) || (!token.grace_used && self.replaced_within_grace(&token, &hash, now));
        if now >= token.expires_at || !live {
            return Ok(None);
        }
        let session = batch
            .tx
            .session_by_id(&token.session_id)
            .await?
            .map(|(session, _)| session)
            .filter(|session| session.user_id == token.user_id && self.is_live(session, now))
            .map(Arc::new);
        Ok(Some((token.user_id, session)))
    }

    /// Whether `hash` is the validator the series replaced last, presented within the race
    /// grace (a tab that raced the rotation). No grace configured is no grace; a rotation
    /// another node's clock placed in this one's future counts within the same bound, so a
    /// little skew between nodes neither widens the window nor turns a racing tab into a thief.
    fn replaced_within_grace(
        &self,
        token: &crate::store::RememberToken,
        hash: &secret::SecretHash,
        now: OffsetDateTime,
    ) -> bool {
        let grace = self.policy.race_grace;
        grace > Duration::ZERO
            && token.previous_hash.is_some_and(|p| p.ct_eq(hash))
            && token.rotated_at.is_some_and(|at| (now - at).abs() <= grace)
    }

    /// Ends one of the caller's devices by its id: a live session (with the remember-me series
    /// it backs), or a remembered device whose session is gone (its series). Another user's
    /// ids and unknown ids are the same `NotFound`, so ids of other users cannot be probed.
    pub async fn revoke_session(
        &self,
        ctx: &SessionContext,
        id: &SessionId,
        client: &ClientInfo,
    ) -> Result<(), CoreError> {
        let actor = if *id == ctx.session.id { Actor::SelfSession } else { Actor::OtherSession };
        let event = self.event(AuditKind::SessionRevoked, actor, client).reason("revoked");
        let mut batch = self.batch_for(&[&ctx.user.id]).await?;
        batch.revoking = true;
        let ended = batch.tx.end_sessions(SessionFilter::One { user: &ctx.user.id, id }).await?;
        let only_series = ended.sessions.is_empty();
        if only_series && ended.series == 0 {
            return Err(CoreError::NotFound);
        }
        batch.ended(ended, &event).await?;
        if only_series {
            // A remembered device without a live session: record its end all the same.
            batch.audit(event.user(&ctx.user.id).session(id)).await?;
        }
        batch.commit().await?;
        Ok(())
    }

    /// The password a request proved before its transaction (argon2 is slow) is still the
    /// account's, read inside it; returns the user as it is now. A password changed meanwhile
    /// makes the request fail as if the password were wrong, with nothing written.
    async fn password_still(batch: &mut Batch<'_>, verified: &UserCredentials) -> Result<User, CoreError> {
        match batch.tx.user_by_id(&verified.user.id).await? {
            Some(now) if secret::ct_eq_str(&now.password_hash, &verified.password_hash) => Ok(now.user),
            _ => Err(CoreError::InvalidCredentials),
        }
    }

    /// The check behind a password or e-mail change, made again inside its transaction: the
    /// caller's session still lives and the password it proved is still the account's.
    /// Anything that committed since (another password change, a revocation of this session)
    /// makes this change `401`, with nothing written.
    async fn still_current(
        batch: &mut Batch<'_>,
        ctx: &SessionContext,
        verified: &UserCredentials,
    ) -> Result<(), CoreError> {
        let live = batch.tx.session_by_id(&ctx.session.id).await?.is_some_and(|(s, _)| s.user_id == ctx.user.id);
        let same = verified.user.id == ctx.user.id
            && match Self::password_still(batch, verified).await {
                Ok(_) => true,
                Err(CoreError::InvalidCredentials) => false,
                // A store that cannot answer is no verdict (503, not 401).
                Err(e) => return Err(e),
            };
        if live && same { Ok(()) } else { Err(CoreError::Unauthenticated) }
    }

    /// Changes the password: the current session survives with a new id, everything else of
    /// the user ends (see [`Trigger::PasswordChanged`]).
    pub async fn change_password(
        &self,
        ctx: &SessionContext,
        current_password: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<SessionContext, CoreError> {
        let verified = self.check_password(&ctx.user.email, current_password, client).await?;
        password::check_policy(new_password, &ctx.user.email).map_err(CoreError::WeakPassword)?;
        let hash = self.passwords.hash(new_password).await?;
        let mut batch = self.batch_for(&[&ctx.user.id]).await?;
        Self::still_current(&mut batch, ctx, &verified).await?;
        batch.tx.set_password(&ctx.user.id, &hash).await?;
        let rotated = self.apply(&mut batch, Trigger::PasswordChanged, &ctx.user.id, Some(ctx), client).await?;
        batch.audit(self.event(AuditKind::PasswordChanged, Actor::User, client).about(&ctx.session)).await?;
        batch.commit().await?;
        rotated.ok_or(CoreError::Unauthenticated)
    }

    /// A user reports a security concern: every session and token of theirs ends, this one too.
    pub async fn report_concern(
        &self,
        ctx: &SessionContext,
        details: &str,
        client: &ClientInfo,
    ) -> Result<u64, CoreError> {
        let mut batch = self.batch_for(&[&ctx.user.id]).await?;
        let before = batch.revoked.len();
        self.apply(&mut batch, Trigger::SecurityReport, &ctx.user.id, Some(ctx), client).await?;
        let ended = (batch.revoked.len() - before) as u64;
        batch
            .audit(self.event(AuditKind::SecurityReport, Actor::User, client).about(&ctx.session).detail(details))
            .await?;
        batch.commit().await?;
        Ok(ended)
    }

    /// An administrator ends every session and token of a user.
    pub async fn admin_revoke(&self, user: &UserId, reason: &str, client: &ClientInfo) -> Result<u64, CoreError> {
        if self.store.user_by_id(user).await?.is_none() {
            return Err(CoreError::NotFound);
        }
        let mut batch = self.batch_for(&[user]).await?;
        self.apply(&mut batch, Trigger::AdminRevoke, user, None, client).await?;
        let ended = batch.revoked.len() as u64;
        batch.audit(self.event(AuditKind::AdminRevoke, Actor::Admin, client).user(user).detail(reason)).await?;
        batch.commit().await?;
        Ok(ended)
    }

    /// Carries out a trigger's [`Consequences`](crate::policy::Consequences) inside `batch`.
    /// Returns the rotated current session, when the policy keeps and rotates it.
    async fn apply(
        &self,
        batch: &mut Batch<'_>,
        trigger: Trigger,
        user: &UserId,
        current: Option<&SessionContext>,
        client: &ClientInfo,
    ) -> Result<Option<SessionContext>, CoreError> {
        let c = trigger.consequences();
        let keep = match c.ends {
            Ends::Others => current.map(|ctx| std::slice::from_ref(&ctx.session.id)),
            Ends::All => None,
        };
        let event = self.event(AuditKind::SessionRevoked, trigger.actor(), client).reason(trigger.reason());
        batch.end(SessionFilter::AllOf { user, keep: keep.unwrap_or_default(), keep_series: None }, &event).await?;
        batch.quiet |= !c.notify;
        if c.revoke_all_tokens {
            // The kept session outlives every series, its own included: unbind it first.
            if let Some(ctx) = current.filter(|_| keep.is_some()) {
                batch.tx.unbind_series(&ctx.session.id).await?;
            }
            batch.drop_series(RememberFilter::AllOfUser(user), &event).await?;
            batch.tx.revoke_user_refresh(user).await?;
        }
        let token_version = if c.bump_token_version { Some(batch.bump_token_version(user).await?) } else { None };
        let (true, Some(ctx)) = (c.rotate_current && keep.is_some(), current) else {
            return Ok(None);
        };
        let secret = SessionSecret::generate();
        let id = SessionId::generate();
        if !batch.tx.rotate_session(&ctx.session.id, &id, &secret.hash()).await? {
            // The session ended under us: nothing of this change may commit.
            return Err(CoreError::Unauthenticated);
        }
        batch
            .audit(
                self.event(AuditKind::SessionRotated, Actor::Policy, client)
                    .reason(trigger.reason())
                    .about(&ctx.session),
            )
            .await?;
        batch.rekeyed.push((ctx.session.id.clone(), id.clone()));
        // The old id is dead (the feed says so too): an application that keyed its own session
        // on it must end that, or it outlives every later logout of the new id.
        batch.notices.push(Notice::SessionEnded {
            user_id: user.to_string(),
            session_id: ctx.session.id.to_string(),
            reason: trigger.reason().to_owned(),
        });
        let mut rotated = ctx.clone();
        let session = Arc::make_mut(&mut rotated.session);
        session.id = id;
        session.secret_hash = secret.hash();
        rotated.secret = secret;
        if let Some(v) = token_version {
            Arc::make_mut(&mut rotated.user).token_version = v;
        }
        Ok(Some(rotated))
    }

    /// Deletes every session past its end, and every remember-me series past its end (it can
    /// sign nobody in); run periodically by the server. One transaction per user, under that
    /// user's lock like every other change to a user's credentials, so the sweep queues behind
    /// a sign-in or a refresh instead of deadlocking with it.
    pub async fn sweep_expired(&self) -> Result<u64, CoreError> {
        const USERS_PER_READ: u32 = 500;
        let now = self.now();
        let idle_cutoff = now - self.policy.idle_timeout;
        let event = self.event(AuditKind::SessionExpired, Actor::Policy, &ClientInfo::default()).reason("expired");
        let mut ended = 0;
        loop {
            let owners = self.store.expired_owners(now, idle_cutoff, USERS_PER_READ).await?;
            for user in &owners {
                let mut batch = self.batch_for(&[user]).await?;
                batch.expiry = true;
                ended += batch.end(SessionFilter::Expired { user, now, idle_cutoff }, &event).await?;
                ended += batch.drop_series(RememberFilter::Expired { user, now }, &event).await?;
                batch.commit().await?;
            }
            if owners.len() < USERS_PER_READ as usize {
                return Ok(ended);
            }
        }
    }

    /// Counts an attempt on the shared counters, in one atomic step that refuses it (counting
    /// nothing) when any of them is full, so the limit holds across every node.
    async fn take_shared(&self, counted: &[Counted]) -> Result<(), CoreError> {
        let Some(counters) = &self.counters else { return Ok(()) };
        match counters.take(counted, self.now(), false).await? {
            Ok(_) => Ok(()),
            Err(SharedRefusal::Throttled { wait, .. }) => Err(CoreError::Throttled(wait)),
            Err(SharedRefusal::Busy) => Err(CoreError::Busy(Duration::seconds(1))),
        }
    }

    /// Counts rate limits on counters every node shares, besides this process's memory.
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

    pub fn with_shared_counters(mut self, counters: Arc<dyn SharedCounters>) -> Self {
        self.counters = Some(counters);
        self
    }

    /// Drops feed entries older than an hour (or than the access-token lifetime and a margin,
    /// when that is longer): every process has relayed them long since, and relying services
    /// starting over are given every one that can still matter.
    pub async fn trim_revocation_feed(&self) -> Result<u64, CoreError> {
        let now = self.now();
        let keep = Duration::hours(1).max(self.tokens.policy.access_ttl + FEED_CLOCK_MARGIN + Duration::minutes(3));
        if let Some(counters) = &self.counters {
            counters.purge(now).await?;
        }
        self.tokens.forget_expired(now.unix_timestamp());
        // Denials are kept an hour past their tokens' expiry, so a node whose clock lags another's
        // (which trims) still finds every denial of a token it may consider unexpired.
        Ok(self.store.trim_revocations(now - keep, now - Duration::hours(1)).await?)
    }

    // ---- reading --------------------------------------------------------------------------

    /// A user's live sessions, most recently active first.
    pub async fn sessions_of(&self, user: &UserId) -> Result<Vec<Session>, CoreError> {
        let now = self.now();
        let mut sessions = self.store.user_sessions(user).await?;
        sessions.retain(|s| self.is_live(s, now));
        Ok(sessions)
    }

    /// Every device a user is signed in on, most recently active first: live sessions, and
    /// remember-me series whose session has ended (they can still sign the device back in).
    pub async fn devices_of(&self, user: &UserId) -> Result<Vec<Device>, CoreError> {
        let now = self.now();
        let sessions = self.sessions_of(user).await?;
        let series = self.store.user_remember(user).await?;
        let mut devices: Vec<Device> = sessions
            .iter()
            .map(|s| Device {
                id: s.id.clone(),
                created_at: s.created_at,
                last_active_at: s.last_active_at,
                expires_at: self.effective_expiry(s),
                ip: s.ip.clone(),
                user_agent: s.user_agent.clone(),
                signed_in: true,
                remembered: series.iter().any(|t| t.session_id == s.id && now < t.expires_at),
            })
            .collect();
        for t in series.iter().filter(|t| now < t.expires_at && !sessions.iter().any(|s| s.id == t.session_id)) {
            devices.push(Device {
                id: t.session_id.clone(),
                created_at: t.created_at,
                last_active_at: t.rotated_at.unwrap_or(t.created_at),
                expires_at: t.expires_at,
                ip: t.ip.clone(),
                user_agent: t.user_agent.clone(),
                signed_in: false,
                remembered: true,
            });
        }
        devices.sort_by(|a, b| b.last_active_at.cmp(&a.last_active_at).then(b.created_at.cmp(&a.created_at)));
        Ok(devices)
    }

    pub async fn audit_of(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, CoreError> {
        Ok(self.store.user_audit(user, limit).await?)
    }

    /// Stores and logs an event that goes with no other change.
    async fn record(&self, event: AuditEvent) -> Result<(), CoreError> {
        store_event(&*self.store, event).await
    }

    /// A user by e-mail address, normalised first (for the CLI).
    pub async fn user_by_email(&self, raw_email: &str) -> Result<Option<User>, CoreError> {
        let Some(email) = email::normalize(raw_email) else { return Ok(None) };
        Ok(self.store.user_by_email(&email).await?.map(|c| c.user))
    }

    /// A user by id (for the admin API).
    pub async fn user(&self, id: &UserId) -> Result<Option<User>, CoreError> {
        Ok(self.store.user_by_id(id).await?.map(|c| c.user))
    }
}
