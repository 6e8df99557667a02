//! Shared Signals transmitter over HTTP: the metadata, streams configured by registered clients,
//! every change told as a Security Event Token verified by PyJWT against the JWKS, pushed
//! (RFC 8935) to a real receiver on loopback and polled (RFC 8936); verification, pause and
//! disable, removed subjects, acknowledgements, long polls, and SETs that outlive `kill -9`.

use crate::relying::{admin, server};
use crate::support::*;
use axum::http::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CREDENTIAL_CHANGE: &str = "https://schemas.openid.net/secevent/caep/event-type/credential-change";
const TOKEN_CLAIMS_CHANGE: &str = "https://schemas.openid.net/secevent/caep/event-type/token-claims-change";
const RISC_SESSIONS_REVOKED: &str = "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
const PUSH: &str = "urn:ietf:rfc:8935";
const POLL: &str = "urn:ietf:rfc:8936";

/// A push receiver on loopback: answers `202` and hands over each request's headers and body.
struct Receiver {
    url: String,
    got: mpsc::UnboundedReceiver<(HeaderMap, String)>,
}

async fn receiver() -> Receiver {
    let (tx, got) = mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((headers, body));
            axum::http::StatusCode::ACCEPTED
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/ssf/events", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, got }
}

impl Receiver {
    /// The next `n` SETs pushed, each checked for RFC 8935's media type and the stream's header.
    async fn take(&mut self, n: usize, authorization: &str) -> Vec<String> {
        let mut sets = Vec::new();
        for i in 0..n {
            let (headers, body) = tokio::time::timeout(Duration::from_secs(15), self.got.recv())
                .await
                .unwrap_or_else(|_| panic!("push {} of {n} in time", i + 1))
                .expect("open");
            assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/secevent+jwt"));
            assert_eq!(headers.get("authorization").and_then(|v| v.to_str().ok()), Some(authorization));
            sets.push(body);
        }
        sets
    }

    /// Nothing pushed for `quiet`.
    async fn silent(&mut self, quiet: Duration) {
        if let Ok(Some((_, body))) = tokio::time::timeout(quiet, self.got.recv()).await {
            panic!("pushed while it should not have been: {body}");
        }
    }
}

/// A registered receiver: its id and a `client_credentials` access token.
async fn receiver_client(s: &TestServer, name: &str) -> (String, String) {
    let res = admin(
        s,
        Method::POST,
        "/admin/clients",
        Some(json!({"name": name, "grant_types": ["client_credentials"], "shared_signals": true})),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let (id, secret) = (
        res.json()["client_id"].as_str().expect("id").to_owned(),
        res.json()["client_secret"].as_str().expect("secret").to_owned(),
    );
    let mut b = s.browser();
    let rb = b
        .bare(Method::POST, "/oidc/token")
        .header("authorization", basic(&id, &secret))
        .form(&[("grant_type", "client_credentials")]);
    let res = b.send(rb).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    (id, format!("Bearer {}", res.json()["access_token"].as_str().expect("token")))
}

/// A call to an SSF endpoint as the receiver `auth`.
async fn call(s: &TestServer, auth: &str, method: Method, path: &str, body: Option<Value>) -> Res {
    let mut b = s.browser();
    let mut rb = b.bare(method, path).header("authorization", auth);
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    b.send(rb).await
}

async fn create(s: &TestServer, auth: &str, body: Value) -> Value {
    let res = call(s, auth, Method::POST, "/ssf/streams", Some(body)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    res.json()
}

async fn set_status(s: &TestServer, auth: &str, stream: &str, status: &str) {
    let res = call(s, auth, Method::POST, "/ssf/status", Some(json!({"stream_id": stream, "status": status}))).await;
    assert_eq!((res.status, res.json()["status"].clone()), (StatusCode::OK, json!(status)), "{}", res.text);
}

/// One poll; returns the SETs (by jti) and `moreAvailable`.
async fn poll(s: &TestServer, auth: &str, stream: &str, body: Value) -> (Vec<(String, String)>, bool) {
    let res = call(s, auth, Method::POST, &format!("/ssf/poll/{stream}"), Some(body)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let j = res.json();
    let sets = j["sets"]
        .as_object()
        .expect("sets")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("SET").to_owned()))
        .collect();
    (sets, j["moreAvailable"].as_bool().expect("moreAvailable"))
}

/// Polls (acknowledging as it goes, `max` at a time) until nothing more waits.
async fn poll_all(s: &TestServer, auth: &str, stream: &str, max: u32) -> Vec<String> {
    let (mut out, mut ack): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    loop {
        let (sets, more) =
            poll(s, auth, stream, json!({"maxEvents": max, "returnImmediately": true, "ack": ack})).await;
        assert!(sets.len() <= max as usize);
        ack = sets.iter().map(|(jti, _)| jti.clone()).collect();
        for (jti, set) in sets {
            assert!(!out.contains(&set), "SET {jti} returned again after it was acknowledged");
            out.push(set);
        }
        if !more {
            let (rest, _) = poll(s, auth, stream, json!({"returnImmediately": true, "ack": ack})).await;
            assert!(rest.is_empty(), "acknowledged SETs are never returned again: {rest:?}");
            return out;
        }
    }
}

/// The SETs verified by PyJWT against signoff's JWKS (`ssf_interop.py`); their claims. Run
/// off the test's runtime, which serves the JWKS meanwhile.
async fn verified(s: &TestServer, aud: &str, sets: &[String]) -> Vec<Value> {
    let (base, aud, sets) = (s.base.clone(), aud.to_owned(), sets.to_vec());
    tokio::task::spawn_blocking(move || verified_by_pyjwt(&base, &aud, &sets)).await.expect("verifier")
}

fn verified_by_pyjwt(base: &str, aud: &str, sets: &[String]) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/ssf_interop.py");
    let mut child = std::process::Command::new("python3")
        .args([script, &format!("{base}/.well-known/jwks.json"), base, aud])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with PyJWT (pip install pyjwt cryptography)");
    use std::io::Write as _;
    child.stdin.take().expect("stdin").write_all(json!(sets).to_string().as_bytes()).expect("write");
    let out = child.wait_with_output().expect("run");
    assert!(out.status.success(), "PyJWT refused a SET: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("claims")
}

fn event_type(claims: &Value) -> String {
    claims["events"].as_object().and_then(|e| e.keys().next()).expect("one event").clone()
}

fn of_type<'a>(claims: &'a [Value], t: &str) -> Vec<&'a Value> {
    claims.iter().filter(|c| event_type(c) == t).collect()
}

#[tokio::test]
async fn the_metadata_names_every_endpoint_and_streams_are_each_receivers_own() {
    let s = server(true).await;
    let res = s.browser().get_json("/.well-known/ssf-configuration").await;
    assert_eq!(res.status, StatusCode::OK);
    let m = res.json();
    assert_eq!(m["spec_version"], "1_0");
    assert_eq!(m["issuer"], s.base.as_str());
    assert_eq!(m["jwks_uri"], format!("{}/.well-known/jwks.json", s.base));
    assert_eq!(m["delivery_methods_supported"], json!([PUSH, POLL]));
    assert_eq!(m["default_subjects"], "ALL");
    assert_eq!(m["authorization_schemes"], json!([{"spec_urn": "urn:ietf:rfc:6749"}]));
    for (name, path) in [
        ("configuration_endpoint", "/ssf/streams"),
        ("status_endpoint", "/ssf/status"),
        ("add_subject_endpoint", "/ssf/subjects/add"),
        ("remove_subject_endpoint", "/ssf/subjects/remove"),
        ("verification_endpoint", "/ssf/verify"),
    ] {
        assert_eq!(m[name], format!("{}{path}", s.base), "{name}");
    }

    let (id, auth) = receiver_client(&s, "receiver").await;
    let (_, other) = receiver_client(&s, "another receiver").await;
    // A client not registered to receive Shared Signals: 403, whatever it asks.
    let res = admin(&s, Method::POST, "/admin/clients", Some(json!({"name": "plain"}))).await;
    let plain =
        basic(res.json()["client_id"].as_str().expect("id"), res.json()["client_secret"].as_str().expect("secret"));
    for (method, path) in [(Method::POST, "/ssf/streams"), (Method::GET, "/ssf/streams"), (Method::POST, "/ssf/poll/x")]
    {
        let res = call(&s, &plain, method.clone(), path, Some(json!({}))).await;
        assert_eq!(
            (res.status, res.json()["error"].clone()),
            (StatusCode::FORBIDDEN, json!("access_denied")),
            "{method} {path}"
        );
    }
    let body = json!({"delivery": {"method": POLL}, "events_requested": [SESSION_REVOKED, "https://example.com/unknown", SESSION_REVOKED]});
    // Without credentials, with wrong ones: 401, nothing made.
    let res = s.browser().post_json("/ssf/streams", &body).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&s, &basic(&id, "wrong"), Method::POST, "/ssf/streams", Some(body.clone())).await.status,
        StatusCode::UNAUTHORIZED
    );
    let stream = create(&s, &auth, body).await;
    let sid = stream["stream_id"].as_str().expect("stream_id").to_owned();
    assert_eq!(stream["iss"], s.base.as_str());
    assert_eq!(stream["aud"], id.as_str());
    assert_eq!(stream["delivery"], json!({"method": POLL, "endpoint_url": format!("{}/ssf/poll/{sid}", s.base)}));
    assert_eq!(stream["events_requested"], json!([SESSION_REVOKED, "https://example.com/unknown"]), "repeats dropped");
    assert_eq!(stream["events_delivered"], json!([SESSION_REVOKED]), "only what signoff sends");
    assert_eq!(
        stream["events_supported"],
        json!([SESSION_REVOKED, CREDENTIAL_CHANGE, TOKEN_CLAIMS_CHANGE, RISC_SESSIONS_REVOKED])
    );

    // Read, alone and listed; another receiver sees none of it.
    let res = call(&s, &auth, Method::GET, &format!("/ssf/streams?stream_id={sid}"), None).await;
    assert_eq!((res.status, res.json()["stream_id"].clone()), (StatusCode::OK, json!(sid)));
    assert_eq!(call(&s, &auth, Method::GET, "/ssf/streams", None).await.json().as_array().map(Vec::len), Some(1));
    assert_eq!(call(&s, &other, Method::GET, "/ssf/streams", None).await.json(), json!([]));
    for (method, path, body) in [
        (Method::GET, format!("/ssf/streams?stream_id={sid}"), None),
        (Method::PATCH, "/ssf/streams".to_owned(), Some(json!({"stream_id": sid, "description": "mine now"}))),
        (Method::DELETE, format!("/ssf/streams?stream_id={sid}"), None),
        (Method::GET, format!("/ssf/status?stream_id={sid}"), None),
        (Method::POST, "/ssf/verify".to_owned(), Some(json!({"stream_id": sid}))),
        (Method::POST, format!("/ssf/poll/{sid}"), Some(json!({"returnImmediately": true}))),
    ] {
        assert_eq!(
            call(&s, &other, method.clone(), &path, body).await.status,
            StatusCode::NOT_FOUND,
            "{method} {path}"
        );
    }

    // Update: only what is given changes; replace: what is left out is emptied.
    let res =
        call(&s, &auth, Method::PATCH, "/ssf/streams", Some(json!({"stream_id": sid, "description": "audit feed"})))
            .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(
        (res.json()["description"].clone(), res.json()["events_delivered"].clone()),
        (json!("audit feed"), json!([SESSION_REVOKED]))
    );
    let res = call(
        &s,
        &auth,
        Method::PUT,
        "/ssf/streams",
        Some(json!({"stream_id": sid, "delivery": {"method": POLL}, "events_requested": [CREDENTIAL_CHANGE]})),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["events_delivered"], json!([CREDENTIAL_CHANGE]));
    assert!(res.json().get("description").is_none(), "{}", res.json());

    // Bad input: a clear 400 naming what is wrong.
    for (bad, says) in [
        (json!({"delivery": {"method": "urn:example:carrier-pigeon"}}), "delivery.method"),
        (json!({"delivery": {"method": PUSH}}), "endpoint_url"),
        (json!({"delivery": {"method": PUSH, "endpoint_url": "ftp://x.example/e"}}), "endpoint_url"),
        (
            json!({"delivery": {"method": PUSH, "endpoint_url": "http://127.0.0.1:9/e", "authorization_header": "a\u{7f}b"}}),
            "authorization_header",
        ),
        (json!({"events_requested": (0..33).map(|i| format!("urn:e:{i}")).collect::<Vec<_>>()}), "events_requested"),
        (json!({"description": "d".repeat(300)}), "description"),
    ] {
        let res = call(&s, &auth, Method::POST, "/ssf/streams", Some(bad.clone())).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(res.json()["message"].as_str().is_some_and(|m| m.contains(says)), "{bad}: {}", res.text);
    }
    let res = call(&s, &auth, Method::POST, "/ssf/status", Some(json!({"stream_id": sid, "status": "asleep"}))).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let res = call(
        &s,
        &auth,
        Method::POST,
        "/ssf/subjects/remove",
        Some(json!({"stream_id": sid, "subject": {"format": "email"}})),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);

    // Verification at most every min_verification_interval.
    assert_eq!(stream["min_verification_interval"], 15);
    let verify = json!({"stream_id": sid, "state": "s"});
    assert_eq!(call(&s, &auth, Method::POST, "/ssf/verify", Some(verify.clone())).await.status, StatusCode::NO_CONTENT);
    let res = call(&s, &auth, Method::POST, "/ssf/verify", Some(verify)).await;
    assert_eq!(
        (res.status, res.header("retry-after").is_some()),
        (StatusCode::TOO_MANY_REQUESTS, true),
        "{}",
        res.text
    );

    // A receiver's streams are bounded.
    for _ in 1..signoff_core::MAX_STREAMS_PER_CLIENT {
        create(&s, &auth, json!({})).await;
    }
    let res = call(&s, &auth, Method::POST, "/ssf/streams", Some(json!({}))).await;
    assert_eq!((res.status, res.json()["error"].clone()), (StatusCode::CONFLICT, json!("too_many_streams")));
    assert_eq!(
        call(&s, &auth, Method::DELETE, &format!("/ssf/streams?stream_id={sid}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&s, &auth, Method::DELETE, &format!("/ssf/streams?stream_id={sid}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    create(&s, &auth, json!({})).await;
}

#[tokio::test]
async fn every_change_reaches_push_and_poll_receivers_as_a_verified_event_about_the_right_subject() {
    let s = server(true).await;
    let (id, auth) = receiver_client(&s, "receiver").await;
    let mut pushed = receiver().await;
    let push = create(
        &s,
        &auth,
        json!({
            "delivery": {"method": PUSH, "endpoint_url": pushed.url, "authorization_header": "Bearer receiver-secret"},
            "events_requested": [SESSION_REVOKED, CREDENTIAL_CHANGE, TOKEN_CLAIMS_CHANGE, RISC_SESSIONS_REVOKED],
        }),
    )
    .await;
    assert_eq!(push["delivery"]["endpoint_url"], pushed.url.as_str());
    assert!(push["delivery"].get("authorization_header").is_none(), "the header is not shown again");
    // The poll stream asks for two of the four.
    let polled = create(
        &s,
        &auth,
        json!({"delivery": {"method": POLL}, "events_requested": [SESSION_REVOKED, CREDENTIAL_CHANGE]}),
    )
    .await;
    let (push_id, poll_id) = (push["stream_id"].as_str().expect("id"), polled["stream_id"].as_str().expect("id"));

    // Verification: the state comes back in a SET on each stream.
    for (stream, state) in [(push_id, "state-push"), (poll_id, "state-poll")] {
        let res =
            call(&s, &auth, Method::POST, "/ssf/verify", Some(json!({"stream_id": stream, "state": state}))).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    }
    let mut push_sets = pushed.take(1, "Bearer receiver-secret").await;

    // A logout, a password change, an address change, log out everywhere.
    let mut phone = s.signed_in("ada@example.com").await;
    let mut laptop = s.browser();
    laptop.login("ada@example.com", PASSWORD).await;
    assert_eq!(phone.post_json("/auth/logout", &json!({})).await.status, StatusCode::OK);
    let res = laptop
        .post_json("/auth/password", &json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    laptop.csrf = laptop.get_json("/auth/session").await.json()["csrf_token"].as_str().map(str::to_owned);
    let res = laptop
        .post_json(
            "/auth/email",
            &json!({"current_password": "a brand new passphrase", "new_email": "lovelace@example.com"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text);
    let link = link_in(&s.inbox().wait_for("lovelace@example.com", 1).await[0].text);
    let res = laptop.post_json("/auth/email/confirm", &json!({"token": token_of(&link)})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    laptop.csrf = laptop.get_json("/auth/session").await.json()["csrf_token"].as_str().map(str::to_owned);
    let mut tablet = s.browser();
    assert_eq!(tablet.login("lovelace@example.com", "a brand new passphrase").await.status, StatusCode::OK);
    let res = laptop.post_json("/auth/logout", &json!({"scope": "global"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);

    // Push: the phone's logout, the password, the address, then two sessions and the user.
    // (and RISC's sessions-revoked, which only the push stream asked for).
    push_sets.extend(pushed.take(7, "Bearer receiver-secret").await);
    pushed.silent(Duration::from_millis(1500)).await;
    let push_claims = verified(&s, &id, &push_sets).await;
    // Poll: the same but the address change it did not ask for; two at a time, acknowledged.
    let poll_claims = verified(&s, &id, &poll_all(&s, &auth, poll_id, 2).await).await;
    assert_eq!(poll_claims.len(), 6, "{poll_claims:#?}");
    assert!(of_type(&poll_claims, TOKEN_CLAIMS_CHANGE).is_empty());

    for (claims, state) in [(&push_claims, "state-push"), (&poll_claims, "state-poll")] {
        let v = of_type(claims, VERIFICATION);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["events"][VERIFICATION]["state"], state);
        let sessions = of_type(claims, SESSION_REVOKED);
        assert_eq!(sessions.len(), 4, "{sessions:#?}");
        // Everywhere's three share one txn (one change); the phone's logout has its own. (The
        // server's clock stands still in tests: order within a millisecond is not kept.)
        let txn_of = |c: &Value| c["txn"].as_str().expect("txn").to_owned();
        let (phone, everywhere): (Vec<&Value>, Vec<&Value>) =
            sessions.iter().partition(|c| sessions.iter().filter(|o| txn_of(o) == txn_of(c)).count() == 1);
        assert_eq!((phone.len(), everywhere.len()), (1, 3), "{sessions:#?}");
        // The phone's logout: the user by address, with the session (its sign-in).
        let phone = phone[0];
        assert_eq!(phone["sub_id"]["format"], "complex");
        assert_eq!(phone["sub_id"]["user"], json!({"format": "email", "email": "ada@example.com"}));
        assert_eq!(phone["sub_id"]["session"]["format"], "opaque");
        assert_eq!(phone["events"][SESSION_REVOKED]["initiating_entity"], "user");
        assert!(phone["events"][SESSION_REVOKED]["event_timestamp"].as_i64().is_some_and(|t| t > 1_700_000_000));
        // Everywhere: each session, and the user alone; one transaction.
        let alone: Vec<_> = everywhere.iter().filter(|c| c["sub_id"]["format"] == "email").collect();
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0]["sub_id"], json!({"format": "email", "email": "lovelace@example.com"}));
        assert!(everywhere.iter().all(|c| c["txn"] == everywhere[0]["txn"]), "one change, one txn");
        let sids: Vec<&Value> = everywhere
            .iter()
            .filter(|c| c["sub_id"]["format"] == "complex")
            .map(|c| &c["sub_id"]["session"]["id"])
            .collect();
        assert_eq!(sids.len(), 2);
        assert!(
            sids[0] != sids[1] && !sids.contains(&&phone["sub_id"]["session"]["id"]),
            "a session is named by its own sign-in"
        );
        let password = of_type(claims, CREDENTIAL_CHANGE);
        assert_eq!(password.len(), 1);
        assert_eq!(password[0]["sub_id"], json!({"format": "email", "email": "ada@example.com"}));
        assert_eq!(password[0]["events"][CREDENTIAL_CHANGE]["credential_type"], "password");
        assert_eq!(password[0]["events"][CREDENTIAL_CHANGE]["change_type"], "update");
        let mut jtis: Vec<&str> = claims.iter().map(|c| c["jti"].as_str().expect("jti")).collect();
        jtis.sort_unstable();
        jtis.dedup();
        assert_eq!(jtis.len(), claims.len(), "every SET its own jti");
    }
    let risc = of_type(&push_claims, RISC_SESSIONS_REVOKED);
    assert_eq!(risc.len(), 1, "RISC's name for everywhere, to the stream that asked");
    assert_eq!(risc[0]["sub_id"], json!({"format": "email", "email": "lovelace@example.com"}));
    assert!(of_type(&poll_claims, RISC_SESSIONS_REVOKED).is_empty());
    let address = of_type(&push_claims, TOKEN_CLAIMS_CHANGE);
    assert_eq!(address.len(), 1);
    assert_eq!(
        address[0]["sub_id"],
        json!({"format": "email", "email": "ada@example.com"}),
        "named as the receiver knew them"
    );
    assert_eq!(address[0]["events"][TOKEN_CLAIMS_CHANGE]["claims"], json!({"email": "lovelace@example.com"}));
}

#[tokio::test]
async fn pause_holds_disable_drops_removed_subjects_are_left_out_and_a_long_poll_wakes() {
    let s = server(true).await;
    let (id, auth) = receiver_client(&s, "receiver").await;
    let mut pushed = receiver().await;
    let header = "Bearer held";
    let push = create(&s, &auth, json!({"delivery": {"method": PUSH, "endpoint_url": pushed.url, "authorization_header": header}, "events_requested": [SESSION_REVOKED]})).await;
    let polled = create(&s, &auth, json!({"delivery": {"method": POLL}, "events_requested": [SESSION_REVOKED]})).await;
    let (push_id, poll_id) = (push["stream_id"].as_str().expect("id"), polled["stream_id"].as_str().expect("id"));
    let logout = |email: &'static str| {
        let s = &s;
        async move {
            let mut b = s.signed_in(email).await;
            assert_eq!(b.post_json("/auth/logout", &json!({})).await.status, StatusCode::OK);
        }
    };
    let nothing_polled = || async {
        let (sets, more) = poll(&s, &auth, poll_id, json!({"returnImmediately": true})).await;
        assert!(sets.is_empty() && !more, "{sets:?}");
    };

    // Paused: held, then sent once enabled again.
    for stream in [push_id, poll_id] {
        set_status(&s, &auth, stream, "paused").await;
    }
    let res = call(&s, &auth, Method::GET, &format!("/ssf/status?stream_id={push_id}"), None).await;
    assert_eq!(res.json()["status"], "paused");
    logout("held@example.com").await;
    pushed.silent(Duration::from_millis(2500)).await;
    nothing_polled().await;
    for stream in [push_id, poll_id] {
        set_status(&s, &auth, stream, "enabled").await;
    }
    // A held push is looked at again every two seconds (on the server's clock).
    s.clock.advance(time::Duration::seconds(3));
    let held = pushed.take(1, header).await;
    assert_eq!(poll_all(&s, &auth, poll_id, 10).await.len(), 1);
    let claims = verified(&s, &id, &held).await;
    assert_eq!(claims[0]["sub_id"]["user"]["email"], "held@example.com");

    // Disabled: dropped, not sent when enabled again.
    for stream in [push_id, poll_id] {
        set_status(&s, &auth, stream, "disabled").await;
    }
    logout("dropped@example.com").await;
    pushed.silent(Duration::from_millis(1500)).await;
    for stream in [push_id, poll_id] {
        set_status(&s, &auth, stream, "enabled").await;
    }
    pushed.silent(Duration::from_millis(3000)).await;
    nothing_polled().await;

    // A removed subject is left out (by address, however it is written) until it is added back.
    for stream in [push_id, poll_id] {
        let subject = json!({"format": "email", "email": "Quiet@Example.com"});
        let res = call(
            &s,
            &auth,
            Method::POST,
            "/ssf/subjects/remove",
            Some(json!({"stream_id": stream, "subject": subject})),
        )
        .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    }
    logout("quiet@example.com").await;
    logout("loud@example.com").await;
    let loud = verified(&s, &id, &pushed.take(1, header).await).await;
    assert_eq!(loud[0]["sub_id"]["user"]["email"], "loud@example.com");
    pushed.silent(Duration::from_millis(1500)).await;
    let polled = verified(&s, &id, &poll_all(&s, &auth, poll_id, 10).await).await;
    assert_eq!(polled.len(), 1, "only the subject still in");
    assert_eq!(polled[0]["sub_id"]["user"]["email"], "loud@example.com");
    for stream in [push_id, poll_id] {
        let subject = json!({"format": "email", "email": "quiet@example.com"});
        let res =
            call(&s, &auth, Method::POST, "/ssf/subjects/add", Some(json!({"stream_id": stream, "subject": subject})))
                .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    }
    logout("quiet@example.com").await;
    pushed.take(1, header).await;

    // A long poll answers as soon as an event is written, not at its end.
    assert_eq!(poll_all(&s, &auth, poll_id, 10).await.len(), 1);
    let started = Instant::now();
    let waiting = {
        let (base, auth, poll_id) = (s.base.clone(), auth.clone(), poll_id.to_owned());
        tokio::spawn(async move {
            let res = client()
                .post(format!("{base}/ssf/poll/{poll_id}"))
                .header("authorization", auth)
                .json(&json!({"maxEvents": 5}))
                .send()
                .await
                .expect("long poll");
            res.json::<Value>().await.expect("json")
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut woken_browser = s.signed_in("woken@example.com").await;
    let logged_out = Instant::now();
    assert_eq!(woken_browser.post_json("/auth/logout", &json!({})).await.status, StatusCode::OK);
    let answer = waiting.await.expect("poll");
    assert_eq!(answer["sets"].as_object().map(|m| m.len()), Some(1), "{answer}");
    // Woken by the write, not found by the once-a-second look a poll makes for other nodes'.
    assert!(logged_out.elapsed() < Duration::from_millis(900), "answered at once: {:?}", logged_out.elapsed());
    assert!(started.elapsed() < Duration::from_secs(10), "not at the long poll's end: {:?}", started.elapsed());

    // An error reported for a SET settles it: it is not returned again.
    let woken: Vec<&String> = answer["sets"].as_object().expect("sets").keys().collect();
    logout("refused@example.com").await;
    let (sets, _) = poll(&s, &auth, poll_id, json!({"returnImmediately": true, "ack": woken})).await;
    assert_eq!(sets.len(), 1);
    let jti = sets[0].0.clone();
    let errs = json!({"returnImmediately": true, "setErrs": {jti.clone(): {"err": "invalid_subject", "description": "not known here"}}});
    let (sets, more) = poll(&s, &auth, poll_id, errs).await;
    assert!(sets.is_empty() && !more, "{sets:?}");
    pushed.take(2, header).await;
}

/// SETs outlive `kill -9`: written with the logout, a poll stream's wait for their poll and a
/// push stream's (its receiver down) are delivered by the process started again.
#[tokio::test]
async fn security_events_survive_a_killed_process() {
    use crate::binary::{ready, spawn_notifying};
    let dir = std::env::temp_dir().join(format!("signoff-ssf-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("ssf.db");
    let free = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let (port, hook_port) = (free(), free());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let child = spawn_notifying(port, &db);
    ready(&http, &base).await;
    let admin = "Bearer outbox-test-admin-key-0123456789abcdef";
    let res = http
        .post(format!("{base}/admin/clients"))
        .header("authorization", admin)
        .json(&json!({"name": "receiver", "grant_types": ["client_credentials"], "shared_signals": true}))
        .send()
        .await
        .expect("register client");
    assert_eq!(res.status(), StatusCode::CREATED);
    let client: Value = res.json().await.expect("json");
    let (id, secret) = (client["client_id"].as_str().expect("id"), client["client_secret"].as_str().expect("secret"));
    let auth = basic(id, secret);
    let mut streams = Vec::new();
    for delivery in [
        json!({"method": POLL}),
        json!({"method": PUSH, "endpoint_url": format!("http://127.0.0.1:{hook_port}/ssf"), "authorization_header": "Bearer k"}),
    ] {
        let res = http
            .post(format!("{base}/ssf/streams"))
            .header("authorization", &auth)
            .json(&json!({"delivery": delivery, "events_requested": [SESSION_REVOKED]}))
            .send()
            .await
            .expect("create");
        assert_eq!(res.status(), StatusCode::CREATED);
        streams.push(res.json::<Value>().await.expect("json")["stream_id"].as_str().expect("id").to_owned());
    }
    let creds = json!({"email": "killed@example.com", "password": PASSWORD});
    assert_eq!(
        http.post(format!("{base}/auth/register")).json(&creds).send().await.expect("register").status(),
        StatusCode::CREATED
    );
    let res = http
        .post(format!("{base}/auth/login"))
        .header("accept", "application/json")
        .json(&creds)
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let csrf = res.json::<Value>().await.expect("json")["csrf_token"].as_str().expect("csrf").to_owned();
    let res = http
        .post(format!("{base}/auth/logout"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .header("origin", &base)
        .header("accept", "application/json")
        .json(&json!({}))
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::OK);
    // The push was tried once (its receiver is down) and released; then the process dies.
    let deliveries = format!("{base}/admin/clients/{id}/deliveries");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list: Value = http
            .get(&deliveries)
            .header("authorization", admin)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let rows = list["deliveries"].as_array().cloned().unwrap_or_default();
        let tried = rows.iter().any(|d| d["status"] == "pending" && d["attempts"] == 1);
        if tried && rows.iter().any(|d| d["status"] == "waiting") {
            break;
        }
        assert!(Instant::now() < deadline, "no failed first push: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(child); // SIGKILL

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", hook_port)).await.expect("bind the receiver's port");
    let (got_tx, mut got) = mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().fallback(move |body: String| {
        let got_tx = got_tx.clone();
        async move {
            let _ = got_tx.send(body);
            axum::http::StatusCode::ACCEPTED
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let _child = spawn_notifying(port, &db);
    ready(&http, &base).await;
    let polled: Value = http
        .post(format!("{base}/ssf/poll/{}", streams[0]))
        .header("authorization", &auth)
        .json(&json!({"returnImmediately": true}))
        .send()
        .await
        .expect("poll")
        .json()
        .await
        .expect("json");
    let mut sets: Vec<String> =
        polled["sets"].as_object().expect("sets").values().map(|v| v.as_str().expect("SET").to_owned()).collect();
    assert_eq!(sets.len(), 1, "the waiting SET survived: {polled}");
    sets.push(
        tokio::time::timeout(Duration::from_secs(30), got.recv())
            .await
            .expect("pushed after the restart")
            .expect("body"),
    );
    let (base2, id2) = (base.clone(), id.to_owned());
    let claims = tokio::task::spawn_blocking(move || verified_by_pyjwt(&base2, &id2, &sets)).await.expect("verify");
    assert!(claims.iter().all(|c| c["sub_id"]["user"]["email"] == "killed@example.com"), "{claims:#?}");
    assert_eq!(claims[0]["txn"], claims[1]["txn"], "both told of the one logout");
    assert_ne!(claims[0]["jti"], claims[1]["jti"]);
    let _ = std::fs::remove_dir_all(&dir);
}
