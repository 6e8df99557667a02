//! Mail to users (e-mail confirmation, password reset, notices): what a message is, and the
//! trait the server's transports implement (SMTP, or `.eml` files as the development inbox).
//!
//! A message carries nothing secret but its link, and is sent from the durable outbox, never
//! on a request's path.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::secret::{SecretHash, UserId};

/// One message to one recipient, in plain text and HTML. Its `Debug` leaves the bodies out:
/// they carry a live link.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail").field("to", &self.to).field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Worth trying again later (the server is unreachable, busy, or answered 4xx).
    #[error("mail not sent yet: {0}")]
    Temporary(String),
    /// Never worth trying again (a malformed address, a 5xx refusal of the recipient).
    #[error("mail refused: {0}")]
    Permanent(String),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// What a mailed link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailPurpose {
    /// Confirms a new e-mail address (the token is mailed to that address).
    EmailChange,
    /// Sets a new password, ending every session.
    PasswordReset,
}

impl MailPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            MailPurpose::EmailChange => "email_change",
            MailPurpose::PasswordReset => "password_reset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email_change" => Some(MailPurpose::EmailChange),
            "password_reset" => Some(MailPurpose::PasswordReset),
            _ => None,
        }
    }
}

/// A mailed link's token as stored: only its hash. Single use (`used_at`), until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailToken {
    pub hash: SecretHash,
    pub purpose: MailPurpose,
    pub user_id: UserId,
    /// The address being confirmed (e-mail change).
    pub new_email: Option<String>,
    /// A hash of the user's password hash when the link was made (password reset): a password
    /// changed by any other path makes the link useless without touching this row.
    pub password_fingerprint: Option<SecretHash>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}
