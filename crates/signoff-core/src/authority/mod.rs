//! The session authority: the one owner of sign-in, authentication and logout.
//!
//! Every entry point (JSON API, HTML forms, CLI, admin) goes through these methods, so "what
//! happens at logout" has exactly one answer: [`Authority::logout`], which like every other way
//! of ending sessions goes through [`Authority::end`].

use std::sync::Arc;
use time::{Duration, OffsetDateTime};

mod tokens;

pub use crate::audit::ClientInfo;
use crate::audit::{Actor, AuditEvent, AuditKind};
use crate::clock::Clock;
use crate::email;
use crate::error::CoreError;
use crate::password::{self, Passwords};
use crate::policy::{Ends, Trigger};
use crate::remember::RememberSecret;
use crate::revocation::{FeedEntry, Revocation, RevocationHub};
use crate::secret::{SessionId, SessionSecret, UserId};
use crate::session_cache::SessionCache;
use crate::store::{RememberFilter, RememberToken, Session, SessionFilter, Store, StoreError, Tx, User};
use crate::throttle::{LoginThrottle, ThrottlePolicy};
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
    /// How long the immediate predecessor of a rotated token is still honoured (racing tabs).
    pub race_grace: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::minutes(30),
            absolute_lifetime: Duration::hours(10),
            touch_interval: Duration::minutes(1),
            remember_lifetime: Duration::days(30),
            race_grace: Duration::seconds(5),
        }
    }
}

/// An authenticated session with its user and the secret that proved it.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub session: Session,
    pub user: User,
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
    throttle: LoginThrottle,
    policy: SessionPolicy,
    hub: RevocationHub,
    tokens: TokenState,
    sessions: SessionCache,
}

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
}

impl Batch<'_> {
    async fn audit(&mut self, event: AuditEvent) -> Result<(), CoreError> {
        self.tx.append_audit(&event).await?;
        self.events.push(event);
        Ok(())
    }

    /// Ends the sessions matching `filter`, one `event` per ended session.
    async fn end(&mut self, filter: SessionFilter<'_>, event: &AuditEvent) -> Result<u64, CoreError> {
        let ended = self.tx.end_sessions(filter).await?;
        for s in &ended {
            self.audit(event.about(s)).await?;
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
        Ok(version)
    }

    /// Denies one access token until it expires.
    async fn deny(&mut self, issuer: &str, jti: &str, exp: i64) -> Result<(), CoreError> {
        self.tx.deny_token(issuer, jti, exp).await?;
        self.token_feed.push(FeedEntry::Token { issuer: issuer.to_owned(), jti: jti.to_owned(), exp });
        Ok(())
    }

    async fn commit(mut self) -> Result<(), CoreError> {
        let feed: Vec<FeedEntry> =
            self.revoked.iter().cloned().map(FeedEntry::Session).chain(self.token_feed.iter().cloned()).collect();
        if !feed.is_empty() {
            self.tx.record_revocations(&feed, self.authority.now()).await?;
        }
        self.tx.commit().await?;
        // In-memory checks first: a request answered after this returns must already see it.
        self.authority.tokens.apply(&self.token_feed);
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
        Ok(())
    }
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
    ) -> Result<Self, CoreError> {
        let tokens = TokenState::new(token_policy);
        let authority = Self {
            store,
            clock,
            passwords: Passwords::new().await?,
            throttle: LoginThrottle::new(throttle),
            policy,
            hub: RevocationHub::default(),
            tokens,
            sessions: SessionCache::default(),
        };
        authority.load_token_state().await?;
        Ok(authority)
    }

    /// Where ended sessions are announced.
    pub fn hub(&self) -> &RevocationHub {
        &self.hub
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
    pub async fn register(&self, raw_email: &str, password: &str, client: &ClientInfo) -> Result<User, CoreError> {
        match self.create_user(raw_email, password, client).await {
            Err(CoreError::Store(StoreError::Conflict)) => {
                let email = email::normalize(raw_email).ok_or(CoreError::InvalidEmail)?;
                if let Some(existing) = self.store.user_by_email(&email).await? {
                    self.record(self.event(AuditKind::RegisterExisting, Actor::User, client).user(&existing.user.id))
                        .await?;
                }
                Ok(User { id: UserId::generate(), email, token_version: 0, created_at: self.now() })
            }
            other => other,
        }
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
        let key = email::normalize(raw_email).unwrap_or_else(|| raw_email.trim().to_lowercase());
        let account = self.check_password(&key, password, client).await?;
        let user = account.ok_or(CoreError::InvalidCredentials)?;

        let old = match previous.0 {
            Some(secret) => self.peek(secret).await?,
            None => None,
        };
        let mut batch = self.batch().await?;
        if let Some(old) = old {
            let event = self.event(AuditKind::SessionRevoked, Actor::Policy, client).reason("superseded");
            batch.end(SessionFilter::One { user: &old.user.id, id: &old.session.id }, &event).await?;
        }
        if let Some(r) = previous.1 {
            batch.tx.delete_remember(RememberFilter::Selector(r.selector())).await?;
        }
        let signed_in = self.open_session(&mut batch, user, remember_me, "password", client).await?;
        batch.commit().await?;
        Ok(signed_in)
    }

    /// Verifies a password under the sign-in limits. `Ok(None)` never happens for a wrong
    /// password: that is `InvalidCredentials`, counted against the account and the address.
    async fn check_password(&self, key: &str, password: &str, client: &ClientInfo) -> Result<Option<User>, CoreError> {
        let now = self.now();
        if let Some(wait) = self.throttle.check(key, &client.ip, now) {
            tracing::warn!(target: "audit", event = "login_throttled", ip = %client.ip, "sign-in refused: too many failures");
            return Err(CoreError::Throttled(wait));
        }
        let account = self.store.user_by_email(key).await?;
        let ok = self.passwords.verify(password, account.as_ref().map(|a| a.password_hash.as_str())).await?;
        match account {
            Some(account) if ok => {
                self.throttle.record_success(key);
                Ok(Some(account.user))
            }
            other => {
                self.throttle.record_failure(key, &client.ip, now);
                // Stored either way (bounded by the limiter, which refuses before this point); an
                // unknown account's event has no user, so only operators ever see it.
                let event = self.event(AuditKind::LoginFailed, Actor::User, client).reason("bad_credentials");
                match other {
                    Some(account) => self.record(event.user(&account.user.id)).await?,
                    None => self.record(event.reason("unknown_account")).await?,
                }
                Err(CoreError::InvalidCredentials)
            }
        }
    }

    /// Inserts a new session for `user` (and a new remember-me series if asked) in `batch`.
    async fn open_session(
        &self,
        batch: &mut Batch<'_>,
        user: User,
        remember_me: bool,
        how: &str,
        client: &ClientInfo,
    ) -> Result<SignedIn, CoreError> {
        let now = self.now();
        let secret = SessionSecret::generate();
        let session = Session {
            id: SessionId::generate(),
            user_id: user.id.clone(),
            secret_hash: secret.hash(),
            created_at: now,
            last_active_at: now,
            expires_at: now + self.policy.absolute_lifetime,
            ip: Some(client.ip.clone()),
            user_agent: client.user_agent.clone(),
        };
        batch.tx.insert_session(&session).await?;
        let remember = if remember_me {
            let r = RememberSecret::generate();
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
                })
                .await?;
            Some(r)
        } else {
            None
        };
        batch.audit(self.event(AuditKind::Login, Actor::User, client).reason(how).about(&session)).await?;
        Ok(SignedIn { ctx: SessionContext { session, user, secret }, remember })
    }

    /// Signs a browser back in from its remember-me cookie, rotating the validator. See
    /// [`crate::remember`] for the theft rule and the race grace.
    pub async fn resume(&self, presented: &RememberSecret, client: &ClientInfo) -> Result<Resume, CoreError> {
        let now = self.now();
        let Some(token) = self.store.remember_by_selector(presented.selector()).await? else {
            return Ok(Resume::Invalid);
        };
        let Some(user) = self.store.user_by_id(&token.user_id).await?.map(|c| c.user) else {
            return Ok(Resume::Invalid);
        };
        let mut batch = self.batch().await?;
        if now >= token.expires_at {
            batch.tx.delete_remember(RememberFilter::Selector(&token.selector)).await?;
            batch.commit().await?;
            return Ok(Resume::Invalid);
        }
        let hash = presented.validator_hash();
        if hash.ct_eq(&token.validator_hash) {
            let user_id = user.id.clone();
            let mut signed_in = self.open_session(&mut batch, user, false, "remember_me", client).await?;
            let next = presented.rotated();
            let swapped = batch
                .tx
                .rotate_remember(
                    &token.selector,
                    &token.validator_hash,
                    &next.validator_hash(),
                    &signed_in.ctx.session.id,
                    now,
                )
                .await?;
            if !swapped {
                return Ok(Resume::LostRace);
            }
            // The session the series backed before, if it still lives, is replaced. The token is
            // already bound to the new session, so ending the old one leaves it alone.
            let event = self.event(AuditKind::SessionRevoked, Actor::Policy, client).reason("superseded");
            batch.end(SessionFilter::One { user: &user_id, id: &token.session_id }, &event).await?;
            batch.commit().await?;
            signed_in.remember = Some(next);
            return Ok(Resume::Resumed(Box::new(signed_in)));
        }
        let racing = token.previous_hash.is_some_and(|p| p.ct_eq(&hash))
            && token.rotated_at.is_some_and(|at| now - at <= self.policy.race_grace);
        if racing {
            let signed_in = self.open_session(&mut batch, user, false, "remember_me", client).await?;
            batch.commit().await?;
            return Ok(Resume::Resumed(Box::new(signed_in)));
        }
        // An old validator is back: the cookie was copied. The series and its session die.
        batch.tx.delete_remember(RememberFilter::Selector(&token.selector)).await?;
        let event = self.event(AuditKind::SessionRevoked, Actor::Reuse, client).reason("remember_token_reuse");
        batch.end(SessionFilter::One { user: &user.id, id: &token.session_id }, &event).await?;
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
            let mut batch = self.batch().await?;
            batch.end(SessionFilter::One { user: &user.id, id: &session.id }, &event).await?;
            batch.commit().await?;
            return Ok(None);
        }
        if touch && now - session.last_active_at >= self.policy.touch_interval {
            self.store.touch_session(&session.id, now).await?;
            self.sessions.touch(&session.id, now);
            session.last_active_at = now;
        }
        Ok(Some(SessionContext { session, user, secret: secret.clone() }))
    }

    /// A session and its user by the session's public id, from the cache when it can.
    pub(crate) async fn session_by_id(&self, id: &SessionId) -> Result<Option<(Session, User)>, CoreError> {
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
    ) -> Result<Option<(Session, User)>, CoreError> {
        let generation = self.sessions.generation();
        let found = read.await?;
        if let Some((s, u)) = &found {
            self.sessions.insert(generation, s, u);
        }
        Ok(found)
    }

    // ---- logout and revocation ------------------------------------------------------------

    /// Ends sessions for a logout and returns how many ended. `current` is the caller's live
    /// session (by cookie or by access token), if any. `credentials` are what it presented:
    /// with any scope that ends this session they die too (the access token is denied until it
    /// expires, the refresh token's family and the remember-me series are revoked). Without a
    /// session this is a quiet success that still leaves an audit line in the log.
    pub async fn logout(
        &self,
        current: Option<&Session>,
        scope: LogoutScope,
        credentials: &Presented<'_>,
        client: &ClientInfo,
    ) -> Result<u64, CoreError> {
        let mut batch = self.batch().await?;
        if current.is_none() || scope.ends_current() {
            self.revoke_presented(&mut batch, credentials).await?;
        }
        let Some(session) = current else {
            batch.commit().await?;
            self.event(AuditKind::Logout, Actor::SelfSession, client).scope(scope.as_str()).reason("no_session").log();
            return Ok(0);
        };
        let user = &session.user_id;
        let mut ended = 0;
        if scope != LogoutScope::Local {
            let event = self
                .event(AuditKind::SessionRevoked, Actor::OtherSession, client)
                .scope(scope.as_str())
                .reason("logout");
            ended += batch.end(SessionFilter::AllOf { user, keep: Some(&session.id) }, &event).await?;
        }
        if scope.ends_current() {
            let event =
                self.event(AuditKind::Logout, Actor::SelfSession, client).scope(scope.as_str()).reason("logout");
            ended += batch.end(SessionFilter::One { user, id: &session.id }, &event).await?;
        }
        if scope == LogoutScope::Global {
            batch.bump_token_version(user).await?;
        }
        batch.commit().await?;
        Ok(ended)
    }

    /// Ends one session of the caller's user, by its public id. Another user's session and an
    /// unknown or expired id are the same `NotFound`, so ids of other users cannot be probed.
    pub async fn revoke_session(
        &self,
        ctx: &SessionContext,
        id: &SessionId,
        client: &ClientInfo,
    ) -> Result<(), CoreError> {
        let live = self.sessions_of(&ctx.user.id).await?.iter().any(|s| s.id == *id);
        if !live {
            return Err(CoreError::NotFound);
        }
        let actor = if *id == ctx.session.id { Actor::SelfSession } else { Actor::OtherSession };
        let event = self.event(AuditKind::SessionRevoked, actor, client).reason("revoked");
        let mut batch = self.batch().await?;
        let ended = batch.end(SessionFilter::One { user: &ctx.user.id, id }, &event).await?;
        batch.commit().await?;
        if ended == 0 { Err(CoreError::NotFound) } else { Ok(()) }
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
        self.check_password(&ctx.user.email, current_password, client).await?;
        password::check_policy(new_password, &ctx.user.email).map_err(CoreError::WeakPassword)?;
        let hash = self.passwords.hash(new_password).await?;
        let mut batch = self.batch().await?;
        batch.tx.set_password(&ctx.user.id, &hash).await?;
        let rotated = self.apply(&mut batch, Trigger::PasswordChanged, &ctx.user.id, Some(ctx), client).await?;
        batch.audit(self.event(AuditKind::PasswordChanged, Actor::User, client).about(&ctx.session)).await?;
        batch.commit().await?;
        rotated.ok_or(CoreError::Unauthenticated)
    }

    /// Changes the e-mail address, with the same consequences as a password change.
    pub async fn change_email(
        &self,
        ctx: &SessionContext,
        current_password: &str,
        new_email: &str,
        client: &ClientInfo,
    ) -> Result<SessionContext, CoreError> {
        let email = email::normalize(new_email).ok_or(CoreError::InvalidEmail)?;
        self.check_password(&ctx.user.email, current_password, client).await?;
        let mut batch = self.batch().await?;
        match batch.tx.set_email(&ctx.user.id, &email).await {
            Err(StoreError::Conflict) => return Err(CoreError::EmailTaken),
            other => other?,
        }
        let rotated = self.apply(&mut batch, Trigger::EmailChanged, &ctx.user.id, Some(ctx), client).await?;
        batch.audit(self.event(AuditKind::EmailChanged, Actor::User, client).about(&ctx.session)).await?;
        batch.commit().await?;
        let mut rotated = rotated.ok_or(CoreError::Unauthenticated)?;
        rotated.user.email = email;
        Ok(rotated)
    }

    /// A user reports a security concern: every session and token of theirs ends, this one too.
    pub async fn report_concern(
        &self,
        ctx: &SessionContext,
        details: &str,
        client: &ClientInfo,
    ) -> Result<u64, CoreError> {
        let mut batch = self.batch().await?;
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
        let mut batch = self.batch().await?;
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
            Ends::Others => current.map(|ctx| &ctx.session.id),
            Ends::All => None,
        };
        let event = self.event(AuditKind::SessionRevoked, trigger.actor(), client).reason(trigger.reason());
        batch.end(SessionFilter::AllOf { user, keep }, &event).await?;
        batch.quiet |= !c.notify;
        if c.revoke_all_tokens {
            batch.tx.delete_remember(RememberFilter::AllOfUser(user)).await?;
        }
        if c.revoke_all_tokens {
            batch.tx.revoke_user_refresh(user).await?;
        }
        let token_version = if c.bump_token_version { Some(batch.bump_token_version(user).await?) } else { None };
        let (true, Some(ctx)) = (c.rotate_current && keep.is_some(), current) else {
            return Ok(None);
        };
        let secret = SessionSecret::generate();
        let id = SessionId::generate();
        if !batch.tx.rotate_session(&ctx.session.id, &id, &secret.hash()).await? {
            return Ok(None);
        }
        batch
            .audit(
                self.event(AuditKind::SessionRotated, Actor::Policy, client)
                    .reason(trigger.reason())
                    .about(&ctx.session),
            )
            .await?;
        batch.rekeyed.push((ctx.session.id.clone(), id.clone()));
        let mut rotated = ctx.clone();
        rotated.session.id = id;
        rotated.session.secret_hash = secret.hash();
        rotated.secret = secret;
        if let Some(v) = token_version {
            rotated.user.token_version = v;
        }
        Ok(Some(rotated))
    }

    /// Deletes every session past its end; run periodically by the server.
    pub async fn sweep_expired(&self) -> Result<u64, CoreError> {
        let now = self.now();
        let event = self.event(AuditKind::SessionExpired, Actor::Policy, &ClientInfo::default()).reason("expired");
        let mut batch = self.batch().await?;
        let ended =
            batch.end(SessionFilter::Expired { now, idle_cutoff: now - self.policy.idle_timeout }, &event).await?;
        batch.commit().await?;
        Ok(ended)
    }

    /// Applies what other processes put on the revocation feed after position `after` (ended
    /// sessions to the hub, denied tokens and token versions to the in-memory checks) and
    /// returns the new position. The server calls this in a loop; applying an entry this
    /// process already applied is harmless.
    pub async fn relay_revocations(&self, after: i64) -> Result<i64, CoreError> {
        let mut position = after;
        loop {
            let entries = self.store.revocations_since(position, 500).await?;
            let Some((last, _)) = entries.last() else { return Ok(position) };
            position = *last;
            let count = entries.len();
            let (sessions, tokens): (Vec<FeedEntry>, Vec<FeedEntry>) =
                entries.into_iter().map(|(_, e)| e).partition(|e| matches!(e, FeedEntry::Session(_)));
            self.tokens.apply(&tokens);
            let revoked: Vec<Revocation> = sessions
                .into_iter()
                .filter_map(|e| match e {
                    FeedEntry::Session(r) => Some(r),
                    _ => None,
                })
                .collect();
            self.sessions.remove(revoked.iter().map(|r| &r.session_id));
            self.hub.publish(&revoked);
            if count < 500 {
                return Ok(position);
            }
        }
    }

    /// Where the revocation feed ends now (a new process starts relaying from here).
    pub async fn revocation_head(&self) -> Result<i64, CoreError> {
        Ok(self.store.revocation_head().await?)
    }

    /// Drops feed entries older than an hour: every process has relayed them long since.
    pub async fn trim_revocation_feed(&self) -> Result<u64, CoreError> {
        let now = self.now();
        self.tokens.forget_expired(now.unix_timestamp());
        Ok(self.store.trim_revocations(now - Duration::hours(1), now).await?)
    }

    // ---- reading --------------------------------------------------------------------------

    /// A user's live sessions, most recently active first.
    pub async fn sessions_of(&self, user: &UserId) -> Result<Vec<Session>, CoreError> {
        let now = self.now();
        let mut sessions = self.store.user_sessions(user).await?;
        sessions.retain(|s| self.is_live(s, now));
        Ok(sessions)
    }

    pub async fn audit_of(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, CoreError> {
        Ok(self.store.user_audit(user, limit).await?)
    }

    /// Stores and logs an event that goes with no other change.
    async fn record(&self, event: AuditEvent) -> Result<(), CoreError> {
        let mut batch = self.batch().await?;
        batch.audit(event).await?;
        batch.commit().await
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
