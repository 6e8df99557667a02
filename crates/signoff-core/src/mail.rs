//! Mail to users (e-mail confirmation, password reset, notices): what a message is, and the
//! trait the server's transports implement (SMTP, or `.eml` files as the development inbox).
//!
//! A message carries nothing secret but its link, and is sent from the durable outbox, never
//! on a request's path.

use async_trait::async_trait;

/// One message to one recipient, in plain text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
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
