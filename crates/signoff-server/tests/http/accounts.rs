//! Registration, sign-in, throttling and the CLI.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Instant;

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
