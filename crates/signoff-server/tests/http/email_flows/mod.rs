//! The e-mail flows over HTTP, with the mail read from the development inbox (and once from a
//! real SMTP server): a verified change of address and a password reset, each ending what the
//! contract says on the very next request, and their links refused once used, expired,
//! tampered with, or outdated by another change.

use crate::everywhere::{listen, revoked, token_version};
use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signoff_testdb::SmtpServer;

mod address_change;
mod reset;
mod sending;

/// A sign-in's status (`Browser::login` insists on success).
async fn login_status(s: &TestServer, email: &str, password: &str) -> StatusCode {
    s.browser().post_json("/auth/login", &json!({"email": email, "password": password})).await.status
}

/// A password grant: `(access, refresh)`.
async fn tokens(s: &TestServer, email: &str) -> (String, String) {
    let mut b = s.browser();
    let res =
        b.post_json("/auth/token", &json!({"grant_type": "password", "email": email, "password": PASSWORD})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let body = res.json();
    (body["access_token"].as_str().expect("access").into(), body["refresh_token"].as_str().expect("refresh").into())
}

/// Whether the access token still reaches `/api/me`, and the refresh token still refreshes.
async fn tokens_live(s: &TestServer, (access, refresh): &(String, String)) -> (bool, bool) {
    let mut b = s.browser();
    let rb = b.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {access}"));
    let me = b.send(rb).await.status == StatusCode::OK;
    let res = b.post_json("/auth/token", &json!({"grant_type": "refresh_token", "refresh_token": refresh})).await;
    (me, res.status == StatusCode::OK)
}

/// A browser signed in with "keep me signed in", holding only its remember-me cookie.
async fn remembered(s: &TestServer, email: &str) -> Browser {
    let mut b = s.browser();
    let res = b.post_json("/auth/login", &json!({"email": email, "password": PASSWORD, "remember_me": true})).await;
    assert_eq!(res.status, StatusCode::OK);
    b.jar.remove("__Host-signoff_session");
    b
}

/// The outbox's mail rows to `address`: `(event, status)`, oldest first; the registration's
/// letter (queued for every registration, sent only to a taken address) left out.
async fn mail_rows(s: &TestServer, address: &str) -> Vec<(String, String)> {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT event, status, payload FROM deliveries WHERE kind = 'mail' ORDER BY created_at, id")
            .fetch_all(&s.db().await)
            .await
            .expect("rows");
    rows.into_iter()
        .filter(|(event, _, payload)| {
            event != "mail.registration" && serde_json::from_str::<Value>(payload).expect("json")["to"] == address
        })
        .map(|(event, status, _)| (event, status))
        .collect()
}

async fn deliveries_to(s: &TestServer, address: &str) -> usize {
    mail_rows(s, address).await.len()
}

/// Waits (up to 10 s) until no mail row to `address` is pending, and returns the rows.
async fn settled(s: &TestServer, address: &str) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rows = mail_rows(s, address).await;
        if rows.iter().all(|(_, status)| status != "pending") {
            return rows;
        }
        assert!(std::time::Instant::now() < deadline, "mail to {address} still pending: {rows:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A page with the exact instants of its `<time>` elements left out (they differ by the
/// milliseconds between two requests).
fn without_instants(page: &str) -> String {
    let mut out = String::new();
    let mut rest = page;
    while let Some(i) = rest.find("<time ") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('>').expect("tag end");
        rest = &rest[i + end + 1..];
    }
    out + rest
}

fn instant(rfc3339: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).expect("an RFC 3339 time")
}

fn change(new: &str) -> Value {
    json!({"current_password": PASSWORD, "new_email": new})
}

/// Asks for a reset link for `email` (the `nth` so far) and returns its token.
async fn reset_token(s: &TestServer, email: &str, nth: usize) -> String {
    let res = s.browser().post_json("/auth/password-reset", &json!({"email": email})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let links: Vec<Message> =
            s.inbox().to(email).into_iter().filter(|m| m.subject == "Reset your password").collect();
        if links.len() >= nth {
            return token_of(&link_in(&links[nth - 1].text));
        }
        assert!(std::time::Instant::now() < deadline, "reset link {nth} never came");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn reset_with(s: &TestServer, token: &str) -> Res {
    s.browser()
        .post_json("/auth/password-reset/confirm", &json!({"token": token, "new_password": "a brand new passphrase"}))
        .await
}

/// Asks for a password reset as if from the client address `ip` (the server trusts
/// `X-Forwarded-For`).
async fn reset_from(b: &mut Browser, ip: &str, email: &str) -> Res {
    crate::accounts::post_from(b, ip, "/auth/password-reset", json!({ "email": email })).await
}

/// What reached `smtp`, parsed by Python's own `email` package: headers, and both bodies.
fn received(smtp: &SmtpServer) -> Vec<Value> {
    const PARSE: &str = r#"
import json, mailbox, sys
out = []
for _, msg in sorted(mailbox.Maildir(sys.argv[1], create=False).items(), key=lambda kv: kv[1]["Date"]):
    parts = {p.get_content_type(): p.get_payload(decode=True).decode(p.get_content_charset() or "utf-8")
             for p in msg.walk() if not p.is_multipart()}
    out.append({k.lower(): msg[k] for k in ("From", "To", "Subject", "Date", "Message-ID")}
               | {"type": msg.get_content_type(), "text": parts.get("text/plain"), "html": parts.get("text/html")})
print(json.dumps(out))
"#;
    if !smtp.maildir.join("new").exists() {
        return Vec::new();
    }
    let out = std::process::Command::new("python3").args(["-c", PARSE]).arg(&smtp.maildir).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The series of a `/metrics` text, less the responses counter that the scrapes themselves move,
/// the gauges of this process's caches and connections (they follow the tester's own requests,
/// not the addresses asked for) and the node's own reads of the revocation feed (on several
/// nodes they run on a timer).
fn moving_series(text: &str) -> std::collections::BTreeMap<String, f64> {
    let own = [
        "signoff_http_responses",
        "signoff_open_connections",
        "signoff_cached_sessions",
        "signoff_verified_tokens",
        "signoff_feed_read",
        "signoff_feed_head",
        "signoff_node_",
    ];
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.contains("_bucket") && !l.contains("_sum") && !l.contains("_created"))
        .filter(|l| !own.iter().any(|o| l.starts_with(o)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_owned(), v.parse::<f64>().ok()?))))
        .collect()
}

/// Waits until `/metrics` shows `line`, and returns the text.
async fn metrics_once(b: &mut Browser, line: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = b.get("/metrics").await.text;
        if text.lines().any(|l| l == line) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "never saw {line:?} in:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
