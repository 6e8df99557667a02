//! The Rust verifier library (`signoff-verify`) against a real `signoff serve` process: a
//! revoked token is refused within milliseconds of the revoke response (p50/p99 over 1,000
//! revocations), a session end and a token-version bump kill their tokens, the tower layer
//! answers as the contract says, and a feed silenced with SIGSTOP makes the verifier refuse
//! every token once its budget passes and accept again once the feed resumes.
//!
//! The Node library runs the same scenarios with node's test runner (`clients/node`).

use axum::routing::get;
use axum::{Extension, Router};
use reqwest::StatusCode;
use serde_json::{Value, json};
use signoff_verify::{Claims, Options, Verifier, VerifyError};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "verifier-tests-admin-key-0123456789abcdef";
const PASSWORD: &str = "correct horse battery staple";

/// A `signoff serve` process on a fresh SQLite file; stopped (and continued first, if it was
/// stopped) on drop. Its public URL is `http://localhost:PORT`, as by default, while the
/// verifiers are given the address `base` (`http://127.0.0.1:PORT`), as a service on an internal
/// network would be: they learn the issuer and audience from signoff.
struct Signoff {
    base: String,
    public: String,
    child: Child,
    dir: std::path::PathBuf,
    http: reqwest::Client,
}

impl Signoff {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    async fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("signoff-verify-{}", signoff_core::secret::random_id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let base = format!("http://127.0.0.1:{port}");
        let public = format!("http://localhost:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_signoff"))
            .arg("serve")
            .envs(env.iter().copied())
            .env("SIGNOFF_LISTEN", format!("127.0.0.1:{port}"))
            .env("SIGNOFF_PUBLIC_URL", &public)
            .env("SIGNOFF_DATABASE_URL", format!("sqlite://{}", dir.join("v.db").display()))
            .env("SIGNOFF_ADMIN_TOKEN", ADMIN)
            .env("SIGNOFF_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn signoff");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
            assert!(Instant::now() < deadline, "signoff did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { base, public, child, dir, http }
    }

    async fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut rb = self.http.post(format!("{}{path}", self.base)).header("accept", "application/json").json(&body);
        if let Some(token) = bearer {
            rb = rb.bearer_auth(token);
        }
        let res = rb.send().await.expect("post");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn client(&self) -> (String, String) {
        let (status, body) = self.post("/admin/clients", json!({"name": "verifier"}), Some(ADMIN)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (body["client_id"].as_str().expect("id").into(), body["client_secret"].as_str().expect("secret").into())
    }

    async fn user(&self, email: &str) {
        let (status, body) = self.post("/auth/register", json!({"email": email, "password": PASSWORD}), None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// `(access, refresh)` from a password grant.
    async fn grant(&self, email: &str) -> (String, String) {
        let (status, body) = self
            .post("/auth/token", json!({"grant_type": "password", "email": email, "password": PASSWORD}), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (body["access_token"].as_str().expect("a").into(), body["refresh_token"].as_str().expect("r").into())
    }

    async fn refresh(&self, refresh: &str) -> (String, String) {
        let (status, body) =
            self.post("/auth/token", json!({"grant_type": "refresh_token", "refresh_token": refresh}), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (body["access_token"].as_str().expect("a").into(), body["refresh_token"].as_str().expect("r").into())
    }

    async fn verifier(&self, stale_after: Duration) -> Verifier {
        let (id, secret) = self.client().await;
        let mut options = Options::new(&self.base, id, secret);
        options.stale_after = stale_after;
        let v = Verifier::start(options).await;
        assert!(
            wait_for(Duration::from_secs(5), || async { v.verify("x.y.z").await != Err(VerifyError::Stale) }).await
        );
        v
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success());
    }
}

impl Drop for Signoff {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `ok` every 100 µs until it holds (true) or `limit` passes (false).
async fn wait_for<F, Fut>(limit: Duration, ok: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ok().await {
            return true;
        }
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    false
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_within_milliseconds_of_the_revoke_response() {
    let s = Signoff::start().await;
    s.user("lat@example.com").await;
    let v = s.verifier(Duration::from_secs(10)).await;
    let (_, mut refresh) = s.grant("lat@example.com").await;
    let mut lags = Vec::with_capacity(1000);
    let mut at_once = 0;
    for round in 0..1000 {
        let (access, next) = s.refresh(&refresh).await;
        refresh = next;
        assert!(v.verify(&access).await.is_ok(), "round {round}: a fresh token is valid");
        let (status, _) = s.post("/auth/revoke", json!({"token": access}), None).await;
        assert_eq!(status, StatusCode::OK);
        let answered = Instant::now();
        at_once += usize::from(v.verify(&access).await == Err(VerifyError::Revoked));
        let refused =
            wait_for(Duration::from_secs(2), || async { v.verify(&access).await == Err(VerifyError::Revoked) }).await;
        assert!(refused, "round {round}: still accepted 2 s after the revoke response");
        lags.push(answered.elapsed());
    }
    lags.sort();
    let (p50, p99, max) = (percentile(&lags, 0.5), percentile(&lags, 0.99), lags[lags.len() - 1]);
    println!(
        "rust verifier: revoke response -> refused, 1000 revocations: {at_once} refused at once; p50 {p50:?}, p99 {p99:?}, max {max:?}"
    );
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    assert!(v.held() <= 1001, "the verifier holds the revoked tokens: {}", v.held());
    v.close();
    assert_eq!(v.verify("x.y.z").await, Err(VerifyError::Stale), "a closed verifier trusts nothing");
}

#[tokio::test]
async fn a_session_end_and_a_token_version_bump_kill_their_tokens_and_the_layer_says_so() {
    let s = Signoff::start().await;
    s.user("kill@example.com").await;
    let v = s.verifier(Duration::from_secs(10)).await;

    // Two tokens of one session: logging out with one ends the session, and the other (never
    // presented to signoff) dies by its sid.
    let (first, refresh) = s.grant("kill@example.com").await;
    let (second, _) = s.refresh(&refresh).await;
    let claims = v.verify(&second).await.expect("valid");
    let (status, _) = s.post("/auth/logout", json!({}), Some(&first)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(wait_for(Duration::from_secs(1), || async { v.verify(&second).await == Err(VerifyError::Revoked) }).await);

    // An admin revoke bumps the token version: every older token of the user dies.
    let (third, _) = s.grant("kill@example.com").await;
    assert!(v.verify(&third).await.is_ok());
    let (status, body) =
        s.post(&format!("/admin/users/{}/revoke", claims.sub), json!({"reason": "t"}), Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(wait_for(Duration::from_secs(1), || async { v.verify(&third).await == Err(VerifyError::Revoked) }).await);
    let (fresh, _) = s.grant("kill@example.com").await;
    assert!(v.verify(&fresh).await.is_ok(), "a token issued after the bump lives");

    // Forgeries and foreign tokens are invalid, not revoked.
    // A character in the middle of the signature (the last one carries unused bits).
    let at = fresh.len() - 20;
    let swapped = if &fresh[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{swapped}{}", &fresh[..at], &fresh[at + 1..]);
    assert!(matches!(v.verify(&forged).await, Err(VerifyError::InvalidToken(_))));
    assert!(matches!(v.verify("not.a.token").await, Err(VerifyError::InvalidToken(_))));

    // The tower layer in an axum app.
    let app =
        Router::new().route("/whoami", get(|Extension(c): Extension<Claims>| async move { c.sub })).layer(v.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let app_base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let whoami = |token: Option<String>| {
        let (http, url) = (s.http.clone(), format!("{app_base}/whoami"));
        async move {
            let mut rb = http.get(url);
            if let Some(t) = token {
                rb = rb.bearer_auth(t);
            }
            let res = rb.send().await.expect("whoami");
            let challenge = res.headers().get("www-authenticate").map(|h| h.to_str().expect("ascii").to_owned());
            (res.status(), challenge, res.text().await.expect("body"))
        }
    };
    let (status, _, body) = whoami(Some(fresh.clone())).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, claims.sub.as_str()));
    for token in [None, Some(third.clone()), Some(forged)] {
        let (status, challenge, body) = whoami(token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(challenge.as_deref(), Some("Bearer error=\"invalid_token\""));
    }
    v.close();
    let (status, _, body) = whoami(Some(fresh)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "stale: {body}");
    assert!(body.contains("\"stale\""));
}

#[tokio::test]
async fn a_silenced_feed_makes_the_verifier_refuse_every_token_until_it_is_back() {
    let s = Signoff::start().await;
    s.user("stop@example.com").await;
    let budget = Duration::from_secs(3);
    let v = s.verifier(budget).await;
    let (access, _) = s.grant("stop@example.com").await;
    assert!(v.verify(&access).await.is_ok());

    s.signal("-STOP");
    let stopped = Instant::now();
    assert!(wait_for(Duration::from_secs(10), || async { v.verify(&access).await == Err(VerifyError::Stale) }).await);
    let refused_after = stopped.elapsed();
    println!("rust verifier: feed stopped -> tokens refused after {refused_after:?} (budget {budget:?})");
    // Heard from at most one heartbeat (1 s) before the stop, so refusal comes within the budget
    // and never much before budget minus a heartbeat.
    assert!(refused_after <= budget + Duration::from_millis(500), "{refused_after:?}");
    assert!(refused_after >= budget - Duration::from_millis(1_100), "{refused_after:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(v.verify(&access).await, Err(VerifyError::Stale), "still stale while the feed is silent");

    s.signal("-CONT");
    let resumed = Instant::now();
    assert!(wait_for(Duration::from_secs(10), || async { v.verify(&access).await.is_ok() }).await);
    println!("rust verifier: feed resumed -> tokens accepted after {:?}", resumed.elapsed());

    // A stop longer than the verifier's read timeout (3 s): it gives the connection up and
    // resumes by position on a new one, which signoff answers once it runs again.
    let (other, _) = s.grant("stop@example.com").await;
    s.signal("-STOP");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(v.verify(&other).await, Err(VerifyError::Stale));
    s.signal("-CONT");
    assert!(wait_for(Duration::from_secs(10), || async { v.verify(&access).await.is_ok() }).await);
    let (status, _) = s.post("/auth/revoke", json!({"token": other}), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(wait_for(Duration::from_secs(1), || async { v.verify(&other).await == Err(VerifyError::Revoked) }).await);
}

/// The `resource_server` example of `signoff-verify`, built by `cargo test --workspace` beside
/// this test's `signoff` binary.
fn resource_server_example() -> std::path::PathBuf {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_signoff"));
    let example = bin.parent().expect("target dir").join("examples").join("resource_server");
    assert!(
        example.exists(),
        "{} is missing: build it with `cargo build -p signoff-verify --example resource_server` (cargo test --workspace does)",
        example.display()
    );
    example
}

#[tokio::test]
async fn the_resource_server_example_serves_whoami_until_the_token_is_revoked_and_fails_closed() {
    let s = Signoff::start().await;
    s.user("example@example.com").await;
    let (id, secret) = s.client().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let _example = KillOnDrop(
        Command::new(resource_server_example())
            .env("SIGNOFF_URL", &s.base)
            .env("SIGNOFF_CLIENT_ID", id)
            .env("SIGNOFF_CLIENT_SECRET", secret)
            .env("SIGNOFF_STALE_AFTER_MS", "3000")
            .env("LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start resource_server"),
    );
    let whoami = |token: &str| {
        let req = s.http.get(format!("http://127.0.0.1:{port}/whoami")).bearer_auth(token.to_owned());
        async move { req.send().await.map(|r| r.status()).ok() }
    };
    let (access, _) = s.grant("example@example.com").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while whoami(&access).await != Some(StatusCode::OK) {
        assert!(Instant::now() < deadline, "the example never served the valid token");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = s.post("/auth/revoke", json!({"token": access}), None).await;
    assert_eq!(status, StatusCode::OK);
    let revoked = Instant::now();
    while whoami(&access).await != Some(StatusCode::UNAUTHORIZED) {
        assert!(revoked.elapsed() < Duration::from_secs(1), "the example still serves a revoked token");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (live, _) = s.grant("example@example.com").await;
    assert_eq!(whoami(&live).await, Some(StatusCode::OK));
    s.signal("-STOP");
    let stopped = Instant::now();
    while whoami(&live).await != Some(StatusCode::SERVICE_UNAVAILABLE) {
        assert!(stopped.elapsed() < Duration::from_secs(6), "the example still trusts a silent feed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.signal("-CONT");
    let resumed = Instant::now();
    while whoami(&live).await != Some(StatusCode::OK) {
        assert!(resumed.elapsed() < Duration::from_secs(10), "the example never trusted the feed again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_verifier_given_only_an_internal_url_learns_issuer_and_audience_and_a_mismatch_names_both() {
    let s = Signoff::start_with(&[("SIGNOFF_TOKEN_AUDIENCE", "orders-api")]).await;
    s.user("aud@example.com").await;
    let meta: Value = s
        .http
        .get(format!("{}/.well-known/signoff-configuration", s.base))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(meta["issuer"], s.public.as_str());
    assert_eq!(meta["token_audience"], "orders-api");
    assert_eq!(meta["jwks_uri"], format!("{}/.well-known/jwks.json", s.public));

    // Given only the internal URL and its credentials, it accepts signoff's tokens.
    let v = s.verifier(Duration::from_secs(10)).await;
    let (access, _) = s.grant("aud@example.com").await;
    let claims = v.verify(&access).await.expect("a valid token, verified with nothing but the URL");
    assert_eq!((claims.iss.as_str(), claims.aud.as_slice()), (s.public.as_str(), &["orders-api".to_owned()][..]));

    // An issuer or audience set by hand that signoff does not use: the error names both values.
    let (id, secret) = s.client().await;
    let mut options = Options::new(&s.base, id.clone(), secret.clone());
    options.issuer = Some(s.base.clone());
    let wrong_iss = Verifier::start(options).await;
    let err = wrong_iss.verify(&access).await.expect_err("wrong issuer");
    assert_eq!(err, VerifyError::Mismatch { claim: "iss", expected: s.base.clone(), found: s.public.clone() }, "{err}");
    let text = err.to_string();
    assert!(text.contains(&s.base) && text.contains(&s.public), "{text}");
    let mut options = Options::new(&s.base, id, secret);
    options.audience = Some(s.public.clone());
    let wrong_aud = Verifier::start(options).await;
    let err = wrong_aud.verify(&access).await.expect_err("wrong audience");
    assert_eq!(err, VerifyError::Mismatch { claim: "aud", expected: s.public.clone(), found: "orders-api".into() });
    assert_eq!(err.code(), "invalid_token");
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_machine_token_is_not_a_users_and_dies_for_a_verifier_of_its_audience_with_its_secret_or_client() {
    let s = Signoff::start().await;
    let v = s.verifier(Duration::from_secs(10)).await;
    // A verifier for signoff's API for clients (what a service taking machine tokens sets).
    let (rid, rsecret) = s.client().await;
    let mut options = Options::new(&s.base, rid, rsecret);
    options.audience = Some(format!("{}/clients", s.public));
    let machines = Verifier::start(options).await;
    assert!(
        wait_for(Duration::from_secs(5), || async { machines.verify("x.y.z").await != Err(VerifyError::Stale) }).await
    );
    let (status, body) = s
        .post("/admin/clients", json!({"name": "batch job", "grant_types": ["client_credentials"]}), Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["client_id"].as_str().expect("id").to_owned();
    let machine_token = |secret: String| {
        let (http, base, id) = (s.http.clone(), s.base.clone(), id.clone());
        async move {
            let res = http
                .post(format!("{base}/oidc/token"))
                .basic_auth(&id, Some(secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .send()
                .await
                .expect("token");
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.expect("json")["access_token"].as_str().expect("token").to_owned()
        }
    };
    let first = machine_token(body["client_secret"].as_str().expect("secret").to_owned()).await;
    // A service that verifies users' tokens refuses it: not its audience.
    assert!(
        matches!(v.verify(&first).await, Err(VerifyError::Mismatch { claim: "aud", .. })),
        "{:?}",
        v.verify(&first).await
    );
    let claims = machines.verify(&first).await.expect("a machine token verifies for its audience");
    assert_eq!(claims.sub, id, "its subject is the client");

    let (status, rotated) = s.post(&format!("/admin/clients/{id}/secret"), json!({}), Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert!(
        wait_for(Duration::from_secs(2), || async { machines.verify(&first).await == Err(VerifyError::Revoked) }).await,
        "refused once the secret is rotated"
    );
    let second = machine_token(rotated["client_secret"].as_str().expect("secret").to_owned()).await;
    assert!(machines.verify(&second).await.is_ok(), "the new secret's token verifies");
    let res = s.http.delete(format!("{}/admin/clients/{id}", s.base)).bearer_auth(ADMIN).send().await.expect("delete");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(
        wait_for(Duration::from_secs(2), || async { machines.verify(&second).await == Err(VerifyError::Revoked) })
            .await,
        "refused once the client is deleted"
    );
}
