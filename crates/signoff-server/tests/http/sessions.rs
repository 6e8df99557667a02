//! Session reading, expiry and the session list; remember-me resume and its grace.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Row;
use time::Duration;
use tokio::task::JoinSet;

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

// ---- Remember-me under attack: the outside review (issue 8, items 1–7) found paths that
// brought revoked credentials back; each is reproduced here over HTTP, races with real
// concurrency over rounds of hundreds of requests, counting survivors (there must be none).

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
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
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

// ---- Unbounded sessions (the outside review, issue 8, items 8–14: cheap denial of service).

#[tokio::test]
async fn sessions_per_user_are_capped_and_the_oldest_ends() {
    let s = TestServer::with(|c| c.sessions.max_sessions_per_user = 3).await;
    let email = s.register("cap@example.com").await;
    let mut browsers = Vec::new();
    for _ in 0..3 {
        let mut b = s.browser();
        b.login(&email, PASSWORD).await;
        s.clock.advance(time::Duration::seconds(1));
        browsers.push(b);
    }
    let mut newest = s.browser();
    newest.login(&email, PASSWORD).await;
    assert_eq!(browsers[0].session_status().await, StatusCode::UNAUTHORIZED, "the oldest session ended");
    for b in &mut browsers[1..] {
        assert_eq!(b.session_status().await, StatusCode::OK);
    }
    let list = newest.get_json("/auth/sessions").await.json()["sessions"].clone();
    assert_eq!(list.as_array().expect("list").len(), 3);
    let events = newest.get_json("/auth/audit").await.json()["events"].clone();
    assert!(events.as_array().expect("events").iter().any(|e| e["reason"] == "session_limit"), "{events}");
}

#[tokio::test]
async fn remembered_devices_are_capped_per_user_too() {
    let s = TestServer::with(|c| c.sessions.max_sessions_per_user = 3).await;
    let email = s.register("many-devices@example.com").await;
    let mut cookies = Vec::new();
    for _ in 0..6 {
        let mut b = s.browser();
        b.post_json("/auth/login", &json!({"email": email, "password": PASSWORD, "remember_me": true})).await;
        cookies.push(b.jar.get("__Host-signoff_remember").cloned().expect("remember"));
        // Each session idles out; its series would live on for 30 days.
        s.clock.advance(time::Duration::minutes(31));
    }
    let series: i64 =
        sqlx::query_scalar("SELECT count(*) FROM remember_tokens").fetch_one(&s.db().await).await.expect("count");
    assert_eq!(series, 3, "only the three most recently used remembered devices are kept");
    let mut oldest = s.browser();
    oldest.jar.insert("__Host-signoff_remember".into(), cookies[0].clone());
    assert_eq!(oldest.session_status().await, StatusCode::UNAUTHORIZED, "the oldest device was dropped");
    let mut newest = s.browser();
    newest.jar.insert("__Host-signoff_remember".into(), cookies[5].clone());
    assert_eq!(newest.session_status().await, StatusCode::OK);
}
