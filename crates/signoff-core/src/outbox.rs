//! The outbox of logout notifications: what relying applications are told when credentials
//! die, written in the transaction that kills them, delivered later by a worker.
//!
//! Every ended session becomes, for each registered client, an OIDC back-channel logout (to its
//! back-channel logout endpoint) and a `session.ended` webhook (to its webhook endpoint); a token
//! version moving on becomes `user.token_version`, a revoked access token `token.revoked`. A
//! delivery is a row: its id is the webhook's `webhook-id` and the logout token's `jti`, so a
//! repeat (a worker that died after sending) is recognisable by the receiver.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::clients::{EndpointKind, RegisteredClient};
use crate::feed::FeedEntry;
use crate::secret::{SigninId, UserId, random_bytes, random_id};

/// What a relying application is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    SessionEnded { user_id: String, session_id: String, reason: String },
    TokenVersion { user_id: String, tv: i64 },
    TokenRevoked { user_id: String, jti: String, exp: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    BackchannelLogout,
    Webhook,
    /// Mail to a user, for no client: [`Destination::Mail`], `event` the
    /// [`Letter`](crate::mail::Letter), the recipient inside the payload.
    Mail,
    /// A Security Event Token for a Shared Signals stream ([`crate::signals`]): pushed to the
    /// stream's endpoint (RFC 8935), or [`DeliveryStatus::Waiting`] to be polled (RFC 8936).
    SecurityEvent,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BackchannelLogout => "backchannel_logout",
            Self::Webhook => "webhook",
            Self::Mail => "mail",
            Self::SecurityEvent => "security_event",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "backchannel_logout" => Some(Self::BackchannelLogout),
            "webhook" => Some(Self::Webhook),
            "mail" => Some(Self::Mail),
            "security_event" => Some(Self::SecurityEvent),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    /// Not sent because it no longer applied (mail for an account that is gone or changed, or
    /// a reset asked for an address without one): neither a failure nor an alarm.
    Skipped,
    /// A Security Event Token waiting for its receiver to poll for it (RFC 8936): never claimed
    /// by the worker; delivered once acknowledged, failed when the receiver reports an error.
    /// Kept a week like finished ones.
    Waiting,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Waiting => "waiting",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            "skipped" => Some(Self::Skipped),
            "waiting" => Some(Self::Waiting),
            _ => None,
        }
    }
}

/// Where a delivery goes: one endpoint of a registered client (its back-channel logout or
/// webhook URL), or one of the lanes mail to users is sent in. A row keeps it as `client_id`
/// and `url` (`""` and `mail:{lane}` for mail); only [`Delivery::pending`] and
/// [`Delivery::destination`] turn one into the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Client { client_id: String, url: String },
    Mail { lane: u8 },
}

/// One notification to one destination (see [`Destination`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `msg_…`: the webhook's `webhook-id`, the logout token's `jti`.
    pub id: String,
    pub client_id: String,
    pub kind: DeliveryKind,
    /// `session.ended`, `user.token_version`, `token.revoked`, or `backchannel_logout`.
    pub event: String,
    pub url: String,
    /// The webhook's JSON body, or `{"sub", "sid"}` of a logout token.
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    /// Why the last attempt did not succeed: the receiver's own words for a refusal (its
    /// `error_description`, shortened), or what went wrong on the way.
    pub last_error: Option<String>,
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    /// The claim this copy was read under (only its holder may record an attempt).
    pub claim: Option<String>,
}

/// Which of a client's deliveries to list: newest first, `before` a cursor, of one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPage {
    pub status: Option<DeliveryStatus>,
    /// Only deliveries listed after this one (by creation time, then id, descending).
    pub before: Option<(OffsetDateTime, String)>,
    pub limit: u32,
}

impl Delivery {
    /// Where this delivery goes, as [`Delivery::pending`] was told.
    pub fn destination(&self) -> Destination {
        match (self.kind, self.url.strip_prefix("mail:").and_then(|lane| lane.parse().ok())) {
            (DeliveryKind::Mail, Some(lane)) => Destination::Mail { lane },
            _ => Destination::Client { client_id: self.client_id.clone(), url: self.url.clone() },
        }
    }

    /// The cursor that lists what comes after this delivery (`DeliveryPage::before`).
    pub fn cursor(&self) -> String {
        format!("{}.{}", (self.created_at.unix_timestamp_nanos() / 1_000_000), self.id)
    }
}

impl Delivery {
    /// A new delivery to `to`, due at once.
    pub fn pending(to: Destination, kind: DeliveryKind, event: &str, payload: String, now: OffsetDateTime) -> Self {
        let (client_id, url) = match to {
            Destination::Client { client_id, url } => (client_id, url),
            Destination::Mail { lane } => (String::new(), format!("mail:{lane}")),
        };
        Self {
            id: format!("msg_{}", random_id()),
            client_id,
            kind,
            event: event.to_owned(),
            url,
            payload,
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_status_code: None,
            last_error: None,
            next_attempt_at: now,
            created_at: now,
            claim: None,
        }
    }
}

/// Reads a cursor made by `Delivery::cursor`.
pub fn parse_cursor(cursor: &str) -> Option<(OffsetDateTime, String)> {
    let (ms, id) = cursor.split_once('.')?;
    let ms: i64 = ms.parse().ok()?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    (!id.is_empty() && id.len() <= 64).then(|| (at, id.to_owned()))
}

impl Notice {
    /// What registered clients are told of a feed entry, if anything: the one place where "what
    /// ended" becomes a notification, so the feed and the outbox cannot disagree.
    pub fn of(entry: &FeedEntry) -> Option<Notice> {
        match entry {
            FeedEntry::Session(r) => Some(Notice::SessionEnded {
                user_id: r.user_id.to_string(),
                session_id: r.session_id.to_string(),
                reason: r.reason.clone(),
            }),
            FeedEntry::TokenVersion { user_id, version } => {
                Some(Notice::TokenVersion { user_id: user_id.to_string(), tv: *version })
            }
            FeedEntry::Token { jti, exp, user_id: Some(user), .. } => {
                Some(Notice::TokenRevoked { user_id: user.to_string(), jti: jti.clone(), exp: *exp })
            }
            // The old id of a rotated session is dead: an application that keyed its own session
            // on it must end that.
            FeedEntry::Rekeyed { old, user_id: Some(user), reason, .. } => Some(Notice::SessionEnded {
                user_id: user.to_string(),
                session_id: old.to_string(),
                reason: reason.clone().unwrap_or_else(|| "rekeyed".to_owned()),
            }),
            FeedEntry::Token { user_id: None, .. }
            | FeedEntry::Rekeyed { user_id: None, .. }
            | FeedEntry::Keys { .. }
            | FeedEntry::ClientRemoved { .. }
            | FeedEntry::ClientGrantEnded { .. }
            | FeedEntry::Unknown { .. } => None,
        }
    }
}

/// Whether registered clients are told anything of `entry` (what [`Notice::of`] answers,
/// without building the notice).
pub fn tells_clients(entry: &FeedEntry) -> bool {
    matches!(
        entry,
        FeedEntry::Session(_)
            | FeedEntry::TokenVersion { .. }
            | FeedEntry::Token { user_id: Some(_), .. }
            | FeedEntry::Rekeyed { user_id: Some(_), .. }
    )
}

/// The deliveries what a batch ended (`ended`, feed entries) makes for `clients` (those with
/// callback URLs).
pub fn deliveries_for(ended: &[FeedEntry], clients: &[RegisteredClient], now: OffsetDateTime) -> Vec<Delivery> {
    let notices: Vec<Notice> = ended.iter().filter_map(Notice::of).collect();
    notices_for(&notices, clients, now)
}

/// The deliveries `notices` make for `clients`.
fn notices_for(notices: &[Notice], clients: &[RegisteredClient], now: OffsetDateTime) -> Vec<Delivery> {
    let mut out = Vec::new();
    for client in clients {
        for notice in notices {
            let new = |kind: DeliveryKind, event: &str, url: &str, payload: String| {
                let to = Destination::Client { client_id: client.id.clone(), url: url.to_owned() };
                Delivery::pending(to, kind, event, payload, now)
            };
            // An app that signs users in hears only of the sign-ins it served
            // ([`signins_ended`]), by the `sid` its ID tokens carried.
            if let (Some(url), Notice::SessionEnded { user_id, session_id, .. }, false) =
                (client.endpoint(EndpointKind::BackchannelLogout), notice, client.signs_in())
            {
                let payload = json!({ "sub": user_id, "sid": session_id }).to_string();
                out.push(new(DeliveryKind::BackchannelLogout, "backchannel_logout", url, payload));
            }
            if let Some(url) = client.endpoint(EndpointKind::Webhook) {
                let (event, data) = match notice {
                    Notice::SessionEnded { user_id, session_id, reason } => {
                        ("session.ended", json!({ "user_id": user_id, "session_id": session_id, "reason": reason }))
                    }
                    Notice::TokenVersion { user_id, tv } => {
                        ("user.token_version", json!({ "user_id": user_id, "tv": tv }))
                    }
                    Notice::TokenRevoked { user_id, jti, exp } => {
                        ("token.revoked", json!({ "user_id": user_id, "jti": jti, "exp": exp }))
                    }
                };
                let timestamp = now
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| now.unix_timestamp().to_string());
                let body = json!({ "type": event, "timestamp": timestamp, "data": data }).to_string();
                out.push(new(DeliveryKind::Webhook, event, url, body));
            }
        }
    }
    out
}

/// The back-channel logouts of sign-ins that ended (`(sign-in, user, client)`, from
/// [`SigninTx::end_signins`](crate::store::SigninTx::end_signins)): one logout token for each
/// app the sign-in signed in to that has a `backchannel_logout_uri`, with the sign-in as `sid`.
pub fn signins_ended(
    ended: &[(SigninId, UserId, String)],
    clients: &[RegisteredClient],
    now: OffsetDateTime,
) -> Vec<Delivery> {
    let mut out = Vec::new();
    for (signin, user, client_id) in ended {
        let Some(client) = clients.iter().find(|c| &c.id == client_id) else { continue };
        let Some(url) = client.endpoint(EndpointKind::BackchannelLogout) else { continue };
        let to = Destination::Client { client_id: client.id.clone(), url: url.to_owned() };
        let payload = json!({ "sub": user, "sid": signin }).to_string();
        out.push(Delivery::pending(to, DeliveryKind::BackchannelLogout, "backchannel_logout", payload, now));
    }
    out
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A `2xx`.
    Delivered(u16),
    /// Network error or timeout (`None`), `429`, `5xx`: try again, not before `retry_after`.
    Retry { status: Option<u16>, retry_after: Option<Duration>, why: Option<String> },
    /// Another `4xx`: the receiver refuses it (`why`: in its words, if it gave any); `410` also
    /// means the URL is gone for good.
    Refused { status: u16, why: Option<String> },
    /// Not sent and never will be: the client was deleted, or its URL no longer passes the
    /// address check.
    Abandoned,
    /// Not sent because it no longer applies (see [`DeliveryStatus::Skipped`]).
    Skipped,
    /// Not sent now and not counted as an attempt: its stream is paused (events are held until
    /// it is enabled again). Looked at again after [`HELD_RECHECK`].
    Held,
}

/// How often a held delivery (its stream paused) is looked at again.
pub const HELD_RECHECK: Duration = Duration::seconds(2);

impl Attempt {
    /// Not made, or not answered, for a reason that may pass: try again later.
    pub fn later(why: Option<&str>) -> Self {
        Self::Retry { status: None, retry_after: None, why: why.map(str::to_owned) }
    }

    pub fn of_status(status: u16, retry_after: Option<Duration>) -> Self {
        match status {
            200..=299 => Self::Delivered(status),
            429 | 500..=599 => Self::Retry { status: Some(status), retry_after, why: None },
            _ => Self::Refused { status, why: None },
        }
    }
}

/// Retries stop this long after a delivery was created (the contract: at least a day).
pub const GIVE_UP_AFTER: Duration = Duration::hours(26);

/// The wait before attempt `attempts + 1`: 2 s, then growing about fivefold to hours, with
/// ±20 % jitter so deliveries failed together do not retry together.
pub fn retry_delay(attempts: i64) -> Duration {
    const STEPS: [i64; 9] = [2, 10, 60, 300, 1_800, 3_600, 7_200, 14_400, 21_600];
    let base = STEPS[(attempts.max(1) - 1).min(STEPS.len() as i64 - 1) as usize];
    let jitter = i64::from(u16::from_le_bytes(random_bytes::<2>())) % 41 - 20; // -20..=20 %
    Duration::milliseconds(base * 1_000 * (100 + jitter) / 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::{Endpoint, NewClient};
    use crate::feed::Revocation;
    use crate::secret::{SessionId, UserId};

    #[test]
    fn every_notice_goes_to_every_endpoint_of_every_client() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let both = NewClient::generate(
            "both".into(),
            vec![Endpoint::backchannel_logout("https://a.example/bc"), Endpoint::webhook("https://a.example/hook")],
            now,
        )
        .client;
        let hooks = NewClient::generate("hooks".into(), vec![Endpoint::webhook("https://b.example/hook")], now).client;
        let (u, s) = (UserId::from_string("u".into()), SessionId::from_string("s".into()));
        let ended = [
            FeedEntry::Session(Revocation {
                session_id: s.clone(),
                user_id: u.clone(),
                reason: "logout".into(),
                at: now,
            }),
            FeedEntry::TokenVersion { user_id: u.clone(), version: 2 },
            FeedEntry::Token { issuer: "i".into(), jti: "j".into(), exp: 9, user_id: Some(u.clone()) },
            // A rotated session's old id is an ended session to the clients.
            FeedEntry::Rekeyed {
                old: SessionId::from_string("old".into()),
                new: s,
                user_id: Some(u),
                reason: Some("password_changed".into()),
            },
            // What clients are not told of.
            FeedEntry::Keys { kid: "k".into(), withdrawn: true },
            FeedEntry::ClientRemoved { client_id: "c".into() },
            FeedEntry::Token { issuer: "i".into(), jti: "old".into(), exp: 9, user_id: None },
        ];
        for entry in &ended {
            assert_eq!(tells_clients(entry), Notice::of(entry).is_some(), "{entry:?}");
        }
        let d = deliveries_for(&ended, &[both.clone(), hooks], now);
        let of = |client: &str, kind| d.iter().filter(|x| x.client_id == client && x.kind == kind).count();
        assert_eq!(of(&both.id, DeliveryKind::BackchannelLogout), 2, "one logout token per ended session id");
        assert_eq!(of(&both.id, DeliveryKind::Webhook), 4);
        assert_eq!(d.len(), 2 + 4 + 4);
        let rekeyed = d.iter().find(|x| x.event == "session.ended" && x.payload.contains("\"old\"")).expect("old id");
        assert!(rekeyed.payload.contains("password_changed"), "{}", rekeyed.payload);
        let ended = d.iter().find(|x| x.event == "session.ended").expect("webhook");
        let body: serde_json::Value = serde_json::from_str(&ended.payload).expect("json");
        assert_eq!(body["data"], json!({"user_id": "u", "session_id": "s", "reason": "logout"}));
        assert_eq!(body["timestamp"], "1970-01-01T00:00:00Z");
        let mut ids: Vec<_> = d.iter().map(|x| x.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), d.len(), "every delivery has its own id");
    }

    #[test]
    fn a_destination_is_read_back_as_it_was_given() {
        let now = OffsetDateTime::UNIX_EPOCH;
        for to in [
            Destination::Client { client_id: "c".into(), url: "https://a.example/h".into() },
            Destination::Mail { lane: 3 },
        ] {
            let kind = if matches!(to, Destination::Mail { .. }) { DeliveryKind::Mail } else { DeliveryKind::Webhook };
            assert_eq!(Delivery::pending(to.clone(), kind, "e", String::new(), now).destination(), to);
        }
    }

    #[test]
    fn answers_are_classified_and_delays_grow() {
        assert_eq!(Attempt::of_status(204, None), Attempt::Delivered(204));
        assert_eq!(Attempt::of_status(503, None), Attempt::Retry { status: Some(503), retry_after: None, why: None });
        assert!(matches!(Attempt::of_status(429, Some(Duration::seconds(7))), Attempt::Retry { .. }));
        assert_eq!(Attempt::of_status(410, None), Attempt::Refused { status: 410, why: None });
        assert_eq!(Attempt::of_status(400, None), Attempt::Refused { status: 400, why: None });
        assert!(retry_delay(1) <= Duration::seconds(5), "first retry within 5 s");
        assert!(retry_delay(4) > retry_delay(1) * 10);
        assert!(retry_delay(50) >= Duration::hours(4), "hours later on");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::milliseconds(1_700_000_000_123);
        let d = deliveries_for(
            &[FeedEntry::TokenVersion { user_id: UserId::from_string("u".into()), version: 1 }],
            &[NewClient::generate("c".into(), vec![Endpoint::webhook("https://a.example/h")], now).client],
            now,
        );
        assert_eq!(parse_cursor(&d[0].cursor()), Some((now, d[0].id.clone())));
        for bad in ["", "x", "1.", ".msg_a", "abc.msg_a", "99999999999999999999.msg_a"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }
}
