//! The routes the server calls past the router (`Surface`'s shortcuts, the hottest ones) answer
//! every kind of caller exactly as the router answers them: the same state served twice, once
//! with the shortcuts and once with every request through the router, asked the same things.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What must be equal: the status, every header but the request id and the date (a cookie
/// by its name and attributes: a resume mints new values), and the body (a request id in it
/// aside).
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, Vec<String>>,
    body: Value,
}

async fn ask(base: &str, host: &str, path: &str, headers: &[(&str, String)]) -> Answer {
    let mut rb = client().get(format!("{base}{path}")).header("host", host);
    for (name, value) in headers {
        rb = rb.header(*name, value);
    }
    let res = rb.send().await.expect("request");
    let status = res.status().as_u16();
    let mut kept: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in res.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let value = match name.as_str() {
            "x-request-id" | "date" => continue,
            "set-cookie" => {
                let (pair, attrs) = value.split_once(';').unwrap_or((&value, ""));
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                // A value set or cleared, not which.
                let value = if value.is_empty() { "" } else { "…" };
                format!("{name}={value};{attrs}")
            }
            _ => value,
        };
        kept.entry(name.as_str().to_owned()).or_default().push(value);
    }
    let text = res.text().await.expect("body");
    let mut body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if let Some(id) = body.get_mut("request_id") {
        *id = json!("…");
    }
    Answer { status, headers: kept, body }
}

#[tokio::test]
async fn the_shortcut_routes_answer_as_the_router_does() {
    let s = TestServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let routed = format!("http://{}", listener.local_addr().expect("addr"));
    let limits = signoff_server::listener::Limits {
        max_connections: 64,
        header_read_timeout: std::time::Duration::from_secs(5),
        keepalive_timeout: std::time::Duration::from_secs(5),
        write_timeout: std::time::Duration::from_secs(30),
        open: std::sync::Arc::default(),
    };
    let surface = signoff_server::Surface::routed(s.state().clone());
    tokio::spawn(signoff_server::listener::serve(listener, surface, limits, std::future::pending()));
    // Both asked as the public origin's host, so neither sends a browser elsewhere.
    let host = s.base.trim_start_matches("http://").to_owned();

    let b = s.signed_in("short@example.com").await;
    let cookie = format!("{SESSION}={}", b.session_cookie().expect("cookie"));
    let mut t = s.browser();
    let grant = json!({"grant_type": "password", "email": "short@example.com", "password": PASSWORD});
    let token = t.post_json("/auth/token", &grant).await.json()["access_token"].as_str().expect("token").to_owned();
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8".to_owned();

    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("nothing", vec![]),
        ("a session cookie", vec![("cookie", cookie.clone())]),
        ("a browser with its cookie", vec![("cookie", cookie.clone()), ("accept", html.clone())]),
        ("a bearer token", vec![("authorization", format!("Bearer {token}"))]),
        ("a made-up cookie", vec![("cookie", format!("{SESSION}=made-up"))]),
        ("a browser without a cookie", vec![("accept", html.clone())]),
        ("a bad bearer token", vec![("authorization", "Bearer not.a.token".to_owned())]),
        ("an original URL", vec![("cookie", cookie.clone()), ("x-original-url", "http://app.test/x".to_owned())]),
    ];
    // A browser at another name for the server is sent to the public URL, by both (not by the
    // gate, which answers proxies).
    let elsewhere = host.replace("127.0.0.1", "localhost");
    for (path, status) in [("/api/me", 307), ("/authz/auth-request", 401)] {
        let shortcut = ask(&s.base, &elsewhere, path, &[("accept", html.clone())]).await;
        let router = ask(&routed, &elsewhere, path, &[("accept", html.clone())]).await;
        assert_eq!(shortcut, router, "GET {path} from a browser at {elsewhere}");
        assert_eq!(shortcut.status, status, "{shortcut:?}");
    }
    for path in ["/api/me", "/authz/auth-request"] {
        for (what, headers) in &cases {
            let shortcut = ask(&s.base, &host, path, headers).await;
            let router = ask(&routed, &host, path, headers).await;
            assert_eq!(shortcut, router, "GET {path} with {what}");
        }
        // A remember-me cookie alone signs the browser back in on `/api/me` (never on the
        // gate): one sign-in each, as a resume rotates its series.
        let (_, first) = remembered(&s, "short@example.com").await;
        let (_, second) = remembered(&s, "short@example.com").await;
        let shortcut = ask(&s.base, &host, path, &[("cookie", format!("{REMEMBER}={first}"))]).await;
        let router = ask(&routed, &host, path, &[("cookie", format!("{REMEMBER}={second}"))]).await;
        assert_eq!(shortcut, router, "GET {path} with a remember-me cookie");
        let resumed = path == "/api/me";
        assert_eq!(shortcut.status == 200, resumed, "{shortcut:?}");
        assert_eq!(shortcut.headers.contains_key("set-cookie"), resumed, "{shortcut:?}");
    }
    // The answers differ where they should, or the comparison above proves nothing.
    let signed_in = ask(&s.base, &host, "/api/me", &[("cookie", cookie.clone())]).await;
    let anonymous = ask(&routed, &host, "/api/me", &[]).await;
    assert_eq!((signed_in.status, anonymous.status), (200, 401));
    assert_eq!(signed_in.body["user"]["email"], "short@example.com");
    // What is not a shortcut's exact method and path goes through the router, on both.
    for (method, path) in [(Method::HEAD, "/api/me"), (Method::GET, "/api/me/"), (Method::POST, "/api/me")] {
        for base in [&s.base, &routed] {
            let res = client()
                .request(method.clone(), format!("{base}{path}"))
                .header("host", &host)
                .header("cookie", &cookie)
                .send()
                .await
                .expect("request");
            let want = match (method.as_str(), path) {
                ("HEAD", _) => 200,
                ("GET", _) => 404,
                _ => 405,
            };
            assert_eq!(res.status().as_u16(), want, "{method} {path} on {base}");
        }
    }
}
