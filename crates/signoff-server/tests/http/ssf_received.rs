//! Shared Signals received: an upstream transmitter written in the tests (its own RSA key and
//! JWKS, SETs signed by PyJWT) is registered and pushes events. A good one ends the user's
//! sessions and tokens before the `202`; a forged, stale, wrong-issuer or wrong-audience one, or
//! one without the endpoint's credentials, is refused with RFC 8935's error and changes nothing;
//! a repeated one (a retry, or a replay) is answered `202` and changes nothing.

use crate::relying::{admin, server};
use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::{Command, Stdio};

const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CREDENTIAL_CHANGE: &str = "https://schemas.openid.net/secevent/caep/event-type/credential-change";
const ACCOUNT_DISABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
const ISSUER: &str = "https://idp.test";

fn upstream_script(args: &[&str], stdin: Option<&str>) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/ssf_upstream.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with PyJWT and cryptography");
    if let Some(input) = stdin {
        use std::io::Write as _;
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("run");
    assert!(out.status.success(), "ssf_upstream.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

/// An upstream transmitter: a key file and its JWKS served on loopback.
struct Transmitter {
    key: std::path::PathBuf,
    jwks_uri: String,
}

async fn transmitter(dir: &std::path::Path) -> Transmitter {
    let key = dir.join("upstream.pem");
    upstream_script(&["keygen", key.to_str().expect("path")], None);
    let jwks: Value =
        serde_json::from_str(&upstream_script(&["jwks", key.to_str().expect("path"), "up-1"], None)).expect("jwks");
    let app = axum::Router::new().route("/jwks", axum::routing::get(move || async move { axum::Json(jwks.clone()) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let jwks_uri = format!("http://{}/jwks", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Transmitter { key, jwks_uri }
}

impl Transmitter {
    fn sign(&self, claims: &Value) -> String {
        self.sign_as(claims, "secevent+jwt", &self.key)
    }

    fn sign_as(&self, claims: &Value, typ: &str, key: &std::path::Path) -> String {
        upstream_script(&["sign", key.to_str().expect("path"), "up-1", typ], Some(&claims.to_string()))
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A SET from the upstream: `event` about `email` (in a complex subject with a session).
fn set_about(email: &str, event: &str, audience: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": audience,
        "iat": now(),
        "jti": signoff_core::secret::random_id(),
        "sub_id": {"format": "complex", "user": {"format": "email", "email": email}, "session": {"format": "opaque", "id": "upstream-session"}},
        "events": {event: {"event_timestamp": now(), "initiating_entity": "admin"}},
    })
}

/// Pushes `set` as RFC 8935 says, with `authorization` and `content_type`.
async fn push(s: &TestServer, url: &str, authorization: Option<&str>, content_type: &str, set: &str) -> Res {
    let mut b = s.browser();
    let mut rb = b.bare(Method::POST, &url[s.base.len()..]).header("content-type", content_type);
    if let Some(a) = authorization {
        rb = rb.header("authorization", a);
    }
    b.send(rb.body(set.to_owned())).await
}

#[tokio::test]
async fn a_verified_event_ends_the_user_before_the_202_and_a_bad_one_changes_nothing() {
    let s = server(true).await;
    let dir = std::env::temp_dir().join(format!("signoff-upstream-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (up, t) = {
        let t = transmitter(&dir).await;
        let body = json!({"issuer": ISSUER, "jwks_uri": t.jwks_uri, "audience": s.base});
        // The admin API only.
        assert_eq!(s.browser().post_json("/admin/ssf/receivers", &body).await.status, StatusCode::UNAUTHORIZED);
        let res = admin(&s, Method::POST, "/admin/ssf/receivers", Some(body)).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        (res.json(), t)
    };
    let url = up["endpoint_url"].as_str().expect("endpoint_url").to_owned();
    let auth = up["authorization_header"].as_str().expect("authorization_header").to_owned();
    assert!(url.starts_with(&format!("{}/ssf/receivers/", s.base)), "{url}");
    assert!(auth.starts_with("Bearer ") && auth.len() > 40, "a 256-bit secret");
    let bad = admin(
        &s,
        Method::POST,
        "/admin/ssf/receivers",
        Some(json!({"issuer": ISSUER, "audience": "a", "jwks_uri": "ftp://x"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let mut victim = s.signed_in("victim@example.com").await;
    let res = s
        .browser()
        .post_json(
            "/auth/token",
            &json!({"grant_type": "password", "email": "victim@example.com", "password": PASSWORD}),
        )
        .await;
    let victim_token = res.json()["access_token"].as_str().expect("access").to_owned();
    let mut bystander = s.signed_in("bystander@example.com").await;
    async fn alive(b: &mut Browser) -> bool {
        b.session_status().await == StatusCode::OK
    }
    let good = set_about("Victim@Example.com", SESSION_REVOKED, &s.base);

    // Refused, each with RFC 8935's error, and nothing changes.
    let other_key = dir.join("other.pem");
    upstream_script(&["keygen", other_key.to_str().expect("path")], None);
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let cases: Vec<(Option<&str>, &str, String, StatusCode, &str)> = vec![
        (None, "application/secevent+jwt", t.sign(&good), StatusCode::UNAUTHORIZED, "authentication_failed"),
        (
            Some("Bearer not-the-secret"),
            "application/secevent+jwt",
            t.sign(&good),
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
        ),
        (Some(&auth), "application/json", t.sign(&good), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            Some(&auth),
            "application/secevent+jwt",
            t.sign_as(&good, "JWT", &t.key),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Some(&auth),
            "application/secevent+jwt",
            t.sign_as(&good, "secevent+jwt", &other_key),
            StatusCode::BAD_REQUEST,
            "invalid_key",
        ),
        (Some(&auth), "application/secevent+jwt", "not.a.set".into(), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            Some(&auth),
            "application/secevent+jwt",
            t.sign(&with("iss", json!("https://evil.test"))),
            StatusCode::BAD_REQUEST,
            "invalid_issuer",
        ),
        (
            Some(&auth),
            "application/secevent+jwt",
            t.sign(&with("aud", json!("https://other.example"))),
            StatusCode::BAD_REQUEST,
            "invalid_audience",
        ),
        (
            Some(&auth),
            "application/secevent+jwt",
            t.sign(&with("iat", json!(now() - 7_200))),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (i, (authorization, content_type, set, status, err)) in cases.into_iter().enumerate() {
        let res = push(&s, &url, authorization, content_type, &set).await;
        assert_eq!((res.status, res.json()["err"].clone()), (status, json!(err)), "case {i}: {}", res.text);
        assert!(res.json()["description"].as_str().is_some_and(|d| !d.is_empty()), "case {i}");
        assert!(alive(&mut victim).await, "case {i} changed nothing");
    }
    assert_eq!(bearer_status(&s, &victim_token).await, StatusCode::OK);

    // The good one: done before the 202, on the user alone.
    let set = t.sign(&good);
    let res = push(&s, &url, Some(&auth), "application/secevent+jwt", &set).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text);
    assert!(!alive(&mut victim).await, "the session ended before the 202");
    assert_eq!(bearer_status(&s, &victim_token).await, StatusCode::UNAUTHORIZED, "the access token too");
    assert!(alive(&mut bystander).await);

    // Repeated (a retry after a lost answer, or a replay): answered as the first, nothing done
    // again: the user, signed in since, stays signed in.
    let mut again = s.browser();
    again.login("victim@example.com", PASSWORD).await;
    let res = push(&s, &url, Some(&auth), "application/secevent+jwt", &set).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text);
    assert!(alive(&mut again).await, "a repeated SET changes nothing");
    // A verification, and an address nobody has here: accepted, nothing done.
    let verification = json!({"iss": ISSUER, "aud": s.base, "iat": now(), "jti": "v-1", "sub_id": {"format": "opaque", "id": "stream"}, "events": {VERIFICATION: {"state": "x"}}});
    assert_eq!(
        push(&s, &url, Some(&auth), "application/secevent+jwt", &t.sign(&verification)).await.status,
        StatusCode::ACCEPTED
    );
    let nobody = set_about("nobody@example.com", SESSION_REVOKED, &s.base);
    assert_eq!(
        push(&s, &url, Some(&auth), "application/secevent+jwt", &t.sign(&nobody)).await.status,
        StatusCode::ACCEPTED
    );
    assert!(alive(&mut bystander).await);

    // credential-change by e-mail, and RISC account-disabled with its subject in the event.
    for (event, email) in [(CREDENTIAL_CHANGE, "cred@example.com"), (ACCOUNT_DISABLED, "disabled@example.com")] {
        let mut b = s.signed_in(email).await;
        let mut set = set_about(email, event, &s.base);
        if event == ACCOUNT_DISABLED {
            set.as_object_mut().expect("object").remove("sub_id");
            set["events"][event]["subject"] = json!({"format": "email", "email": email});
        } else {
            set["sub_id"] = json!({"format": "email", "email": email});
        }
        let res = push(&s, &url, Some(&auth), "application/secevent+jwt", &t.sign(&set)).await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{event}: {}", res.text);
        assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED, "{event}");
    }
    assert!(alive(&mut bystander).await);

    // An upstream whose keys cannot be fetched: the transmitter is told to retry (503), not that
    // its SET is bad, and nothing changes.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let body = json!({"issuer": ISSUER, "jwks_uri": format!("http://127.0.0.1:{closed}/jwks"), "audience": s.base});
    let down = admin(&s, Method::POST, "/admin/ssf/receivers", Some(body)).await.json();
    let (down_url, down_auth) =
        (down["endpoint_url"].as_str().expect("url"), down["authorization_header"].as_str().expect("auth"));
    let mut c = s.signed_in("unfetched@example.com").await;
    let set = t.sign(&set_about("unfetched@example.com", SESSION_REVOKED, &s.base));
    let res = push(&s, down_url, Some(down_auth), "application/secevent+jwt", &set).await;
    assert_eq!(
        (res.status, res.header("retry-after").is_some()),
        (StatusCode::SERVICE_UNAVAILABLE, true),
        "{}",
        res.text
    );
    assert_eq!(c.session_status().await, StatusCode::OK);

    // Listed without its secret; deleted, its endpoint refuses everything (a leaked header revoked).
    let listed = admin(&s, Method::GET, "/admin/ssf/receivers", None).await;
    let receivers = listed.json()["receivers"].as_array().cloned().unwrap_or_default();
    assert!(receivers.iter().any(|r| r["endpoint_url"] == url.as_str()), "{receivers:?}");
    assert_eq!(listed.json()["receivers"].as_array().map(Vec::len), Some(2));
    assert!(!listed.text.contains(&auth["Bearer ".len()..]), "the secret is not shown again");
    let id = up["id"].as_str().expect("id");
    assert_eq!(
        admin(&s, Method::DELETE, &format!("/admin/ssf/receivers/{id}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    let mut b = s.signed_in("after@example.com").await;
    let after = t.sign(&set_about("after@example.com", SESSION_REVOKED, &s.base));
    assert_eq!(push(&s, &url, Some(&auth), "application/secevent+jwt", &after).await.status, StatusCode::NOT_FOUND);
    assert_eq!(b.session_status().await, StatusCode::OK);
    assert_eq!(
        admin(&s, Method::DELETE, &format!("/admin/ssf/receivers/{id}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    let _ = std::fs::remove_dir_all(&dir);
}
