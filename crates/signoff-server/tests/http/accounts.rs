//! Registration, sign-in, password changes, throttling and the CLI.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

#[tokio::test]
async fn register_normalises_email_and_returns_the_user() {
    let s = TestServer::start().await;
    let res =
        s.browser().post_json("/auth/register", &json!({"email": "  Alice@Example.COM ", "password": PASSWORD})).await;
    assert_eq!(res.status, StatusCode::CREATED);
    let body = res.json();
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert!(body["user"]["id"].as_str().is_some_and(|id| id.len() >= 16));
    assert!(res.set_cookies().is_empty(), "registration does not sign in");
    // The normalised address signs in, whatever case is typed.
    s.browser().login("ALICE@example.com", PASSWORD).await;
}

#[tokio::test]
async fn weak_passwords_and_bad_emails_get_422() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    for (email, password, code) in [
        ("a@example.com", "short", "weak_password"),
        ("a@example.com", "password123", "weak_password"),
        ("a@example.com", "a@example.com", "weak_password"),
        ("not-an-email", PASSWORD, "invalid_email"),
        ("a@b", PASSWORD, "invalid_email"),
    ] {
        let res = b.post_json("/auth/register", &json!({"email": email, "password": password})).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{email} {password}");
        assert_eq!(res.json()["error"], code);
        assert!(res.json()["message"].is_string());
    }
}

#[tokio::test]
async fn registering_a_taken_email_reveals_nothing() {
    let s = TestServer::start().await;
    s.register("taken@example.com").await;
    let res = s
        .browser()
        .post_json("/auth/register", &json!({"email": "taken@example.com", "password": "another good password"}))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "same answer as a new address");
    assert_eq!(res.json()["user"]["email"], "taken@example.com");
    // The original password still works and the new one does not: nothing was overwritten.
    s.browser().login("taken@example.com", PASSWORD).await;
    let res = s
        .browser()
        .post_json("/auth/login", &json!({"email": "taken@example.com", "password": "another good password"}))
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_credentials_get_the_same_answer_and_similar_time_whether_or_not_the_account_exists() {
    let s = TestServer::start().await;
    s.register("bob@example.com").await;
    async fn timed(b: &mut Browser, email: &str) -> (Res, std::time::Duration) {
        let t = Instant::now();
        let res = b.post_json("/auth/login", &json!({"email": email, "password": "wrong password here"})).await;
        (res, t.elapsed())
    }
    let mut b = s.browser();
    // Interleaved samples, compared by their medians, so one stall of a busy machine (the suite
    // runs in parallel) decides nothing; four each stays under the per-account limit of five.
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        let (known, known_time) = timed(&mut b, "bob@example.com").await;
        let (unknown, unknown_time) = timed(&mut b, "nobody@example.com").await;
        for res in [&known, &unknown] {
            assert_eq!(res.status, StatusCode::UNAUTHORIZED);
            assert!(res.set_cookies().is_empty());
        }
        assert_eq!(known.json(), unknown.json());
        assert_eq!(known.json()["error"], "invalid_credentials");
        known_times.push(known_time);
        unknown_times.push(unknown_time);
    }
    let median = |mut v: Vec<std::time::Duration>| {
        v.sort();
        (v[1] + v[2]) / 2
    };
    let (known_time, unknown_time) = (median(known_times), median(unknown_times));
    // Both paths run a full argon2 verification; without the dummy hash the unknown path would
    // be two orders of magnitude faster.
    assert!(unknown_time * 4 > known_time, "unknown {unknown_time:?} vs known {known_time:?}");
    assert!(known_time * 4 > unknown_time, "unknown {unknown_time:?} vs known {known_time:?}");
}

#[tokio::test]
async fn login_issues_exact_cookie_and_never_reuses_the_clients_session_id() {
    let s = TestServer::start().await;
    s.register("carol@example.com").await;
    let mut b = s.browser();
    let first = b.login("carol@example.com", PASSWORD).await;
    let cookies = first.set_cookies();
    assert_eq!(cookies.len(), 1);
    let (pair, attrs) = cookies[0].split_once("; ").expect("attributes");
    let (name, value) = pair.split_once('=').expect("pair");
    assert_eq!(name, "__Host-signoff_session");
    assert_eq!(value.len(), 43, "256-bit secret in base64url");
    assert_eq!(attrs, "Path=/; Secure; HttpOnly; SameSite=Lax");
    let body = first.json();
    assert!(body["session"]["id"].is_string() && body["csrf_token"].is_string());
    assert_ne!(body["session"]["id"].as_str(), Some(value), "the public id is not the secret");

    // Signing in again while presenting the old cookie yields a different one, and the old
    // session is over.
    let old = value.to_owned();
    b.login("carol@example.com", PASSWORD).await;
    let new = b.session_cookie().cloned().expect("cookie");
    assert_ne!(new, old);
    let mut replay = s.browser();
    replay.jar.insert("__Host-signoff_session".into(), old);
    assert_eq!(replay.session_status().await, StatusCode::UNAUTHORIZED);

    // A client-chosen id is never adopted.
    let mut fixated = s.browser();
    let planted = "A".repeat(43);
    fixated.jar.insert("__Host-signoff_session".into(), planted.clone());
    fixated.login("carol@example.com", PASSWORD).await;
    assert_ne!(fixated.session_cookie(), Some(&planted));
}

#[tokio::test]
async fn form_login_redirects_to_validated_return_to() {
    let s = TestServer::start().await;
    s.register("dave@example.com").await;
    let mut b = s.browser();
    let res = b
        .post_form(
            "/auth/login",
            &[("email", "dave@example.com"), ("password", PASSWORD), ("return_to", "/app/sessions")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), Some("/app/sessions"));
    assert!(b.session_cookie().is_some());
    let res = b
        .post_form("/auth/login", &[("email", "dave@example.com"), ("password", PASSWORD), ("return_to", "//evil.com")])
        .await;
    assert_eq!(res.location(), Some("/app"));
    // A wrong password in a browser form re-renders the form with 401.
    let res =
        s.browser().post_form("/auth/login", &[("email", "dave@example.com"), ("password", "nope nope nope")]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.text.contains("<form") && res.text.contains("wrong"));
}

#[tokio::test]
async fn failed_attempts_are_limited_per_account_with_retry_after() {
    let s = TestServer::start().await;
    s.register("erin@example.com").await;
    let mut b = s.browser();
    for _ in 0..5 {
        let res = b.post_json("/auth/login", &json!({"email": "erin@example.com", "password": "wrong password"})).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    let res = b.post_json("/auth/login", &json!({"email": "erin@example.com", "password": PASSWORD})).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "locked even with the right password");
    assert_eq!(res.json()["error"], "too_many_attempts");
    let retry: u64 = res.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=900).contains(&retry));
    assert!(res.set_cookies().is_empty());
    // Unknown accounts lock the same way, so the limiter reveals nothing.
    for _ in 0..5 {
        b.post_json("/auth/login", &json!({"email": "ghost@example.com", "password": "wrong password"})).await;
    }
    let res = b.post_json("/auth/login", &json!({"email": "ghost@example.com", "password": "wrong password"})).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    // After the window, the account opens again.
    s.clock.advance(time::Duration::seconds(901));
    b.login("erin@example.com", PASSWORD).await;
}

#[tokio::test]
async fn failed_attempts_are_limited_per_client_address_and_successes_are_not() {
    let s = TestServer::with(|c| c.throttle.max_failures_per_ip = 3).await;
    s.register("frank@example.com").await;
    let mut b = s.browser();
    for _ in 0..10 {
        b.login("frank@example.com", PASSWORD).await;
    }
    for i in 0..3 {
        let res = b
            .post_json("/auth/login", &json!({"email": format!("user{i}@example.com"), "password": "wrong password"}))
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    let res = b.post_json("/auth/login", &json!({"email": "frank@example.com", "password": PASSWORD})).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "this address is over its limit");
    assert!(res.header("retry-after").is_some());
}

#[tokio::test]
async fn the_cli_creates_users_that_can_sign_in() {
    let s = TestServer::start().await;
    let run = |email: &str, password: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_signoff"))
            .args(["user", "create", "--email", email])
            .env("SIGNOFF_DATABASE_URL", &s.db_url)
            .env("SIGNOFF_LOG_LEVEL", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run signoff");
        use std::io::Write;
        writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write password");
        child.wait_with_output().expect("wait")
    };
    let out = run("Grace@Example.com", PASSWORD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(printed["email"], "grace@example.com");
    s.browser().login("grace@example.com", PASSWORD).await;
    let again = run("grace@example.com", PASSWORD);
    assert!(!again.status.success(), "a taken address is an error on the CLI");
    let weak = run("heidi@example.com", "short");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("weak password"));
}

// ---- Password changes under attack (the outside review, issue 8, items 1–7): racing changes
// and sign-ins commit on the state they checked, never on a stale one.

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

// ---- Registration under attack: look-alike addresses and one address registered many
// times at once make one account or none, never a 5xx.

async fn users_like(s: &TestServer, pattern: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email LIKE $1")
        .bind(pattern)
        .fetch_one(&s.db().await)
        .await
        .expect("count")
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

// ---- Accounts under attack (the outside review, issue 8, items 8–14): probing, lock-out,
// unthrottled registration and e-mail changes, weak passwords, unbounded password hashing.

/// A JSON POST as if from the client address `ip` (the server trusts `X-Forwarded-For`).
pub async fn post_from(b: &mut Browser, ip: &str, path: &str, body: serde_json::Value) -> Res {
    let rb =
        b.request(Method::POST, path).header("x-forwarded-for", ip).header("accept", "application/json").json(&body);
    b.send(rb).await
}

async fn login_from(b: &mut Browser, ip: &str, email: &str, password: &str) -> StatusCode {
    post_from(b, ip, "/auth/login", json!({"email": email, "password": password})).await.status
}

#[tokio::test]
async fn email_changes_are_throttled_per_account_whatever_their_outcome() {
    let s = TestServer::start().await;
    let taken = s.register("taken@example.com").await;
    let mut b = s.signed_in("prober@example.com").await;
    let change = |new: &str, password: &str| json!({"current_password": password, "new_email": new});
    // Five attempts of any kind: a taken address, a wrong password, a free address.
    let outcomes = [
        (change(&taken, PASSWORD), StatusCode::ACCEPTED),
        (change("free1@example.com", "wrong password"), StatusCode::UNAUTHORIZED),
        (change(&taken, PASSWORD), StatusCode::ACCEPTED),
        (change("not an address", PASSWORD), StatusCode::UNPROCESSABLE_ENTITY),
        (change("free2@example.com", "wrong password"), StatusCode::UNAUTHORIZED),
    ];
    for (body, expected) in outcomes {
        assert_eq!(b.post_json("/auth/email", &body).await.status, expected);
    }
    // Then the same answer for a taken and a free address: the limit tells nothing.
    for new in [taken.as_str(), "free3@example.com"] {
        let res = b.post_json("/auth/email", &change(new, PASSWORD)).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{new}");
        assert_eq!(res.json()["error"], "too_many_attempts");
        assert!(res.header("retry-after").is_some());
    }
    assert_eq!(b.session_status().await, StatusCode::OK, "the e-mail never changed");
    s.clock.advance(time::Duration::minutes(61));
    b.login("prober@example.com", PASSWORD).await;
    assert_eq!(b.post_json("/auth/email", &change("free4@example.com", PASSWORD)).await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn an_attacker_cannot_lock_the_owner_out() {
    let s = TestServer::with(|c| {
        c.trust_proxy = true;
        c.throttle.max_failures_per_account = 12;
    })
    .await;
    let email = s.register("owner@example.com").await;
    let mut b = s.browser();
    // One address guessing: locked after five failures, the right password included.
    for i in 0..20 {
        let status = login_from(&mut b, "203.0.113.7", &email, "wrong password").await;
        let expected = if i < 5 { StatusCode::UNAUTHORIZED } else { StatusCode::TOO_MANY_REQUESTS };
        assert_eq!(status, expected, "attempt {i}");
    }
    assert_eq!(login_from(&mut b, "203.0.113.7", &email, PASSWORD).await, StatusCode::TOO_MANY_REQUESTS);
    // The owner, from their own address, signs in as ever.
    assert_eq!(login_from(&mut b, "198.51.100.1", &email, PASSWORD).await, StatusCode::OK);
    // IPv6 addresses count by /64: hopping inside one block does not help.
    for i in 1..=5 {
        let ip = format!("2001:db8:1:2::{i:x}");
        assert_eq!(login_from(&mut b, &ip, &email, "wrong password").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login_from(&mut b, "2001:db8:1:2:ffff::1", &email, "x").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login_from(&mut b, "2001:db8:1:3::1", &email, PASSWORD).await, StatusCode::OK, "another /64");
    // Far above that, the account-wide limit still holds against many addresses (12 here).
    for i in 0..2 {
        let ip = format!("192.0.2.{i}");
        assert_eq!(login_from(&mut b, &ip, &email, "wrong password").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login_from(&mut b, "192.0.2.200", &email, PASSWORD).await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn registration_is_throttled_and_repeats_leave_one_audit_event() {
    let s = TestServer::with(|c| {
        c.trust_proxy = true;
        c.throttle.register_max_per_email = 40;
    })
    .await;
    let victim = s.register("victim@example.com").await;
    let mut b = s.browser();
    let register = |email: &str| json!({"email": email, "password": PASSWORD});
    // One address: ten registrations an hour.
    for i in 0..10 {
        let res = post_from(&mut b, "203.0.113.9", "/auth/register", register(&format!("bulk{i}@example.com"))).await;
        assert_eq!(res.status, StatusCode::CREATED, "{i}");
    }
    let res = post_from(&mut b, "203.0.113.9", "/auth/register", register("bulk10@example.com")).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(res.header("retry-after").is_some());
    // Thirty attempts at the victim's address from thirty addresses: one audit event.
    for i in 0..30 {
        let res = post_from(&mut b, &format!("198.51.100.{i}"), "/auth/register", register(&victim)).await;
        assert_eq!(res.status, StatusCode::CREATED, "the same answer as for a free address");
    }
    let mut owner = s.browser();
    owner.login(&victim, PASSWORD).await;
    let events = owner.get_json("/auth/audit").await.json()["events"].clone();
    let events = events.as_array().expect("events");
    assert_eq!(events.iter().filter(|e| e["type"] == "register_existing").count(), 1, "{events:?}");
    assert!(events.iter().any(|e| e["type"] == "login"), "the owner's own sign-in stays in view");

    // One target address: a few attempts an hour, whoever sends them.
    let s = TestServer::with(|c| c.trust_proxy = true).await;
    let mut b = s.browser();
    for i in 0..3 {
        let res = post_from(&mut b, &format!("198.51.100.{i}"), "/auth/register", register("target@example.com")).await;
        assert_eq!(res.status, StatusCode::CREATED);
    }
    let res = post_from(&mut b, "198.51.100.99", "/auth/register", register("target@example.com")).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn weak_passwords_are_refused_with_a_clear_message() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    for weak in
        ["aaaaaaaa", "        ", "qwertyui", "Password1!", "password123", "iloveyou1", "Summer2024!", "1q2w3e4r5t"]
    {
        let res = b.post_json("/auth/register", &json!({"email": "weak@example.com", "password": weak})).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{weak:?}");
        assert_eq!(res.json()["error"], "weak_password");
        assert!(res.json()["message"].as_str().is_some_and(|m| m.starts_with("password ")), "{}", res.text);
    }
    let mut b = s.signed_in("strong@example.com").await;
    let res = b.post_json("/auth/password", &json!({"current_password": PASSWORD, "new_password": "Password1!"})).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "a password change applies the same policy");
}

#[tokio::test]
async fn password_hashing_is_bounded_and_never_starves_validation() {
    let s = TestServer::with(|c| {
        c.password_hash_concurrency = 2;
        c.password_hash_queue = Duration::from_millis(150);
    })
    .await;
    let email = s.register("storm@example.com").await;
    let mut watcher = s.browser();
    watcher.login(&email, PASSWORD).await;
    let http = reqwest::Client::new();
    let mut set = JoinSet::new();
    for _ in 0..64 {
        let (http, base, origin, email) = (http.clone(), s.base.clone(), s.origin.clone(), email.clone());
        set.spawn(async move {
            let res = http
                .post(format!("{base}/auth/login"))
                .header("origin", origin)
                .header("accept", "application/json")
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .expect("login");
            (res.status(), res.headers().get("retry-after").is_some())
        });
    }
    // Validation stays an in-memory look-up while the storm runs.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(watcher.session_status().await, StatusCode::OK);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answers = set.join_all().await;
    let busy = answers.iter().filter(|(st, _)| *st == StatusCode::SERVICE_UNAVAILABLE).count();
    let ok = answers.iter().filter(|(st, _)| *st == StatusCode::OK).count();
    assert_eq!(busy + ok, 64, "only 200 or 503: {answers:?}");
    assert!(busy > 0, "two hashing slots cannot serve 64 sign-ins within 150 ms");
    assert!(ok >= 2, "the slots were used");
    assert!(answers.iter().all(|(st, retry)| *st != StatusCode::SERVICE_UNAVAILABLE || *retry), "503 has Retry-After");
    assert!(slowest < Duration::from_millis(250), "validation waited {slowest:?} behind hashing");
}

#[tokio::test]
async fn a_client_hanging_up_while_its_password_is_hashed_is_counted_all_the_same() {
    let s = TestServer::start().await;
    let email = s.register("hangup@example.com").await;
    // Each guess is written whole on its own connection, which is closed 25 ms later, before
    // argon2 can answer. (A client that gives up within 5 ms, as this test once did, may not
    // have sent its request at all on a busy machine.)
    let addr = s.base.trim_start_matches("http://").to_owned();
    let body = json!({"email": email, "password": "a wrong guess"}).to_string();
    let request = format!(
        "POST /auth/login HTTP/1.1\r\nHost: {addr}\r\nOrigin: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        s.origin,
        body.len()
    );
    for _ in 0..8 {
        let mut guess = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut guess, request.as_bytes()).await.expect("send");
        tokio::time::sleep(Duration::from_millis(25)).await;
        drop(guess);
    }
    // The owner, retrying while the guesses are still hashed (503, busy: in flight, they
    // count as failures already).
    let mut b = s.browser();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let res = b.post_json("/auth/login", &json!({"email": email, "password": PASSWORD})).await;
        if res.status != StatusCode::SERVICE_UNAVAILABLE || Instant::now() > deadline {
            break res.status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "abandoned guesses still count");
    // And each one is in the owner's audit log, stored before it counted.
    s.clock.advance(time::Duration::minutes(16));
    b.login(&email, PASSWORD).await;
    let events = b.get_json("/auth/audit").await.json()["events"].clone();
    let failed = events.as_array().expect("events").iter().filter(|e| e["type"] == "login_failed").count();
    assert!(failed >= 5, "{failed} abandoned guesses audited: {events}");
}

#[tokio::test]
async fn parallel_guesses_get_no_more_tries_than_the_limit() {
    let s = TestServer::start().await;
    let email = s.register("burst@example.com").await;
    let http = reqwest::Client::new();
    for round in 0..3 {
        let mut set = JoinSet::new();
        for i in 0..100 {
            let (http, base, origin, email) = (http.clone(), s.base.clone(), s.origin.clone(), email.clone());
            set.spawn(async move {
                let res = http
                    .post(format!("{base}/auth/login"))
                    .header("origin", origin)
                    .header("accept", "application/json")
                    .json(&json!({"email": email, "password": format!("guess {round} {i}")}))
                    .send()
                    .await
                    .expect("login");
                res.status()
            });
        }
        let statuses = set.join_all().await;
        let checked = statuses.iter().filter(|st| **st == StatusCode::UNAUTHORIZED).count();
        let refused = [StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE];
        assert!(statuses.iter().all(|st| *st == StatusCode::UNAUTHORIZED || refused.contains(st)), "{statuses:?}");
        assert!(checked <= 5, "round {round}: 100 parallel guesses had {checked} passwords checked");
        if round == 0 {
            assert_eq!(checked, 5, "the limit's five tries were used");
        }
        s.clock.advance(time::Duration::minutes(16));
    }
}
