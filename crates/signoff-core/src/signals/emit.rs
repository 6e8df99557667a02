//! What the streams are told of a batch: the changes it made about users ([`Change`]), each
//! turned into one Security Event Token per stream that asked for its event type and did not
//! remove its subject, written to the outbox in the batch's own transaction.

use std::collections::HashMap;

use serde_json::json;
use time::OffsetDateTime;

use crate::audit::Actor;
use crate::email;
use crate::outbox::{Delivery, DeliveryKind, DeliveryStatus, Destination};
use crate::secret::{SigninId, UserId, random_id};
use crate::signals::{DeliveryMethod, Initiator, SecurityEvent, SignalStream};

/// A change about a user that streams may be told of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One sign-in's session ended (its `sid`, which survives the session's rotations).
    SessionEnded { user: UserId, signin: SigninId, reason: String, by: Initiator, at: OffsetDateTime },
    /// Every session of the user ended at once (log out everywhere, a reset, an administrator).
    AllSessionsEnded { user: UserId, reason: String, by: Initiator, at: OffsetDateTime },
    /// The password changed, or was set through a reset link.
    PasswordChanged { user: UserId, reason: String, by: Initiator, at: OffsetDateTime },
    /// The address changed from `old_email` (how receivers knew the user) to `new_email`.
    EmailChanged { user: UserId, old_email: String, new_email: String, by: Initiator, at: OffsetDateTime },
}

impl Change {
    pub fn user(&self) -> &UserId {
        match self {
            Self::SessionEnded { user, .. }
            | Self::AllSessionsEnded { user, .. }
            | Self::PasswordChanged { user, .. }
            | Self::EmailChanged { user, .. } => user,
        }
    }

    /// The events, the user named by `email` (as receivers know them): one, or for every session
    /// ending, CAEP's and RISC's (each stream gets those it asked for).
    fn events(&self, email: &str) -> Vec<SecurityEvent> {
        if let Self::AllSessionsEnded { by, at, .. } = self {
            let risc = SecurityEvent::SessionsRevoked { email: email.to_owned(), by: *by, at: *at };
            return vec![self.event(email), risc];
        }
        vec![self.event(email)]
    }

    fn event(&self, email: &str) -> SecurityEvent {
        let email = email.to_owned();
        match self.clone() {
            Self::SessionEnded { signin, reason, by, at, .. } => {
                SecurityEvent::SessionRevoked { email, signin: Some(signin.to_string()), reason, by, at }
            }
            Self::AllSessionsEnded { reason, by, at, .. } => {
                SecurityEvent::SessionRevoked { email, signin: None, reason, by, at }
            }
            Self::PasswordChanged { reason, by, at, .. } => SecurityEvent::PasswordChanged { email, reason, by, at },
            Self::EmailChanged { old_email, new_email, by, at, .. } => {
                SecurityEvent::EmailChanged { old_email, new_email, by, at }
            }
        }
    }
}

impl Initiator {
    /// Who an audit event's actor is to a receiver.
    pub fn of(actor: Actor) -> Self {
        match actor {
            Actor::SelfSession | Actor::OtherSession | Actor::User => Self::User,
            // A client asking for Global Token Revocation acts for an administrator of its own.
            Actor::Admin | Actor::Client => Self::Admin,
            Actor::Policy | Actor::Reuse => Self::Policy,
        }
    }
}

/// Where a poll stream's events wait (the `url` of their outbox rows).
pub fn poll_url(stream_id: &str) -> String {
    format!("poll:{stream_id}")
}

/// The keys a user is known by in a stream's removed subjects (see
/// [`crate::subject::SubjectId::keys`]): the address, the user id, and the user id under
/// signoff's issuer.
fn user_keys(user: &UserId, email: &str, issuer: &str) -> [String; 3] {
    [
        format!("email:{}", email::account_key(email)),
        format!("opaque:{user}"),
        format!("iss_sub:{}|{user}", issuer.trim_end_matches('/')),
    ]
}

/// The outbox rows that tell `streams` of `changes`; `emails` names each user as receivers know
/// them (a user not in it is gone: nothing is said of them). One `txn` for the whole batch.
pub fn deliveries(
    changes: &[Change],
    emails: &HashMap<UserId, String>,
    streams: &[SignalStream],
    issuer: &str,
    now: OffsetDateTime,
) -> Vec<Delivery> {
    let txn = random_id();
    let mut out = Vec::new();
    for change in changes {
        let Some(email) = emails.get(change.user()) else { continue };
        let keys = user_keys(change.user(), email, issuer);
        for event in change.events(email) {
            for stream in streams {
                if stream.excluded_subjects.iter().any(|x| keys.contains(x)) {
                    continue;
                }
                if let Some(d) = set_for(stream, &event, issuer, &txn, now) {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// The outbox row of one event for one stream, if the stream is to be sent it: it asked for its
/// type (or the event goes to every stream) and it is not disabled. Its payload keeps the stream
/// and the SET's claims; it is signed when sent (or polled), the same claims on every attempt.
pub fn set_for(
    stream: &SignalStream,
    event: &SecurityEvent,
    issuer: &str,
    txn: &str,
    now: OffsetDateTime,
) -> Option<Delivery> {
    let wanted = event.always_sent() || stream.events_requested.iter().any(|t| t == event.type_uri());
    if !wanted || stream.status == super::StreamStatus::Disabled {
        return None;
    }
    let (url, status) = match (stream.method, &stream.endpoint_url) {
        (DeliveryMethod::Push, Some(url)) => (url.clone(), DeliveryStatus::Pending),
        (DeliveryMethod::Push, None) => return None,
        (DeliveryMethod::Poll, _) => (poll_url(&stream.id), DeliveryStatus::Waiting),
    };
    let to = Destination::Client { client_id: stream.client_id.clone(), url };
    let mut d = Delivery::pending(to, DeliveryKind::SecurityEvent, event.type_uri(), String::new(), now);
    let claims = event.claims(issuer, &stream.client_id, &d.id, now, txn);
    d.payload = json!({"stream": stream.id, "set": claims}).to_string();
    d.status = status;
    Some(d)
}

/// A security event delivery's stream id and SET claims, as [`set_for`] wrote them.
pub fn read_payload(payload: &str) -> Option<(String, serde_json::Value)> {
    let mut v: serde_json::Value = serde_json::from_str(payload).ok()?;
    let stream = v.get("stream")?.as_str()?.to_owned();
    let set = v.get_mut("set")?.take();
    set.is_object().then_some((stream, set))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::StreamStatus;
    use crate::signals::event::{CREDENTIAL_CHANGE, SESSION_REVOKED};

    fn stream(id: &str, method: DeliveryMethod, events: &[&str]) -> SignalStream {
        SignalStream {
            id: id.into(),
            client_id: format!("client-{id}"),
            description: None,
            events_requested: events.iter().map(|e| (*e).to_owned()).collect(),
            method,
            endpoint_url: (method == DeliveryMethod::Push).then(|| "https://r.example/ssf".to_owned()),
            authorization_header: None,
            status: StreamStatus::Enabled,
            reason: None,
            excluded_subjects: Vec::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            version: 1,
        }
    }

    #[test]
    fn each_stream_gets_what_it_asked_for_about_subjects_it_kept() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let (ada, bob) = (UserId::from_string("u-ada".into()), UserId::from_string("u-bob".into()));
        let emails = HashMap::from([(ada.clone(), "Ada@Example.com".to_owned()), (bob.clone(), "bob@x.io".to_owned())]);
        let changes = [
            Change::SessionEnded {
                user: ada.clone(),
                signin: SigninId::from_string("sg1".into()),
                reason: "logout".into(),
                by: Initiator::User,
                at: now,
            },
            Change::PasswordChanged {
                user: bob.clone(),
                reason: "password_changed".into(),
                by: Initiator::User,
                at: now,
            },
            Change::AllSessionsEnded {
                user: UserId::from_string("gone".into()),
                reason: "x".into(),
                by: Initiator::Admin,
                at: now,
            },
        ];
        let push = stream("p", DeliveryMethod::Push, &[SESSION_REVOKED, CREDENTIAL_CHANGE]);
        let mut poll = stream("q", DeliveryMethod::Poll, &[SESSION_REVOKED]);
        let mut removed = stream("r", DeliveryMethod::Poll, &[SESSION_REVOKED, CREDENTIAL_CHANGE]);
        removed.excluded_subjects = vec!["email:ada@example.com".into(), "opaque:u-bob".into()];
        let mut off = push.clone();
        off.id = "off".into();
        off.status = StreamStatus::Disabled;
        poll.status = StreamStatus::Paused;
        let d = deliveries(&changes, &emails, &[push, poll, removed, off], "https://auth.example", now);
        let to: Vec<(&str, &str)> = d.iter().map(|d| (d.client_id.as_str(), d.event.as_str())).collect();
        assert_eq!(
            to,
            [("client-p", SESSION_REVOKED), ("client-q", SESSION_REVOKED), ("client-p", CREDENTIAL_CHANGE)],
            "the paused stream holds, the disabled one drops, removed subjects are left out by address or id"
        );
        assert_eq!(d[0].status, DeliveryStatus::Pending);
        assert_eq!(d[0].url, "https://r.example/ssf");
        assert_eq!(d[1].status, DeliveryStatus::Waiting);
        assert_eq!(d[1].url, "poll:q");
        let (stream_id, set) = read_payload(&d[0].payload).expect("payload");
        assert_eq!(stream_id, "p");
        assert_eq!(set["jti"], d[0].id.as_str(), "the SET's jti is the delivery's id: a retry repeats it");
        assert_eq!(set["aud"], "client-p");
        assert_eq!(set["sub_id"]["user"]["email"], "Ada@Example.com");
        assert_eq!(set["sub_id"]["session"]["id"], "sg1");
        let txns: Vec<_> = d.iter().filter_map(|d| read_payload(&d.payload)).map(|(_, s)| s["txn"].clone()).collect();
        assert!(txns.windows(2).all(|w| w[0] == w[1]), "one txn for one batch");
        assert_eq!(read_payload("{\"stream\":\"p\",\"set\":3}"), None);
    }

    #[test]
    fn initiators_follow_the_actor() {
        assert_eq!(Initiator::of(Actor::SelfSession), Initiator::User);
        assert_eq!(Initiator::of(Actor::Client), Initiator::Admin);
        assert_eq!(Initiator::of(Actor::Reuse), Initiator::Policy);
    }
}
