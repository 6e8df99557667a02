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
    let keys = signoff_jwt::keys_of_jwks(&jwks);
    let claims: Value = signoff_jwt::verify(token, |kid| keys.iter().find(|(k, _)| k == kid).map(|(_, key)| *key))
        .expect("signed by a key of the JWKS");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().expect("header")).expect("b64"))
            .expect("json");
    (header, claims)
}

#[tokio::test]
async fn a_logout_reaches_the_client_as_a_backchannel_logout_token_and_a_signed_webhook() {
    let s = server().await;
    let mut r = receiver().await;
    let (client_id, secret) = client(&s, &r).await;
    let mut b = s.signed_in("notify@example.com").await;
    let session = b.get_json("/auth/session").await.json();
    let (user, sid) = (
        session["user"]["id"].as_str().expect("u").to_owned(),
        session["session"]["id"].as_str().expect("s").to_owned(),
    );
    let csrf = session["csrf_token"].as_str().expect("csrf").to_owned();
    let rb = b
        .request(Method::POST, "/auth/logout")
        .header("x-csrf-token", csrf)
        .header("accept", "application/json")
        .json(&json!({}));
    assert_eq!(b.send(rb).await.status, StatusCode::OK);

    let mut got = [r.next(Duration::from_secs(5)).await, r.next(Duration::from_secs(5)).await];
    got.sort_by(|a, b| a.path.cmp(&b.path));
    let (bc, hook) = (&got[0], &got[1]);
    assert_eq!(bc.path, "/bc");
    assert_eq!(bc.headers["content-type"], "application/x-www-form-urlencoded");
    let (header, claims) = logout_token(&s, bc).await;
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(claims["iss"], s.origin.as_str());
    assert_eq!(claims["aud"], client_id.as_str());
    assert_eq!((claims["sub"].as_str(), claims["sid"].as_str()), (Some(user.as_str()), Some(sid.as_str())));
    assert_eq!(claims["events"], json!({"http://schemas.openid.net/event/backchannel-logout": {}}));
    assert!(claims.get("nonce").is_none());
    let (iat, exp) = (claims["iat"].as_i64().expect("iat"), claims["exp"].as_i64().expect("exp"));
    assert!(exp > iat && exp - iat <= 120, "short-lived: {iat}..{exp}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    assert_eq!(hook.path, "/hook");
    assert!(webhook_verified(&secret, hook), "Standard Webhooks signature");
    let body: Value = serde_json::from_str(&hook.body).expect("json");
    assert_eq!(body["type"], "session.ended");
    assert_eq!(body["data"], json!({"user_id": user, "session_id": sid, "reason": "logout"}));
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));

    // The same, checked by independent implementations: PyJWT and the Standard Webhooks
    // reference package.
    let interop = |client: String, secret: String| interop(&s, &got, client, secret, "backchannel,webhook");
    let out = interop(client_id.clone(), secret.clone())
        .await
        .expect("join")
        .expect("python3 runs (pip install pyjwt cryptography standardwebhooks)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("notify interop ok"), "{text}");
    // The checks can fail: another audience, another secret.
    let other_secret = format!("whsec_{}", STANDARD.encode([7u8; 32]));
    for (client, secret, why) in [
        ("someone-else".to_owned(), secret.clone(), "InvalidAudienceError"),
        (client_id.clone(), other_secret, "No matching signature found"),
    ] {
        let out = interop(client, secret).await.expect("join").expect("python3");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success() && text.contains(why), "refused for {why}: {text}");
    }

    // The admin view: both delivered, once each.
    let mut seen = json!(null);
    for _ in 0..50 {
        seen = admin(&s, Method::GET, &format!("/admin/clients/{client_id}/deliveries"), None).await.json();
        if seen["deliveries"].as_array().is_some_and(|d| d.len() == 2 && d.iter().all(|x| x["status"] == "delivered")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list = seen["deliveries"].as_array().expect("deliveries");
    assert_eq!(list.len(), 2, "{seen}");
    for d in list {
        assert_eq!(
            (d["status"].as_str(), d["attempts"].as_i64(), d["last_status_code"].as_i64()),
            (Some("delivered"), Some(1), Some(200)),
            "{d}"
        );
    }
    let kinds: Vec<_> = list.iter().map(|d| d["kind"].as_str().expect("kind")).collect();
    assert!(kinds.contains(&"backchannel_logout") && kinds.contains(&"webhook"));
    assert!(r.nothing_for(Duration::from_millis(300)).await, "nothing delivered twice");
    assert_eq!(admin(&s, Method::GET, "/admin/clients/nope/deliveries", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_with_one_webhook_id_and_a_hanging_one_never_slows_a_logout() {
    let s = server().await;
    let mut r = receiver().await;
    let (client_id, secret) = hook_client(&s, &r).await;
    r.script.lock().expect("lock").extend([503, 500]);
    let mut b = s.signed_in("retry@example.com").await;
    let user = b.get_json("/auth/session").await.json()["user"]["id"].as_str().expect("user").to_owned();
    let res = admin(&s, Method::POST, &format!("/admin/users/{user}/revoke"), Some(json!({"reason": "x"}))).await;
    assert_eq!(res.status, StatusCode::OK);
    // Two webhooks (session.ended, user.token_version); each first answered 503 or 500.
    let first = [r.next(Duration::from_secs(5)).await, r.next(Duration::from_secs(5)).await];
    // Once both attempts are recorded, retries are due about 2 s later by the server's clock
    // (moved on here).
    let path = format!("/admin/clients/{client_id}/deliveries");
    let mut recorded = false;
    for _ in 0..100 {
        let list = admin(&s, Method::GET, &path, None).await.json();
        recorded = list["deliveries"].as_array().is_some_and(|d| {
            d.len() == 2
                && d.iter().all(|x| {
                    x["status"] == "pending"
                        && x["attempts"] == 1
                        && x["last_status_code"].as_i64().is_some_and(|c| c >= 500)
                })
        });
        if recorded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(recorded, "both attempts recorded as pending with their 5xx");
    assert!(r.nothing_for(Duration::from_millis(1500)).await, "no retry before it is due");
    s.clock.advance(time::Duration::seconds(3));
    let again = [r.next(Duration::from_secs(5)).await, r.next(Duration::from_secs(5)).await];
    let ids = |v: &[Received]| {
        let mut ids: Vec<String> = v.iter().map(|x| x.headers["webhook-id"].to_str().expect("id").to_owned()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&first), ids(&again), "a retry carries the same webhook-id");
    assert!(again.iter().all(|g| webhook_verified(&secret, g)));
    let types: Vec<String> = again
        .iter()
        .map(|g| serde_json::from_str::<Value>(&g.body).expect("json")["type"].as_str().expect("t").to_owned())
        .collect();
    assert!(
        types.contains(&"session.ended".to_owned()) && types.contains(&"user.token_version".to_owned()),
        "{types:?}"
    );
    let mut done = false;
    for _ in 0..50 {
        let list = admin(&s, Method::GET, &format!("/admin/clients/{client_id}/deliveries"), None).await.json();
        done = list["deliveries"]
            .as_array()
            .is_some_and(|d| d.iter().all(|x| x["status"] == "delivered" && x["attempts"] == 2));
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "delivered on the second attempt");

    // A receiver that never answers: the logout is as fast as ever, and another client's
    // endpoint is served meanwhile.
    *r.hang.lock().expect("lock") = true;
    let mut other = receiver().await;
    let hook = json!({"name": "other", "webhook_url": format!("{}/hook", other.base)});
    assert_eq!(admin(&s, Method::POST, "/admin/clients", Some(hook)).await.status, StatusCode::CREATED);
    let mut b = s.signed_in("hang@example.com").await;
    let csrf = b.get_json("/auth/session").await.json()["csrf_token"].as_str().expect("csrf").to_owned();
    let started = Instant::now();
    let rb = b
        .request(Method::POST, "/auth/logout")
        .header("x-csrf-token", csrf)
        .header("accept", "application/json")
        .json(&json!({}));
    assert_eq!(b.send(rb).await.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(500), "logout took {:?}", started.elapsed());
    let _ = r.next(Duration::from_secs(5)).await;
    let served = other.next(Duration::from_secs(2)).await;
    assert_eq!(serde_json::from_str::<Value>(&served.body).expect("json")["type"], "session.ended");
    // And again, while the hanging endpoint still holds its first delivery.
    let mut b2 = s.signed_in("hang2@example.com").await;
    log_out(&mut b2).await;
    let _ = other.next(Duration::from_secs(2)).await;
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_refusal_fails_the_delivery_and_gone_stops_the_url_and_an_admin_can_retry() {
    let s = server().await;
    let mut r = receiver().await;
    let (client_id, _) = hook_client(&s, &r).await;
    let path = format!("/admin/clients/{client_id}/deliveries");
    let deliveries = || admin(&s, Method::GET, &path, None);

    // 400: failed at once, no retry; an admin's retry sends it again.
    r.script.lock().expect("lock").push_back(400);
    let mut b = s.signed_in("refused@example.com").await;
    log_out(&mut b).await;
    let first = r.next(Duration::from_secs(5)).await;
    let mut failed = Value::Null;
    for _ in 0..50 {
        let list = deliveries().await.json();
        if let Some(d) = list["deliveries"].as_array().and_then(|d| d.iter().find(|x| x["status"] == "failed")) {
            failed = d.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((failed["last_status_code"].as_i64(), failed["attempts"].as_i64()), (Some(400), Some(1)), "{failed}");
    assert_eq!(failed["last_error"], "scripted 400", "the receiver's own words: {failed}");
    let metrics = s.browser().get("/metrics").await.text;
    assert!(metrics.contains("signoff_deliveries_failed 1"), "{metrics}");
    assert!(metrics.contains("signoff_deliveries_pending 0"), "{metrics}");
    assert!(metrics.contains("signoff_delivery_seconds_count{outcome=\"refused\"} 1"), "timed: {metrics}");
    s.clock.advance(time::Duration::hours(1));
    assert!(r.nothing_for(Duration::from_millis(1500)).await, "a 4xx is not retried");
    let id = failed["id"].as_str().expect("id");
    let retried = admin(&s, Method::POST, &format!("/admin/clients/{client_id}/deliveries/{id}/retry"), None).await;
    assert_eq!(retried.status, StatusCode::NO_CONTENT);
    let again = r.next(Duration::from_secs(5)).await;
    assert_eq!(again.headers["webhook-id"], first.headers["webhook-id"]);
    let nope = admin(&s, Method::POST, &format!("/admin/clients/{client_id}/deliveries/{id}/retry"), None).await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND, "only a failed delivery can be retried");

    // 410: the URL is gone for good, and the client no longer has it.
    r.script.lock().expect("lock").push_back(410);
    let mut b = s.signed_in("gone@example.com").await;
    log_out(&mut b).await;
    let _ = r.next(Duration::from_secs(5)).await;
    let mut gone = false;
    for _ in 0..50 {
        let clients = admin(&s, Method::GET, "/admin/clients", None).await.json();
        gone = clients["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x["client_id"] == client_id.as_str() && x["webhook_url"].is_null()));
        if gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "a 410 removes the webhook URL");
    let mut b = s.signed_in("after@example.com").await;
    log_out(&mut b).await;
    assert!(r.nothing_for(Duration::from_millis(1500)).await, "nothing more is sent to a gone URL");
}

#[tokio::test]
async fn two_nodes_draining_one_outbox_send_each_delivery_once() {
    let a = server().await;
    let b = a.sibling_with(configure).await;
    let mut r = receiver().await;
    hook_client(&a, &r).await;
    // Logouts through both nodes; both nodes' workers drain the one outbox.
    a.register("twice@example.com").await;
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        let mut browser = node.browser();
        browser.login("twice@example.com", PASSWORD).await;
        log_out(&mut browser).await;
    }
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(r.next(Duration::from_secs(5)).await.headers["webhook-id"].to_str().expect("id").to_owned());
    }
    assert!(r.nothing_for(Duration::from_millis(1500)).await, "no delivery made twice");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "each of the 20 logouts delivered once");
}

#[tokio::test]
async fn an_https_callback_is_called_over_tls() {
    let s = server().await;
    // A bare TCP listener: what arrives first is a TLS ClientHello (record type 0x16), not HTTP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://127.0.0.1:{}/hook", listener.local_addr().expect("addr").port());
    let res = admin(&s, Method::POST, "/admin/clients", Some(json!({"name": "tls", "webhook_url": url}))).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let mut b = s.signed_in("tls@example.com").await;
    log_out(&mut b).await;
    let (mut socket, _) =
        tokio::time::timeout(Duration::from_secs(5), listener.accept()).await.expect("in time").expect("accept");
    let mut first = [0u8; 3];
    tokio::io::AsyncReadExt::read_exact(&mut socket, &mut first).await.expect("read");
    assert_eq!(first[0], 0x16, "a TLS handshake record, got {first:?}");
    assert_eq!(first[1], 0x03, "TLS version major 3");
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

#[tokio::test]
async fn a_rotated_webhook_secret_signs_with_both_until_the_overlap_ends() {
    let s = server().await;
    let mut r = receiver().await;
    let (client_id, old) = hook_client(&s, &r).await;
    let rotate_path = format!("/admin/clients/{client_id}/webhook-secret");
    let rotate = |body: Value| admin(&s, Method::POST, &rotate_path, Some(body));
    let res = rotate(json!({"overlap_seconds": 3600})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let new = res.json()["webhook_secret"].as_str().expect("new secret").to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(res.json()["previous_valid_until"].as_str().is_some_and(|t| t.ends_with('Z')));

    // During the overlap: both signatures, each accepted by the reference package.
    let mut b = s.signed_in("rotate@example.com").await;
    log_out(&mut b).await;
    let during = r.next(Duration::from_secs(5)).await;
    assert!(webhook_verified(&new, &during) && webhook_verified(&old, &during), "signed with both");
    assert_eq!(during.headers["webhook-signature"].to_str().expect("sig").split(' ').count(), 2);
    for secret in [&new, &old] {
        let out = interop(&s, std::slice::from_ref(&during), client_id.clone(), secret.clone(), "webhook")
            .await
            .expect("join")
            .expect("python3");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("notify interop ok"), "{text}");
    }
    let stranger = format!("whsec_{}", STANDARD.encode([9u8; 32]));
    let out = interop(&s, std::slice::from_ref(&during), client_id.clone(), stranger, "webhook")
        .await
        .expect("join")
        .expect("python3");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && text.contains("No matching signature found"), "a third secret is refused: {text}");

    // After it: the new secret only.
    s.clock.advance(time::Duration::seconds(3601));
    let mut b = s.signed_in("rotate2@example.com").await;
    log_out(&mut b).await;
    let after = r.next(Duration::from_secs(5)).await;
    assert!(webhook_verified(&new, &after) && !webhook_verified(&old, &after), "the old secret has ended");

    // Without an overlap the replaced secret stops at once.
    let res = rotate(json!({"overlap_seconds": 0})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.json()["previous_valid_until"].is_null());
    let newest = res.json()["webhook_secret"].as_str().expect("secret").to_owned();
    let mut b = s.signed_in("rotate3@example.com").await;
    log_out(&mut b).await;
    let last = r.next(Duration::from_secs(5)).await;
    assert!(webhook_verified(&newest, &last) && !webhook_verified(&new, &last));
    assert_eq!(last.headers["webhook-signature"].to_str().expect("sig").split(' ').count(), 1);

    // Bad asks.
    assert_eq!(rotate(json!({"overlap_seconds": 8 * 24 * 3600})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(rotate(json!({"overlap_seconds": "soon"})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(rotate(json!({"overlap_seconds": -1})).await.status, StatusCode::BAD_REQUEST);
    let unknown = admin(&s, Method::POST, "/admin/clients/nobody/webhook-secret", Some(json!({}))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let bc = json!({"name": "bc only", "backchannel_logout_uri": format!("{}/bc", r.base)});
    let bc_id =
        admin(&s, Method::POST, "/admin/clients", Some(bc)).await.json()["client_id"].as_str().expect("id").to_owned();
    let res = admin(&s, Method::POST, &format!("/admin/clients/{bc_id}/webhook-secret"), Some(json!({}))).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    let mut anonymous = s.browser();
    let rb = anonymous.bare(Method::POST, &format!("/admin/clients/{client_id}/webhook-secret"));
    assert_eq!(anonymous.send(rb).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deliveries_are_listed_in_pages_and_by_status() {
    let s = server().await;
    let mut r = receiver().await;
    let (client_id, _) = hook_client(&s, &r).await;
    r.script.lock().expect("lock").push_back(400);
    for i in 0..5 {
        let mut b = s.signed_in(&format!("page{i}@example.com")).await;
        log_out(&mut b).await;
        let _ = r.next(Duration::from_secs(5)).await;
    }
    let path = format!("/admin/clients/{client_id}/deliveries");
    let mut all = Vec::new();
    for _ in 0..100 {
        all = admin(&s, Method::GET, &path, None).await.json()["deliveries"].as_array().cloned().unwrap_or_default();
        if all.len() == 5 && all.iter().all(|d| d["status"] != "pending") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(all.len(), 5);
    // Two at a time, following `next`, gives the whole list in order.
    let mut paged = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..5 {
        let q = next.as_ref().map(|n| format!("&before={}", enc(n))).unwrap_or_default();
        let page = admin(&s, Method::GET, &format!("{path}?limit=2{q}"), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        paged.extend(page.json()["deliveries"].as_array().cloned().unwrap_or_default());
        next = page.json()["next"].as_str().map(str::to_owned);
        if next.is_none() {
            break;
        }
    }
    assert_eq!(paged, all, "pages follow one another without a gap or a repeat");
    let failed = admin(&s, Method::GET, &format!("{path}?status=failed"), None).await.json();
    let failed = failed["deliveries"].as_array().cloned().unwrap_or_default();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["last_status_code"], 400);
    let delivered = admin(&s, Method::GET, &format!("{path}?status=delivered&limit=200"), None).await.json();
    assert_eq!(delivered["deliveries"].as_array().map(Vec::len), Some(4));
    assert!(delivered["next"].is_null());
    for bad in ["?limit=0", "?limit=201", "?limit=x", "?status=lost", "?before=zzz", "?colour=red"] {
        let res = admin(&s, Method::GET, &format!("{path}{bad}"), None).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{bad}: {}", res.text);
    }
}

#[tokio::test]
async fn a_password_change_announces_every_session_id_that_died_including_the_rotated_one() {
    let s = server().await;
    let mut r = receiver().await;
    let bc = json!({"name": "bc", "backchannel_logout_uri": format!("{}/bc", r.base)});
    let client_id =
        admin(&s, Method::POST, "/admin/clients", Some(bc)).await.json()["client_id"].as_str().expect("id").to_owned();
    let mut here = s.signed_in("rekey@example.com").await;
    let mut there = s.browser();
    there.login("rekey@example.com", PASSWORD).await;
    let sid = |v: Value| v["session"]["id"].as_str().expect("sid").to_owned();
    let (here_old, there_sid) =
        (sid(here.get_json("/auth/session").await.json()), sid(there.get_json("/auth/session").await.json()));
    let res = here
        .post_json(
            "/auth/password",
            &json!({"current_password": PASSWORD, "new_password": "an entirely new passphrase"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let here_new = sid(here.get_json("/auth/session").await.json());
    assert_ne!(here_new, here_old, "the current session moved to a new id");
    let mut announced = Vec::new();
    for _ in 0..2 {
        let got = r.next(Duration::from_secs(5)).await;
        let (_, claims) = logout_token(&s, &got).await;
        assert_eq!(claims["aud"], client_id.as_str());
        announced.push(claims["sid"].as_str().expect("sid").to_owned());
    }
    announced.sort();
    let mut expected = vec![here_old, there_sid];
    expected.sort();
    assert_eq!(announced, expected, "the other session and the old id of this one");
    assert!(r.nothing_for(Duration::from_millis(800)).await, "the live new id is not announced");
    assert_eq!(here.session_status().await, StatusCode::OK);
    all_delivered(&s, &client_id, 2).await;
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

/// Every way a session ends reaches a client as one logout token per ended session, with that
/// session's `sid`.
#[tokio::test]
async fn every_way_a_session_ends_sends_one_logout_token_per_ended_session() {
    let s = server().await;
    let mut r = receiver().await;
    let bc = json!({"name": "bc", "backchannel_logout_uri": format!("{}/bc", r.base)});
    assert_eq!(admin(&s, Method::POST, "/admin/clients", Some(bc)).await.status, StatusCode::CREATED);

    // Expiry (first: the clock moves on past every session's idle timeout).
    let mut b = s.signed_in("expiry@example.com").await;
    let sid = sid_of(&mut b).await;
    s.clock.advance(time::Duration::hours(11));
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(announced(&s, &mut r, 1, "expiry").await, vec![sid]);

    // Logout, each scope.
    let mut a = s.signed_in("scopes@example.com").await;
    let sid_a = sid_of(&mut a).await;
    log_out(&mut a).await;
    assert_eq!(announced(&s, &mut r, 1, "logout").await, vec![sid_a]);
    let mut a = another(&s, "scopes@example.com").await;
    let mut b = another(&s, "scopes@example.com").await;
    let (sid_a, sid_b) = (sid_of(&mut a).await, sid_of(&mut b).await);
    assert_eq!(a.post_json("/auth/logout", &json!({"scope": "others"})).await.status, StatusCode::OK);
    assert_eq!(announced(&s, &mut r, 1, "logout others").await, vec![sid_b]);
    let mut c = another(&s, "scopes@example.com").await;
    let sid_c = sid_of(&mut c).await;
    assert_eq!(a.post_json("/auth/logout", &json!({"scope": "global"})).await.status, StatusCode::OK);
    assert_eq!(announced(&s, &mut r, 2, "logout global").await, sorted(vec![sid_a, sid_c]));

    // Revoking one session from the device list.
    let mut a = s.signed_in("one@example.com").await;
    let mut b = another(&s, "one@example.com").await;
    let sid_b = sid_of(&mut b).await;
    let res = a.post_json(&format!("/auth/sessions/{sid_b}/revoke"), &json!({})).await;
    assert!(res.status.is_success(), "{}", res.text);
    assert_eq!(announced(&s, &mut r, 1, "revoke one").await, vec![sid_b]);

    // Password and e-mail change: every other session, and the current one's old id.
    for (email, path, body) in [
        (
            "pw@example.com",
            "/auth/password",
            json!({"current_password": PASSWORD, "new_password": "a fresh passphrase 42"}),
        ),
        ("mail@example.com", "/auth/email", json!({"current_password": PASSWORD, "new_email": "mail2@example.com"})),
    ] {
        let mut a = s.signed_in(email).await;
        let mut b = another(&s, email).await;
        let (old_a, sid_b) = (sid_of(&mut a).await, sid_of(&mut b).await);
        let mut res = a.post_json(path, &body).await;
        if path == "/auth/email" {
            // The change happens when the link mailed to the new address is used.
            assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text);
            let link = link_in(&s.inbox().wait_for("mail2@example.com", 1).await[0].text);
            res = a.post_json("/auth/email/confirm", &json!({"token": token_of(&link)})).await;
        }
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text);
        let new_a = sid_of(&mut a).await;
        assert_ne!(new_a, old_a, "{path}: the current session moved to a new id");
        assert_eq!(announced(&s, &mut r, 2, path).await, sorted(vec![old_a, sid_b]), "{path}");
    }

    // A security report ends every session of the user, the reporting one too.
    let mut a = s.signed_in("report@example.com").await;
    let mut b = another(&s, "report@example.com").await;
    let (sid_a, sid_b) = (sid_of(&mut a).await, sid_of(&mut b).await);
    let res = a.post_json("/auth/security-report", &json!({"details": "not me"})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(announced(&s, &mut r, 2, "security report").await, sorted(vec![sid_a, sid_b]));

    // A password reset through a mailed link: every session of the user.
    let mut a = s.signed_in("reset@example.com").await;
    let mut b = another(&s, "reset@example.com").await;
    let (sid_a, sid_b) = (sid_of(&mut a).await, sid_of(&mut b).await);
    let res = s.browser().post_json("/auth/password-reset", &json!({"email": "reset@example.com"})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let link = link_in(&s.inbox().wait_for("reset@example.com", 1).await[0].text);
    let body = json!({"token": token_of(&link), "new_password": "a brand new passphrase"});
    assert_eq!(s.browser().post_json("/auth/password-reset/confirm", &body).await.status, StatusCode::OK);
    assert_eq!(announced(&s, &mut r, 2, "password reset").await, sorted(vec![sid_a, sid_b]));

    // An admin's revoke.
    let mut a = s.signed_in("admin@example.com").await;
    let mut b = another(&s, "admin@example.com").await;
    let (sid_a, sid_b) = (sid_of(&mut a).await, sid_of(&mut b).await);
    let user = a.get_json("/auth/session").await.json()["user"]["id"].as_str().expect("user").to_owned();
    let res = admin(&s, Method::POST, &format!("/admin/users/{user}/revoke"), Some(json!({"reason": "x"}))).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(announced(&s, &mut r, 2, "admin revoke").await, sorted(vec![sid_a, sid_b]));

    // A refresh token presented again after it was rotated (theft): its session ends.
    s.register("reuse@example.com").await;
    let mut t = s.browser();
    let grant = json!({"grant_type": "password", "email": "reuse@example.com", "password": PASSWORD});
    let first = t.post_json("/auth/token", &grant).await.json();
    let access = first["access_token"].as_str().expect("access");
    let payload = URL_SAFE_NO_PAD.decode(access.split('.').nth(1).expect("payload")).expect("b64");
    let sid = serde_json::from_slice::<Value>(&payload).expect("claims")["sid"].as_str().expect("sid").to_owned();
    let old = first["refresh_token"].as_str().expect("refresh").to_owned();
    let rotate = json!({"grant_type": "refresh_token", "refresh_token": old});
    assert_eq!(t.post_json("/auth/token", &rotate).await.status, StatusCode::OK);
    s.clock.advance(time::Duration::minutes(1)); // past the racing-tabs grace
    let reuse = t.post_json("/auth/token", &rotate).await;
    assert_eq!((reuse.status, reuse.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert_eq!(announced(&s, &mut r, 1, "refresh reuse").await, vec![sid]);
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_its_retry_after() {
    let s = server().await;
    let mut r = receiver().await;
    let (client_id, _) = hook_client(&s, &r).await;
    for (case, retry_after) in [("seconds", "120".to_owned()), ("date", String::new())] {
        let wait = if retry_after.is_empty() {
            // Two minutes from the server's clock, as an HTTP date.
            let at = std::time::SystemTime::from(s.clock.now() + time::Duration::seconds(120));
            httpdate::fmt_http_date(at)
        } else {
            retry_after
        };
        *r.retry_after.lock().expect("lock") = Some(wait);
        r.script.lock().expect("lock").push_back(429);
        let mut b = s.signed_in(&format!("busy-{case}@example.com")).await;
        log_out(&mut b).await;
        let first = r.next(Duration::from_secs(5)).await;
        let path = format!("/admin/clients/{client_id}/deliveries?status=pending");
        let mut pending = Value::Null;
        for _ in 0..100 {
            let list = admin(&s, Method::GET, &path, None).await.json();
            if let Some(d) = list["deliveries"].as_array().and_then(|d| d.iter().find(|x| x["attempts"] == 1)) {
                pending = d.clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(pending["last_status_code"], 429, "{case}: {pending}");
        let at = |v: &Value| {
            time::OffsetDateTime::parse(v.as_str().expect("time"), &time::format_description::well_known::Rfc3339)
                .expect("rfc3339")
        };
        let delay = at(&pending["next_attempt_at"]) - s.clock.now();
        assert!(delay >= time::Duration::seconds(115), "{case}: retried after {delay}, not the asked two minutes");
        s.clock.advance(time::Duration::seconds(60));
        assert!(r.nothing_for(Duration::from_millis(1500)).await, "{case}: retried before its Retry-After");
        s.clock.advance(time::Duration::seconds(65));
        let again = r.next(Duration::from_secs(5)).await;
        assert_eq!(again.headers["webhook-id"], first.headers["webhook-id"], "{case}");
        all_delivered(&s, &client_id, if case == "seconds" { 1 } else { 2 }).await;
    }
}
