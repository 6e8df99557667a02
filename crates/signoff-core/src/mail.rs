//! Mail to users (e-mail confirmation, password reset, notices): what a message is, and the
//! trait the server's transports implement (SMTP, or `.eml` files as the development inbox).
//!
//! A message carries nothing secret but its link, and is sent from the durable outbox, never
//! on a request's path.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::outbox::{Delivery, DeliveryKind, Destination};
use crate::secret::{Secret, SecretHash, UserId};

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
    /// The account as it was when the link was made ([`fingerprint`]): a password, address or
    /// token version changed by any path since makes the link useless without touching this row.
    pub fingerprint: SecretHash,
    /// The change of address this row stands for (a random id, kept in its outbox row): each
    /// attempt to send its link gives the row that link's hash, until it is used or replaced.
    pub request: Option<SecretHash>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

/// What a mailed link is bound to: the account's password hash, address and token version.
/// A link is honoured only while the account still matches it, so changing the password (by any
/// path, the command line included), the address, or ending every session ("log out
/// everywhere", a security report, an admin's revoke) kills every outstanding link at once.
pub fn fingerprint(password_hash: &str, email: &str, token_version: i64) -> SecretHash {
    let mut material = Vec::with_capacity(password_hash.len() + email.len() + 10);
    material.extend_from_slice(password_hash.as_bytes());
    material.push(0);
    material.extend_from_slice(email.as_bytes());
    material.push(0);
    material.extend_from_slice(&token_version.to_be_bytes());
    SecretHash::of(b"signoff mail-link account v1", &material)
}

/// A mailed link's token: 256 random bits, shown once in the link, stored only hashed.
#[derive(Debug)]
pub struct MailSecret(Secret);

impl MailSecret {
    const LABEL: &'static [u8] = b"signoff mail-link v1";

    pub fn generate() -> Self {
        Self(Secret::generate())
    }

    /// `None` for anything that is not a well-formed token.
    pub fn parse(encoded: &str) -> Option<Self> {
        Secret::parse(encoded).map(Self)
    }

    pub fn expose(&self) -> String {
        self.0.expose()
    }

    pub fn hash(&self) -> SecretHash {
        self.0.hash(Self::LABEL)
    }
}

/// What a mail to a user says. Its outbox row holds who it is for, never a link: the link's
/// token is made when the mail is sent (see [`Authority::prepare_mail`](crate::Authority::prepare_mail)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Letter {
    /// To the new address: the link that confirms it.
    EmailChangeLink,
    /// To the current address: a change to another was asked for (no link).
    EmailChangeNotice,
    /// To the account's address: the link that sets a new password.
    PasswordResetLink,
    /// To the account's address: the password was set through a reset link (no link).
    PasswordResetDone,
    /// To an address someone registered: queued for every registration, sent only when the
    /// address already had an account ("nothing was created; sign in or reset"), skipped for a
    /// new one. So neither the answer, the work nor `/metrics` tells the two apart, and the
    /// owner of a taken address learns of the attempt.
    Registration,
}

impl Letter {
    pub fn as_str(self) -> &'static str {
        match self {
            Letter::EmailChangeLink => "mail.email_change",
            Letter::EmailChangeNotice => "mail.email_change_notice",
            Letter::PasswordResetLink => "mail.password_reset",
            Letter::PasswordResetDone => "mail.password_reset_done",
            Letter::Registration => "mail.registration",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Letter::EmailChangeLink,
            Letter::EmailChangeNotice,
            Letter::PasswordResetLink,
            Letter::PasswordResetDone,
            Letter::Registration,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }

    /// Whether the worker processes this letter alike whoever the address belongs to (sent,
    /// or skipped for an address without an account), so counting it tells nothing about
    /// accounts. A change of address's link is queued only for a free address: not counted.
    pub fn counted_alike(self) -> bool {
        !matches!(self, Letter::EmailChangeLink)
    }

    /// The link this letter carries, if any.
    pub fn purpose(self) -> Option<MailPurpose> {
        match self {
            Letter::EmailChangeLink => Some(MailPurpose::EmailChange),
            Letter::PasswordResetLink => Some(MailPurpose::PasswordReset),
            Letter::EmailChangeNotice | Letter::PasswordResetDone | Letter::Registration => None,
        }
    }

    /// The outbox row that sends this letter as `request` says. Mail goes out in a few lanes
    /// (by recipient), so a slow mail server holds only a few of the outbox's sending slots.
    pub fn delivery(self, request: &MailRequest, now: OffsetDateTime) -> Delivery {
        let lane = SecretHash::of(b"signoff mail lane", request.to.as_bytes()).0[0] % MAIL_LANES;
        let payload = serde_json::to_string(request).unwrap_or_default();
        Delivery::pending(Destination::Mail { lane }, DeliveryKind::Mail, self.as_str(), payload, now)
    }
}

/// Lanes mail is sent in (each one message at a time).
pub const MAIL_LANES: u8 = 4;

/// What a mail row of the outbox holds: whom to write to and about what, never a link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailRequest {
    pub to: String,
    /// The account it is about (`None`: a reset asked for an address without one; nothing is
    /// sent, but the request costs the same as one that has).
    pub user_id: Option<String>,
    pub new_email: Option<String>,
    /// The account's [`fingerprint`] (hex) when it was asked for: a link is made only while the
    /// account still matches it, so whatever would kill a link kills a request not yet sent.
    pub fingerprint: Option<String>,
    /// The id (hex) of the change of address's stored row: each attempt gives the row its
    /// link's hash, and only while the row is still there (no newer request replaced it), so
    /// an older request can never outlive a newer one, and a retry still sends a link.
    pub placeholder: Option<String>,
    /// A registration that created the account (its [`Letter::Registration`] is not sent).
    #[serde(default)]
    pub created: bool,
}

/// A mail ready to be written: what it says, to whom, and its link's token if it has one.
#[derive(Debug)]
pub struct Prepared {
    pub letter: Letter,
    pub to: String,
    /// The address being confirmed (an e-mail change's link and notice).
    pub new_email: Option<String>,
    /// The link's token and when it stops working.
    pub link: Option<(MailSecret, OffsetDateTime)>,
}
