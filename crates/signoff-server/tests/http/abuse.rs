//! Accounts and cheap denial of service (the outside review, issue 8, items 8–14): probing
//! addresses, targeted lock-out, unthrottled registration, weak passwords, unbounded password
//! hashing, slow and idle connections, and unbounded sessions.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// A JSON POST as if from the client address `ip` (the server trusts `X-Forwarded-For`).
pub async fn post_from(b: &mut Browser, ip: &str, path: &str, body: serde_json::Value) -> Res {
    let rb =
        b.request(Method::POST, path).header("x-forwarded-for", ip).header("accept", "application/json").json(&body);
    b.send(rb).await
}

async fn login_from(b: &mut Browser, ip: &str, email: &str, password: &str) -> StatusCode {
    post_from(b, ip, "/auth/login", json!({"email": email, "password": password})).await.status
}

#[tokio::test]
async fn email_changes_are_throttled_per_account_whatever_their_outcome() {
    let s = TestServer::start().await;
    let taken = s.register("taken@example.com").await;
    let mut b = s.signed_in("prober@example.com").await;
    let change = |new: &str, password: &str| json!({"current_password": password, "new_email": new});
    // Five attempts of any kind: a taken address, a wrong password, a free address.
    let outcomes = [
        (change(&taken, PASSWORD), StatusCode::ACCEPTED),
        (change("free1@example.com", "wrong password"), StatusCode::UNAUTHORIZED),
        (change(&taken, PASSWORD), StatusCode::ACCEPTED),
        (change("not an address", PASSWORD), StatusCode::UNPROCESSABLE_ENTITY),
        (change("free2@example.com", "wrong password"), StatusCode::UNAUTHORIZED),
    ];
    for (body, expected) in outcomes {
        assert_eq!(b.post_json("/auth/email", &body).await.status, expected);
    }
    // Then the same answer for a taken and a free address: the limit tells nothing.
    for new in [taken.as_str(), "free3@example.com"] {
        let res = b.post_json("/auth/email", &change(new, PASSWORD)).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{new}");
        assert_eq!(res.json()["error"], "too_many_attempts");
        assert!(res.header("retry-after").is_some());
    }
    assert_eq!(b.session_status().await, StatusCode::OK, "the e-mail never changed");
    s.clock.advance(time::Duration::minutes(61));
    b.login("prober@example.com", PASSWORD).await;
    assert_eq!(b.post_json("/auth/email", &change("free4@example.com", PASSWORD)).await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn an_attacker_cannot_lock_the_owner_out() {
    let s = TestServer::with(|c| {
        c.trust_proxy = true;
        c.throttle.max_failures_per_account = 12;
    })
    .await;
    let email = s.register("owner@example.com").await;
    let mut b = s.browser();
    // One address guessing: locked after five failures, the right password included.
    for i in 0..20 {
        let status = login_from(&mut b, "203.0.113.7", &email, "wrong password").await;
        let expected = if i < 5 { StatusCode::UNAUTHORIZED } else { StatusCode::TOO_MANY_REQUESTS };
        assert_eq!(status, expected, "attempt {i}");
    }
    assert_eq!(login_from(&mut b, "203.0.113.7", &email, PASSWORD).await, StatusCode::TOO_MANY_REQUESTS);
    // The owner, from their own address, signs in as ever.
    assert_eq!(login_from(&mut b, "198.51.100.1", &email, PASSWORD).await, StatusCode::OK);
    // IPv6 addresses count by /64: hopping inside one block does not help.
    for i in 1..=5 {
        let ip = format!("2001:db8:1:2::{i:x}");
        assert_eq!(login_from(&mut b, &ip, &email, "wrong password").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login_from(&mut b, "2001:db8:1:2:ffff::1", &email, "x").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login_from(&mut b, "2001:db8:1:3::1", &email, PASSWORD).await, StatusCode::OK, "another /64");
    // Far above that, the account-wide limit still holds against many addresses (12 here).
    for i in 0..2 {
        let ip = format!("192.0.2.{i}");
        assert_eq!(login_from(&mut b, &ip, &email, "wrong password").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login_from(&mut b, "192.0.2.200", &email, PASSWORD).await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn registration_is_throttled_and_repeats_leave_one_audit_event() {
    let s = TestServer::with(|c| {
        c.trust_proxy = true;
        c.throttle.register_max_per_email = 40;
    })
    .await;
    let victim = s.register("victim@example.com").await;
    let mut b = s.browser();
    let register = |email: &str| json!({"email": email, "password": PASSWORD});
    // One address: ten registrations an hour.
    for i in 0..10 {
        let res = post_from(&mut b, "203.0.113.9", "/auth/register", register(&format!("bulk{i}@example.com"))).await;
        assert_eq!(res.status, StatusCode::CREATED, "{i}");
    }
    let res = post_from(&mut b, "203.0.113.9", "/auth/register", register("bulk10@example.com")).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(res.header("retry-after").is_some());
    // Thirty attempts at the victim's address from thirty addresses: one audit event.
    for i in 0..30 {
        let res = post_from(&mut b, &format!("198.51.100.{i}"), "/auth/register", register(&victim)).await;
        assert_eq!(res.status, StatusCode::CREATED, "the same answer as for a free address");
    }
    let mut owner = s.browser();
    owner.login(&victim, PASSWORD).await;
    let events = owner.get_json("/auth/audit").await.json()["events"].clone();
    let events = events.as_array().expect("events");
    assert_eq!(events.iter().filter(|e| e["type"] == "register_existing").count(), 1, "{events:?}");
    assert!(events.iter().any(|e| e["type"] == "login"), "the owner's own sign-in stays in view");

    // One target address: a few attempts an hour, whoever sends them.
    let s = TestServer::with(|c| c.trust_proxy = true).await;
    let mut b = s.browser();
    for i in 0..3 {
        let res = post_from(&mut b, &format!("198.51.100.{i}"), "/auth/register", register("target@example.com")).await;
        assert_eq!(res.status, StatusCode::CREATED);
    }
    let res = post_from(&mut b, "198.51.100.99", "/auth/register", register("target@example.com")).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn weak_passwords_are_refused_with_a_clear_message() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    for weak in
        ["aaaaaaaa", "        ", "qwertyui", "Password1!", "password123", "iloveyou1", "Summer2024!", "1q2w3e4r5t"]
    {
        let res = b.post_json("/auth/register", &json!({"email": "weak@example.com", "password": weak})).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{weak:?}");
        assert_eq!(res.json()["error"], "weak_password");
        assert!(res.json()["message"].as_str().is_some_and(|m| m.starts_with("password ")), "{}", res.text);
    }
    let mut b = s.signed_in("strong@example.com").await;
    let res = b.post_json("/auth/password", &json!({"current_password": PASSWORD, "new_password": "Password1!"})).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "a password change applies the same policy");
}

#[tokio::test]
async fn password_hashing_is_bounded_and_never_starves_validation() {
    let s = TestServer::with(|c| {
        c.password_hash_concurrency = 2;
        c.password_hash_queue = Duration::from_millis(150);
    })
    .await;
    let email = s.register("storm@example.com").await;
    let mut watcher = s.browser();
    watcher.login(&email, PASSWORD).await;
    let http = reqwest::Client::new();
    let mut set = JoinSet::new();
    for _ in 0..64 {
        let (http, base, origin, email) = (http.clone(), s.base.clone(), s.origin.clone(), email.clone());
        set.spawn(async move {
            let res = http
                .post(format!("{base}/auth/login"))
                .header("origin", origin)
                .header("accept", "application/json")
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .expect("login");
            (res.status(), res.headers().get("retry-after").is_some())
        });
    }
    // Validation stays an in-memory look-up while the storm runs.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(watcher.session_status().await, StatusCode::OK);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answers = set.join_all().await;
    let busy = answers.iter().filter(|(st, _)| *st == StatusCode::SERVICE_UNAVAILABLE).count();
    let ok = answers.iter().filter(|(st, _)| *st == StatusCode::OK).count();
    assert_eq!(busy + ok, 64, "only 200 or 503: {answers:?}");
    assert!(busy > 0, "two hashing slots cannot serve 64 sign-ins within 150 ms");
    assert!(ok >= 2, "the slots were used");
    assert!(answers.iter().all(|(st, retry)| *st != StatusCode::SERVICE_UNAVAILABLE || *retry), "503 has Retry-After");
    assert!(slowest < Duration::from_millis(250), "validation waited {slowest:?} behind hashing");
}

#[tokio::test]
async fn sessions_per_user_are_capped_and_the_oldest_ends() {
    let s = TestServer::with(|c| c.sessions.max_sessions_per_user = 3).await;
    let email = s.register("cap@example.com").await;
    let mut browsers = Vec::new();
    for _ in 0..3 {
        let mut b = s.browser();
        b.login(&email, PASSWORD).await;
        s.clock.advance(time::Duration::seconds(1));
        browsers.push(b);
    }
    let mut newest = s.browser();
    newest.login(&email, PASSWORD).await;
    assert_eq!(browsers[0].session_status().await, StatusCode::UNAUTHORIZED, "the oldest session ended");
    for b in &mut browsers[1..] {
        assert_eq!(b.session_status().await, StatusCode::OK);
    }
    let list = newest.get_json("/auth/sessions").await.json()["sessions"].clone();
    assert_eq!(list.as_array().expect("list").len(), 3);
    let events = newest.get_json("/auth/audit").await.json()["events"].clone();
    assert!(events.as_array().expect("events").iter().any(|e| e["reason"] == "session_limit"), "{events}");
}

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
async fn a_client_hanging_up_while_its_password_is_hashed_is_counted_all_the_same() {
    let s = TestServer::start().await;
    let email = s.register("hangup@example.com").await;
    let http = reqwest::Client::new();
    for _ in 0..8 {
        let rb = http
            .post(format!("{}/auth/login", s.base))
            .header("origin", &s.origin)
            .json(&json!({"email": email, "password": "a wrong guess"}));
        // Gone before argon2 can answer.
        let _ = tokio::time::timeout(Duration::from_millis(5), rb.send()).await;
    }
    // The owner, retrying while the guesses are still hashed (503, busy: in flight, they
    // count as failures already).
    let mut b = s.browser();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let res = b.post_json("/auth/login", &json!({"email": email, "password": PASSWORD})).await;
        if res.status != StatusCode::SERVICE_UNAVAILABLE || Instant::now() > deadline {
            break res.status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "abandoned guesses still count");
    // And each one is in the owner's audit log, stored before it counted.
    s.clock.advance(time::Duration::minutes(16));
    b.login(&email, PASSWORD).await;
    let events = b.get_json("/auth/audit").await.json()["events"].clone();
    let failed = events.as_array().expect("events").iter().filter(|e| e["type"] == "login_failed").count();
    assert!(failed >= 5, "{failed} abandoned guesses audited: {events}");
}

#[tokio::test]
async fn remembered_devices_are_capped_per_user_too() {
    let s = TestServer::with(|c| c.sessions.max_sessions_per_user = 3).await;
    let email = s.register("many-devices@example.com").await;
    let mut cookies = Vec::new();
    for _ in 0..6 {
        let mut b = s.browser();
        b.post_json("/auth/login", &json!({"email": email, "password": PASSWORD, "remember_me": true})).await;
        cookies.push(b.jar.get("__Host-signoff_remember").cloned().expect("remember"));
        // Each session idles out; its series would live on for 30 days.
        s.clock.advance(time::Duration::minutes(31));
    }
    let series: i64 =
        sqlx::query_scalar("SELECT count(*) FROM remember_tokens").fetch_one(&s.db().await).await.expect("count");
    assert_eq!(series, 3, "only the three most recently used remembered devices are kept");
    let mut oldest = s.browser();
    oldest.jar.insert("__Host-signoff_remember".into(), cookies[0].clone());
    assert_eq!(oldest.session_status().await, StatusCode::UNAUTHORIZED, "the oldest device was dropped");
    let mut newest = s.browser();
    newest.jar.insert("__Host-signoff_remember".into(), cookies[5].clone());
    assert_eq!(newest.session_status().await, StatusCode::OK);
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

#[tokio::test]
async fn one_user_cannot_hold_every_event_stream() {
    let s = TestServer::with(|c| {
        c.streams.per_session = 3;
        c.streams.per_user = 4;
    })
    .await;
    let email = s.register("hog@example.com").await;
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..3 {
        let mut b = s.browser();
        b.login(&email, PASSWORD).await;
        for _ in 0..3 {
            let res = b.request(Method::GET, "/auth/events").send().await.expect("events");
            if res.status() == StatusCode::TOO_MANY_REQUESTS {
                refused += 1;
            } else {
                assert_eq!(res.status(), StatusCode::OK);
                open.push(res);
            }
        }
    }
    assert_eq!(open.len(), 4, "four streams for the user in all");
    assert_eq!(refused, 5);
    let other = s.signed_in("someone-else@example.com").await;
    let res = other.request(Method::GET, "/auth/events").send().await.expect("events");
    assert_eq!(res.status(), StatusCode::OK, "another user still gets one");
}

/// One client with many accounts cannot hold every event stream either (the second outside
/// review's finding 6: 16 accounts from one address held all 512): streams are capped per client
/// address (IPv6: its /64) too, and another client still gets one.
#[tokio::test]
async fn one_client_with_many_accounts_cannot_hold_every_event_stream() {
    let s = TestServer::with(|c| {
        c.trust_proxy = true;
        c.streams.per_address = 5;
        c.streams.total = 8;
    })
    .await;
    let mut open = Vec::new();
    let mut refused = 0;
    for i in 0..4 {
        let b = s.signed_in(&format!("hog{i}@example.com")).await;
        for _ in 0..2 {
            let rb = b.request(Method::GET, "/auth/events").header("x-forwarded-for", "2001:db8:7:7::1");
            let res = rb.send().await.expect("events");
            if res.status() == StatusCode::TOO_MANY_REQUESTS {
                refused += 1;
            } else {
                assert_eq!(res.status(), StatusCode::OK);
                open.push(res);
            }
        }
    }
    assert_eq!((open.len(), refused), (5, 3), "five streams from the address, whatever the accounts");
    // Another address of the same /64 is the same client; another client is not.
    let same = s.signed_in("same64@example.com").await;
    let rb = same.request(Method::GET, "/auth/events").header("x-forwarded-for", "2001:db8:7:7:ffff::2");
    assert_eq!(rb.send().await.expect("events").status(), StatusCode::TOO_MANY_REQUESTS);
    let other = s.signed_in("someone-else@example.com").await;
    let rb = other.request(Method::GET, "/auth/events").header("x-forwarded-for", "198.51.100.20");
    let res = rb.send().await.expect("events");
    assert_eq!(res.status(), StatusCode::OK, "another client still gets one");
    drop((open, res));
}

#[tokio::test]
async fn parallel_guesses_get_no_more_tries_than_the_limit() {
    let s = TestServer::start().await;
    let email = s.register("burst@example.com").await;
    let http = reqwest::Client::new();
    for round in 0..3 {
        let mut set = JoinSet::new();
        for i in 0..100 {
            let (http, base, origin, email) = (http.clone(), s.base.clone(), s.origin.clone(), email.clone());
            set.spawn(async move {
                let res = http
                    .post(format!("{base}/auth/login"))
                    .header("origin", origin)
                    .header("accept", "application/json")
                    .json(&json!({"email": email, "password": format!("guess {round} {i}")}))
                    .send()
                    .await
                    .expect("login");
                res.status()
            });
        }
        let statuses = set.join_all().await;
        let checked = statuses.iter().filter(|st| **st == StatusCode::UNAUTHORIZED).count();
        let refused = [StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE];
        assert!(statuses.iter().all(|st| *st == StatusCode::UNAUTHORIZED || refused.contains(st)), "{statuses:?}");
        assert!(checked <= 5, "round {round}: 100 parallel guesses had {checked} passwords checked");
        if round == 0 {
            assert_eq!(checked, 5, "the limit's five tries were used");
        }
        s.clock.advance(time::Duration::minutes(16));
    }
}
