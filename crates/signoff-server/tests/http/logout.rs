//! `POST /auth/logout`, rule by rule.

use crate::support::*;
use crate::tokens::grant;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Row;

const DELETED_SESSION: &str =
    "__Host-signoff_session=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT";
const DELETED_REMEMBER: &str = "__Host-signoff_remember=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT";

fn assert_clears_browser(res: &Res) {
    let cookies = res.set_cookies();
    assert!(cookies.contains(&DELETED_SESSION.to_owned()), "{cookies:?}");
    assert!(cookies.contains(&DELETED_REMEMBER.to_owned()), "{cookies:?}");
    assert_eq!(cookies.len(), 2);
    assert_eq!(res.header("clear-site-data"), Some("\"cache\", \"cookies\", \"storage\""));
    assert_eq!(res.header("cache-control"), Some("no-store"));
}

async fn session_rows(s: &TestServer) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sessions").fetch_one(&s.db().await).await.expect("count")
}

#[tokio::test]
async fn json_logout_deletes_the_session_row_and_clears_everything() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("rose@example.com").await;
    let stolen = b.session_cookie().cloned().expect("cookie");
    assert_eq!(session_rows(&s).await, 1);
    let res = b.post_json("/auth/logout", &json!({})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"revoked": 1, "cleared": true}));
    assert_clears_browser(&res);
    assert_eq!(res.header("vary"), Some("Cookie, Authorization"));
    assert_eq!(session_rows(&s).await, 0, "the row is gone, not just the cookie");
    assert!(b.session_cookie().is_none());

    // Replaying the copied cookie gets 401, everywhere.
    let mut thief = s.browser();
    thief.jar.insert("__Host-signoff_session".into(), stolen);
    assert_eq!(thief.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(thief.get_json("/api/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(thief.get_json("/auth/sessions").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn form_logout_redirects_303_to_validated_return_to() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("sam@example.com").await;
    let res = b.post_form("/auth/logout", &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), Some("/login?logged_out=1"));
    assert_clears_browser(&res);

    let mut b = s.browser();
    b.login("sam@example.com", PASSWORD).await;
    let res = b.post_form("/auth/logout", &[("return_to", "/goodbye?x=1")]).await;
    assert_eq!(res.location(), Some("/goodbye?x=1"));
    let mut b = s.browser();
    b.login("sam@example.com", PASSWORD).await;
    let res = b.post_form("/auth/logout", &[("return_to", "https://evil.example/")]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), Some("/login?logged_out=1"));
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED, "a refused return_to still logs out");
}

#[tokio::test]
async fn logout_without_a_live_session_succeeds_quietly() {
    let s = TestServer::start().await;
    // No session at all.
    let mut anon = s.browser();
    let res = anon.post_json("/auth/logout", &json!({})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"revoked": 0, "cleared": true}));
    assert_clears_browser(&res);
    let res = anon.post_form("/auth/logout", &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_clears_browser(&res);

    // An already revoked one (logged out twice).
    let mut b = s.signed_in("tina@example.com").await;
    let cookie = b.session_cookie().cloned().expect("cookie");
    b.post_json("/auth/logout", &json!({})).await;
    b.jar.insert("__Host-signoff_session".into(), cookie);
    let res = b.post_json("/auth/logout", &json!({})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_clears_browser(&res);

    // An expired one.
    let mut b = s.browser();
    b.login("tina@example.com", PASSWORD).await;
    s.clock.advance(time::Duration::hours(11));
    let res = b.post_form("/auth/logout", &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_clears_browser(&res);

    // Garbage.
    let mut g = s.browser();
    g.jar.insert("__Host-signoff_session".into(), "%%%garbage%%%".into());
    let res = g.post_json("/auth/logout", &json!({})).await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test]
async fn get_logout_changes_nothing() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("uma@example.com").await;
    let res = b.get("/auth/logout").await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.header("allow"), Some("POST"));
    assert!(res.set_cookies().is_empty());
    assert!(res.header("clear-site-data").is_none());
    assert!(res.text.contains("method=\"post\""), "offers the POST form");
    assert_eq!(b.session_status().await, StatusCode::OK);
}

#[tokio::test]
async fn cross_site_logout_is_refused_without_any_change() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("vera@example.com").await;
    let token = b.csrf.clone().expect("csrf");
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "foreign Origin",
            b.bare(Method::POST, "/auth/logout")
                .header("origin", "https://evil.example")
                .header("x-csrf-token", &token),
        ),
        ("Origin: null", b.bare(Method::POST, "/auth/logout").header("origin", "null").header("x-csrf-token", &token)),
        (
            "cross-site fetch",
            b.bare(Method::POST, "/auth/logout").header("sec-fetch-site", "cross-site").header("x-csrf-token", &token),
        ),
        (
            "same-site fetch",
            b.bare(Method::POST, "/auth/logout").header("sec-fetch-site", "same-site").header("x-csrf-token", &token),
        ),
        ("no token", b.request(Method::POST, "/auth/logout")),
        (
            "a forged second Origin",
            b.request(Method::POST, "/auth/logout")
                .header("origin", "https://evil.example")
                .header("x-csrf-token", &token),
        ),
        ("wrong token", b.request(Method::POST, "/auth/logout").header("x-csrf-token", "A".repeat(43))),
        (
            "wrong form token",
            b.bare(Method::POST, "/auth/logout")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("csrf_token=nope"),
        ),
    ];
    for (what, rb) in cases {
        let res = b.send(rb).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{what}");
        assert_eq!(res.json()["error"], "csrf", "{what}");
        assert!(res.set_cookies().is_empty(), "{what}: no cookie change");
        assert!(res.header("clear-site-data").is_none(), "{what}");
        assert_eq!(b.session_status().await, StatusCode::OK, "{what}: session intact");
    }
    // A cross-site page auto-submitting a form has no token and the wrong origin.
    let rb = b
        .bare(Method::POST, "/auth/logout")
        .header("origin", "http://127.0.0.1:9")
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("scope=global");
    assert_eq!(b.send(rb).await.status, StatusCode::FORBIDDEN);
    assert_eq!(b.session_status().await, StatusCode::OK);
    // Without a session, only the origin check applies.
    let mut anon = s.browser();
    let rb = anon.bare(Method::POST, "/auth/logout").header("origin", "https://evil.example");
    let res = anon.send(rb).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.set_cookies().is_empty());
}

#[tokio::test]
async fn json_logout_refuses_text_plain_bodies() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("wade@example.com").await;
    let rb = b
        .request(Method::POST, "/auth/logout")
        .header("content-type", "text/plain")
        .header("x-csrf-token", b.csrf.clone().expect("csrf"))
        .body("{}");
    let res = b.send(rb).await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(res.set_cookies().is_empty());
    assert_eq!(b.session_status().await, StatusCode::OK);
}

#[tokio::test]
async fn scopes_others_and_global() {
    let s = TestServer::start().await;
    let mut a = s.signed_in("xena@example.com").await;
    let mut b = s.browser();
    b.login("xena@example.com", PASSWORD).await;
    let mut c = s.browser();
    c.login("xena@example.com", PASSWORD).await;
    let mut stranger = s.signed_in("yuri@example.com").await;

    let res = a.post_json("/auth/logout", &json!({"scope": "others"})).await;
    assert_eq!(res.json(), json!({"revoked": 2, "cleared": false}));
    assert!(res.set_cookies().is_empty(), "others clears nothing here");
    assert!(res.header("clear-site-data").is_none());
    assert_eq!(a.session_status().await, StatusCode::OK);
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(c.session_status().await, StatusCode::UNAUTHORIZED);

    let mut d = s.browser();
    d.login("xena@example.com", PASSWORD).await;
    let res = a.post_json("/auth/logout", &json!({"scope": "global"})).await;
    assert_eq!(res.json(), json!({"revoked": 2, "cleared": true}));
    assert_clears_browser(&res);
    assert_eq!(a.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(d.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(stranger.session_status().await, StatusCode::OK, "another user is never touched");

    let res = stranger.post_json("/auth/logout", &json!({"scope": "sideways"})).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(stranger.session_status().await, StatusCode::OK);
}

#[tokio::test]
async fn no_request_sent_after_the_logout_response_succeeds_with_that_session() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("zoe@example.com").await;
    let cookie = b.session_cookie().cloned().expect("cookie");
    // Hammer the session from other tasks while logging out; every request that starts after
    // the logout answer arrived must fail.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let mut w = s.browser();
        w.jar.insert("__Host-signoff_session".into(), cookie.clone());
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            let mut late_successes = 0;
            for _ in 0..200 {
                let after_logout = done.load(std::sync::atomic::Ordering::SeqCst);
                let status = w.session_status().await;
                if after_logout && status == StatusCode::OK {
                    late_successes += 1;
                }
                if after_logout {
                    break;
                }
            }
            late_successes
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let res = b.post_json("/auth/logout", &json!({})).await;
    assert_eq!(res.status, StatusCode::OK);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        assert_eq!(w.await.expect("worker"), 0);
    }
}

#[tokio::test]
async fn every_logout_is_an_audit_event() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("abby@example.com").await;
    let sid = b.get_json("/auth/session").await.json()["session"]["id"].as_str().expect("id").to_owned();
    b.post_json("/auth/logout", &json!({})).await;
    let db = s.db().await;
    let row = sqlx::query("SELECT * FROM audit_events WHERE kind = 'logout'").fetch_one(&db).await.expect("event");
    assert_eq!(row.get::<String, _>("session_id"), sid);
    assert_eq!(row.get::<String, _>("scope"), "local");
    assert_eq!(row.get::<String, _>("reason"), "logout");
    assert_eq!(row.get::<String, _>("actor"), "self");
    assert_eq!(row.get::<String, _>("ip"), "127.0.0.1");
    assert!(row.get::<String, _>("user_agent").contains("Chrome"));
}

/// Every scope does what its row in the policy table (`LogoutScope::rule`) says, through the
/// real door: a new scope is one enum arm, one row, and is held to its row here.
#[tokio::test]
async fn every_logout_scope_does_what_its_rule_says() {
    use signoff_core::LogoutScope;
    let s = TestServer::start().await;
    for scope in LogoutScope::ALL {
        let rule = scope.rule();
        let (mine, theirs) =
            (format!("rule-{}@example.com", scope.as_str()), format!("else-{}@example.com", scope.as_str()));
        let mut me = s.signed_in(&mine).await;
        let mut other = s.browser();
        other.login(&mine, PASSWORD).await;
        // A credential presented besides the session, and owned by no session the scope ends
        // on its own: only `kills_presented` can end it.
        s.register(&theirs).await;
        let presented = crate::tokens::grant(&mut s.browser(), &theirs).await;
        let version = crate::everywhere::token_version(&s, &mine).await;

        let res =
            me.post_json("/auth/logout", &json!({"scope": scope.as_str(), "refresh_token": presented.refresh})).await;
        assert_eq!(res.status, StatusCode::OK, "{scope:?}: {}", res.text);
        let what = scope.as_str();
        assert_eq!(
            res.json()["cleared"],
            json!(rule.ends_this),
            "{what}: the answer says whether the browser was cleared"
        );
        assert_eq!(!res.set_cookies().is_empty(), rule.ends_this, "{what}: cookies cleared");
        assert_eq!(me.session_status().await == StatusCode::UNAUTHORIZED, rule.ends_this, "{what}: this session");
        assert_eq!(other.session_status().await == StatusCode::UNAUTHORIZED, rule.ends_others, "{what}: the others");
        let bumped = crate::everywhere::token_version(&s, &mine).await > version;
        assert_eq!(bumped, rule.bump_token_version, "{what}: token version");
        let refreshed = crate::tokens::refresh(&mut s.browser(), &presented.refresh).await;
        assert_eq!(refreshed.status != StatusCode::OK, rule.kills_presented, "{what}: the presented refresh token");
    }
}

// ---- Logout under attack (the outside review, issue 8, items 1–7): a bearer token at logout.

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
            assert_eq!(bearer_status(&s, &t.access).await, StatusCode::UNAUTHORIZED, "the access token expired");
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
        assert_eq!(bearer_status(&s, &t.access).await, StatusCode::UNAUTHORIZED);
        let (status, _) = refresh_once(client(), s.base.clone(), t.refresh.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "expired={expired}: the token session ended");
    }
    assert_eq!(live_sessions(&s, &email).await, 0);
}

// ---- Logout under attack: the same session logged out, signed in and refreshed many times
// at once ends in one consistent state, never a 5xx.

#[tokio::test]
async fn one_session_logged_out_many_times_at_once_ends_once_and_answers_alike() {
    let s = TestServer::start().await;
    s.register("twice@example.com").await;
    for round in 0..10 {
        let mut b = s.browser();
        b.login("twice@example.com", PASSWORD).await;
        let racers: Vec<_> = (0..6)
            .map(|_| {
                let rb = b.request(Method::POST, "/auth/logout").header("accept", "application/json").json(&json!({
                    "csrf_token": b.csrf.clone()
                }));
                tokio::spawn(async move { rb.send().await.expect("send").status() })
            })
            .collect();
        for racer in racers {
            let status = racer.await.expect("racer");
            assert!(status.is_success(), "round {round}: {status}");
        }
        assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED, "round {round}");
        let ended: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'logout'")
            .fetch_one(&s.db().await)
            .await
            .expect("count");
        assert_eq!(ended, round + 1, "round {round}: one logout recorded per session");
    }
}

/// Sign-ins from a browser that holds a session, racing logouts of that session: every answer
/// is a success, the old session ends, and each sign-in that answered holds a fresh session of
/// its own, alive, and nothing else is left in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_and_logouts_of_one_session_at_once_leave_a_consistent_state() {
    let s = TestServer::start().await;
    s.register("busy@example.com").await;
    let mut fresh = 0;
    for round in 0..10 {
        let mut b = s.browser();
        b.login("busy@example.com", PASSWORD).await;
        let old = b.session_cookie().cloned().expect("a session");
        let racers: Vec<_> = (0..6)
            .map(|i| {
                let rb = if i % 2 == 0 {
                    b.request(Method::POST, "/auth/login")
                        .header("accept", "application/json")
                        .json(&json!({"email": "busy@example.com", "password": PASSWORD}))
                } else {
                    b.request(Method::POST, "/auth/logout")
                        .header("accept", "application/json")
                        .json(&json!({"csrf_token": b.csrf.clone()}))
                };
                tokio::spawn(async move {
                    let res = rb.send().await.expect("send");
                    let status = res.status();
                    let cookie = res
                        .headers()
                        .get_all("set-cookie")
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find(|v| v.starts_with("__Host-signoff_session=") && !v.contains("Max-Age=0"))
                        .map(|v| v.split(';').next().unwrap_or_default().to_owned());
                    (i % 2 == 0, status, cookie)
                })
            })
            .collect();
        let mut issued = Vec::new();
        for racer in racers {
            let (login, status, cookie) = racer.await.expect("racer");
            // A sign-in may be shed while passwords are being hashed; nothing else but success.
            assert!(
                status.is_success() || (login && status == StatusCode::SERVICE_UNAVAILABLE),
                "round {round}: {} answered {status}",
                if login { "a sign-in" } else { "a logout" }
            );
            if login && status.is_success() {
                issued.push(cookie.expect("a sign-in sets a session cookie"));
            }
        }
        let mut check = s.browser();
        let res = check
            .send(check.bare(Method::GET, "/auth/session").header("cookie", format!("__Host-signoff_session={old}")))
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "round {round}: the old session lives");
        for cookie in &issued {
            assert!(!cookie.ends_with(&old), "round {round}: a sign-in reused the session it was sent");
            let res = check.send(check.bare(Method::GET, "/auth/session").header("cookie", cookie)).await;
            assert_eq!(res.status, StatusCode::OK, "round {round}: a fresh session from a sign-in is gone");
        }
        fresh += issued.len();
    }
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = 'busy@example.com'",
    )
    .fetch_one(&s.db().await)
    .await
    .expect("count");
    assert_eq!(live, fresh as i64, "only the sessions the sign-ins answered with are left");
}

/// A "log out everywhere" racing a refresh of the user's tokens and a remember-me resume of
/// the browser, over many rounds: whichever commits first, once the logout has answered no
/// credential is left alive, neither the ones presented nor any the racing requests got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_racing_a_refresh_and_a_remember_me_resume_leaves_nothing_alive() {
    const REMEMBER: &str = "__Host-signoff_remember";
    let s = TestServer::start().await;
    s.register("race@example.com").await;
    let (mut refreshed, mut resumed) = (0, 0);
    const ROUNDS: usize = 40;
    for round in 0..ROUNDS {
        let mut browser = s.browser();
        let login = browser
            .post_json("/auth/login", &json!({"email": "race@example.com", "password": PASSWORD, "remember_me": true}))
            .await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.text);
        browser.csrf = login.json()["csrf_token"].as_str().map(str::to_owned);
        let remember = browser.jar.get(REMEMBER).cloned().expect("a remember-me cookie");
        let mut apps = s.browser();
        let tokens = apps
            .post_json(
                "/auth/token",
                &json!({"grant_type": "password", "email": "race@example.com", "password": PASSWORD}),
            )
            .await;
        assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);
        let refresh = tokens.json()["refresh_token"].as_str().expect("refresh").to_owned();
        let mut returning = s.browser();
        returning.jar.insert(REMEMBER.into(), remember.clone());

        let body = json!({"grant_type": "refresh_token", "refresh_token": refresh});
        let everywhere = json!({"scope": "global"});
        let (logout, refreshing, resuming) = tokio::join!(
            browser.post_json("/auth/logout", &everywhere),
            apps.post_json("/auth/token", &body),
            returning.get_json("/auth/session"),
        );
        assert_eq!(logout.status, StatusCode::OK, "round {round}: logout {}", logout.text);
        for (what, r) in [("refresh", &refreshing), ("resume", &resuming)] {
            assert!(
                r.status.is_success() || r.status.is_client_error(),
                "round {round}: {what}: {} {}",
                r.status,
                r.text
            );
        }

        // Everything that was or became a credential in this round.
        let mut check = s.browser();
        let old_session = login.set_cookies().into_iter().find(|c| c.starts_with("__Host-signoff_session="));
        let mut cookies: Vec<String> = old_session.into_iter().collect();
        cookies.push(format!("{REMEMBER}={remember}"));
        let mut refresh_tokens = vec![refresh];
        let mut access_tokens = vec![tokens.json()["access_token"].as_str().expect("access").to_owned()];
        if refreshing.status == StatusCode::OK {
            refreshed += 1;
            refresh_tokens.push(refreshing.json()["refresh_token"].as_str().expect("refresh").to_owned());
            access_tokens.push(refreshing.json()["access_token"].as_str().expect("access").to_owned());
        }
        if resuming.status == StatusCode::OK {
            resumed += 1;
            cookies.extend(resuming.set_cookies().into_iter().filter(|c| !c.contains("Max-Age=0")));
        }
        for cookie in cookies {
            let pair = cookie.split(';').next().unwrap_or_default().to_owned();
            let res = check.send(check.bare(Method::GET, "/auth/session").header("cookie", &pair)).await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED, "round {round}: {pair} still works");
        }
        for token in refresh_tokens {
            let res =
                check.post_json("/auth/token", &json!({"grant_type": "refresh_token", "refresh_token": token})).await;
            assert!(res.status.is_client_error(), "round {round}: a refresh token still works: {}", res.text);
        }
        for token in access_tokens {
            let res = check.send(check.bare(Method::GET, "/api/me").bearer_auth(&token)).await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED, "round {round}: an access token still works");
        }
    }
    println!("{ROUNDS} rounds: the refresh won the race {refreshed} times, the resume {resumed} times");
}
