//! The audit log: stored, structured, and shown to the user it belongs to.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn users_see_their_own_events_newest_first() {
    let s = TestServer::start().await;
    s.register("ada@example.com").await;
    s.register("bea@example.com").await;
    let mut other = s.browser();
    other.login("bea@example.com", PASSWORD).await;

    let mut b = s.browser();
    let res = b.post_json("/auth/login", &json!({"email": "ada@example.com", "password": "not the password"})).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    b.login("ada@example.com", PASSWORD).await;
    let mut second = s.browser();
    second.login("ada@example.com", PASSWORD).await;
    let second_id = second.get_json("/auth/session").await.json()["session"]["id"].clone();
    let rb = b
        .request(reqwest::Method::DELETE, &format!("/auth/sessions/{}", second_id.as_str().expect("id")))
        .header("x-csrf-token", b.csrf.clone().expect("csrf"));
    assert_eq!(b.send(rb).await.status, StatusCode::NO_CONTENT);

    let res = b.get_json("/auth/audit").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let events = res.json()["events"].as_array().expect("events").clone();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().expect("type")).collect();
    assert_eq!(types, ["session_revoked", "login", "login", "login_failed", "register"]);
    let revoked = &events[0];
    assert_eq!(revoked["session_id"], second_id);
    assert_eq!(revoked["reason"], "revoked");
    assert_eq!(revoked["actor"], "other_session");
    assert_eq!(revoked["ip"], "127.0.0.1");
    assert!(revoked["user_agent"].as_str().is_some_and(|ua| ua.contains("Mozilla")));
    assert_eq!(events[3]["reason"], "bad_credentials");
    for e in &events {
        assert!(e["at"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    // Only this user's events; bea's sign-in is not among them.
    let bea = other.get_json("/auth/audit").await.json();
    let bea_types: Vec<&str> =
        bea["events"].as_array().expect("events").iter().map(|e| e["type"].as_str().expect("t")).collect();
    assert_eq!(bea_types, ["login", "register"]);
    assert_eq!(s.browser().get_json("/auth/audit").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_sign_ins_for_unknown_accounts_are_stored_for_operators() {
    let s = TestServer::start().await;
    let res = s
        .browser()
        .post_json("/auth/login", &json!({"email": "ghost@example.com", "password": "whatever it is"}))
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let (user, reason, ip): (Option<String>, String, String) =
        sqlx::query_as("SELECT user_id, reason, ip FROM audit_events WHERE kind = 'login_failed'")
            .fetch_one(&s.db().await)
            .await
            .expect("event");
    assert_eq!((user, reason.as_str(), ip.as_str()), (None, "unknown_account", "127.0.0.1"));
}

#[tokio::test]
async fn sign_ins_over_a_live_session_and_expiry_are_audited() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("cleo@example.com").await;
    b.login("cleo@example.com", PASSWORD).await;
    let events = b.get_json("/auth/audit").await.json()["events"].clone();
    assert_eq!(events[0]["type"], "login");
    assert_eq!(events[1]["type"], "session_revoked");
    assert_eq!(events[1]["reason"], "superseded");
    assert_eq!(events[1]["actor"], "policy");

    s.clock.advance(time::Duration::hours(11));
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
    let mut again = s.browser();
    again.login("cleo@example.com", PASSWORD).await;
    let events = again.get_json("/auth/audit").await.json()["events"].clone();
    assert_eq!(events[1]["type"], "session_expired");
    assert_eq!(events[1]["reason"], "expired");
}
