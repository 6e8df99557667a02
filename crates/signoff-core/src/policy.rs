//! Security triggers and logout scopes as policy, in one place: for each event or scope, which
//! sessions end, which tokens die, whether the token version is bumped, and whether the current
//! session is rotated. Every path that reacts to a security event (password change, e-mail
//! change, a user's report, an admin's revoke) or ends sessions at a user's request (logout in
//! each scope) reads its consequences from here: a new scope or trigger that combines these
//! consequences is one enum arm and one row (a new kind of consequence also needs
//! `Authority::logout` or `Authority::apply` to learn it).

use crate::audit::Actor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    PasswordChanged,
    /// A new password set through a mailed reset link (whoever holds a session may be the
    /// attacker the owner is locking out: every session ends, the one that asked included).
    PasswordReset,
    EmailChanged,
    SecurityReport,
    AdminRevoke,
    /// A registered client allowed to ask for every credential of a user to end (Global Token
    /// Revocation): as an admin's revoke.
    GlobalTokenRevocation,
    /// A verified security event from an upstream transmitter (a session revoked, a credential
    /// changed, an account disabled): as an admin's revoke.
    SharedSignal,
}

/// Which of the user's sessions end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ends {
    /// Every session but the one that made the change.
    Others,
    /// Every session, the current one included.
    All,
}

/// What a trigger does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consequences {
    pub ends: Ends,
    /// Every remember-me (and, with tokens, refresh) token of the user dies.
    pub revoke_all_tokens: bool,
    /// Every access token issued before dies at once.
    pub bump_token_version: bool,
    /// The surviving current session gets a new id and secret.
    pub rotate_current: bool,
    /// Open pages of ended sessions are told (always, today; kept explicit).
    pub notify: bool,
}

impl Trigger {
    pub const fn consequences(self) -> Consequences {
        match self {
            Trigger::PasswordChanged | Trigger::EmailChanged => Consequences {
                ends: Ends::Others,
                revoke_all_tokens: true,
                bump_token_version: true,
                rotate_current: true,
                notify: true,
            },
            Trigger::PasswordReset
            | Trigger::SecurityReport
            | Trigger::AdminRevoke
            | Trigger::GlobalTokenRevocation
            | Trigger::SharedSignal => Consequences {
                ends: Ends::All,
                revoke_all_tokens: true,
                bump_token_version: true,
                rotate_current: false,
                notify: true,
            },
        }
    }

    /// The reason recorded on every session this trigger ends.
    pub const fn reason(self) -> &'static str {
        match self {
            Trigger::PasswordChanged => "password_changed",
            Trigger::PasswordReset => "password_reset",
            Trigger::EmailChanged => "email_changed",
            Trigger::SecurityReport => "security_report",
            Trigger::AdminRevoke => "admin_revoke",
            Trigger::GlobalTokenRevocation => "global_token_revocation",
            Trigger::SharedSignal => "shared_signal",
        }
    }

    pub const fn actor(self) -> Actor {
        match self {
            Trigger::AdminRevoke => Actor::Admin,
            Trigger::GlobalTokenRevocation | Trigger::SharedSignal => Actor::Client,
            _ => Actor::Policy,
        }
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

/// What a logout scope does, applied by [`Authority::logout`](crate::Authority::logout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogoutRule {
    /// The browser's own session ends (and the remember-me series it is bound to), and its
    /// cookies and storage are cleared.
    pub ends_this: bool,
    /// Every other session and remember-me series of the user ends.
    pub ends_others: bool,
    /// Every access token issued before dies at once (the user's token version is bumped).
    pub bump_token_version: bool,
    /// The credentials presented besides the session die: the access token is denied until it
    /// expires, the refresh token's family ends, the remember-me series ends. A logout that
    /// finds no session always kills them, whatever the scope.
    pub kills_presented: bool,
}

impl LogoutScope {
    /// Every scope, in the order the contract lists them.
    pub const ALL: [LogoutScope; 3] = [LogoutScope::Local, LogoutScope::Others, LogoutScope::Global];

    /// What this scope ends: the table behind every logout.
    pub const fn rule(self) -> LogoutRule {
        match self {
            LogoutScope::Local => {
                LogoutRule { ends_this: true, ends_others: false, bump_token_version: false, kills_presented: true }
            }
            LogoutScope::Others => {
                LogoutRule { ends_this: false, ends_others: true, bump_token_version: false, kills_presented: false }
            }
            LogoutScope::Global => {
                LogoutRule { ends_this: true, ends_others: true, bump_token_version: true, kills_presented: true }
            }
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Others => "others",
            Self::Global => "global",
        }
    }
}
