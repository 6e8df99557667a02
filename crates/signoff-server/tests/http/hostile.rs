//! Hostile requests: absurd headers, look-alike addresses, and the same thing asked for many
//! times at once. Each ends in a clear `4xx` or a consistent state, never a `5xx`.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn users_like(s: &TestServer, pattern: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email LIKE $1")
        .bind(pattern)
        .fetch_one(&s.db().await)
        .await
        .expect("count")
}

#[tokio::test]
async fn ten_thousand_cookies_and_oversized_headers_get_a_clear_answer() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("crowd@example.com").await;
    let session = b.session_cookie().cloned().expect("cookie");
    // 10,000 cookies in one header (about 110 KB), the session's last.
    let mut crowd: String = (0..10_000).map(|i| format!("c{i}=v{i}; ")).collect();
    crowd.push_str(&format!("__Host-signoff_session={session}"));
    let res = b.send(b.bare(Method::GET, "/auth/session").header("cookie", crowd)).await;
    assert_eq!(res.status, StatusCode::OK, "the session is found among them: {}", res.text);
    // Far past any sane size, or too many headers: 431, not served.
    let huge = "x".repeat(2 * 1024 * 1024);
    let res = reqwest::Client::new().get(format!("{}/auth/session", s.base)).header("x-filler", huge).send().await;
    assert_eq!(res.expect("an answer").status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let mut rb = reqwest::Client::new().get(format!("{}/healthz", s.base));
    for i in 0..200 {
        rb = rb.header(format!("x-h{i}"), "v");
    }
    assert_eq!(rb.send().await.expect("an answer").status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // And the server is as it was.
    assert_eq!(b.session_status().await, StatusCode::OK);
}

#[tokio::test]
async fn look_alike_addresses_make_one_account_or_none() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    let register = |email: &str| json!({"email": email, "password": PASSWORD});
    assert_eq!(b.post_json("/auth/register", &register("Alice@Example.com")).await.status, StatusCode::CREATED);
    // The same address in another case or with spaces: the same answer, still one account.
    for same in ["alice@example.com", " ALICE@EXAMPLE.COM "] {
        assert_eq!(b.post_json("/auth/register", &register(same)).await.status, StatusCode::CREATED, "{same}");
    }
    // Addresses that only look alike: refused, never a second account.
    for lookalike in [
        "\u{0430}lice@example.com",  // Cyrillic a
        "alice@ex\u{0430}mple.com",  // Cyrillic a in the domain
        "\u{ff41}lice@example.com",  // fullwidth a
        "alice\u{200b}@example.com", // zero-width space
        "jose\u{301}@example.com",   // NFD e + combining acute
        "jos\u{e9}@example.com",     // NFC e-acute
        "alice@example.com\u{0}",    // NUL
    ] {
        let res = b.post_json("/auth/register", &register(lookalike)).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{lookalike:?}: {}", res.text);
        assert_eq!(res.json()["error"], "invalid_email");
    }
    assert_eq!(users_like(&s, "%lice@%").await, 1);
    assert_eq!(users_like(&s, "jos%").await, 0);
    assert_eq!(b.login("ALICE@example.COM", PASSWORD).await.status, StatusCode::OK, "one account, any case");
}

#[tokio::test]
async fn one_address_registered_many_times_at_once_makes_one_account() {
    let s = TestServer::with(|c| {
        c.throttle.register_max_per_email = 1_000;
        c.throttle.register_max_per_ip = 1_000;
    })
    .await;
    for round in 0..10 {
        let email = format!("rush{round}@example.com");
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let (base, email) = (s.base.clone(), email.clone());
                tokio::spawn(async move {
                    reqwest::Client::new()
                        .post(format!("{base}/auth/register"))
                        .header("accept", "application/json")
                        .json(&json!({"email": email, "password": PASSWORD}))
                        .send()
                        .await
                        .expect("send")
                        .status()
                })
            })
            .collect();
        for racer in racers {
            assert_eq!(racer.await.expect("racer"), StatusCode::CREATED, "round {round}: the same answer to all");
        }
        assert_eq!(users_like(&s, &email).await, 1, "round {round}: exactly one account");
    }
}

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
