//! The audit vocabulary: what happened to whom, from where, and who caused it.
//!
//! Every event is both stored (so `GET /auth/audit` can show users their own history) and
//! emitted as a structured log line under the `audit` target. Events never carry secrets:
//! session *ids* are public, session *secrets* never appear.

use serde::Serialize;
use time::OffsetDateTime;

use crate::secret::{SessionId, UserId};
use crate::store::Session;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Register,
    /// Someone tried to register an address that already has an account.
    RegisterExisting,
    Login,
    LoginFailed,
    Logout,
    /// A session ended by something other than its own logout.
    SessionRevoked,
    SessionExpired,
    /// A session kept its place but got a new id and secret.
    SessionRotated,
    PasswordChanged,
    EmailChanged,
    /// A link confirming a new address was asked for (sent if the address is free).
    EmailChangeRequested,
    /// A password reset link was asked for (and sent: the account exists).
    PasswordResetRequested,
    /// A new password was set through a reset link.
    PasswordReset,
    SecurityReport,
    AdminRevoke,
    /// A registered client had every credential of a user ended (Global Token Revocation; its
    /// `client_id` is the reason).
    GlobalTokenRevocation,
    /// A verified Security Event Token from an upstream transmitter ended a user's credentials.
    SignalReceived,
    /// An already-used remember-me validator came back: the series was revoked.
    RememberTokenReuse,
    /// An already-rotated refresh token came back: its family and session were revoked.
    RefreshTokenReuse,
    /// An access or refresh token was revoked (RFC 7009).
    TokenRevoked,
    /// An operator withdrew an access-token signing key (its `kid` is the reason).
    KeyRevoked,
    /// A browser's sign-in signed in to a relying party (its `client_id` is the reason).
    AppSignIn,
    /// A spent authorization code came back: what its first use issued was revoked.
    AuthorizationCodeReuse,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Register => "register",
            AuditKind::RegisterExisting => "register_existing",
            AuditKind::Login => "login",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::Logout => "logout",
            AuditKind::SessionRevoked => "session_revoked",
            AuditKind::SessionExpired => "session_expired",
            AuditKind::SessionRotated => "session_rotated",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::EmailChanged => "email_changed",
            AuditKind::EmailChangeRequested => "email_change_requested",
            AuditKind::PasswordResetRequested => "password_reset_requested",
            AuditKind::PasswordReset => "password_reset",
            AuditKind::SecurityReport => "security_report",
            AuditKind::AdminRevoke => "admin_revoke",
            AuditKind::GlobalTokenRevocation => "global_token_revocation",
            AuditKind::SignalReceived => "signal_received",
            AuditKind::RememberTokenReuse => "remember_token_reuse",
            AuditKind::RefreshTokenReuse => "refresh_token_reuse",
            AuditKind::TokenRevoked => "token_revoked",
            AuditKind::KeyRevoked => "key_revoked",
            AuditKind::AppSignIn => "app_sign_in",
            AuditKind::AuthorizationCodeReuse => "authorization_code_reuse",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL_KINDS.iter().copied().find(|k| k.as_str() == s)
    }

    /// Every kind there is (the OpenAPI document lists them; a test keeps it in step).
    pub fn all() -> &'static [AuditKind] {
        ALL_KINDS
    }
}

const ALL_KINDS: &[AuditKind] = &[
    AuditKind::Register,
    AuditKind::RegisterExisting,
    AuditKind::Login,
    AuditKind::LoginFailed,
    AuditKind::Logout,
    AuditKind::SessionRevoked,
    AuditKind::SessionExpired,
    AuditKind::SessionRotated,
    AuditKind::PasswordChanged,
    AuditKind::EmailChanged,
    AuditKind::EmailChangeRequested,
    AuditKind::PasswordResetRequested,
    AuditKind::PasswordReset,
    AuditKind::SecurityReport,
    AuditKind::AdminRevoke,
    AuditKind::GlobalTokenRevocation,
    AuditKind::SignalReceived,
    AuditKind::RememberTokenReuse,
    AuditKind::RefreshTokenReuse,
    AuditKind::KeyRevoked,
    AuditKind::TokenRevoked,
    AuditKind::AppSignIn,
    AuditKind::AuthorizationCodeReuse,
];

/// Longest free text an event keeps.
pub const MAX_DETAIL: usize = 1000;

/// Who caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The session itself (its own logout).
    #[serde(rename = "self")]
    SelfSession,
    /// Another session of the same user.
    OtherSession,
    /// A security policy (password change, expiry, superseded by a new sign-in).
    Policy,
    Admin,
    /// A registered client (Global Token Revocation).
    Client,
    /// Detected token reuse.
    Reuse,
    /// Nobody in particular: registration, sign-in.
    User,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::SelfSession => "self",
            Actor::OtherSession => "other_session",
            Actor::Policy => "policy",
            Actor::Admin => "admin",
            Actor::Client => "client",
            Actor::Reuse => "reuse",
            Actor::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Actor::SelfSession, Actor::OtherSession, Actor::Policy, Actor::Admin, Actor::Client, Actor::Reuse, Actor::User]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// Where a request came from, for session records and audit events.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: Option<String>,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub kind: AuditKind,
    pub at: OffsetDateTime,
    pub user_id: Option<UserId>,
    pub session_id: Option<SessionId>,
    /// The logout scope, for logouts.
    pub scope: Option<String>,
    /// Why, in a stable word (`local`, `bad_password`, `expired`, `superseded`, …).
    pub reason: Option<String>,
    /// Free text from a person (a security report's details, an admin's reason), capped.
    pub detail: Option<String>,
    pub actor: Actor,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl AuditEvent {
    /// An event of `kind` caused by `actor`, from `client`, at `at`; the builder methods below
    /// fill in the rest.
    pub fn new(kind: AuditKind, actor: Actor, at: OffsetDateTime, client: &ClientInfo) -> Self {
        Self {
            kind,
            at,
            user_id: None,
            session_id: None,
            scope: None,
            reason: None,
            detail: None,
            actor,
            ip: (!client.ip.is_empty()).then(|| client.ip.clone()),
            user_agent: client.user_agent.clone(),
        }
    }

    pub fn user(mut self, id: &UserId) -> Self {
        self.user_id = Some(id.clone());
        self
    }

    pub fn session(mut self, id: &SessionId) -> Self {
        self.session_id = Some(id.clone());
        self
    }

    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.to_owned());
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    /// Attaches free text, cut to [`MAX_DETAIL`] characters.
    pub fn detail(mut self, text: &str) -> Self {
        let text = text.trim();
        if !text.is_empty() {
            self.detail = Some(text.chars().take(MAX_DETAIL).collect());
        }
        self
    }

    /// This event, about `session` (its user and id filled in).
    pub fn about(&self, session: &Session) -> Self {
        self.clone().user(&session.user_id).session(&session.id)
    }

    /// Writes the structured log line for this event.
    pub fn log(&self) {
        tracing::info!(
            target: "audit",
            event = self.kind.as_str(),
            user_id = self.user_id.as_ref().map(UserId::as_str),
            session_id = self.session_id.as_ref().map(SessionId::as_str),
            scope = self.scope.as_deref(),
            reason = self.reason.as_deref(),
            detail = self.detail.as_deref(),
            actor = self.actor.as_str(),
            ip = self.ip.as_deref(),
            user_agent = self.user_agent.as_deref(),
            "audit"
        );
    }
}
