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

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// Errors a browser meets are pages, with the same status and headers; API clients keep JSON.
#[tokio::test]
async fn browsers_get_error_pages_and_api_clients_json() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    let page = b.send(b.bare(Method::GET, "/no/such/page").header("accept", HTML)).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{:?}", page.headers);
    assert!(page.text.contains("<h1>Page not found</h1>") && page.text.contains("href=\"/login\""), "{}", page.text);
    for accept in ["application/json", "*/*"] {
        let json = b.send(b.bare(Method::GET, "/no/such/page").header("accept", accept)).await;
        assert_error_shape(&json, StatusCode::NOT_FOUND, "not_found");
    }
    // A form posted without the page's CSRF token: a page saying what to do, nothing changed.
    let mut signed_in = s.signed_in("pages@example.com").await;
    let refused = signed_in
        .send(signed_in.request(Method::POST, "/auth/logout").header("accept", HTML).form(&[("scope", "global")]))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.text.contains("This form could not be sent"), "{}", refused.text);
    assert!(refused.text.contains("pages@example.com"), "a signed-in user sees the signed-in header: {}", refused.text);
    assert_eq!(signed_in.session_status().await, StatusCode::OK, "the refused logout changed nothing");
    // Throttled (the sixth wrong try in a row from one address): the page keeps Retry-After.
    let wrong_grant = || async {
        let mut other = s.browser();
        let fields = [("grant_type", "password"), ("email", "pages@example.com"), ("password", "wrong password here")];
        other.send(other.request(Method::POST, "/auth/token").header("accept", HTML).form(&fields)).await
    };
    for _ in 0..6 {
        wrong_grant().await;
    }
    let throttled = wrong_grant().await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS, "{}", throttled.text);
    assert!(throttled.header("retry-after").is_some() && throttled.text.contains("Too many attempts"));
}

/// The public URL is one address; a browser that reached the same server under another host
/// name is sent there (a navigation), or told plainly (a form from a page opened there).
#[tokio::test]
async fn another_host_name_of_the_server_leads_to_the_public_url() {
    let s = TestServer::start().await;
    let port = s.base.rsplit(':').next().expect("port").to_owned();
    let mut b = s.browser();
    let nav = b
        .send(
            b.bare(Method::GET, "/login?return_to=/app")
                .header("accept", HTML)
                .header("host", format!("localhost:{port}")),
        )
        .await;
    assert_eq!(nav.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(nav.location(), Some(format!("{}/login?return_to=/app", s.origin).as_str()));
    // The public host itself, an API client, or another port (a proxy in front): served as is.
    assert_eq!(b.send(b.bare(Method::GET, "/login").header("accept", HTML)).await.status, StatusCode::OK);
    let api = b.send(b.bare(Method::GET, "/healthz").header("host", format!("localhost:{port}"))).await;
    assert_eq!(api.status, StatusCode::OK);
    let proxied = b.send(b.bare(Method::GET, "/login").header("accept", HTML).header("host", "localhost:1")).await;
    assert_eq!(proxied.status, StatusCode::OK);
    // A proxy that names its upstream (same port), or forwards the request: never sent round.
    for (name, value) in [("host", format!("signoff:{port}")), ("x-forwarded-for", "192.0.2.7".to_owned())] {
        let mut rb = b.bare(Method::GET, "/login").header("accept", HTML);
        rb = if name == "host" {
            rb.header("host", value)
        } else {
            rb.header("host", format!("localhost:{port}")).header(name, value)
        };
        assert_eq!(b.send(rb).await.status, StatusCode::OK, "{name}");
    }
    // A path that looks like another origin stays a path on the public URL.
    let sneaky = b
        .send(
            b.bare(Method::GET, "//evil.example/x").header("accept", HTML).header("host", format!("localhost:{port}")),
        )
        .await;
    assert_eq!(sneaky.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(sneaky.location(), Some(format!("{}//evil.example/x", s.origin).as_str()));
    assert!(sneaky.location().is_some_and(|l| l.starts_with(&format!("{}/", s.origin))));

    s.register("elsewhere@example.com").await;
    let form = b
        .send(
            b.bare(Method::POST, "/auth/login")
                .header("accept", HTML)
                .header("origin", format!("http://localhost:{port}"))
                .form(&[("email", "elsewhere@example.com"), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(form.status, StatusCode::FORBIDDEN);
    assert!(form.set_cookies().is_empty(), "nothing set");
    assert!(
        form.text.contains(&format!("http://localhost:{port}")) && form.text.contains(&format!("{}/login", s.origin)),
        "names both addresses and links to the public one: {}",
        form.text
    );
    assert!(!form.text.contains("{\"error\""), "no raw JSON");
    let foreign = b
        .send(
            b.bare(Method::POST, "/auth/login")
                .header("accept", HTML)
                .header("origin", "https://evil.example")
                .form(&[("email", "elsewhere@example.com"), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert!(!foreign.text.contains("evil.example"), "no page of signoff's names another site: {}", foreign.text);
}

// ---- Errors under attack: absurd headers get a clear 4xx, never a 5xx.

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
