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
async fn a_token_mode_app_watches_its_session_with_its_access_token() {
    let s = TestServer::start().await;
    s.register("spa@example.com").await;
    let mut app = s.browser();
    let tokens = crate::tokens::grant(&mut app, "spa@example.com").await;
    // No cookie: the access token names the session. A token that does not stand opens nothing.
    for token in ["not.a.token", &format!("{}x", tokens.access)] {
        let res = app.bare(Method::GET, "/auth/events").bearer_auth(token).send().await.expect("events");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{token}");
    }
    assert!(app.jar.is_empty(), "token mode: no cookie");
    let mut res = app.bare(Method::GET, "/auth/events").bearer_auth(&tokens.access).send().await.expect("events");
    assert_eq!(res.status(), StatusCode::OK);
    // The stream is the token's session's: another session of the user ending says nothing.
    let mut phone = sign_in_again(&s, "spa@example.com").await;
    let res_phone = phone.post_json("/auth/logout", &json!({"scope": "local"})).await;
    assert_eq!(res_phone.status, StatusCode::OK, "{}", res_phone.text);
    let quiet = tokio::time::timeout(Duration::from_millis(800), res.chunk()).await;
    assert!(quiet.is_err(), "the stream spoke of another session's end: {quiet:?}");
    // "Log out everywhere" on another device ends the app's session: the stream says so.
    let started = Instant::now();
    let mut laptop = sign_in_again(&s, "spa@example.com").await;
    let out = laptop.post_json("/auth/logout", &json!({"scope": "global"})).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    let mut text = String::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(2), res.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(started.elapsed() < Duration::from_secs(2), "the stream closed only after {:?}", started.elapsed());
    assert!(text.contains("event: revoked") && text.contains(r#""reason":"logout""#), "{text:?}");
    // The token is dead now: the stream does not open again.
    let res = app.bare(Method::GET, "/auth/events").bearer_auth(&tokens.access).send().await.expect("events");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
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

// ---- Log out everywhere under attack: global and "others" logouts racing a tab's
// remember-me resume still end what their rule says, and only that.

/// Found by the race above: a tab's remember-me resume supersedes the browser's session, and a
/// "log out everywhere" sent a moment later from another tab (the old session cookie and the
/// validator just replaced, still within the race grace) found no session and ended only what
/// it presented; the user's other sessions and tokens lived on. It must reach them all.
#[tokio::test]
async fn a_global_logout_right_after_another_tab_resumed_still_ends_every_session() {
    const REMEMBER: &str = "__Host-signoff_remember";
    let s = TestServer::start().await;
    s.register("tabs@example.com").await;
    for presented in ["the replaced validator", "the current validator"] {
        let mut tab = s.browser();
        let login = tab
            .post_json("/auth/login", &json!({"email": "tabs@example.com", "password": PASSWORD, "remember_me": true}))
            .await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.text);
        tab.csrf = login.json()["csrf_token"].as_str().map(str::to_owned);
        let mut apps = s.browser();
        let tokens = apps
            .post_json(
                "/auth/token",
                &json!({"grant_type": "password", "email": "tabs@example.com", "password": PASSWORD}),
            )
            .await;
        let (access, refresh) = (tokens.json()["access_token"].clone(), tokens.json()["refresh_token"].clone());
        let (access, refresh) = (access.as_str().expect("access"), refresh.as_str().expect("refresh"));

        // Another tab, without the session cookie, is signed back in by the remember-me token.
        let mut other = s.browser();
        other.jar.insert(REMEMBER.into(), tab.jar[REMEMBER].clone());
        assert_eq!(other.get_json("/auth/session").await.status, StatusCode::OK, "resumed");
        if presented == "the current validator" {
            tab.jar.insert(REMEMBER.into(), other.jar[REMEMBER].clone());
        }
        let res = tab.post_json("/auth/logout", &json!({"scope": "global"})).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);

        let mut check = s.browser();
        let me = check.send(check.bare(Method::GET, "/api/me").bearer_auth(access)).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "with {presented}: the access token still works");
        let again =
            check.post_json("/auth/token", &json!({"grant_type": "refresh_token", "refresh_token": refresh})).await;
        assert!(again.status.is_client_error(), "with {presented}: the refresh token still works: {}", again.text);
        assert_eq!(other.session_status().await, StatusCode::UNAUTHORIZED, "with {presented}: the resumed tab lives");
    }
}

/// The other side of the rule above: a validator the series replaced longer ago than the race
/// grace carries nothing. Such a logout kills what it presented (the series) and no more: the
/// user's other sessions and tokens, and the token version, are untouched.
#[tokio::test]
async fn a_replaced_remember_me_token_past_the_grace_does_not_log_out_everywhere() {
    const REMEMBER: &str = "__Host-signoff_remember";
    let s = TestServer::with(|c| c.sessions.race_grace = time::Duration::seconds(5)).await;
    s.register("stale@example.com").await;
    let mut tab = s.browser();
    let login = tab
        .post_json("/auth/login", &json!({"email": "stale@example.com", "password": PASSWORD, "remember_me": true}))
        .await;
    tab.csrf = login.json()["csrf_token"].as_str().map(str::to_owned);
    let mut apps = s.browser();
    let tokens = apps
        .post_json(
            "/auth/token",
            &json!({"grant_type": "password", "email": "stale@example.com", "password": PASSWORD}),
        )
        .await;
    let access = tokens.json()["access_token"].as_str().expect("access").to_owned();
    let mut other = s.browser();
    other.jar.insert(REMEMBER.into(), tab.jar[REMEMBER].clone());
    assert_eq!(other.get_json("/auth/session").await.status, StatusCode::OK, "resumed");
    s.clock.advance(time::Duration::seconds(6));

    let res = tab.post_json("/auth/logout", &json!({"scope": "global"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let mut check = s.browser();
    let me = check.send(check.bare(Method::GET, "/api/me").bearer_auth(&access)).await;
    assert_eq!(me.status, StatusCode::OK, "a stale token must not carry a global logout: {}", me.text);
}

/// The same race with `others`: the remember-me token speaks for the browser, so the session
/// its series backs (the one the other tab resumed) is kept, every other one ends, and the
/// browser's cookies stay.
#[tokio::test]
async fn logging_out_the_others_right_after_another_tab_resumed_keeps_the_resumed_session() {
    const REMEMBER: &str = "__Host-signoff_remember";
    let s = TestServer::start().await;
    s.register("others@example.com").await;
    let mut tab = s.browser();
    let login = tab
        .post_json("/auth/login", &json!({"email": "others@example.com", "password": PASSWORD, "remember_me": true}))
        .await;
    tab.csrf = login.json()["csrf_token"].as_str().map(str::to_owned);
    let mut apps = s.browser();
    let tokens = apps
        .post_json(
            "/auth/token",
            &json!({"grant_type": "password", "email": "others@example.com", "password": PASSWORD}),
        )
        .await;
    let refresh = tokens.json()["refresh_token"].as_str().expect("refresh").to_owned();
    let mut other = s.browser();
    other.jar.insert(REMEMBER.into(), tab.jar[REMEMBER].clone());
    assert_eq!(other.get_json("/auth/session").await.status, StatusCode::OK, "resumed");

    let res = tab.post_json("/auth/logout", &json!({"scope": "others"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert!(
        !res.set_cookies().iter().any(|c| c.contains("Max-Age=0")),
        "the browser keeps its cookies: {:?}",
        res.set_cookies()
    );
    assert_eq!(other.session_status().await, StatusCode::OK, "the resumed session is the browser's own");
    let mut check = s.browser();
    let again = check.post_json("/auth/token", &json!({"grant_type": "refresh_token", "refresh_token": refresh})).await;
    assert!(again.status.is_client_error(), "another session lives on: {}", again.text);
}

/// A live remember-me token whose session has lapsed (the page left open past the idle
/// timeout) speaks for its browser: "sign out all other devices" ends every other session and
/// series of the account and keeps this browser remembered, so the answer never claims an end
/// that did not happen (the second outside review's finding 4: it ended only this browser's own
/// series, answered `{"revoked":0}` and left every other device signed in).
#[tokio::test]
async fn logging_out_the_others_with_a_lapsed_remembered_session_ends_the_other_devices() {
    let s = TestServer::start().await;
    s.register("lapsed@example.com").await;
    let mut tab = s.browser();
    let login = tab
        .post_json("/auth/login", &json!({"email": "lapsed@example.com", "password": PASSWORD, "remember_me": true}))
        .await;
    tab.csrf = login.json()["csrf_token"].as_str().map(str::to_owned);
    let remember = tab.jar["__Host-signoff_remember"].clone();
    s.clock.advance(time::Duration::hours(1));
    // Another device, signed in after this page went idle, and one remembered too.
    let mut phone = s.signed_in("lapsed@example.com").await;
    let mut laptop = s.browser();
    laptop
        .post_json("/auth/login", &json!({"email": "lapsed@example.com", "password": PASSWORD, "remember_me": true}))
        .await;
    let laptop_remember = laptop.jar["__Host-signoff_remember"].clone();
    let res = tab.post_json("/auth/logout", &json!({"scope": "others"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["revoked"], 2, "both other devices: {}", res.text);
    assert!(res.json().get("no_session").is_none(), "{}", res.text);
    assert!(
        !res.set_cookies().iter().any(|c| c.starts_with("__Host-signoff_remember=;")),
        "this browser stays remembered: {:?}",
        res.set_cookies()
    );
    assert_eq!(phone.session_status().await, StatusCode::UNAUTHORIZED, "the phone is signed out");
    let mut returning = s.browser();
    returning.jar.insert("__Host-signoff_remember".into(), laptop_remember);
    assert_eq!(returning.session_status().await, StatusCode::UNAUTHORIZED, "the laptop's series is gone");
    let mut back = s.browser();
    back.jar.insert("__Host-signoff_remember".into(), remember);
    assert_eq!(back.get("/app").await.status, StatusCode::OK, "this browser signs back in from its series");
}

/// A browser with no live session and no live series asking to sign every device out is told
/// so: the answer says no session spoke for it (and the demo page says that signing in is
/// needed), never "you have been signed out" as if the other devices were.
#[tokio::test]
async fn signing_out_everywhere_without_a_session_says_nothing_else_ended() {
    let s = TestServer::start().await;
    s.register("stale@example.com").await;
    let mut phone = s.signed_in("stale@example.com").await;
    let mut tab = s.signed_in("stale@example.com").await;
    s.clock.advance(time::Duration::hours(1));
    phone.login("stale@example.com", PASSWORD).await;
    for scope in ["global", "others"] {
        let res = tab.post_json("/auth/logout", &json!({"scope": scope})).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        assert_eq!(res.json(), json!({"revoked": 0, "cleared": true, "no_session": true}), "{scope}");
        let form = tab.post_form("/auth/logout", &[("scope", scope)]).await;
        assert_eq!(form.status, StatusCode::SEE_OTHER);
        assert_eq!(form.location(), Some("/login?no_session=1"), "{scope}");
    }
    let page = tab.get("/login?no_session=1").await;
    assert!(page.text.contains("no other device was signed out"), "{}", page.text);
    assert_eq!(phone.session_status().await, StatusCode::OK, "nothing spoke for the account");
    let local = tab.post_json("/auth/logout", &json!({"scope": "local"})).await;
    assert_eq!(local.json(), json!({"revoked": 0, "cleared": true}), "this device alone: the usual answer");
}

// ---- Live events under attack (the outside review, issue 8, items 8–14): one user or one
// client cannot hold every event stream.

#[tokio::test]
async fn one_user_cannot_hold_every_event_stream() {
    let s = TestServer::with(|c| {
        c.streams.per_session = 3;
        c.streams.per_user = 4;
    })
    .await;
    let email = s.register("hog@example.com").await;
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..3 {
        let mut b = s.browser();
        b.login(&email, PASSWORD).await;
        for _ in 0..3 {
            let res = b.request(Method::GET, "/auth/events").send().await.expect("events");
            if res.status() == StatusCode::TOO_MANY_REQUESTS {
                refused += 1;
            } else {
                assert_eq!(res.status(), StatusCode::OK);
                open.push(res);
            }
        }
    }
    assert_eq!(open.len(), 4, "four streams for the user in all");
    assert_eq!(refused, 5);
    let other = s.signed_in("someone-else@example.com").await;
    let res = other.request(Method::GET, "/auth/events").send().await.expect("events");
    assert_eq!(res.status(), StatusCode::OK, "another user still gets one");
}

/// One client with many accounts cannot hold every event stream either (the second outside
/// review's finding 6: 16 accounts from one address held all 512): streams are capped per client
/// address (IPv6: its /64) too, and another client still gets one.
#[tokio::test]
async fn one_client_with_many_accounts_cannot_hold_every_event_stream() {
    let s = TestServer::with(|c| {
        c.trust_proxy = true;
        c.streams.per_address = 5;
        c.streams.total = 8;
    })
    .await;
    let mut open = Vec::new();
    let mut refused = 0;
    for i in 0..4 {
        let b = s.signed_in(&format!("hog{i}@example.com")).await;
        for _ in 0..2 {
            let rb = b.request(Method::GET, "/auth/events").header("x-forwarded-for", "2001:db8:7:7::1");
            let res = rb.send().await.expect("events");
            if res.status() == StatusCode::TOO_MANY_REQUESTS {
                refused += 1;
            } else {
                assert_eq!(res.status(), StatusCode::OK);
                open.push(res);
            }
        }
    }
    assert_eq!((open.len(), refused), (5, 3), "five streams from the address, whatever the accounts");
    // Another address of the same /64 is the same client; another client is not.
    let same = s.signed_in("same64@example.com").await;
    let rb = same.request(Method::GET, "/auth/events").header("x-forwarded-for", "2001:db8:7:7:ffff::2");
    assert_eq!(rb.send().await.expect("events").status(), StatusCode::TOO_MANY_REQUESTS);
    let other = s.signed_in("someone-else@example.com").await;
    let rb = other.request(Method::GET, "/auth/events").header("x-forwarded-for", "198.51.100.20");
    let res = rb.send().await.expect("events");
    assert_eq!(res.status(), StatusCode::OK, "another client still gets one");
    drop((open, res));
}

/// A tab that raced the browser's resume within the remember-me grace holds a session opened
/// from the series, while the series itself has moved on to the browser's new session. "Log out
/// everywhere" from that tab ends the series too: the browser's remember-me cookie must not sign
/// it back in. (Ending "the others" and then "this one" in two steps kept the series: it stayed
/// with this session in the first and was not this session's in the second.)
#[tokio::test]
async fn logging_out_everywhere_from_a_grace_racers_session_ends_the_series_it_came_from() {
    const REMEMBER: &str = "__Host-signoff_remember";
    const SESSION: &str = "__Host-signoff_session";
    let s = TestServer::with(|c| c.sessions.race_grace = time::Duration::seconds(5)).await;
    s.register("racer-everywhere@example.com").await;
    let mut browser = s.browser();
    let login = browser
        .post_json(
            "/auth/login",
            &json!({"email": "racer-everywhere@example.com", "password": PASSWORD, "remember_me": true}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let first = browser.jar[REMEMBER].clone();
    // The browser comes back without its session: the series rotates to a new validator and a
    // new session.
    browser.jar.remove(SESSION);
    assert_eq!(browser.session_status().await, StatusCode::OK, "resumed");
    let rotated = browser.jar[REMEMBER].clone();
    assert_ne!(rotated, first, "the validator rotated");
    // A tab still holding the first validator is admitted within the grace.
    let mut tab = s.browser();
    tab.jar.insert(REMEMBER.into(), first);
    let resumed = tab.get_json("/auth/session").await;
    assert_eq!(resumed.status, StatusCode::OK, "the racer is admitted: {}", resumed.text);
    tab.csrf = resumed.json()["csrf_token"].as_str().map(str::to_owned);
    tab.jar.remove(REMEMBER);

    let out = tab.post_json("/auth/logout", &json!({"scope": "global"})).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    let mut back = s.browser();
    back.jar.insert(REMEMBER.into(), rotated);
    assert_eq!(back.session_status().await, StatusCode::UNAUTHORIZED, "the remember-me cookie signed back in");
    assert_eq!(browser.session_status().await, StatusCode::UNAUTHORIZED);
    let series: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM remember_tokens r JOIN users u ON u.id = r.user_id WHERE u.email = $1",
    )
    .bind("racer-everywhere@example.com")
    .fetch_one(&s.db().await)
    .await
    .expect("count");
    assert_eq!(series, 0, "every series of the user ended");
}
