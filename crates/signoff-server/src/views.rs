//! JSON shapes of the contract, built from core records in one place.

use serde_json::{Value, json};
use signoff_core::{AuditEvent, Authority, Session, SessionContext, User};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 in UTC, as the contract wants every time.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default()
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
