//! Logout notifications from the outbox to real receivers on loopback: OIDC back-channel logout
//! tokens checked against the JWKS, Standard Webhooks signatures checked, retries with one
//! `webhook-id`, a hanging receiver that never slows a logout, `410` and `4xx` outcomes, and the
//! admin view and retry of deliveries.

use crate::support::*;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signoff_core::clock::Clock as _;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod admin;
mod apps;
mod channels;
mod retries;

const ADMIN: &str = "0123456789abcdef0123456789abcdef0123456789b";

/// What a receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: String,
}

/// A real HTTP receiver: answers with the scripted statuses in turn (then 200), a failure with
/// `retry_after` as its `Retry-After` if set; `hang` makes it never answer.
struct Receiver {
    base: String,
    got: mpsc::UnboundedReceiver<Received>,
    script: Arc<Mutex<VecDeque<u16>>>,
    hang: Arc<Mutex<bool>>,
    retry_after: Arc<Mutex<Option<String>>>,
}

async fn receiver() -> Receiver {
    let (tx, got) = mpsc::unbounded_channel();
    let script: Arc<Mutex<VecDeque<u16>>> = Arc::default();
    let hang: Arc<Mutex<bool>> = Arc::default();
    let retry_after: Arc<Mutex<Option<String>>> = Arc::default();
    let (s, h, ra) = (script.clone(), hang.clone(), retry_after.clone());
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
        let (tx, s, h, ra) = (tx.clone(), s.clone(), h.clone(), ra.clone());
        async move {
            let _ = tx.send(Received { path: uri.path().to_owned(), headers, body });
            if *h.lock().expect("lock") {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            let status = AxumStatus::from_u16(s.lock().expect("lock").pop_front().unwrap_or(200)).expect("status");
            let mut answer = HeaderMap::new();
            if let (false, Some(v)) = (status.is_success(), ra.lock().expect("lock").clone()) {
                answer.insert("retry-after", v.parse().expect("header"));
            }
            // A refusal in OAuth's error form, with a line break the deliveries view must flatten.
            let said = if status.is_success() {
                String::new()
            } else {
                json!({"error": "invalid_request", "error_description": format!("scripted\n{}", status.as_u16())})
                    .to_string()
            };
            (status, answer, said)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { base, got, script, hang, retry_after }
}

impl Receiver {
    async fn next(&mut self, within: Duration) -> Received {
        tokio::time::timeout(within, self.got.recv()).await.expect("a delivery in time").expect("open")
    }

    async fn nothing_for(&mut self, d: Duration) -> bool {
        tokio::time::timeout(d, self.got.recv()).await.is_err()
    }
}

fn configure(c: &mut signoff_server::Config) {
    c.admin_token = Some(signoff_server::config::AdminKey(ADMIN.into()));
    c.allow_private_callbacks = true;
}

async fn server() -> TestServer {
    TestServer::with(configure).await
}

async fn admin(s: &TestServer, method: Method, path: &str, body: Option<Value>) -> Res {
    let mut b = s.browser();
    let mut rb = b.bare(method, path).header("authorization", format!("Bearer {ADMIN}"));
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    b.send(rb).await
}

/// Logs `b` out through the JSON API (with its CSRF token).
async fn log_out(b: &mut Browser) {
    let csrf = b.get_json("/auth/session").await.json()["csrf_token"].as_str().expect("csrf").to_owned();
    let rb = b
        .request(Method::POST, "/auth/logout")
        .header("x-csrf-token", csrf)
        .header("accept", "application/json")
        .json(&json!({}));
    assert_eq!(b.send(rb).await.status, StatusCode::OK);
}

/// Registers a client with both callbacks at `r`; its id and webhook secret.
async fn client(s: &TestServer, r: &Receiver) -> (String, String) {
    let body = json!({"name": "app", "backchannel_logout_uri": format!("{}/bc", r.base), "webhook_url": format!("{}/hook", r.base)});
    let res = admin(s, Method::POST, "/admin/clients", Some(body)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let j = res.json();
    (j["client_id"].as_str().expect("id").to_owned(), j["webhook_secret"].as_str().expect("whsec").to_owned())
}

/// Registers a client with a webhook at `r` only; its id and webhook secret.
async fn hook_client(s: &TestServer, r: &Receiver) -> (String, String) {
    let body = json!({"name": "hooks", "webhook_url": format!("{}/hook", r.base)});
    let res = admin(s, Method::POST, "/admin/clients", Some(body)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let j = res.json();
    (j["client_id"].as_str().expect("id").to_owned(), j["webhook_secret"].as_str().expect("whsec").to_owned())
}

/// Checks a Standard Webhooks signature the way a receiver does.
fn webhook_verified(secret: &str, got: &Received) -> bool {
    let h = |n: &str| got.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let key = STANDARD.decode(secret.trim_start_matches("whsec_")).expect("base64");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{}.{}.{}", h("webhook-id"), h("webhook-timestamp"), got.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    h("webhook-signature").split(' ').any(|sig| sig == expected)
}

/// Runs the independent checks (PyJWT, the Standard Webhooks reference package) of
/// `tests/interop/notify_interop.py` over what a receiver got; `kinds` must all be among it.
fn interop(
    s: &TestServer,
    got: &[Received],
    client: String,
    secret: String,
    kinds: &str,
) -> tokio::task::JoinHandle<std::io::Result<std::process::Output>> {
    interop_as(s, got, client, secret, kinds, "EdDSA")
}

/// [`interop`] for logout tokens signed with `alg`.
fn interop_as(
    s: &TestServer,
    got: &[Received],
    client: String,
    secret: String,
    kinds: &str,
    alg: &str,
) -> tokio::task::JoinHandle<std::io::Result<std::process::Output>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/notify_interop.py");
    let received: Vec<Value> = got
        .iter()
        .map(|g| {
            let headers: serde_json::Map<String, Value> =
                g.headers.iter().map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default()))).collect();
            json!({"path": g.path, "headers": headers, "body": g.body})
        })
        .collect();
    let args = [
        script.to_owned(),
        format!("{}/.well-known/jwks.json", s.base),
        s.origin.clone(),
        client,
        secret,
        kinds.to_owned(),
        alg.to_owned(),
    ];
    let input = serde_json::to_vec(&received).expect("json");
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new("python3")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        child.stdin.take().expect("stdin").write_all(&input)?;
        child.wait_with_output()
    })
}

/// The logout token's header and claims, its signature checked against the server's JWKS.
async fn logout_token(s: &TestServer, got: &Received) -> (Value, Value) {
    let token = got.body.strip_prefix("logout_token=").expect("form body");
    let jwks: Value =
        reqwest::get(format!("{}/.well-known/jwks.json", s.base)).await.expect("jwks").json().await.expect("json");
    let keys = signoff_jwt::keys::public_keys_of_jwks(&jwks);
    let claims: Value =
        signoff_jwt::keys::verify_with(token, |kid| keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key.clone()))
            .expect("signed by a key of the JWKS, under its algorithm");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().expect("header")).expect("b64"))
            .expect("json");
    (header, claims)
}

/// Waits until every delivery of a client is delivered; the list.
async fn all_delivered(s: &TestServer, client_id: &str, count: usize) -> Vec<Value> {
    let path = format!("/admin/clients/{client_id}/deliveries?limit=200");
    let mut list = Vec::new();
    for _ in 0..100 {
        list = admin(s, Method::GET, &path, None).await.json()["deliveries"].as_array().cloned().unwrap_or_default();
        if list.len() == count && list.iter().all(|d| d["status"] == "delivered") {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not all {count} delivered: {list:?}");
}

/// The `sid`s of the next `count` logout tokens (each checked against the JWKS), sorted; and
/// nothing more arrives.
async fn announced(s: &TestServer, r: &mut Receiver, count: usize, case: &str) -> Vec<String> {
    let mut sids = Vec::new();
    for _ in 0..count {
        let got = r.next(Duration::from_secs(5)).await;
        let (header, claims) = logout_token(s, &got).await;
        assert_eq!(header["typ"], "logout+jwt", "{case}");
        sids.push(claims["sid"].as_str().expect("sid").to_owned());
    }
    assert!(r.nothing_for(Duration::from_millis(300)).await, "{case}: more than {count} logout tokens");
    sids.sort();
    sids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn sid_of(b: &mut Browser) -> String {
    b.get_json("/auth/session").await.json()["session"]["id"].as_str().expect("sid").to_owned()
}

/// A second browser of `email`, signed in.
async fn another(s: &TestServer, email: &str) -> Browser {
    let mut b = s.browser();
    b.login(email, PASSWORD).await;
    b
}
