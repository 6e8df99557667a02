//! Two server processes sharing one database behave as two nodes: what one revokes, the other
//! refuses on its next request (after the revocation feed's short poll) and tells its streams.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

/// Polls `/api/me` on `node` with `access` until it is refused; returns how long that took.
async fn refused_within(node: &mut Browser, access: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let rb = node.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {access}"));
        if node.send(rb).await.status == StatusCode::UNAUTHORIZED {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "still accepted after {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn grant(b: &mut Browser, email: &str) -> String {
    let res =
        b.post_json("/auth/token", &json!({"grant_type": "password", "email": email, "password": PASSWORD})).await;
    res.json()["access_token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn a_revocation_on_one_node_reaches_the_other() {
    let a = TestServer::with(|c| c.revocation_poll = Duration::from_millis(20)).await;
    a.register("nodes@example.com").await;
    let b = a.sibling().await;
    let (mut on_a, mut on_b) = (a.browser(), b.browser());

    // A denied jti.
    let t = grant(&mut on_a, "nodes@example.com").await;
    let rb = on_b.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {t}"));
    assert_eq!(on_b.send(rb).await.status, StatusCode::OK, "node B accepts A's token");
    on_a.post_json("/auth/revoke", &json!({"token": t})).await;
    let took = refused_within(&mut on_b, &t, Duration::from_secs(2)).await;
    println!("denylist reached node B after {took:?}");

    // A token-version bump (global logout on A).
    let t1 = grant(&mut on_a, "nodes@example.com").await;
    let t2 = grant(&mut on_b, "nodes@example.com").await;
    let rb = on_b.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {t2}"));
    assert_eq!(on_b.send(rb).await.status, StatusCode::OK);
    let rb = on_a
        .bare(Method::POST, "/auth/logout")
        .header("authorization", format!("Bearer {t1}"))
        .json(&json!({"scope": "global"}));
    assert_eq!(on_a.send(rb).await.status, StatusCode::OK);
    refused_within(&mut on_b, &t2, Duration::from_secs(2)).await;

    // A session ended on A closes its event stream on B.
    let mut web = b.browser();
    web.login("nodes@example.com", PASSWORD).await;
    let mut stream = web.request(Method::GET, "/auth/events").send().await.expect("events");
    let mut on_a_web = a.browser();
    on_a_web.login("nodes@example.com", PASSWORD).await;
    on_a_web.post_json("/auth/logout", &json!({"scope": "others"})).await;
    let mut text = String::new();
    let started = Instant::now();
    while !text.contains("event: revoked") && started.elapsed() < Duration::from_secs(2) {
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(2), stream.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(text.contains("event: revoked"), "{text:?}");
}

#[tokio::test]
async fn cached_sessions_follow_revocations_and_activity_on_other_nodes() {
    let a = TestServer::with(|c| c.revocation_poll = Duration::from_millis(20)).await;
    a.register("cache@example.com").await;
    let b = a.sibling().await;
    let mut on_a = a.browser();
    on_a.login("cache@example.com", PASSWORD).await;
    let mut on_b = b.browser();
    on_b.jar = on_a.jar.clone();
    on_b.csrf = on_a.csrf.clone();
    assert_eq!(on_a.session_status().await, StatusCode::OK, "node A caches the session");
    assert_eq!(on_b.session_status().await, StatusCode::OK, "node B caches the session");

    // Activity on B only, for longer than the idle timeout: A's cached copy is stale, and A must
    // ask the store before calling the session idle.
    for _ in 0..4 {
        a.clock.advance(time::Duration::minutes(10));
        assert_eq!(on_b.session_status().await, StatusCode::OK);
    }
    assert_eq!(on_a.session_status().await, StatusCode::OK, "A must not expire a session active on B");

    // Logout on A: B forgets its cached copy once the feed reaches it.
    on_a.post_json("/auth/logout", &json!({})).await;
    let started = Instant::now();
    while on_b.session_status().await != StatusCode::UNAUTHORIZED {
        assert!(started.elapsed() < Duration::from_secs(2), "node B still accepts the cookie");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_session_rotated_on_one_node_leaves_its_old_cookie_dead_on_the_other() {
    let a = TestServer::with(|c| c.revocation_poll = Duration::from_millis(20)).await;
    a.register("rekey@example.com").await;
    let b = a.sibling().await;
    let mut victim = a.browser();
    victim.login("rekey@example.com", PASSWORD).await;
    // A thief holds a copy of the cookie and uses it through node B, which caches the session.
    let mut thief = b.browser();
    thief.jar = victim.jar.clone();
    assert_eq!(thief.session_status().await, StatusCode::OK);
    // The victim changes the password on node A: their session lives on under a new id, and
    // the copied cookie (the old id's secret) must die everywhere.
    let res = victim
        .post_json("/auth/password", &json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(victim.session_status().await, StatusCode::OK);
    let started = Instant::now();
    while thief.session_status().await != StatusCode::UNAUTHORIZED {
        assert!(started.elapsed() < Duration::from_secs(2), "node B still accepts the rotated-away cookie");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
