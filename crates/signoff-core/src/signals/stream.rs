//! An SSF stream: one receiver's (a registered client's) configuration of what it is sent and
//! how. Its `aud` is the client's id; its `iss` signoff's issuer.

use time::OffsetDateTime;

/// How a stream's events reach its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMethod {
    /// RFC 8935: signoff `POST`s each event to the receiver's `endpoint_url`.
    Push,
    /// RFC 8936: the receiver polls signoff's endpoint for the stream.
    Poll,
}

impl DeliveryMethod {
    pub const PUSH_URN: &'static str = "urn:ietf:rfc:8935";
    pub const POLL_URN: &'static str = "urn:ietf:rfc:8936";

    /// The method's URI (SSF §8.1.1).
    pub fn urn(self) -> &'static str {
        match self {
            Self::Push => Self::PUSH_URN,
            Self::Poll => Self::POLL_URN,
        }
    }

    pub fn from_urn(urn: &str) -> Option<Self> {
        match urn {
            Self::PUSH_URN => Some(Self::Push),
            Self::POLL_URN => Some(Self::Poll),
            _ => None,
        }
    }

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Poll => "poll",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Push, Self::Poll].into_iter().find(|m| m.as_str() == s)
    }
}

/// Whether a stream's events flow (SSF §8.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Events are sent.
    Enabled,
    /// Events are held, and sent once the stream is enabled again.
    Paused,
    /// Events are dropped.
    Disabled,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Enabled, Self::Paused, Self::Disabled].into_iter().find(|m| m.as_str() == s)
    }
}

/// One stream as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalStream {
    /// `stream_id`: random, of URL-safe characters.
    pub id: String,
    /// The receiver: a registered client (the stream's `aud`).
    pub client_id: String,
    pub description: Option<String>,
    /// The event type URIs the receiver asked for, as it gave them (in its order, without
    /// repeats); those signoff sends are `events_delivered`.
    pub events_requested: Vec<String>,
    pub method: DeliveryMethod,
    /// Push: where events go (checked as every callback URL is).
    pub endpoint_url: Option<String>,
    /// Push: the `Authorization` header the receiver asked to be sent with each event. Kept as
    /// given: signoff must send it.
    pub authorization_header: Option<String>,
    pub status: StreamStatus,
    /// Why the status was last set, as the receiver (or signoff) said.
    pub reason: Option<String>,
    /// Subjects the receiver removed (`remove_subject`), by their key (see
    /// [`crate::subject::SubjectId::keys`]): events about them are not sent. Every other subject is
    /// in (`default_subjects: "ALL"`).
    pub excluded_subjects: Vec<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Moved on by each update (which is made only over the version it was read at).
    pub version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_statuses_read_back_what_they_write() {
        for m in [DeliveryMethod::Push, DeliveryMethod::Poll] {
            assert_eq!(DeliveryMethod::parse(m.as_str()), Some(m));
            assert_eq!(DeliveryMethod::from_urn(m.urn()), Some(m));
        }
        assert_eq!(DeliveryMethod::from_urn("https://schemas.openid.net/secevent/risc/delivery-method/push"), None);
        for s in [StreamStatus::Enabled, StreamStatus::Paused, StreamStatus::Disabled] {
            assert_eq!(StreamStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(StreamStatus::parse("Enabled"), None);
    }
}
