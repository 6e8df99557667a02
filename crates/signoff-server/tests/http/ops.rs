//! Operations endpoints, security headers, the OpenAPI document, and connection limits.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    assert_eq!(b.get("/healthz").await.status, StatusCode::OK);
    let ready = b.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "ready");
    b.post_json("/auth/login", &json!({"email": "x@example.com", "password": "nope nope"})).await;
    let metrics = b.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.header("content-type").is_some_and(|c| c.starts_with("text/plain")));
    assert!(metrics.text.contains("signoff_login_failures_total 1"), "{}", metrics.text);
    assert!(metrics.text.contains("signoff_http_responses_total{class=\"4xx\"} 1"));
    assert!(metrics.text.contains("signoff_event_stream_sessions 0"));
    let open: u64 = metrics
        .text
        .lines()
        .find_map(|l| l.strip_prefix("signoff_open_connections "))
        .and_then(|v| v.parse().ok())
        .expect("open connections gauge");
    assert!(open >= 1, "at least this request's own connection");
    assert!(metrics.text.contains("signoff_throttled_total 0"));
    assert!(metrics.text.contains("signoff_busy_total 0"));
    assert!(metrics.text.ends_with("# EOF\n"));

    // Latency histograms, by what a request did.
    let email = s.register("metrics@example.com").await;
    b.login(&email, PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(b.get("/api/me").await.status, StatusCode::OK);
    }
    let mut t = s.browser();
    let granted =
        t.post_json("/auth/token", &json!({"grant_type": "password", "email": email, "password": PASSWORD})).await;
    let access = granted.json()["access_token"].as_str().expect("access token").to_owned();
    assert_eq!(t.post_json("/auth/revoke", &json!({"token": access})).await.status, StatusCode::OK);
    let text = b.get("/metrics").await.text;
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert_eq!(value("signoff_validation_seconds_count"), 3.0);
    assert!(value("signoff_validation_seconds_sum") > 0.0);
    assert_eq!(value("signoff_validation_seconds_bucket{le=\"+Inf\"}"), 3.0);
    // The failed sign-in above, this one and the token's password grant.
    assert_eq!(value("signoff_sign_in_seconds_count"), 3.0);
    assert!(value("signoff_sign_in_seconds_bucket{le=\"0.0001\"}") < 3.0, "argon2id takes longer than 100 µs");
    assert_eq!(value("signoff_logout_seconds_count"), 1.0);
    assert_eq!(value("signoff_denied_tokens"), 1.0, "the revoked token's id");
    assert!(value("signoff_cached_sessions") >= 1.0);
    // A single process vouches for itself.
    assert_eq!(value("signoff_node_vouches"), 1.0);
    assert_eq!(value("signoff_node_jeopardy_seconds"), 0.0);
    b.post_json("/auth/logout", &json!({})).await;
    let text = b.get("/metrics").await.text;
    assert!(text.contains("signoff_logout_seconds_count 2"), "{text}");

    // A scraper that asks for OpenMetrics gets its media type.
    let res = reqwest::Client::new()
        .get(format!("{}/metrics", s.base))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
        .send()
        .await
        .expect("metrics");
    assert!(res.headers()["content-type"].to_str().expect("ascii").starts_with("application/openmetrics-text"));
}

/// Redis is optional and only speeds hints up: out of reach, the node is still ready (hints go
/// through PostgreSQL LISTEN/NOTIFY) and says so, without internals.
#[tokio::test]
async fn readiness_reports_a_configured_redis_out_of_reach_without_failing() {
    // Nothing listens on this port: bind it, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let unreachable = format!("redis://127.0.0.1:{port}");
    // Several nodes (PostgreSQL): ready, and saying so.
    let s =
        TestServer::on_postgres_with(|c| c.redis_url = Some(signoff_server::config::SecretUrl(unreachable.clone())))
            .await;
    let res = s.browser().get("/readyz").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["status"], "ready");
    assert!(res.json()["redis"].as_str().is_some_and(|r| r.starts_with("unreachable")), "{}", res.text);
    assert!(!res.text.contains("refused"), "no internals in the body: {}", res.text);
    // One process on SQLite has no use for Redis: nothing to say.
    let s = TestServer::with(|c| c.redis_url = Some(signoff_server::config::SecretUrl(unreachable))).await;
    if !on_postgres() {
        let res = s.browser().get("/readyz").await;
        assert_eq!((res.status, res.json()["redis"].clone()), (StatusCode::OK, serde_json::Value::Null));
    }
    if let Ok(url) = std::env::var("SIGNOFF_TEST_REDIS_URL") {
        let s = TestServer::on_postgres_with(|c| c.redis_url = Some(signoff_server::config::SecretUrl(url))).await;
        let res = s.browser().get("/readyz").await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.json()["redis"], serde_json::Value::Null, "Redis at SIGNOFF_TEST_REDIS_URL must answer");
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    for path in ["/login", "/healthz", "/auth/session", "/nope", "/openapi.json", "/demo.css"] {
        let res = b.get(path).await;
        assert_eq!(res.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(res.header("referrer-policy"), Some("same-origin"), "{path}");
        assert!(res.header("content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'")), "{path}");
        assert!(res.header("x-request-id").is_some(), "{path}");
        assert!(res.header("strict-transport-security").is_none(), "no HSTS on plain http");
    }
    let login = b.get("/login").await;
    assert!(login.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    assert_eq!(login.header("cache-control"), Some("no-store"));

    let https = TestServer::with(|c| {
        c.serve_at("https://auth.example.com".parse().expect("url"));
    })
    .await;
    let res = https.browser().get("/login").await;
    assert!(res.header("strict-transport-security").is_some_and(|h| h.contains("max-age=")));
}

/// `docs/http-api.md` is the contract kept in the repository: every path the OpenAPI document
/// serves is named there, and every `METHOD /path` row of its tables is in the OpenAPI document
/// (the demo's HTML pages, which are not API, aside).
#[test]
fn the_contract_in_docs_and_the_openapi_document_agree() {
    let docs = include_str!("../../../../docs/http-api.md");
    let openapi: serde_json::Value = serde_json::from_str(signoff_server::routes::ops::OPENAPI).expect("json");
    let paths = openapi["paths"].as_object().expect("paths");
    let named = |path: &str| {
        docs.match_indices(path).any(|(at, _)| {
            let next = docs[at + path.len()..].chars().next();
            !next.is_some_and(|c| c.is_ascii_alphanumeric() || "-_/.{".contains(c))
        })
    };
    for path in paths.keys() {
        assert!(named(path), "{path} is served in /openapi.json but not named in docs/http-api.md");
    }
    let mut rows = 0;
    for line in docs.lines().filter(|l| l.starts_with("| ")) {
        let cell = line.split('|').nth(1).unwrap_or_default().trim();
        let Some((method, rest)) = cell.split_once(' ') else { continue };
        if !["GET", "POST", "DELETE", "PUT", "PATCH"].contains(&method) {
            continue;
        }
        let path = rest.trim().trim_start_matches('`').split(['`', '?']).next().unwrap_or_default();
        rows += 1;
        let documented = paths.get(path).and_then(|p| p.get(method.to_ascii_lowercase()));
        assert!(documented.is_some(), "docs/http-api.md has {method} {path}, which /openapi.json lacks");
    }
    assert!(rows > 30, "the tables of docs/http-api.md were read ({rows} rows)");
}

/// Found by schemathesis once its session lived long enough to read `/auth/audit` after a
/// password reset was asked for: the document's list of event types had fallen behind.
#[tokio::test]
async fn openapi_lists_every_audit_event_type() {
    let s = TestServer::start().await;
    let doc = s.browser().get("/openapi.json").await.json();
    let listed: Vec<&str> = doc["components"]["schemas"]["AuditEvent"]["properties"]["type"]["enum"]
        .as_array()
        .expect("an enum of event types")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let mut kinds: Vec<&str> = signoff_core::AuditKind::all().iter().map(|k| k.as_str()).collect();
    let mut sorted = listed.clone();
    kinds.sort_unstable();
    sorted.sort_unstable();
    assert_eq!(sorted, kinds, "the AuditEvent type enum of openapi.json");
}

#[tokio::test]
async fn openapi_describes_every_route_of_the_contract() {
    let s = TestServer::start().await;
    let res = s.browser().get("/openapi.json").await;
    assert_eq!(res.status, StatusCode::OK);
    let doc = res.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/auth/register", "post"),
        ("/auth/login", "post"),
        ("/auth/logout", "post"),
        ("/auth/session", "get"),
        ("/auth/sessions", "get"),
        ("/auth/sessions/{id}", "delete"),
        ("/auth/sessions/{id}/revoke", "post"),
        ("/auth/audit", "get"),
        ("/auth/password", "post"),
        ("/auth/email", "post"),
        ("/auth/email/confirm", "get"),
        ("/auth/email/confirm", "post"),
        ("/auth/password-reset", "get"),
        ("/auth/password-reset", "post"),
        ("/auth/password-reset/confirm", "get"),
        ("/auth/password-reset/confirm", "post"),
        ("/auth/security-report", "post"),
        ("/auth/events", "get"),
        ("/admin/users/{user_id}/sessions", "get"),
        ("/admin/users/{user_id}/revoke", "post"),
        ("/auth/token", "post"),
        ("/auth/revoke", "post"),
        ("/auth/introspect", "post"),
        ("/.well-known/jwks.json", "get"),
        ("/.well-known/signoff-configuration", "get"),
        ("/api/me", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/authz/auth-request", "get"),
        ("/authz/forward-auth", "get"),
        ("/admin/clients", "get"),
        ("/admin/clients", "post"),
        ("/admin/clients/{client_id}", "delete"),
        ("/revocations", "get"),
        ("/revocations/stream", "get"),
        ("/admin/clients/{client_id}/deliveries", "get"),
        ("/admin/clients/{client_id}/deliveries/{delivery_id}/retry", "post"),
        ("/admin/clients/{client_id}/webhook-secret", "post"),
        ("/.well-known/openid-configuration", "get"),
        ("/oidc/authorize", "get"),
        ("/oidc/authorize", "post"),
        ("/oidc/token", "post"),
        ("/oidc/userinfo", "get"),
        ("/oidc/userinfo", "post"),
        ("/oidc/logout", "get"),
        ("/oidc/logout", "post"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing from /openapi.json");
    }
    // And the other way: everything documented is routed. An unrouted path is 404 whatever the
    // method; a routed one answers 405 to a method it lacks (PATCH, or for the one path that
    // has it, the SSF configuration endpoint, OPTIONS), and its documented method is not
    // refused as not allowed.
    // (With an admin key configured: without one the admin routes answer 404 to everyone.)
    let admin = TestServer::with(|c| {
        c.admin_token = Some(signoff_server::config::AdminKey("0123456789abcdef0123456789abcdef0123456789b".into()));
    })
    .await;
    let mut b = admin.browser();
    for (path, ops) in paths {
        let concrete =
            path.split('/').map(|seg| if seg.starts_with('{') { "x" } else { seg }).collect::<Vec<_>>().join("/");
        let lacking = if ops.get("patch").is_some() { Method::OPTIONS } else { Method::PATCH };
        let lacked = b.send(b.bare(lacking, &concrete)).await;
        assert_eq!(lacked.status, StatusCode::METHOD_NOT_ALLOWED, "{path} documented but not routed");
        for (method, op) in ops.as_object().expect("operations") {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let res = b.send(b.bare(m, &concrete)).await;
            if op["responses"].get("405").is_some() {
                continue; // documented as refused (GET /auth/logout)
            }
            assert_ne!(res.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} documented but not routed");
        }
    }
}

/// A PostgreSQL server that refuses this database's connections while signoff runs (SQLSTATE
/// 55000 after `ALLOW_CONNECTIONS false`, as during maintenance) is an outage: `503` with
/// `Retry-After`, never `500`; and once it allows them again, requests are answered again.
#[tokio::test]
async fn a_database_refusing_connections_is_answered_503_not_500() {
    let s = TestServer::on_postgres().await;
    let mut b = s.signed_in("refused@example.com").await;
    assert_eq!(b.session_status().await, StatusCode::OK);
    let db = s.database().expect("on PostgreSQL");
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&signoff_testdb::server_url()).await.expect("admin");
    let allow = |on: bool| format!("ALTER DATABASE {} ALLOW_CONNECTIONS {on}", db.name);
    sqlx::raw_sql(sqlx::AssertSqlSafe(allow(false))).execute(&mut admin).await.expect("disallow");
    assert!(db.terminate_connections().await > 0, "the server's connections were cut");
    // Over three seconds (past the node's lease, so the validation cache is given up too):
    // what needs the database is 503 with Retry-After; a session check may be answered from
    // the cache while the node still vouches for it, never with 500.
    let started = std::time::Instant::now();
    let mut cached_then_refused = (false, false);
    while started.elapsed() < std::time::Duration::from_secs(3) {
        let mut other = s.browser();
        let login =
            other.post_json("/auth/login", &json!({"email": "refused@example.com", "password": PASSWORD})).await;
        assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE, "{}", login.text);
        assert!(login.header("retry-after").is_some());
        let list = b.get("/auth/sessions").await;
        assert_eq!(list.status, StatusCode::SERVICE_UNAVAILABLE, "{}", list.text);
        let session = b.get("/auth/session").await;
        match session.status {
            StatusCode::OK => cached_then_refused.0 = true,
            StatusCode::SERVICE_UNAVAILABLE => cached_then_refused.1 = true,
            other => panic!("a session check answered {other}: {}", session.text),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(cached_then_refused.1, "the session check too is refused once the node cannot vouch");
    sqlx::raw_sql(sqlx::AssertSqlSafe(allow(true))).execute(&mut admin).await.expect("allow");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while b.session_status().await != StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "answered again once connections are allowed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The value of one series in `/metrics`.
fn series(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}"))
}

/// Token grants are sign-ins and a revoked refresh token ends its session: both are counted
/// like their cookie counterparts.
#[tokio::test]
async fn token_grants_and_refresh_token_revokes_are_counted() {
    let s = TestServer::start().await;
    s.register("counted@example.com").await;
    let mut b = s.browser();
    let before = b.get("/metrics").await.text;
    let grant = b
        .post_json(
            "/auth/token",
            &json!({"grant_type": "password", "email": "counted@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(grant.status, StatusCode::OK);
    let refresh = grant.json()["refresh_token"].as_str().expect("refresh").to_owned();
    let revoked = b.post_json("/auth/revoke", &json!({"token": refresh, "token_type_hint": "refresh_token"})).await;
    assert_eq!(revoked.status, StatusCode::OK);
    let after = b.get("/metrics").await.text;
    for name in ["signoff_logins_total", "signoff_sessions_ended_total"] {
        assert_eq!(series(&after, name) - series(&before, name), 1.0, "{name}");
    }
    // Revoking it again ends nothing more.
    let again = b.post_json("/auth/revoke", &json!({"token": refresh})).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        series(&b.get("/metrics").await.text, "signoff_sessions_ended_total"),
        series(&after, "signoff_sessions_ended_total")
    );
}

/// Found by schemathesis in CI: `POST /admin/clients/{id}/webhook-secret` answered an empty
/// `Content-Type` with 415, which its document did not list. Every operation that takes a body
/// is sent, with the credentials its document asks for, each kind of body the server refuses
/// before reading it or cannot use (no type, an empty type, a type it does not take, malformed
/// JSON, a form that is not UTF-8, one byte over the limit), each on a session of its own; whatever it
/// answers must be a status the document lists for that operation, and never a 5xx.
#[tokio::test]
async fn every_refused_body_is_answered_with_a_documented_status() {
    const ADMIN: &str = "0123456789abcdef0123456789abcdef0123456789b";
    const LIMIT: usize = 4096;
    let s = TestServer::with(|c| {
        c.admin_token = Some(signoff_server::config::AdminKey(ADMIN.into()));
        c.max_body_bytes = LIMIT;
    })
    .await;
    let mut admin = s.browser();
    let rb = admin.bare(Method::POST, "/admin/clients").bearer_auth(ADMIN).json(&json!({"name": "app"}));
    let client = admin.send(rb).await.json();
    let (client_id, client_secret) = (
        client["client_id"].as_str().expect("id").to_owned(),
        client["client_secret"].as_str().expect("secret").to_owned(),
    );
    let mut b = s.signed_in("bodies@example.com").await;
    let me = b.get_json("/auth/session").await.json();
    let user_id = me["user"]["id"].as_str().expect("user id").to_owned();

    let doc: serde_json::Value = serde_json::from_str(signoff_server::routes::ops::OPENAPI).expect("json");
    let too_big = format!("{{\"name\":\"{}\"}}", "x".repeat(LIMIT));
    let bodies: [(&str, Option<&str>, Vec<u8>); 6] = [
        ("no content type", None, b"{}".to_vec()),
        ("an empty content type", Some(""), b"{}".to_vec()),
        ("text/plain", Some("text/plain"), b"{}".to_vec()),
        ("malformed JSON", Some("application/json"), b"{\"a\":".to_vec()),
        ("a malformed form", Some("application/x-www-form-urlencoded"), b"%FF=%FE".to_vec()),
        ("a body over the limit", Some("application/json"), too_big.into_bytes()),
    ];
    let mut checked = 0;
    let mut undocumented = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            if op.get("requestBody").is_none() {
                continue;
            }
            // A session of its own for each operation (and another to name in the path), so
            // an operation that ends sessions (an admin revoke of the user) leaves the next
            // one signed in.
            let mut b = s.browser();
            let csrf =
                b.login("bodies@example.com", PASSWORD).await.json()["csrf_token"].as_str().expect("csrf").to_owned();
            let other_session = s.browser().login("bodies@example.com", PASSWORD).await.json()["session"]["id"]
                .as_str()
                .expect("session id")
                .to_owned();
            let concrete = path
                .replace("{client_id}", &client_id)
                .replace("{user_id}", &user_id)
                .replace("{id}", &other_session)
                .replace("{delivery_id}", "x");
            let schemes: Vec<&str> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_object()?.keys().next().map(String::as_str))
                .collect();
            for (what, content_type, body) in &bodies {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
                let mut rb = b.request(m, &concrete).header("x-csrf-token", &csrf).header("accept", "application/json");
                if schemes.contains(&"adminKey") {
                    rb = rb.bearer_auth(ADMIN);
                } else if schemes.contains(&"clientBasic") {
                    rb = rb.basic_auth(&client_id, Some(&client_secret));
                }
                if let Some(t) = content_type {
                    rb = rb.header("content-type", *t);
                }
                let res = b.send(rb.body(body.clone())).await;
                let status = res.status.as_str().to_owned();
                assert!(!res.status.is_server_error(), "{method} {path} with {what}: {} {}", res.status, res.text);
                if op["responses"].get(&status).is_none() {
                    undocumented.push(format!("{method} {path} answered {what} with {status}: {}", res.text));
                }
                checked += 1;
            }
        }
    }
    assert!(undocumented.is_empty(), "statuses /openapi.json does not list:\n{}", undocumented.join("\n"));
    assert!(checked >= 6 * 15, "every operation with a body was sent each body ({checked} requests)");
}

// ---- Connections under attack (the outside review, issue 8, items 8–14): slow headers, idle
// connections and bodies that never arrive are cut off, and cannot lock others out.

/// Reads until the server closes the connection; how long that took, or `None` past `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let s = TestServer::with(|c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.keepalive_timeout = Duration::from_millis(700);
        c.max_connections = 256;
        c.events_keepalive = time::Duration::seconds(1);
    })
    .await;
    // Slowloris: 200 requests whose headers trickle in a byte at a time and never end.
    let mut set = JoinSet::new();
    for _ in 0..200 {
        let addr = addr(&s);
        set.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("write");
            let started = Instant::now();
            let trickle = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if stream.write_all(b"X").await.is_err() {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(6), trickle).await;
            started.elapsed()
        });
    }
    for took in set.join_all().await {
        assert!(took < Duration::from_secs(4), "a half-sent request stayed open {took:?}");
    }
    // An idle keep-alive connection is closed after its timeout.
    let mut stream = TcpStream::connect(addr(&s)).await.expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let took = closed_within(&mut stream, Duration::from_secs(3)).await.expect("the idle connection was closed");
    assert!(took >= Duration::from_millis(500), "not before its keep-alive timeout: {took:?}");
    // An event stream is a request in flight, never idle: it outlives both timeouts.
    let b = s.signed_in("stream@example.com").await;
    let mut res = b.request(Method::GET, "/auth/events").send().await.expect("events");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let chunk = tokio::time::timeout(Duration::from_secs(2), res.chunk()).await.expect("a keep-alive comment");
        assert!(chunk.expect("stream").is_some(), "the event stream was cut after {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off() {
    let s = TestServer::with(|c| c.write_timeout = Duration::from_secs(1)).await;
    // Answers large enough that those asked for fill every buffer between the server and a
    // client that takes none of them.
    const REQUESTS: usize = 400;
    let size = reqwest::get(format!("{}/openapi.json", s.base)).await.expect("get").bytes().await.expect("body").len();
    assert!(size * REQUESTS > 16 << 20, "{size} bytes an answer fill no buffer");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("a small receive buffer");
    let stream = socket.connect(addr(&s).parse().expect("address")).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    // Every request at once (pipelined), then nothing read for a while.
    let writer = tokio::spawn(async move {
        for _ in 0..REQUESTS {
            if write.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n").await.is_err() {
                break;
            }
        }
        write
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The server gave up on this client a second after its writes stopped going through: what
    // is read now ends before the answers do. (Not cut off, it would send them all, then keep
    // the connection open for its keep-alive time.)
    let mut answers = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(20), read.read_to_end(&mut answers)).await;
    assert!(ended.is_ok(), "the connection was still open after 24 s");
    let sent = answers.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
    assert!(sent < REQUESTS, "all {sent} answers were sent to a client that did not read");
    drop(writer.await);
}

#[tokio::test]
async fn idle_connections_cannot_lock_clients_out_beyond_the_connection_cap() {
    let s = TestServer::with(|c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.keepalive_timeout = Duration::from_secs(1);
        c.max_connections = 16;
    })
    .await;
    // Fill every slot, and then some, with connections that send nothing.
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(TcpStream::connect(addr(&s)).await.expect("connect"));
    }
    // A real client still gets through: the idle ones are closed within their header timeout.
    let started = Instant::now();
    let res = reqwest::Client::new()
        .get(format!("{}/healthz", s.base))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("served");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(8), "served after {:?}", started.elapsed());
    for mut c in idle {
        assert!(closed_within(&mut c, Duration::from_secs(8)).await.is_some(), "an idle connection stayed open");
    }
}

#[tokio::test]
async fn a_request_body_that_never_arrives_times_out() {
    let s = TestServer::with(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(addr(&s)).await.expect("connect");
    stream
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{",
        )
        .await
        .expect("write");
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n =
        tokio::time::timeout(Duration::from_secs(4), stream.read(&mut buf)).await.expect("an answer").expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(closed_within(&mut stream, Duration::from_secs(4)).await.is_some(), "the connection is freed");
}
