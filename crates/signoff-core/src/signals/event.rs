//! Security events as Security Event Tokens (RFC 8417) under Shared Signals 1.0: CAEP
//! `session-revoked`, `credential-change` and `token-claims-change`, and the framework's
//! `verification` and `stream-updated`. One event per SET, its subject in the top-level `sub_id`
//! (RFC 9493), as the CAEP interoperability profile asks. Every session of a user ending is CAEP
//! `session-revoked` about the user alone, which RISC now points to in place of its own
//! `sessions-revoked`; that is still sent to a stream that asks for it (receivers built on RISC).

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::signals::StreamStatus;

/// CAEP 1.0: a session of the subject ended.
pub const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP 1.0: a credential of the subject changed (signoff's: its password).
pub const CREDENTIAL_CHANGE: &str = "https://schemas.openid.net/secevent/caep/event-type/credential-change";
/// CAEP 1.0: claims in tokens issued for the subject changed (signoff's: its e-mail address).
pub const TOKEN_CLAIMS_CHANGE: &str = "https://schemas.openid.net/secevent/caep/event-type/token-claims-change";
/// SSF 1.0 §8.1.4: the answer to a verification request.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
/// SSF 1.0 §8.1.5: the transmitter changed the stream's status.
pub const STREAM_UPDATED: &str = "https://schemas.openid.net/secevent/ssf/event-type/stream-updated";

/// RISC 1.0: every session of the subject ended.
pub const RISC_SESSIONS_REVOKED: &str = "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked";

/// The events a receiver may ask for (`events_supported`); the framework's two are sent to every
/// stream whatever it asked.
pub const SUPPORTED: [&str; 4] = [SESSION_REVOKED, CREDENTIAL_CHANGE, TOKEN_CLAIMS_CHANGE, RISC_SESSIONS_REVOKED];

/// Who made the change happen (CAEP §3 `initiating_entity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator {
    Admin,
    User,
    Policy,
    System,
}

impl Initiator {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
            Self::Policy => "policy",
            Self::System => "system",
        }
    }
}

/// One security event about one subject. `reason` is said to administrators (`reason_admin`,
/// which the interoperability profile wants non-empty: signoff always has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityEvent {
    /// A browser's sign-in of the user ended (`signin`: its id, the OpenID `sid`, which survives
    /// the session's rotation): the subject is the user by address with the session; or, with
    /// no `signin`, every session of the user did (log out everywhere): the user alone.
    SessionRevoked { email: String, signin: Option<String>, reason: String, by: Initiator, at: OffsetDateTime },
    /// RISC's name for every session of the user ending (sent only to streams that ask for it).
    SessionsRevoked { email: String, by: Initiator, at: OffsetDateTime },
    /// The user's password changed (or was set through a reset link).
    PasswordChanged { email: String, reason: String, by: Initiator, at: OffsetDateTime },
    /// The user's address changed: tokens now carry `email`; the subject is named by the old one.
    EmailChanged { old_email: String, new_email: String, by: Initiator, at: OffsetDateTime },
    /// The answer to a verification request of stream `stream_id` (`state` echoed).
    Verification { stream_id: String, state: Option<String> },
    /// Stream `stream_id`'s status changed.
    StreamUpdated { stream_id: String, status: StreamStatus, reason: Option<String> },
}

fn email_subject(email: &str) -> Value {
    json!({"format": "email", "email": email})
}

fn in_english(text: &str) -> Value {
    json!({"en": text})
}

impl SecurityEvent {
    /// The event type URI.
    pub fn type_uri(&self) -> &'static str {
        match self {
            Self::SessionRevoked { .. } => SESSION_REVOKED,
            Self::SessionsRevoked { .. } => RISC_SESSIONS_REVOKED,
            Self::PasswordChanged { .. } => CREDENTIAL_CHANGE,
            Self::EmailChanged { .. } => TOKEN_CLAIMS_CHANGE,
            Self::Verification { .. } => VERIFICATION,
            Self::StreamUpdated { .. } => STREAM_UPDATED,
        }
    }

    /// Whether every stream gets it, whatever it asked for (SSF §8.1.4, §8.1.5).
    pub fn always_sent(&self) -> bool {
        matches!(self, Self::Verification { .. } | Self::StreamUpdated { .. })
    }

    /// The subject (`sub_id`).
    pub fn subject(&self) -> Value {
        match self {
            Self::SessionRevoked { email, signin: Some(signin), .. } => json!({
                "format": "complex",
                "user": email_subject(email),
                "session": {"format": "opaque", "id": signin},
            }),
            Self::SessionRevoked { email, signin: None, .. }
            | Self::SessionsRevoked { email, .. }
            | Self::PasswordChanged { email, .. } => email_subject(email),
            Self::EmailChanged { old_email, .. } => email_subject(old_email),
            Self::Verification { stream_id, .. } | Self::StreamUpdated { stream_id, .. } => {
                json!({"format": "opaque", "id": stream_id})
            }
        }
    }

    /// The key of the user the event is about, as a stream's excluded subjects hold it (see
    /// [`crate::subject::SubjectId::keys`]); `None` for the stream's own events.
    pub fn user_key(&self) -> Option<String> {
        match self {
            Self::SessionRevoked { email, .. }
            | Self::SessionsRevoked { email, .. }
            | Self::PasswordChanged { email, .. } => Some(format!("email:{email}")),
            Self::EmailChanged { old_email, .. } => Some(format!("email:{old_email}")),
            Self::Verification { .. } | Self::StreamUpdated { .. } => None,
        }
    }

    /// The event's own members (the value under its type URI in `events`).
    pub fn payload(&self) -> Value {
        match self {
            // RISC receivers read the subject inside the event (RISC 1.0), SSF ones in `sub_id`.
            Self::SessionsRevoked { email, by, at } => json!({
                "subject": email_subject(email),
                "event_timestamp": at.unix_timestamp(),
                "initiating_entity": by.as_str(),
            }),
            Self::SessionRevoked { reason, by, at, .. } => json!({
                "event_timestamp": at.unix_timestamp(),
                "initiating_entity": by.as_str(),
                "reason_admin": in_english(reason),
            }),
            Self::PasswordChanged { reason, by, at, .. } => json!({
                "credential_type": "password",
                "change_type": "update",
                "event_timestamp": at.unix_timestamp(),
                "initiating_entity": by.as_str(),
                "reason_admin": in_english(reason),
            }),
            Self::EmailChanged { new_email, by, at, .. } => json!({
                "claims": {"email": new_email},
                "event_timestamp": at.unix_timestamp(),
                "initiating_entity": by.as_str(),
                "reason_admin": in_english("the user's e-mail address changed"),
            }),
            Self::Verification { state, .. } => match state {
                Some(state) => json!({"state": state}),
                None => json!({}),
            },
            Self::StreamUpdated { status, reason, .. } => match reason {
                Some(reason) => json!({"status": status.as_str(), "reason": reason}),
                None => json!({"status": status.as_str()}),
            },
        }
    }

    /// The SET's claims: `iss`, `aud` (the receiver's client id), `iat` (seconds), `jti`,
    /// `sub_id`, `events` with this one event, and `txn`, shared by every SET that tells of the
    /// same change (SSF §4.1.8). No `sub` and no `exp` (SSF §4.1.9).
    pub fn claims(&self, iss: &str, aud: &str, jti: &str, iat: OffsetDateTime, txn: &str) -> Value {
        json!({
            "iss": iss,
            "aud": aud,
            "iat": iat.unix_timestamp(),
            "jti": jti,
            "txn": txn,
            "sub_id": self.subject(),
            "events": {self.type_uri(): self.payload()},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_revoked_set_names_the_user_by_address_with_the_session_and_nothing_forbidden() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let e = SecurityEvent::SessionRevoked {
            email: "ada@example.com".into(),
            signin: Some("s1".into()),
            reason: "logout".into(),
            by: Initiator::User,
            at: at + time::Duration::milliseconds(700),
        };
        let c = e.claims("https://auth.example", "client-1", "jti-1", at + time::Duration::seconds(1), "txn-1");
        assert_eq!(c["iss"], "https://auth.example");
        assert_eq!(c["aud"], "client-1");
        assert_eq!(c["txn"], "txn-1");
        assert_eq!(c["sub_id"]["format"], "complex");
        assert_eq!(c["sub_id"]["user"], json!({"format": "email", "email": "ada@example.com"}));
        assert_eq!(c["sub_id"]["session"], json!({"format": "opaque", "id": "s1"}));
        let events = c["events"].as_object().expect("events");
        assert_eq!(events.len(), 1, "one event per SET");
        let payload = &events[SESSION_REVOKED];
        assert_eq!(payload["initiating_entity"], "user");
        assert_eq!(payload["event_timestamp"], 1_800_000_000, "seconds");
        assert_eq!(c["iat"], 1_800_000_001);
        assert_eq!(payload["reason_admin"]["en"], "logout", "the interoperability profile wants it non-empty");
        assert!(c.get("sub").is_none() && c.get("exp").is_none(), "SSF forbids sub and exp");
    }

    #[test]
    fn everywhere_names_the_user_alone() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let e = SecurityEvent::SessionRevoked {
            email: "ada@example.com".into(),
            signin: None,
            reason: "logout everywhere".into(),
            by: Initiator::User,
            at,
        };
        assert_eq!(e.type_uri(), SESSION_REVOKED);
        assert_eq!(e.subject(), json!({"format": "email", "email": "ada@example.com"}));
        let risc = SecurityEvent::SessionsRevoked { email: "ada@example.com".into(), by: Initiator::User, at };
        assert_eq!(risc.type_uri(), RISC_SESSIONS_REVOKED);
        assert_eq!(risc.subject(), e.subject(), "the same subject under RISC's name");
        assert!(SUPPORTED.contains(&RISC_SESSIONS_REVOKED), "offered to receivers built on RISC");
    }

    #[test]
    fn each_change_has_its_event_type_and_members() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let password = SecurityEvent::PasswordChanged {
            email: "a@x.io".into(),
            reason: "password_reset".into(),
            by: Initiator::User,
            at,
        };
        assert_eq!(password.type_uri(), CREDENTIAL_CHANGE);
        assert_eq!(password.payload()["credential_type"], "password");
        assert_eq!(password.payload()["change_type"], "update");
        let email = SecurityEvent::EmailChanged {
            old_email: "a@x.io".into(),
            new_email: "b@x.io".into(),
            by: Initiator::User,
            at,
        };
        assert_eq!(email.type_uri(), TOKEN_CLAIMS_CHANGE);
        assert_eq!(email.subject(), json!({"format": "email", "email": "a@x.io"}), "named as the receiver knew them");
        assert_eq!(email.payload()["claims"], json!({"email": "b@x.io"}));
        let updated =
            SecurityEvent::StreamUpdated { stream_id: "st".into(), status: StreamStatus::Paused, reason: None };
        assert_eq!(updated.payload(), json!({"status": "paused"}));
        let verify = SecurityEvent::Verification { stream_id: "st".into(), state: Some("abc".into()) };
        assert!(verify.always_sent());
        assert_eq!(verify.subject(), json!({"format": "opaque", "id": "st"}));
        assert_eq!(verify.payload(), json!({"state": "abc"}));
        assert_eq!(SecurityEvent::Verification { stream_id: "st".into(), state: None }.payload(), json!({}));
        assert_eq!(verify.user_key(), None);
        assert_eq!(email.user_key().as_deref(), Some("email:a@x.io"));
    }
}
