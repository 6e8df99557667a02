//! The session authority: the one owner of sign-in, authentication and logout.
//!
//! Every entry point (JSON API, HTML forms, CLI, admin) goes through these methods, so "what
//! happens at logout" has exactly one answer: [`Authority::logout`], which like every other way
//! of ending sessions goes through [`Authority::end`].

use std::sync::Arc;
use time::{Duration, OffsetDateTime};

pub use crate::audit::ClientInfo;
use crate::audit::{Actor, AuditEvent, AuditKind};
use crate::clock::Clock;
use crate::email;
use crate::error::CoreError;
use crate::password::{self, Passwords};
use crate::secret::{SessionId, SessionSecret, UserId};
use crate::store::{Session, SessionFilter, Store, StoreError, User};
use crate::throttle::{LoginThrottle, ThrottlePolicy};

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A session unused for this long is over.
    pub idle_timeout: Duration,
    /// A session is over this long after sign-in, however busy.
    pub absolute_lifetime: Duration,
    /// `last_active_at` is written at most this often, so validation stays read-mostly.
    pub touch_interval: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::minutes(30),
            absolute_lifetime: Duration::hours(10),
            touch_interval: Duration::minutes(1),
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
}

impl Authority {
    pub async fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: SessionPolicy,
        throttle: ThrottlePolicy,
    ) -> Result<Self, CoreError> {
        Ok(Self { store, clock, passwords: Passwords::new().await?, throttle: LoginThrottle::new(throttle), policy })
    }

    /// Now, to the millisecond: the precision stores keep, so a record read back equals the
    /// one written.
    pub fn now(&self) -> OffsetDateTime {
        let now = self.clock.now();
        now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now)
    }

    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
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
        let event = self.event(AuditKind::Register, Actor::User, client).user(&user.id);
        self.store.create_user(&user, &hash, &event).await?;
        event.log();
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

    /// Checks credentials and opens a brand-new session. `previous` is whatever session secret
    /// the client sent along: it is never reused, and if it is live it is ended, so a planted
    /// cookie cannot survive a sign-in.
    pub async fn login(
        &self,
        raw_email: &str,
        password: &str,
        previous: Option<&SessionSecret>,
        client: &ClientInfo,
    ) -> Result<SessionContext, CoreError> {
        let now = self.now();
        // An unparseable address is just another wrong credential: same answer, same cost.
        let key = email::normalize(raw_email).unwrap_or_else(|| raw_email.trim().to_lowercase());
        if let Some(wait) = self.throttle.check(&key, &client.ip, now) {
            tracing::warn!(target: "audit", event = "login_throttled", ip = %client.ip, "sign-in refused: too many failures");
            return Err(CoreError::Throttled(wait));
        }
        let account = self.store.user_by_email(&key).await?;
        let ok = self.passwords.verify(password, account.as_ref().map(|a| a.password_hash.as_str())).await?;
        let user = match account {
            Some(account) if ok => account.user,
            other => {
                self.throttle.record_failure(&key, &client.ip, now);
                let event = self.event(AuditKind::LoginFailed, Actor::User, client).reason("bad_credentials");
                match other {
                    Some(account) => self.record(event.user(&account.user.id)).await?,
                    None => event.log(),
                }
                return Err(CoreError::InvalidCredentials);
            }
        };
        self.throttle.record_success(&key);

        if let Some(previous) = previous
            && let Some(old) = self.peek(previous).await?
        {
            let event = self.event(AuditKind::SessionRevoked, Actor::Policy, client).reason("superseded");
            self.end(SessionFilter::One { user: &old.user.id, id: &old.session.id }, event).await?;
        }

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
        let event = self.event(AuditKind::Login, Actor::User, client).reason("password").about(&session);
        self.store.insert_session(&session, &event).await?;
        event.log();
        Ok(SessionContext { session, user, secret })
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
        let Some((mut session, user)) = self.store.session_by_hash(&secret.hash()).await? else {
            return Ok(None);
        };
        let now = self.now();
        if !self.is_live(&session, now) {
            let event = self.event(AuditKind::SessionExpired, Actor::Policy, &ClientInfo::default()).reason("expired");
            self.end(SessionFilter::One { user: &user.id, id: &session.id }, event).await?;
            return Ok(None);
        }
        if touch && now - session.last_active_at >= self.policy.touch_interval {
            self.store.touch_session(&session.id, now).await?;
            session.last_active_at = now;
        }
        Ok(Some(SessionContext { session, user, secret: secret.clone() }))
    }

    // ---- logout and revocation ------------------------------------------------------------

    /// Ends sessions for a logout and returns how many ended. `current` is the caller's
    /// session, if it has a live one; without one this is a quiet no-op that still leaves an
    /// audit line in the log.
    pub async fn logout(
        &self,
        current: Option<&SessionContext>,
        scope: LogoutScope,
        client: &ClientInfo,
    ) -> Result<u64, CoreError> {
        let Some(ctx) = current else {
            self.event(AuditKind::Logout, Actor::SelfSession, client).scope(scope.as_str()).reason("no_session").log();
            return Ok(0);
        };
        let user = &ctx.user.id;
        let mut ended = 0;
        if scope != LogoutScope::Local {
            let event = self
                .event(AuditKind::SessionRevoked, Actor::OtherSession, client)
                .scope(scope.as_str())
                .reason("logout");
            ended += self.end(SessionFilter::AllOf { user, keep: Some(&ctx.session.id) }, event).await?;
        }
        if scope.ends_current() {
            let event =
                self.event(AuditKind::Logout, Actor::SelfSession, client).scope(scope.as_str()).reason(scope.as_str());
            ended += self.end(SessionFilter::One { user, id: &ctx.session.id }, event).await?;
        }
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
        match self.end(SessionFilter::One { user: &ctx.user.id, id }, event).await? {
            0 => Err(CoreError::NotFound),
            _ => Ok(()),
        }
    }

    /// Deletes every session past its end; run periodically by the server.
    pub async fn sweep_expired(&self) -> Result<u64, CoreError> {
        let now = self.now();
        let event = self.event(AuditKind::SessionExpired, Actor::Policy, &ClientInfo::default()).reason("expired");
        self.end(SessionFilter::Expired { now, idle_cutoff: now - self.policy.idle_timeout }, event).await
    }

    /// The one way sessions end: deleted and audited in one store transaction, then logged.
    async fn end(&self, filter: SessionFilter<'_>, event: AuditEvent) -> Result<u64, CoreError> {
        let ended = self.store.end_sessions(filter, &event).await?;
        for s in &ended {
            event.about(s).log();
        }
        Ok(ended.len() as u64)
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
        self.store.append_audit(&event).await?;
        event.log();
        Ok(())
    }
}
