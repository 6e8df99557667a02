//! Bad input gets a clear 4xx in the contract's error shape; failures get a generic 500.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn assert_error_shape(res: &Res, status: StatusCode, code: &str) {
    assert_eq!(res.status, status, "{}", res.text);
    let body = res.json();
    assert_eq!(body["error"], code, "{}", res.text);
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn malformed_bodies_get_clear_4xx() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    let post = |ct: &str, body: Vec<u8>| {
        b.request(Method::POST, "/auth/login").header("content-type", ct.to_owned()).body(body)
    };
    let cases = vec![
        (post("application/json", b"{\"email\":".to_vec()), StatusCode::BAD_REQUEST, "invalid_request"),
        (post("application/json", b"[1,2]".to_vec()), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            post("application/json", b"{\"email\":42,\"password\":\"x\"}".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post("application/json", b"{\"email\":\"\xff\xfe\",\"password\":\"x\"}".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post("application/x-www-form-urlencoded", b"email=%ff%fe&password=x".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (post("application/json", b"{}".to_vec()), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            post("text/plain", b"email=a&password=b".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post("multipart/form-data; boundary=x", b"--x--".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (post("application/json", vec![b' '; 70_000]), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
    ];
    for (rb, status, code) in cases {
        let res = b.send(rb).await;
        assert_error_shape(&res, status, code);
    }
}

#[tokio::test]
async fn absurd_lengths_and_garbage_cookies_are_4xx_not_500() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    let huge = "a".repeat(60_000);
    let res = b.post_json("/auth/login", &json!({"email": huge, "password": "x"})).await;
    assert_error_shape(&res, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let res =
        b.post_json("/auth/register", &json!({"email": format!("{huge}@example.com"), "password": PASSWORD})).await;
    assert_error_shape(&res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_email");
    let res = b.post_json("/auth/register", &json!({"email": "long@example.com", "password": "p".repeat(5000)})).await;
    assert_error_shape(&res, StatusCode::UNPROCESSABLE_ENTITY, "weak_password");

    for cookie in [
        "__Host-signoff_session=".to_owned(),
        "__Host-signoff_session=x".to_owned(),
        format!("__Host-signoff_session={}", "A".repeat(4000)),
        format!("__Host-signoff_session={}", "!".repeat(43)),
        "__Host-signoff_session=\"quoted\"; other=1".to_owned(),
        ";;;===;;".to_owned(),
    ] {
        let rb = b.request(Method::GET, "/auth/session").header("cookie", cookie.clone());
        let res = b.send(rb).await;
        assert_error_shape(&res, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let rb = b.request(Method::GET, "/auth/session").header(
        "cookie",
        reqwest::header::HeaderValue::from_bytes(b"__Host-signoff_session=\xff\xfe").expect("obs-text"),
    );
    assert_eq!(b.send(rb).await.status, StatusCode::UNAUTHORIZED);
    let rb = b.request(Method::GET, "/auth/sessions/../../etc/passwd");
    assert!(b.send(rb).await.status.is_client_error());
    let res = b.get_json(&format!("/auth/audit?limit={}", "9".repeat(50))).await;
    assert!(res.status.is_client_error());
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    assert_error_shape(&b.get_json("/nope").await, StatusCode::NOT_FOUND, "not_found");
    let rb = b.request(Method::PUT, "/auth/login");
    let res = b.send(rb).await;
    assert_error_shape(&res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(res.header("allow"), Some("POST"));
}

#[tokio::test]
async fn store_failures_get_a_generic_500_with_a_request_id() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("broken@example.com").await;
    sqlx::query("DROP TABLE audit_events").execute(&s.db().await).await.expect("drop");
    let res = b.post_json("/auth/logout", &json!({})).await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    let body = res.json();
    assert_eq!(body["error"], "internal");
    assert_eq!(body["message"], "internal error");
    let id = body["request_id"].as_str().expect("request id");
    assert_eq!(res.header("x-request-id"), Some(id));
    let lower = res.text.to_lowercase();
    for leak in ["sql", "table", "audit_events", "sqlx", "store", "backend"] {
        assert!(!lower.contains(leak), "leaks {leak}: {}", res.text);
    }
    assert!(res.set_cookies().is_empty());
    // Nothing half-written: the session that could not be ended with its audit event lives on.
    assert_eq!(b.session_status().await, StatusCode::OK);
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_generic_500_behind_the_edge() {
    // The production edge middleware around a route that panics.
    let s = TestServer::start().await;
    let store = signoff_server::backend::open_store(&s.db_url).await.expect("store");
    let state = signoff_server::AppState::new(
        signoff_server::Config::defaults(),
        store,
        std::sync::Arc::new(signoff_core::SystemClock),
    )
    .await
    .expect("state");
    let app = axum::Router::new()
        .route(
            "/boom",
            axum::routing::get(|| async {
                if true {
                    panic!("secret internals")
                }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(state.clone(), signoff_server::edge::edge))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let res = reqwest::get(format!("http://{addr}/boom")).await.expect("request");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let id = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).expect("id").to_owned();
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body, json!({"error": "internal", "message": "internal error", "request_id": id}));
}
