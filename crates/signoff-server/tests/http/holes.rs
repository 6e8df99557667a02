//! Paths that brought revoked credentials back (the outside review, issue 8, items 1–7), each
//! reproduced over HTTP. Races run with real concurrency over several rounds of hundreds of
//! requests and count survivors: there must be none.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::task::JoinSet;

const REMEMBER: &str = "__Host-signoff_remember";
const SESSION: &str = "__Host-signoff_session";
const RACERS: usize = 200;

/// Signs `email` in with "remember me" and returns the browser (its session cookie dropped,
/// as after a browser restart) and the remember-me cookie value.
async fn remembered(s: &TestServer, email: &str) -> (Browser, String) {
    let mut b = s.browser();
    let res = b.post_json("/auth/login", &json!({"email": email, "password": PASSWORD, "remember_me": true})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    b.jar.remove(SESSION);
    let cookie = b.jar.get(REMEMBER).cloned().expect("remember cookie");
    (b, cookie)
}

/// One `GET /auth/session` carrying only this remember-me cookie: the session cookie it was
/// given, if it was signed in.
async fn resume_once(http: reqwest::Client, base: String, remember: String) -> Option<String> {
    let res = http
        .get(format!("{base}/auth/session"))
        .header("cookie", format!("{REMEMBER}={remember}"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("request");
    if res.status() != StatusCode::OK {
        return None;
    }
    res.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.strip_prefix(&format!("{SESSION}=")).map(|v| v.split(';').next().unwrap_or_default().to_owned())
    })
}

/// Whether a session cookie value still signs in.
async fn lives(s: &TestServer, session: &str) -> bool {
    let mut b = s.browser();
    b.jar.insert(SESSION.into(), session.into());
    b.session_status().await == StatusCode::OK
}

async fn live_sessions(s: &TestServer, email: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = $1")
        .bind(email)
        .fetch_one(&s.db().await)
        .await
        .expect("count")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

#[tokio::test]
async fn the_remember_me_grace_admits_one_racer_per_rotation_and_binds_it_to_the_series() {
    let s = TestServer::with(|c| c.sessions.race_grace = time::Duration::seconds(5)).await;
    let email = s.register("grace-rm@example.com").await;
    let (mut b, mut current) = remembered(&s, &email).await;
    let http = client();
    let mut racer_sessions = Vec::new();
    for round in 0..3 {
        // The browser resumes, rotating the validator; the old one is now the predecessor.
        b.jar.remove(SESSION);
        assert_eq!(b.session_status().await, StatusCode::OK, "round {round}: resumed");
        let predecessor = std::mem::replace(&mut current, b.jar.get(REMEMBER).cloned().expect("rotated"));
        let before = live_sessions(&s, &email).await;
        let mut set = JoinSet::new();
        for _ in 0..RACERS {
            set.spawn(resume_once(http.clone(), s.base.clone(), predecessor.clone()));
        }
        let won: Vec<String> = set.join_all().await.into_iter().flatten().collect();
        assert_eq!(won.len(), 1, "round {round}: {RACERS} replays of the predecessor opened {} sessions", won.len());
        assert_eq!(live_sessions(&s, &email).await, before + 1, "round {round}: nothing else was created");
        racer_sessions.extend(won);
    }
    assert!(lives(&s, &racer_sessions[2]).await);
    // The browser resumes once more; past the grace its previous validator is a copied cookie:
    // the series dies, and with it every session opened from it, the racers' too.
    b.jar.remove(SESSION);
    assert_eq!(b.session_status().await, StatusCode::OK);
    s.clock.advance(time::Duration::seconds(10));
    let mut thief = s.browser();
    thief.jar.insert(REMEMBER.into(), current);
    assert_eq!(thief.session_status().await, StatusCode::UNAUTHORIZED, "a used validator after the grace is theft");
    for (i, session) in racer_sessions.iter().enumerate() {
        assert!(!lives(&s, session).await, "racer session {i} outlived the series' theft");
    }
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(live_sessions(&s, &email).await, 0, "every session of the series ended");
}

#[tokio::test]
async fn the_remember_me_grace_creates_nothing_after_a_revocation_commits() {
    let admin_key = "a".repeat(40);
    let key = admin_key.clone();
    let s = TestServer::with(move |c| {
        c.sessions.race_grace = time::Duration::seconds(5);
        c.admin_token = Some(signoff_server::config::AdminKey(key));
    })
    .await;
    let http = client();
    for trigger in ["global_logout", "password", "security_report", "admin_revoke"] {
        let email = s.register(&format!("race-{trigger}@example.com")).await;
        let (mut b, _) = remembered(&s, &email).await;
        let mut owner = s.browser();
        owner.login(&email, PASSWORD).await;
        let user_id = owner.get_json("/auth/session").await.json()["user"]["id"].as_str().expect("id").to_owned();
        // Rotate once, so both the current validator and its predecessor are in play.
        let predecessor = b.jar.get(REMEMBER).cloned().expect("cookie");
        assert_eq!(b.session_status().await, StatusCode::OK);
        let current = b.jar.get(REMEMBER).cloned().expect("rotated");
        let mut set = JoinSet::new();
        for i in 0..RACERS {
            let cookie = if i % 2 == 0 { predecessor.clone() } else { current.clone() };
            set.spawn(resume_once(http.clone(), s.base.clone(), cookie));
        }
        // The revocation lands in the middle of the racers.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let res = match trigger {
            "global_logout" => owner.post_json("/auth/logout", &json!({"scope": "global"})).await,
            "password" => {
                owner
                    .post_json(
                        "/auth/password",
                        &json!({"current_password": PASSWORD, "new_password": format!("{PASSWORD} again")}),
                    )
                    .await
            }
            "security_report" => owner.post_json("/auth/security-report", &json!({})).await,
            _ => {
                let rb = owner
                    .bare(Method::POST, &format!("/admin/users/{user_id}/revoke"))
                    .header("authorization", format!("Bearer {admin_key}"))
                    .json(&json!({"reason": "race"}));
                owner.send(rb).await
            }
        };
        assert_eq!(res.status, StatusCode::OK, "{trigger}: {}", res.text);
        let won: Vec<String> = set.join_all().await.into_iter().flatten().collect();
        let mut survivors = 0;
        for session in &won {
            survivors += usize::from(lives(&s, session).await);
        }
        assert_eq!(survivors, 0, "{trigger}: {survivors} of {} resumed sessions outlived the revocation", won.len());
        let kept = usize::from(trigger == "password");
        assert_eq!(live_sessions(&s, &email).await, kept as i64, "{trigger}: only the changer's own session stays");
        let mut replay = s.browser();
        replay.jar.insert(REMEMBER.into(), current.clone());
        assert_eq!(replay.session_status().await, StatusCode::UNAUTHORIZED, "{trigger}: the series is gone");
    }
}

struct Tokens {
    access: String,
    refresh: String,
}

fn tokens_of(v: &Value) -> Tokens {
    Tokens {
        access: v["access_token"].as_str().expect("access").to_owned(),
        refresh: v["refresh_token"].as_str().expect("refresh").to_owned(),
    }
}

async fn grant(b: &mut Browser, email: &str) -> Tokens {
    let res =
        b.post_json("/auth/token", &json!({"grant_type": "password", "email": email, "password": PASSWORD})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    tokens_of(&res.json())
}

async fn refresh_once(http: reqwest::Client, base: String, token: String) -> (StatusCode, Value) {
    let res = http
        .post(format!("{base}/auth/token"))
        .header("accept", "application/json")
        .json(&json!({"grant_type": "refresh_token", "refresh_token": token}))
        .send()
        .await
        .expect("request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn me(s: &TestServer, access: &str) -> StatusCode {
    let mut b = s.browser();
    let rb = b.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {access}"));
    b.send(rb).await.status
}

#[tokio::test]
async fn the_refresh_grace_returns_the_same_successor_once_and_never_forks_the_family() {
    let s = TestServer::with(|c| c.tokens.reuse_grace = time::Duration::seconds(5)).await;
    let email = s.register("grace-rt@example.com").await;
    let mut b = s.browser();
    let mut t = grant(&mut b, &email).await;
    let http = client();
    for round in 0..3 {
        let (status, body) = refresh_once(http.clone(), s.base.clone(), t.refresh.clone()).await;
        assert_eq!(status, StatusCode::OK);
        let next = tokens_of(&body);
        let mut set = JoinSet::new();
        for _ in 0..RACERS {
            set.spawn(refresh_once(http.clone(), s.base.clone(), t.refresh.clone()));
        }
        let answers = set.join_all().await;
        let ok: Vec<&Value> = answers.iter().filter(|(st, _)| *st == StatusCode::OK).map(|(_, b)| b).collect();
        assert_eq!(ok.len(), 1, "round {round}: the predecessor was honoured {} times", ok.len());
        assert_eq!(ok[0]["refresh_token"], next.refresh.as_str(), "round {round}: the racer got the same successor");
        assert!(answers.iter().all(|(st, b)| *st == StatusCode::OK || b["error"] == "invalid_grant"));
        let family: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM refresh_tokens WHERE used_at IS NULL AND family_id = \
             (SELECT family_id FROM refresh_tokens ORDER BY created_at DESC LIMIT 1)",
        )
        .fetch_one(&s.db().await)
        .await
        .expect("count");
        assert_eq!(family, 1, "round {round}: one current token in the family");
        assert_eq!(me(&s, &next.access).await, StatusCode::OK);
        t = next;
    }
}

#[tokio::test]
async fn revoking_a_refresh_token_racing_grace_replays_leaves_nothing_alive_in_its_family() {
    let s = TestServer::with(|c| c.tokens.reuse_grace = time::Duration::seconds(5)).await;
    let email = s.register("race-rt@example.com").await;
    let http = client();
    for round in 0..3 {
        let mut b = s.browser();
        let t0 = grant(&mut b, &email).await;
        let (_, body) = refresh_once(http.clone(), s.base.clone(), t0.refresh.clone()).await;
        let t1 = tokens_of(&body);
        let mut set = JoinSet::new();
        for _ in 0..RACERS {
            set.spawn(refresh_once(http.clone(), s.base.clone(), t0.refresh.clone()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let res = b.post_json("/auth/revoke", &json!({"token": t1.refresh})).await;
        assert_eq!(res.status, StatusCode::OK);
        let answers = set.join_all().await;
        let mut handed_out: Vec<Tokens> =
            answers.iter().filter(|(st, _)| *st == StatusCode::OK).map(|(_, b)| tokens_of(b)).collect();
        handed_out.push(t1);
        for (i, t) in handed_out.iter().enumerate() {
            let (status, _) = refresh_once(http.clone(), s.base.clone(), t.refresh.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "round {round}: refresh token {i} outlived the revocation");
            assert_eq!(me(&s, &t.access).await, StatusCode::UNAUTHORIZED, "round {round}: access token {i} lives");
        }
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM refresh_tokens").fetch_one(&s.db().await).await.expect("n");
        assert_eq!(left, 0, "round {round}: no token was inserted into the revoked family");
    }
}

#[tokio::test]
async fn rfc7009_revoking_a_refresh_token_kills_the_access_tokens_of_its_grant() {
    let s = TestServer::start().await;
    let email = s.register("grant@example.com").await;
    let mut b = s.browser();
    let t = grant(&mut b, &email).await;
    let other = grant(&mut b, &email).await;
    assert_eq!(me(&s, &t.access).await, StatusCode::OK);
    let res = b.post_json("/auth/revoke", &json!({"token": t.refresh, "token_type_hint": "refresh_token"})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(me(&s, &t.access).await, StatusCode::UNAUTHORIZED, "the grant's access token died with it");
    assert_eq!(me(&s, &other.access).await, StatusCode::OK, "another grant lives on");
}

#[tokio::test]
async fn a_logout_carrying_a_bearer_token_also_ends_the_cookie_session_or_refuses() {
    let s = TestServer::with(|c| c.tokens.access_ttl = time::Duration::seconds(60)).await;
    let email = s.register("both@example.com").await;
    // signoff.js in token mode: a cookie session and a token pair in one browser.
    for expired in [false, true] {
        let mut b = s.browser();
        b.login(&email, PASSWORD).await;
        let t = grant(&mut b, &email).await;
        if expired {
            s.clock.advance(time::Duration::seconds(120));
            assert_eq!(me(&s, &t.access).await, StatusCode::UNAUTHORIZED, "the access token expired");
            assert_eq!(b.session_status().await, StatusCode::OK);
        }
        let csrf = b.csrf.clone().expect("csrf");
        // Without the cookie session's CSRF token the whole logout is refused, changing nothing.
        let rb = b
            .request(Method::POST, "/auth/logout")
            .header("authorization", format!("Bearer {}", t.access))
            .header("accept", "application/json");
        let res = b.send(rb).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "expired={expired}");
        assert!(res.set_cookies().is_empty(), "a refused logout clears no cookie");
        assert_eq!(b.session_status().await, StatusCode::OK);
        let rb = b
            .request(Method::POST, "/auth/logout")
            .header("authorization", format!("Bearer {}", t.access))
            .header("x-csrf-token", csrf)
            .header("accept", "application/json");
        let session = b.session_cookie().cloned().expect("session cookie");
        let res = b.send(rb).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.json()["revoked"], 2, "expired={expired}: both sessions ended");
        assert!(!lives(&s, &session).await, "expired={expired}: the cookie session ended");
        assert_eq!(me(&s, &t.access).await, StatusCode::UNAUTHORIZED);
        let (status, _) = refresh_once(client(), s.base.clone(), t.refresh.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "expired={expired}: the token session ended");
    }
    assert_eq!(live_sessions(&s, &email).await, 0);
}

#[tokio::test]
async fn a_remembered_device_whose_session_idled_out_is_listed_and_revocable() {
    let s = TestServer::start().await;
    let email = s.register("device@example.com").await;
    let (mut laptop, cookie) = remembered(&s, &email).await;
    s.clock.advance(time::Duration::minutes(31));
    let mut phone = s.browser();
    phone.login(&email, PASSWORD).await;
    let list = phone.get_json("/auth/sessions").await.json()["sessions"].clone();
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 2, "{list:?}");
    let device = list.iter().find(|d| d["current"] == false).expect("the remembered laptop is listed");
    assert_eq!(device["signed_in"], false);
    assert_eq!(device["remembered"], true);
    let id = device["id"].as_str().expect("id");
    let rb = phone
        .request(Method::DELETE, &format!("/auth/sessions/{id}"))
        .header("x-csrf-token", phone.csrf.clone().expect("csrf"));
    assert_eq!(phone.send(rb).await.status, StatusCode::NO_CONTENT);
    laptop.jar.insert(REMEMBER.into(), cookie);
    assert_eq!(laptop.session_status().await, StatusCode::UNAUTHORIZED, "the remember cookie no longer signs in");
    let list = phone.get_json("/auth/sessions").await.json()["sessions"].clone();
    assert_eq!(list.as_array().expect("list").len(), 1);
    let rb = phone
        .request(Method::DELETE, &format!("/auth/sessions/{id}"))
        .header("x-csrf-token", phone.csrf.clone().expect("csrf"));
    assert_eq!(phone.send(rb).await.status, StatusCode::NOT_FOUND, "gone is gone");
}

#[tokio::test]
async fn a_refused_cross_site_request_never_resumes_from_the_remember_cookie() {
    let s = TestServer::start().await;
    let email = s.register("xsite@example.com").await;
    let (_, cookie) = remembered(&s, &email).await;
    let before = live_sessions(&s, &email).await;
    for (path, body) in [
        ("/auth/password", json!({"current_password": PASSWORD, "new_password": "x"})),
        ("/auth/security-report", json!({})),
        ("/auth/sessions/abc/revoke", json!({})),
        ("/auth/email", json!({"current_password": PASSWORD, "new_email": "x@example.com"})),
        ("/auth/email/confirm", json!({"token": "A".repeat(43)})),
        ("/auth/password-reset", json!({"email": "xsite@example.com"})),
        ("/auth/password-reset/confirm", json!({"token": "A".repeat(43), "new_password": "a brand new passphrase"})),
    ] {
        let mut evil = s.browser();
        evil.jar.insert(REMEMBER.into(), cookie.clone());
        let rb = evil
            .bare(Method::POST, path)
            .header("origin", "https://evil.example")
            .header("sec-fetch-site", "cross-site")
            .header("accept", "application/json")
            .json(&body);
        let res = evil.send(rb).await;
        assert!(res.status.is_client_error(), "{path}: {}", res.status);
        assert!(res.set_cookies().is_empty(), "{path}: a refused request sets no cookie: {:?}", res.set_cookies());
    }
    assert_eq!(live_sessions(&s, &email).await, before, "no session was opened");
    // The cookie was never rotated (nor its series revoked): it still signs in exactly once.
    let mut owner = s.browser();
    owner.jar.insert(REMEMBER.into(), cookie.clone());
    assert_eq!(owner.session_status().await, StatusCode::OK);
    // A used validator (past the grace) sent cross-site by POST does not revoke the series
    // either.
    s.clock.advance(time::Duration::seconds(10));
    let mut evil = s.browser();
    evil.jar.insert(REMEMBER.into(), cookie);
    let rb = evil.bare(Method::POST, "/auth/security-report").header("origin", "https://evil.example").json(&json!({}));
    assert!(evil.send(rb).await.set_cookies().is_empty());
    owner.jar.remove(SESSION);
    assert_eq!(owner.session_status().await, StatusCode::OK, "the series survived the cross-site replay");
}

/// A remember-me cookie sent to a path no route serves, or to a route that has no use for a
/// session, signs nobody in and rotates nothing (the second outside review's finding 11: a
/// proxy's `GET /authz/auth-request/`, trailing slash and all, rotated the series behind the
/// browser's back, and the browser's next use of its cookie looked like theft).
#[tokio::test]
async fn only_routes_that_use_a_session_resume_from_the_remember_cookie() {
    let s = TestServer::start().await;
    let email = s.register("routes@example.com").await;
    let (_, cookie) = remembered(&s, &email).await;
    let before = live_sessions(&s, &email).await;
    for path in
        ["/authz/auth-request/", "/authz/forward-auth/", "/no/such/page", "/app/", "/signoff.js", "/openapi.json"]
    {
        let mut proxy = s.browser();
        proxy.jar.insert(REMEMBER.into(), cookie.clone());
        let res = proxy.get(path).await;
        assert!(res.set_cookies().is_empty(), "{path}: {} set {:?}", res.status, res.set_cookies());
    }
    assert_eq!(live_sessions(&s, &email).await, before, "no session was opened");
    // Past the race grace, so a rotated validator would now read as theft: the browser's own
    // cookie still signs it in, because nothing rotated it.
    s.clock.advance(time::Duration::seconds(10));
    let mut owner = s.browser();
    owner.jar.insert(REMEMBER.into(), cookie);
    let app = owner.get("/app").await;
    assert_eq!(app.status, StatusCode::OK, "{}", app.text);
    assert!(owner.jar.contains_key(SESSION), "signed back in from the series");
}

fn cli(s: &TestServer, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(args)
        .env("SIGNOFF_DATABASE_URL", &s.db_url)
        .env("SIGNOFF_PUBLIC_URL", &s.origin)
        .env("SIGNOFF_LOG_LEVEL", "warn")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let raw = token.split('.').next().expect("header");
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).expect("b64"))
            .expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

async fn jwks_kids(s: &TestServer) -> Vec<String> {
    let mut b = s.browser();
    b.get("/.well-known/jwks.json").await.json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

#[tokio::test]
async fn key_rotation_and_withdrawal_reach_a_running_server_at_once() {
    let s = TestServer::start().await;
    let email = s.register("kid@example.com").await;
    let mut b = s.browser();
    let old = grant(&mut b, &email).await;
    let old_kid = kid_of(&old.access);
    let new_kid = cli(&s, &["keys", "rotate"])["kid"].as_str().expect("kid").to_owned();
    // The feed carries the rotation: within a poll or two the running server signs with it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let new = grant(&mut b, &email).await;
    assert_eq!(kid_of(&new.access), new_kid, "signs with the new key without a restart");
    assert!(jwks_kids(&s).await.contains(&new_kid));
    assert_eq!(me(&s, &old.access).await, StatusCode::OK, "the retired key still verifies its tokens");

    // The old key is compromised: withdraw it. Its tokens die everywhere, at once.
    let out = cli(&s, &["keys", "revoke", &old_kid]);
    assert_eq!(out["revoked"], old_kid.as_str());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(me(&s, &old.access).await, StatusCode::UNAUTHORIZED, "tokens of a withdrawn key are dead");
    assert_eq!(me(&s, &new.access).await, StatusCode::OK);
    assert!(!jwks_kids(&s).await.contains(&old_kid), "the JWKS no longer offers it");

    // Withdrawing the signing key itself puts a new one in its place.
    let out = cli(&s, &["keys", "revoke", &new_kid]);
    let replacement = out["new_signing_kid"].as_str().expect("replacement").to_owned();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(me(&s, &new.access).await, StatusCode::UNAUTHORIZED);
    let third = grant(&mut b, &email).await;
    assert_eq!(kid_of(&third.access), replacement);
    assert_eq!(me(&s, &third.access).await, StatusCode::OK);
}

#[tokio::test]
async fn racing_password_changes_commit_at_most_one_and_never_on_a_stale_check() {
    // The victim and the attacker sign in from different addresses (each address gets five
    // password checks in flight at once).
    let s = TestServer::with(|c| c.trust_proxy = true).await;
    for round in 0..3 {
        let email = s.register(&format!("pw-race-{round}@example.com")).await;
        let mut victim = s.browser();
        victim.login(&email, PASSWORD).await;
        let mut attacker = s.browser();
        attacker.login(&email, PASSWORD).await;
        let mut set = JoinSet::new();
        let http = client();
        for i in 0..12 {
            let (b, new, ip) = if i == 5 {
                (&victim, "victim passphrase kept safe".to_owned(), "198.51.100.5")
            } else {
                (&attacker, format!("attacker passphrase number {i}"), "203.0.113.66")
            };
            let rb = http
                .post(format!("{}/auth/password", s.base))
                .header("x-forwarded-for", ip)
                .header("origin", &s.origin)
                .header("accept", "application/json")
                .header("cookie", format!("{SESSION}={}", b.session_cookie().expect("cookie")))
                .header("x-csrf-token", b.csrf.clone().expect("csrf"))
                .json(&json!({"current_password": PASSWORD, "new_password": new}));
            set.spawn(async move { (rb.send().await.expect("change").status(), new) });
        }
        let answers = set.join_all().await;
        let won: Vec<&String> = answers.iter().filter(|(st, _)| *st == StatusCode::OK).map(|(_, n)| n).collect();
        assert_eq!(won.len(), 1, "round {round}: {} password changes committed: {answers:?}", won.len());
        // Losers are refused: their session ended, or the password they prove is no longer the
        // account's (and so many wrong passwords from one address meet the sign-in limit, or
        // find its five checks in flight taken).
        let refused = [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE];
        assert!(answers.iter().all(|(st, _)| *st == StatusCode::OK || refused.contains(st)), "{answers:?}");
        let mut check = s.browser();
        check.login(&email, won[0]).await;
        assert_eq!(live_sessions(&s, &email).await, 2, "round {round}: the winner's rotated session and this one");
    }
}

#[tokio::test]
async fn a_password_change_from_a_remembered_session_keeps_that_session() {
    let s = TestServer::start().await;
    let email = s.register("rm-pw@example.com").await;
    let mut b = s.browser();
    b.post_json("/auth/login", &json!({"email": email, "password": PASSWORD, "remember_me": true})).await;
    b.csrf = b.get_json("/auth/session").await.json()["csrf_token"].as_str().map(str::to_owned);
    let old_remember = b.jar.get(REMEMBER).cloned().expect("remember");
    let res = b
        .post_json("/auth/password", &json!({"current_password": PASSWORD, "new_password": "another fine passphrase"}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(b.session_status().await, StatusCode::OK, "the changing session lives on, rotated");
    let mut replay = s.browser();
    replay.jar.insert(REMEMBER.into(), old_remember);
    assert_eq!(replay.session_status().await, StatusCode::UNAUTHORIZED, "every remember-me series died");
    assert_eq!(live_sessions(&s, &email).await, 1);
}

#[tokio::test]
async fn an_idled_out_session_cookie_does_not_destroy_its_remember_me_series() {
    let s = TestServer::start().await;
    let email = s.register("idle-rm@example.com").await;
    let mut b = s.browser();
    b.post_json("/auth/login", &json!({"email": email, "password": PASSWORD, "remember_me": true})).await;
    // The browser stays open past the idle timeout: it still sends both cookies.
    s.clock.advance(time::Duration::minutes(31));
    assert!(b.session_cookie().is_some());
    assert_eq!(b.session_status().await, StatusCode::OK, "signed back in from the remember-me cookie");
    assert_eq!(live_sessions(&s, &email).await, 1);
}

#[tokio::test]
async fn resuming_at_the_session_cap_keeps_the_series() {
    let s = TestServer::with(|c| c.sessions.max_sessions_per_user = 1).await;
    let email = s.register("cap-rm@example.com").await;
    let (mut b, _) = remembered(&s, &email).await;
    for i in 0..3 {
        assert_eq!(b.session_status().await, StatusCode::OK, "resume {i} at the cap");
        b.jar.remove(SESSION);
    }
}

#[tokio::test]
async fn a_zero_remember_me_grace_turns_the_grace_off() {
    let s = TestServer::with(|c| c.sessions.race_grace = time::Duration::ZERO).await;
    let email = s.register("no-grace@example.com").await;
    let (mut b, predecessor) = remembered(&s, &email).await;
    assert_eq!(b.session_status().await, StatusCode::OK, "resumed and rotated");
    // The predecessor a moment later is theft at once: the series and its sessions end.
    let mut racer = s.browser();
    racer.jar.insert(REMEMBER.into(), predecessor);
    assert_eq!(racer.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(live_sessions(&s, &email).await, 0);
}

#[tokio::test]
async fn a_session_resumed_from_a_series_ends_no_later_than_the_series() {
    let s = TestServer::with(|c| {
        c.sessions.remember_lifetime = time::Duration::hours(2);
        c.sessions.idle_timeout = time::Duration::hours(10);
    })
    .await;
    let email = s.register("series-end@example.com").await;
    let (mut b, _) = remembered(&s, &email).await;
    let series_end = signoff_core::Clock::now(&s.clock) + time::Duration::hours(2);
    s.clock.advance(time::Duration::minutes(90));
    let res = b.get_json("/auth/session").await;
    assert_eq!(res.status, StatusCode::OK, "resumed");
    let expires = res.json()["session"]["expires_at"].as_str().expect("expires_at").to_owned();
    let expires = time::OffsetDateTime::parse(&expires, &time::format_description::well_known::Rfc3339).expect("time");
    assert!(expires <= series_end, "the resumed session ends at {expires}, after its series ({series_end})");
    s.clock.advance(time::Duration::minutes(31));
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED, "it ended with the series");
}

#[tokio::test]
async fn the_caps_never_drop_the_session_or_series_just_opened() {
    // A frozen clock makes every sign-in a tie on time.
    let s = TestServer::with(|c| c.sessions.max_sessions_per_user = 2).await;
    let email = s.register("tie@example.com").await;
    for i in 0..12 {
        let mut b = s.browser();
        let res = b.post_json("/auth/login", &json!({"email": email, "password": PASSWORD, "remember_me": true})).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(b.session_status().await, StatusCode::OK, "sign-in {i}: the new session survived the cap");
        b.jar.remove(SESSION);
        assert_eq!(b.session_status().await, StatusCode::OK, "sign-in {i}: the new series survived the cap");
    }
    assert_eq!(live_sessions(&s, &email).await, 2);
}

#[tokio::test]
async fn a_sign_in_with_the_old_password_racing_a_password_change_opens_nothing_after_it() {
    let s = TestServer::with(|c| c.trust_proxy = true).await;
    let http = client();
    for round in 0..6 {
        let email = s.register(&format!("pw-change-race-{round}@example.com")).await;
        let mut victim = s.browser();
        victim.login(&email, PASSWORD).await;
        let mut set = JoinSet::new();
        for i in 0..30 {
            let rb = http
                .post(format!("{}/auth/login", s.base))
                .header("x-forwarded-for", format!("198.51.{round}.{i}"))
                .header("origin", &s.origin)
                .header("accept", "application/json")
                .json(&json!({"email": email, "password": PASSWORD}));
            set.spawn(async move { rb.send().await.expect("login").status() });
        }
        let res = victim
            .post_json(
                "/auth/password",
                &json!({"current_password": PASSWORD, "new_password": "a fresh passphrase here"}),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        let statuses = set.join_all().await;
        let refused = [StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE];
        assert!(statuses.iter().all(|st| *st == StatusCode::OK || refused.contains(st)), "{statuses:?}");
        // Sign-ins that committed before the change were ended by it; later ones opened nothing.
        assert_eq!(live_sessions(&s, &email).await, 1, "round {round}: only the victim's own session is left");
    }
}
