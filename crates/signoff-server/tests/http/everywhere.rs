//! Log out everywhere: scopes at scale, security triggers, remember-me, admin, live events.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub(crate) async fn token_version(s: &TestServer, email: &str) -> i64 {
    sqlx::query_scalar("SELECT token_version FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(&s.db().await)
        .await
        .expect("tv")
}

async fn count(s: &TestServer, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&s.db().await).await.expect("count")
}

/// Opens `/auth/events` for `b` and returns a task that reads the stream to its end (or 5 s)
/// and yields the text and how long after the returned instant the stream closed.
pub(crate) async fn listen(b: &Browser) -> tokio::task::JoinHandle<(String, Duration)> {
    let rb = b.request(Method::GET, "/auth/events").header("accept", "text/event-stream");
    let mut res = rb.send().await.expect("events");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    tokio::spawn(async move {
        let started = Instant::now();
        let mut text = String::new();
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                chunk = res.chunk() => match chunk {
                    Ok(Some(bytes)) => text.push_str(&String::from_utf8_lossy(&bytes)),
                    _ => break,
                },
                () = &mut deadline => break,
            }
        }
        (text, started.elapsed())
    })
}

/// The `data` of the stream's `revoked` event, asserting that it came and the stream closed
/// within a second.
pub(crate) async fn revoked(listener: tokio::task::JoinHandle<(String, Duration)>) -> Value {
    let (text, took) = listener.await.expect("listener");
    assert!(took < Duration::from_secs(1) + Duration::from_millis(500), "stream closed after {took:?}: {text}");
    let block = text
        .split("\n\n")
        .find(|b| b.contains("event: revoked"))
        .unwrap_or_else(|| panic!("no revoked event in {text:?}"));
    let data = block.lines().find_map(|l| l.strip_prefix("data: ")).expect("data");
    let v: Value = serde_json::from_str(data).expect("json data");
    assert!(v["at"].as_str().is_some_and(|t| t.ends_with('Z')));
    v
}

async fn sign_in_again(s: &TestServer, email: &str) -> Browser {
    let mut b = s.browser();
    b.login(email, PASSWORD).await;
    b
}

#[tokio::test]
async fn global_logout_ends_ten_thousand_sessions_and_bumps_the_token_version() {
    let s = TestServer::start().await;
    let mut a = s.signed_in("many@example.com").await;
    let db = s.db().await;
    let user: String =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'many@example.com'").fetch_one(&db).await.expect("id");
    let bulk = if crate::support::on_postgres() {
        "INSERT INTO sessions (id, secret_hash, user_id, created_at, last_active_at, expires_at) \
         SELECT 'bulk' || i, sha256(('bulk' || i)::bytea), $1, 0, (SELECT max(last_active_at) FROM sessions), \
         99999999999999 FROM generate_series(1, 10000) AS i"
    } else {
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) \
         INSERT INTO sessions (id, secret_hash, user_id, created_at, last_active_at, expires_at) \
         SELECT 'bulk' || i, randomblob(32), $1, 0, (SELECT max(last_active_at) FROM sessions), 99999999999999 FROM n"
    };
    sqlx::query(bulk).bind(&user).execute(&db).await.expect("bulk insert");
    let mut other = s.signed_in("bystander@example.com").await;
    assert_eq!(token_version(&s, "many@example.com").await, 0);
    let res = a.post_json("/auth/logout", &json!({"scope": "global"})).await;
    assert_eq!(res.json(), json!({"revoked": 10_001, "cleared": true}));
    assert_eq!(
        count(
            &s,
            "SELECT count(*) FROM sessions WHERE user_id = (SELECT id FROM users WHERE email = 'many@example.com')"
        )
        .await,
        0
    );
    assert_eq!(token_version(&s, "many@example.com").await, 1);
    assert_eq!(token_version(&s, "bystander@example.com").await, 0);
    assert_eq!(other.session_status().await, StatusCode::OK);
}

#[tokio::test]
async fn password_change_keeps_and_rotates_this_session_and_ends_every_other() {
    let s = TestServer::start().await;
    let mut me = s.signed_in("pw@example.com").await;
    let mut laptop = sign_in_again(&s, "pw@example.com").await;
    let mut phone = s.browser();
    phone
        .post_json("/auth/login", &json!({"email": "pw@example.com", "password": PASSWORD, "remember_me": true}))
        .await;
    let mut stranger = s.signed_in("stranger@example.com").await;
    let old_cookie = me.session_cookie().cloned().expect("cookie");
    let old_id = me.get_json("/auth/session").await.json()["session"]["id"].clone();
    let laptop_events = listen(&laptop).await;
    let my_events = listen(&me).await;

    let res = me
        .post_json(
            "/auth/password",
            &json!({"current_password": "wrong one", "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(laptop.session_status().await, StatusCode::OK, "a wrong current password changes nothing");

    let res = me
        .post_json("/auth/password", &json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let body = res.json();
    assert_ne!(body["session"]["id"], old_id, "the session id is rotated");
    assert_ne!(me.session_cookie(), Some(&old_cookie));
    me.csrf = body["csrf_token"].as_str().map(str::to_owned);
    assert_eq!(me.session_status().await, StatusCode::OK, "this browser stays signed in");
    let mut replay = s.browser();
    replay.jar.insert("__Host-signoff_session".into(), old_cookie);
    assert_eq!(replay.session_status().await, StatusCode::UNAUTHORIZED, "the old id is dead");
    assert_eq!(laptop.session_status().await, StatusCode::UNAUTHORIZED);
    phone.jar.remove("__Host-signoff_session");
    assert_eq!(phone.session_status().await, StatusCode::UNAUTHORIZED, "remember-me tokens are revoked too");
    assert_eq!(stranger.session_status().await, StatusCode::OK);
    assert_eq!(token_version(&s, "pw@example.com").await, 1);
    assert_eq!(revoked(laptop_events).await["reason"], "password_changed");
    assert_eq!(count(&s, "SELECT count(*) FROM remember_tokens").await, 0);

    // The kept session's open pages are not told to leave: it lives on under its new id, and a
    // later logout reaches them.
    me.post_json("/auth/logout", &json!({})).await;
    assert_eq!(revoked(my_events).await["reason"], "logout");

    let res = s.browser().post_json("/auth/login", &json!({"email": "pw@example.com", "password": PASSWORD})).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "the old password is gone");
    s.browser().login("pw@example.com", "a brand new passphrase").await;
}

#[tokio::test]
async fn a_security_report_ends_every_session_including_this_one() {
    let s = TestServer::start().await;
    let mut me = s.signed_in("worried@example.com").await;
    let mut other = sign_in_again(&s, "worried@example.com").await;
    let mut stranger = s.signed_in("calm@example.com").await;
    let my_events = listen(&me).await;
    let other_events = listen(&other).await;
    let res = me.post_json("/auth/security-report", &json!({"details": "I saw a sign-in I do not know"})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"revoked": 2}));
    assert!(res.header("clear-site-data").is_some());
    assert!(me.session_cookie().is_none(), "this browser's cookies are cleared");
    assert_eq!(other.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(stranger.session_status().await, StatusCode::OK);
    assert_eq!(token_version(&s, "worried@example.com").await, 1);
    assert_eq!(revoked(my_events).await["reason"], "security_report");
    assert_eq!(revoked(other_events).await["reason"], "security_report");
    let mut again = sign_in_again(&s, "worried@example.com").await;
    let events = again.get_json("/auth/audit").await.json()["events"].clone();
    let report =
        events.as_array().expect("events").iter().find(|e| e["type"] == "security_report").expect("report event");
    assert_eq!(report["actor"], "user");
}

#[tokio::test]
async fn admin_revoke_over_http_and_the_admin_session_list() {
    let s = TestServer::with(|c| c.admin_token = Some(signoff_server::config::AdminKey("k".repeat(43)))).await;
    let mut victim = s.signed_in("victim@example.com").await;
    let mut second = sign_in_again(&s, "victim@example.com").await;
    let mut stranger = s.signed_in("fine@example.com").await;
    let user_id = victim.get_json("/auth/session").await.json()["user"]["id"].as_str().expect("id").to_owned();
    let events = listen(&second).await;
    let admin = |b: &Browser, m: Method, path: &str, key: &str| {
        b.bare(m, path).header("authorization", format!("Bearer {key}"))
    };

    let mut anon = s.browser();
    let res = anon.send(admin(&anon, Method::GET, &format!("/admin/users/{user_id}/sessions"), "wrong")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = anon.send(anon.bare(Method::POST, &format!("/admin/users/{user_id}/revoke"))).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let key = "k".repeat(43);
    let res = anon.send(admin(&anon, Method::GET, &format!("/admin/users/{user_id}/sessions"), &key)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["sessions"].as_array().map(Vec::len), Some(2));
    let res = anon.send(admin(&anon, Method::POST, "/admin/users/nobody/revoke", &key)).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);

    let rb = admin(&anon, Method::POST, &format!("/admin/users/{user_id}/revoke"), &key)
        .json(&json!({"reason": "credential stuffing"}));
    let res = anon.send(rb).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"revoked": 2}));
    assert_eq!(victim.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(second.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(stranger.session_status().await, StatusCode::OK);
    assert_eq!(token_version(&s, "victim@example.com").await, 1);
    assert_eq!(revoked(events).await["reason"], "admin_revoke");
    let mut back = sign_in_again(&s, "victim@example.com").await;
    let events = back.get_json("/auth/audit").await.json()["events"].clone();
    let ended = events.as_array().expect("events").iter().find(|e| e["type"] == "session_revoked").expect("revoked");
    assert_eq!(ended["actor"], "admin");
    assert_eq!(ended["reason"], "admin_revoke");
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_key() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("someone@example.com").await;
    let id = b.get_json("/auth/session").await.json()["user"]["id"].as_str().expect("id").to_owned();
    let rb = b.bare(Method::POST, &format!("/admin/users/{id}/revoke")).header("authorization", "Bearer ");
    assert_eq!(b.send(rb).await.status, StatusCode::NOT_FOUND);
    assert_eq!(b.session_status().await, StatusCode::OK);
}

#[tokio::test]
async fn the_cli_admin_revoke_ends_every_session() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("cli-victim@example.com").await;
    let stream = listen(&b).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(["admin", "revoke", "--email", "CLI-victim@example.com", "--reason", "lost laptop"])
        .env("SIGNOFF_DATABASE_URL", &s.db_url)
        .env("SIGNOFF_LOG_LEVEL", "warn")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(printed["revoked"], 1);
    // Another process ended the session: the server learns it from the revocation feed.
    let (text, _) = stream.await.expect("listener");
    assert!(text.contains("event: revoked") && text.contains("admin_revoke"), "{text:?}");
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(token_version(&s, "cli-victim@example.com").await, 1);
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(["admin", "revoke", "--email", "nobody@example.com"])
        .env("SIGNOFF_DATABASE_URL", &s.db_url)
        .output()
        .expect("run");
    assert!(!missing.status.success());
}

#[tokio::test]
async fn every_way_a_session_ends_reaches_its_event_stream() {
    let s = TestServer::start().await;
    let mut a = s.signed_in("live@example.com").await;

    // Revoke one, from another session.
    let b = sign_in_again(&s, "live@example.com").await;
    let b_id = s.browser().send(b.request(Method::GET, "/auth/session")).await.json()["session"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let stream = listen(&b).await;
    let rb = a
        .request(Method::DELETE, &format!("/auth/sessions/{b_id}"))
        .header("x-csrf-token", a.csrf.clone().expect("csrf"));
    assert_eq!(a.send(rb).await.status, StatusCode::NO_CONTENT);
    assert_eq!(revoked(stream).await["reason"], "revoked");

    // Log out elsewhere (others).
    let c = sign_in_again(&s, "live@example.com").await;
    let stream = listen(&c).await;
    a.post_json("/auth/logout", &json!({"scope": "others"})).await;
    assert_eq!(revoked(stream).await["reason"], "logout");

    // Its own logout, from another tab of the same browser.
    let stream = listen(&a).await;
    a.post_json("/auth/logout", &json!({})).await;
    assert_eq!(revoked(stream).await["reason"], "logout");

    // The expiry sweep.
    let d = sign_in_again(&s, "live@example.com").await;
    let stream = listen(&d).await;
    s.clock.advance(time::Duration::hours(11));
    let e = sign_in_again(&s, "live@example.com").await;
    // Any request that meets the expired session ends it; the sweeper would too.
    let mut d2 = s.browser();
    d2.jar = d.jar.clone();
    assert_eq!(d2.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(revoked(stream).await["reason"], "expired");
    drop(e);
}

#[tokio::test]
async fn event_streams_send_keep_alives_and_need_a_session() {
    let s = TestServer::with(|c| c.events_keepalive = time::Duration::seconds(1)).await;
    let mut anon = s.browser();
    assert_eq!(anon.get_json("/auth/events").await.status, StatusCode::UNAUTHORIZED);
    let b = s.signed_in("quiet@example.com").await;
    let mut res = b.request(Method::GET, "/auth/events").send().await.expect("events");
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("cache-control").as_deref(), Some("no-store"), "the contract's header, not SSE's no-cache");
    assert_eq!(header("vary").as_deref(), Some("Cookie, Authorization"));
    let started = Instant::now();
    let mut text = String::new();
    while !text.contains(": keep-alive") && started.elapsed() < Duration::from_secs(4) {
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(4), res.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(text.contains(": keep-alive"), "{text:?}");
}

#[tokio::test]
async fn a_session_may_hold_only_so_many_event_streams() {
    let s = TestServer::with(|c| c.streams.per_session = 3).await;
    let b = s.signed_in("streams@example.com").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let res = b.request(Method::GET, "/auth/events").send().await.expect("events");
        assert_eq!(res.status(), StatusCode::OK);
        open.push(res);
    }
    for _ in 0..50 {
        let res = b.request(Method::GET, "/auth/events").send().await.expect("events");
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let metrics = s.browser().get("/metrics").await.text;
    assert!(metrics.contains("signoff_throttled_total 50"), "operators see the refusals: {metrics}");
    // A stream that closes frees its place.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let res = b.request(Method::GET, "/auth/events").send().await.expect("events");
        if res.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "a closed stream's place was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn remember_me_resumes_rotates_and_catches_a_copied_token() {
    let s = TestServer::with(|c| c.sessions.race_grace = time::Duration::seconds(5)).await;
    s.register("keep@example.com").await;
    let mut b = s.browser();
    let res = b
        .post_json("/auth/login", &json!({"email": "keep@example.com", "password": PASSWORD, "remember_me": true}))
        .await;
    let remember_cookie =
        res.set_cookies().into_iter().find(|c| c.starts_with("__Host-signoff_remember=")).expect("remember cookie");
    assert!(
        remember_cookie.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=2592000"),
        "{remember_cookie}"
    );
    let first = b.jar.get("__Host-signoff_remember").cloned().expect("token");
    assert_eq!(first.split(':').count(), 2);
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT validator_hash FROM remember_tokens").fetch_one(&s.db().await).await.expect("row");
    assert_eq!(stored.len(), 32, "only the validator's hash is stored");

    // The browser restarts: the session cookie is gone, the remember-me cookie is not.
    b.jar.remove("__Host-signoff_session");
    let res = b.get_json("/auth/session").await;
    assert_eq!(res.status, StatusCode::OK, "signed back in silently");
    let second = b.jar.get("__Host-signoff_remember").cloned().expect("rotated");
    assert_ne!(second, first, "rotated on use");
    assert!(b.session_cookie().is_some());

    // Two tabs racing with the predecessor inside the grace window are not thieves.
    let mut racing = s.browser();
    racing.jar.insert("__Host-signoff_remember".into(), first.clone());
    assert_eq!(racing.session_status().await, StatusCode::OK);

    // After the grace, the copied predecessor is theft: the series and its session die.
    s.clock.advance(time::Duration::seconds(10));
    let mut thief = s.browser();
    thief.jar.insert("__Host-signoff_remember".into(), first);
    let res = thief.get_json("/auth/session").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.header("clear-site-data").is_some());
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED, "the session the series created is ended");
    b.jar.remove("__Host-signoff_session");
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED, "the whole series is revoked");
    let mut again = sign_in_again(&s, "keep@example.com").await;
    let events = again.get_json("/auth/audit").await.json()["events"].clone();
    assert!(events.as_array().expect("events").iter().any(|e| e["type"] == "remember_token_reuse"));
}

#[tokio::test]
async fn logout_scopes_revoke_the_remember_me_tokens_of_the_sessions_they_end() {
    let s = TestServer::start().await;
    s.register("rm@example.com").await;
    let remembered = |s: &TestServer| {
        let mut b = s.browser();
        async move {
            b.post_json("/auth/login", &json!({"email": "rm@example.com", "password": PASSWORD, "remember_me": true}))
                .await;
            b.csrf = b.get_json("/auth/session").await.json()["csrf_token"].as_str().map(str::to_owned);
            b
        }
    };
    let mut a = remembered(&s).await;
    let mut b = remembered(&s).await;
    a.post_json("/auth/logout", &json!({"scope": "others"})).await;
    b.jar.remove("__Host-signoff_session");
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED, "others revoked b's token");
    a.jar.remove("__Host-signoff_session");
    assert_eq!(a.session_status().await, StatusCode::OK, "others kept this browser's token");

    a.csrf = a.get_json("/auth/session").await.json()["csrf_token"].as_str().map(str::to_owned);
    let token = a.jar.get("__Host-signoff_remember").cloned().expect("token");
    let res = a.post_json("/auth/logout", &json!({})).await;
    assert!(res.set_cookies().iter().any(|c| c.starts_with("__Host-signoff_remember=;")));
    let mut replay = s.browser();
    replay.jar.insert("__Host-signoff_remember".into(), token);
    assert_eq!(replay.session_status().await, StatusCode::UNAUTHORIZED, "local logout revoked the token");
    assert_eq!(count(&s, "SELECT count(*) FROM remember_tokens").await, 0);
}
