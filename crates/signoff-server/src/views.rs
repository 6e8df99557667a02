//! JSON shapes of the contract, built from core records in one place.

use serde_json::{Value, json};
use signoff_core::{AuditEvent, Authority, Session, SessionContext, User};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A `200` JSON answer for the busiest routes: serialised into one buffer of about the right
/// size, with a header map that has room for the edge's headers, so it never grows (what axum's
/// `Json` answer would: a growing buffer, then a map rehashed when the edge adds its headers).
pub fn json_ok(value: &impl serde::Serialize) -> axum::response::Response {
    use axum::http::{HeaderMap, HeaderValue, header};
    let mut body = Vec::with_capacity(256);
    if let Err(e) = serde_json::to_writer(&mut body, value) {
        return axum::response::IntoResponse::into_response(crate::error::ApiError::Internal(format!(
            "serialising an answer: {e}"
        )));
    }
    let mut res = axum::response::Response::new(axum::body::Body::from(body));
    let mut headers = HeaderMap::with_capacity(16);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    *res.headers_mut() = headers;
    res
}

/// RFC 3339 in UTC, as the contract wants every time.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default()
}

/// A time as a person reads it ("2 minutes ago", "in 3 days") in a `<time>` element that
/// carries the exact instant (the demo's script shows it in local time on hover).
pub fn when(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let exact = rfc3339(at);
    format!("<time datetime=\"{exact}\" title=\"{exact}\">{}</time>", relative(at, now))
}

/// `at` from `now`, rounded the way people say it. `assets/demo.js` has the same rules.
pub fn relative(at: OffsetDateTime, now: OffsetDateTime) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    let seconds = (at - now).whole_seconds();
    let n = seconds.unsigned_abs();
    if n < 45 {
        return "just now".to_owned();
    }
    let (count, unit) = match n {
        n if n < 45 * MINUTE => ((n + 30) / MINUTE, "minute"),
        n if n < 22 * HOUR => ((n + 30 * MINUTE) / HOUR, "hour"),
        n if n < 26 * DAY => ((n + 12 * HOUR) / DAY, "day"),
        n if n < 320 * DAY => ((n + 15 * DAY) / (30 * DAY), "month"),
        n => ((n + 182 * DAY) / (365 * DAY), "year"),
    };
    let count = count.max(1);
    let amount = format!("{count} {unit}{}", if count == 1 { "" } else { "s" });
    if seconds > 0 { format!("in {amount}") } else { format!("{amount} ago") }
}

pub fn user(u: &User) -> Value {
    serde_json::to_value(UserView::of(u)).unwrap_or_default()
}

/// A user as the API shows it (`{id, email}`): serialised directly on hot paths, and through
/// [`user`] where a JSON value is built.
#[derive(serde::Serialize)]
pub struct UserView<'a> {
    pub id: &'a str,
    pub email: &'a str,
}

impl<'a> UserView<'a> {
    pub fn of(u: &'a User) -> Self {
        Self { id: u.id.as_str(), email: &u.email }
    }
}

pub fn session(authority: &Authority, s: &Session) -> Value {
    json!({
        "id": s.id,
        "created_at": rfc3339(s.created_at),
        "last_active_at": rfc3339(s.last_active_at),
        "expires_at": rfc3339(authority.effective_expiry(s)),
    })
}

/// `{user, session, csrf_token}` as `GET /auth/session` and JSON sign-in answer.
pub fn signed_in(authority: &Authority, ctx: &SessionContext) -> Value {
    json!({
        "user": user(&ctx.user),
        "session": session(authority, &ctx.session),
        "csrf_token": ctx.csrf_token(),
    })
}

/// Browser, operating system and form factor parsed from a user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub browser: String,
    pub os: String,
    pub kind: &'static str,
}

pub fn device(user_agent: Option<&str>) -> Device {
    let parsed = user_agent.and_then(|ua| woothee::parser::Parser::new().parse(ua));
    match parsed {
        Some(r) => Device {
            browser: r.name.to_owned(),
            os: r.os.to_owned(),
            kind: match r.category {
                "pc" => "desktop",
                "smartphone" | "mobilephone" => "mobile",
                "crawler" => "bot",
                _ => "other",
            },
        },
        None => Device { browser: "UNKNOWN".into(), os: "UNKNOWN".into(), kind: "other" },
    }
}

/// One entry of `GET /auth/sessions`: a live session, or a remembered device whose session
/// has ended (`signed_in: false`; its remember-me cookie can still sign it back in).
pub fn listed_device(d: &signoff_core::Device, current: bool) -> Value {
    let parsed = device(d.user_agent.as_deref());
    json!({
        "id": d.id,
        "current": current,
        "created_at": rfc3339(d.created_at),
        "last_active_at": rfc3339(d.last_active_at),
        "expires_at": rfc3339(d.expires_at),
        "ip": d.ip,
        "user_agent": d.user_agent,
        "device": { "browser": parsed.browser, "os": parsed.os, "kind": parsed.kind },
        "signed_in": d.signed_in,
        "remembered": d.remembered,
        "apps": d.apps.iter().map(|(id, name)| json!({ "client_id": id, "name": name })).collect::<Vec<_>>(),
    })
}

pub fn audit_event(e: &AuditEvent) -> Value {
    json!({
        "type": e.kind.as_str(),
        "at": rfc3339(e.at),
        "session_id": e.session_id,
        "scope": e.scope,
        "reason": e.reason,
        "actor": e.actor.as_str(),
        "ip": e.ip,
        "user_agent": e.user_agent,
    })
}

#[cfg(test)]
mod when_tests {
    use super::*;
    use time::Duration;

    #[test]
    fn times_read_as_people_say_them() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let cases = [
            (Duration::seconds(-10), "just now"),
            (Duration::seconds(-100), "2 minutes ago"),
            (Duration::minutes(-60), "1 hour ago"),
            (Duration::hours(-5), "5 hours ago"),
            (Duration::hours(-30), "1 day ago"),
            (Duration::days(-3), "3 days ago"),
            (Duration::days(-60), "2 months ago"),
            (Duration::days(-800), "2 years ago"),
            (Duration::minutes(59), "in 1 hour"),
            (Duration::days(14), "in 14 days"),
        ];
        for (offset, said) in cases {
            assert_eq!(relative(now + offset, now), said, "{offset}");
        }
        let html = when(now - Duration::minutes(2), now);
        assert!(html.starts_with("<time datetime=\"2024-10-03T23:58:00Z\""), "{html}");
        assert!(html.ends_with(">2 minutes ago</time>"), "{html}");
    }
}
