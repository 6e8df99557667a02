//! Signals received: an upstream transmitter (an identity provider, a security tool) an
//! administrator registered, which pushes Security Event Tokens to signoff (RFC 8935); and what
//! a verified SET asks of signoff.

use serde_json::Value;
use time::OffsetDateTime;

use crate::secret::SecretHash;
use crate::subject::{SubjectId, UserRef};

/// An upstream transmitter, as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// In the endpoint's path: `/ssf/receivers/{id}/events`.
    pub id: String,
    /// The `iss` its SETs must carry.
    pub issuer: String,
    /// Where its signing keys are (fetched by signoff, under the callback URL rules).
    pub jwks_uri: String,
    /// The `aud` its SETs must carry.
    pub audience: String,
    /// The hash of the bearer secret it must send (`Authorization: Bearer …`).
    pub secret_hash: SecretHash,
    pub created_at: OffsetDateTime,
}

/// The event types received that end everything of the user named.
pub const ENDS_EVERYTHING: [&str; 4] = [
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
    "https://schemas.openid.net/secevent/caep/event-type/credential-change",
    "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked",
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled",
];

/// How far in the past a received SET's `iat` may be: a transmitter retries with the same SET
/// (the same `iat`) after an outage; an hour of them is taken, and their `jti`s kept as long.
pub const FRESH_FOR: time::Duration = time::Duration::hours(1);
/// How far in the future (clocks differ).
pub const CLOCK_SKEW: time::Duration = time::Duration::minutes(1);

/// Why a received SET is refused: RFC 8935 §2.4's error codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRefusal {
    /// The SET's form, claims or freshness (a description says which).
    InvalidRequest(&'static str),
    /// Its signature, key or algorithm.
    InvalidKey,
    InvalidIssuer,
    InvalidAudience,
    /// The endpoint's credentials were not sent.
    AuthenticationFailed,
}

impl SetRefusal {
    /// RFC 8935 §2.4 `err`.
    pub fn err(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidKey => "invalid_key",
            Self::InvalidIssuer => "invalid_issuer",
            Self::InvalidAudience => "invalid_audience",
            Self::AuthenticationFailed => "authentication_failed",
        }
    }

    /// A description for the transmitter's operators.
    pub fn description(&self) -> &'static str {
        match self {
            Self::InvalidRequest(why) => why,
            Self::InvalidKey => "the signature does not verify with the transmitter's keys",
            Self::InvalidIssuer => "iss is not the issuer this endpoint was registered for",
            Self::InvalidAudience => "aud does not name the audience this endpoint was registered for",
            Self::AuthenticationFailed => "the Authorization header is not this endpoint's",
        }
    }
}

/// What a verified SET asks: the users (by address) whose sessions and tokens end, its `jti`,
/// and whether it was only a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub jti: String,
    /// Addresses of users whose every session and token ends.
    pub ends: Vec<String>,
    /// The event types it carried, for the log.
    pub types: Vec<String>,
    /// Received before (its `jti` noted): answered as then, nothing done again.
    pub repeat: bool,
}

/// Checks a SET's claims (its signature was checked) against `upstream` at `now`.
pub fn judge(claims: &Value, upstream: &Upstream, now: OffsetDateTime) -> Result<Received, SetRefusal> {
    if claims.get("iss").and_then(Value::as_str) != Some(upstream.issuer.as_str()) {
        return Err(SetRefusal::InvalidIssuer);
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == &upstream.audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(upstream.audience.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(SetRefusal::InvalidAudience);
    }
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or(SetRefusal::InvalidRequest("iat is missing"))?;
    let iat = OffsetDateTime::from_unix_timestamp(iat).map_err(|_| SetRefusal::InvalidRequest("iat is not a time"))?;
    if iat < now - FRESH_FOR {
        return Err(SetRefusal::InvalidRequest("the SET is stale (iat more than an hour ago)"));
    }
    if iat > now + CLOCK_SKEW {
        return Err(SetRefusal::InvalidRequest("iat is in the future"));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(SetRefusal::InvalidRequest("jti is missing"))?;
    if claims.get("exp").is_some() {
        return Err(SetRefusal::InvalidRequest("a SET carries no exp"));
    }
    let events = claims
        .get("events")
        .and_then(Value::as_object)
        .filter(|e| !e.is_empty())
        .ok_or(SetRefusal::InvalidRequest("events is missing"))?;
    let mut ends = Vec::new();
    for (kind, payload) in events {
        if !ENDS_EVERYTHING.contains(&kind.as_str()) {
            continue;
        }
        // SSF puts the subject in sub_id; RISC and older CAEP transmitters inside the event.
        let subject = claims.get("sub_id").or_else(|| payload.get("subject"));
        let Some(subject) = subject else { return Err(SetRefusal::InvalidRequest("the event names no subject")) };
        for address in addresses(subject)? {
            if !ends.contains(&address) {
                ends.push(address);
            }
        }
    }
    // Printable, bounded: they reach the log and the audit trail.
    let types = events.keys().take(8).map(|t| t.chars().filter(|c| c.is_ascii_graphic()).take(200).collect()).collect();
    Ok(Received { jti: jti.to_owned(), ends, types, repeat: false })
}

/// The addresses a received subject names: by `email` or `account`, alone, as the `user` of a
/// `complex` subject, or among `aliases`. Other formats name nobody here (an upstream's
/// `opaque` or `iss_sub` is its own id, not signoff's).
fn addresses(subject: &Value) -> Result<Vec<String>, SetRefusal> {
    let subject = match subject.get("format").and_then(Value::as_str) {
        Some("complex") => subject.get("user").ok_or(SetRefusal::InvalidRequest("a complex subject without a user"))?,
        _ => subject,
    };
    let parsed = SubjectId::from_json(subject)
        .map_err(|_| SetRefusal::InvalidRequest("the subject is not a subject identifier"))?;
    // No issuer of signoff's own can match: only addresses are taken.
    Ok(parsed
        .users("")
        .into_iter()
        .filter_map(|u| match u {
            UserRef::Email(a) => Some(a),
            UserRef::Id(_) => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn upstream() -> Upstream {
        Upstream {
            id: "up".into(),
            issuer: "https://idp.example".into(),
            jwks_uri: "https://idp.example/jwks".into(),
            audience: "https://signoff.example".into(),
            secret_hash: SecretHash::of(b"t", b"s"),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_set_is_judged_on_issuer_audience_freshness_and_subject() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let good = json!({
            "iss": "https://idp.example", "aud": ["x", "https://signoff.example"], "iat": 1_800_000_000 - 30, "jti": "j1",
            "sub_id": {"format": "complex", "user": {"format": "email", "email": "Ada@Example.com"}, "session": {"format": "opaque", "id": "s"}},
            "events": {ENDS_EVERYTHING[0]: {"event_timestamp": 1}},
        });
        let r = judge(&good, &upstream(), now).expect("good");
        assert_eq!((r.jti.as_str(), r.ends.clone()), ("j1", vec!["ada@example.com".to_owned()]));
        let with = |key: &str, value: Value| {
            let mut c = good.clone();
            c[key] = value;
            judge(&c, &upstream(), now)
        };
        assert_eq!(with("iss", json!("https://evil.example")), Err(SetRefusal::InvalidIssuer));
        assert_eq!(with("aud", json!("https://other.example")), Err(SetRefusal::InvalidAudience));
        assert!(with("iat", json!(1_800_000_000 - 3_500)).is_ok(), "a retry within the hour");
        assert!(matches!(with("iat", json!(1_800_000_000 - 3_601)), Err(SetRefusal::InvalidRequest(_))), "stale");
        assert!(matches!(with("iat", json!(1_800_000_000 + 120)), Err(SetRefusal::InvalidRequest(_))), "future");
        assert!(matches!(with("jti", json!(7)), Err(SetRefusal::InvalidRequest(_))));
        assert!(matches!(with("exp", json!(1)), Err(SetRefusal::InvalidRequest(_))));
        // Another issuer's opaque id names nobody here; a verification ends nothing.
        let r = with("sub_id", json!({"format": "opaque", "id": "u-1"})).expect("taken");
        assert!(r.ends.is_empty());
        let mut verification = good.clone();
        verification["events"] =
            json!({"https://schemas.openid.net/secevent/ssf/event-type/verification": {"state": "x"}});
        assert!(judge(&verification, &upstream(), now).expect("ok").ends.is_empty());
        // RISC's subject inside the event.
        let mut risc = good.clone();
        risc.as_object_mut().expect("object").remove("sub_id");
        risc["events"] = json!({ENDS_EVERYTHING[3]: {"subject": {"format": "email", "email": "bob@x.io"}}});
        assert_eq!(judge(&risc, &upstream(), now).expect("risc").ends, ["bob@x.io"]);
    }
}
