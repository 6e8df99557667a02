//! Security triggers as policy, in one place: for each event, which sessions end, which tokens
//! die, whether the token version is bumped, and whether the current session is rotated.
//! Every path that reacts to a security event (password change, e-mail change, a user's
//! report, an admin's revoke, "log out everywhere") reads its consequences from here.

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
            Trigger::PasswordReset | Trigger::SecurityReport | Trigger::AdminRevoke => Consequences {
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
        }
    }

    pub const fn actor(self) -> Actor {
        match self {
            Trigger::AdminRevoke => Actor::Admin,
            _ => Actor::Policy,
        }
    }
}
