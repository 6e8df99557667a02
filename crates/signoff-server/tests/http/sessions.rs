//! Session reading, expiry and the session list.

use crate::support::*;
use reqwest::StatusCode;
use sqlx::Row;
use time::Duration;

#[tokio::test]
async fn session_endpoint_returns_user_session_and_csrf_token() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("ivan@example.com").await;
    let res = b.get_json("/auth/session").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.header("vary"), Some("Cookie, Authorization"));
    let body = res.json();
    assert_eq!(body["user"]["email"], "ivan@example.com");
    for field in ["id", "created_at", "last_active_at", "expires_at"] {
        let v = body["session"][field].as_str().unwrap_or_else(|| panic!("{field}"));
        if field.ends_with("_at") {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).expect("RFC 3339");
            assert!(v.ends_with('Z'), "UTC: {v}");
        }
    }
    assert_eq!(body["csrf_token"].as_str(), b.csrf.as_deref());
    assert_eq!(s.browser().get_json("/auth/session").await.json()["error"], "unauthenticated");
}

#[tokio::test]
async fn only_a_hash_of_the_secret_is_stored() {
    let s = TestServer::start().await;
    let b = s.signed_in("judy@example.com").await;
    let secret = b.session_cookie().expect("cookie").clone();
    let db = s.db().await;
    let rows = sqlx::query("SELECT * FROM sessions").fetch_all(&db).await.expect("query");
    assert_eq!(rows.len(), 1);
    let hash: Vec<u8> = rows[0].get("secret_hash");
    assert_eq!(hash.len(), 32);
    let text = |col: &str| rows[0].try_get::<Option<String>, _>(col).expect(col).unwrap_or_default();
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    let dump = format!("{hex}{}{}{}", text("id"), text("user_id"), text("user_agent"));
    assert!(!dump.contains(&secret) && !dump.to_ascii_lowercase().contains(&secret.to_ascii_lowercase()));
}

#[tokio::test]
async fn idle_sessions_expire() {
    let s = TestServer::with(|c| c.sessions.idle_timeout = Duration::minutes(30)).await;
    let mut b = s.signed_in("ken@example.com").await;
    s.clock.advance(Duration::minutes(29));
    assert_eq!(b.session_status().await, StatusCode::OK, "still inside the idle window");
    s.clock.advance(Duration::minutes(29));
    assert_eq!(b.session_status().await, StatusCode::OK, "activity moved the idle window");
    s.clock.advance(Duration::minutes(31));
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions").fetch_one(&s.db().await).await.expect("count");
    assert_eq!(left, 0, "an expired session is deleted on sight");
}

#[tokio::test]
async fn a_short_idle_timeout_never_ends_a_session_in_use() {
    // Activity was recorded at most once a minute: with a one-minute idle timeout, a session
    // used every 50 seconds idled out. The recording interval now scales with the timeout.
    let s = TestServer::with(|c| c.sessions.idle_timeout = Duration::seconds(60)).await;
    let mut b = s.signed_in("brisk@example.com").await;
    for i in 0..6 {
        s.clock.advance(Duration::seconds(50));
        assert_eq!(b.session_status().await, StatusCode::OK, "use {i}, every 50 s");
    }
    s.clock.advance(Duration::seconds(61));
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED, "idle longer than the timeout");
}

#[tokio::test]
async fn sessions_end_at_their_absolute_lifetime_however_busy() {
    let s = TestServer::with(|c| c.sessions.absolute_lifetime = Duration::hours(2)).await;
    let mut b = s.signed_in("liam@example.com").await;
    for _ in 0..7 {
        s.clock.advance(Duration::minutes(17));
        assert_eq!(b.session_status().await, StatusCode::OK);
    }
    s.clock.advance(Duration::minutes(17));
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn last_active_is_written_lazily() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("mia@example.com").await;
    let first = b.get_json("/auth/session").await.json()["session"]["last_active_at"].clone();
    s.clock.advance(Duration::seconds(20));
    let second = b.get_json("/auth/session").await.json()["session"]["last_active_at"].clone();
    assert_eq!(first, second, "not rewritten within a minute");
    s.clock.advance(Duration::seconds(50));
    let third = b.get_json("/auth/session").await.json()["session"]["last_active_at"].clone();
    assert_ne!(first, third);
}

#[tokio::test]
async fn api_me_takes_a_session_cookie_and_refuses_everything_else_with_a_bearer_challenge() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("noah@example.com").await;
    let res = b.get_json("/api/me").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["user"]["email"], "noah@example.com");
    let mut anon = s.browser();
    for res in [
        anon.get_json("/api/me").await,
        anon.send(anon.request(reqwest::Method::GET, "/api/me").header("authorization", "Bearer not.a.token")).await,
    ] {
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert_eq!(res.header("www-authenticate"), Some("Bearer error=\"invalid_token\""));
    }
}

#[tokio::test]
async fn session_list_shows_live_sessions_with_devices_most_recent_first() {
    let s = TestServer::start().await;
    let mut desktop = s.signed_in("olivia@example.com").await;
    let mut phone = s.browser();
    phone.user_agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1".into();
    s.clock.advance(Duration::minutes(2));
    phone.login("olivia@example.com", PASSWORD).await;
    s.clock.advance(Duration::seconds(1));
    let list = desktop.get_json("/auth/sessions").await.json();
    let sessions = list["sessions"].as_array().expect("array");
    assert_eq!(sessions.len(), 2);
    // The desktop request just touched its session (2 minutes after it was written, a second after the phone signed in), so it is
    // the most recently active.
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["device"]["kind"], "desktop");
    assert_eq!(sessions[0]["device"]["browser"], "Chrome");
    assert_eq!(sessions[1]["current"], false);
    assert_eq!(sessions[1]["device"]["kind"], "mobile");
    assert_eq!(sessions[1]["device"]["os"], "iPhone");
    assert_eq!(sessions[1]["ip"], "127.0.0.1");
    assert!(sessions[1]["user_agent"].as_str().is_some_and(|ua| ua.contains("iPhone")));
}

#[tokio::test]
async fn revoking_one_session_by_id_and_other_users_ids_are_404() {
    let s = TestServer::start().await;
    let mut a1 = s.signed_in("pat@example.com").await;
    let mut a2 = s.browser();
    a2.login("pat@example.com", PASSWORD).await;
    let mut other = s.signed_in("quinn@example.com").await;
    let other_id = other.get_json("/auth/session").await.json()["session"]["id"].as_str().expect("id").to_owned();
    let a2_id = a2.get_json("/auth/session").await.json()["session"]["id"].as_str().expect("id").to_owned();

    let rb = a1.request(reqwest::Method::DELETE, &format!("/auth/sessions/{other_id}"));
    let rb = rb.header("x-csrf-token", a1.csrf.clone().expect("csrf"));
    let res = a1.send(rb).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let rb = a1
        .request(reqwest::Method::DELETE, "/auth/sessions/unknown-id")
        .header("x-csrf-token", a1.csrf.clone().expect("csrf"));
    assert_eq!(a1.send(rb).await.status, StatusCode::NOT_FOUND);
    assert_eq!(other.session_status().await, StatusCode::OK, "another user's session is never touched");

    let rb = a1.request(reqwest::Method::DELETE, &format!("/auth/sessions/{a2_id}"));
    assert_eq!(a1.send(rb).await.status, StatusCode::FORBIDDEN, "needs the CSRF token");
    let rb = a1
        .request(reqwest::Method::DELETE, &format!("/auth/sessions/{a2_id}"))
        .header("x-csrf-token", a1.csrf.clone().expect("csrf"));
    assert_eq!(a1.send(rb).await.status, StatusCode::NO_CONTENT);
    assert_eq!(a2.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(a1.session_status().await, StatusCode::OK);
}
