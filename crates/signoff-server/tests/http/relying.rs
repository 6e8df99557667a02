//! Relying services: registered clients (admin API, SSRF guard, hashed secrets) and the
//! revocation feed they follow (poll, long-poll, server-sent events with resume).

use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub(crate) const ADMIN: &str = "0123456789abcdef0123456789abcdef0123456789a";

/// A server with an admin key (and private callback addresses allowed or not).
pub(crate) async fn server(allow_private: bool) -> TestServer {
    TestServer::with(|c| {
        c.admin_token = Some(signoff_server::config::AdminKey(ADMIN.into()));
        c.allow_private_callbacks = allow_private;
    })
    .await
}

/// A call to the admin API with the key [`server`] set.
pub(crate) async fn admin(s: &TestServer, method: Method, path: &str, body: Option<Value>) -> Res {
    let mut b = s.browser();
    let mut rb = b.bare(method, path).header("authorization", format!("Bearer {ADMIN}"));
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    b.send(rb).await
}

struct Client {
    id: String,
    secret: String,
}

impl Client {
    fn basic(&self) -> String {
        format!("Basic {}", STANDARD.encode(format!("{}:{}", self.id, self.secret)))
    }
}

async fn register_client(s: &TestServer, name: &str) -> Client {
    let res = admin(s, Method::POST, "/admin/clients", Some(json!({"name": name}))).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let body = res.json();
    Client {
        id: body["client_id"].as_str().expect("id").to_owned(),
        secret: body["client_secret"].as_str().expect("secret").to_owned(),
    }
}

/// `GET /revocations` as `client` with this query.
async fn poll(s: &TestServer, client: &Client, query: &str) -> Res {
    let mut b = s.browser();
    let rb = b.bare(Method::GET, &format!("/revocations{query}")).header("authorization", client.basic());
    b.send(rb).await
}

async fn feed(s: &TestServer, client: &Client, query: &str) -> Value {
    let res = poll(s, client, query).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    res.json()
}

struct Tokens {
    access: String,
    jti: String,
    sid: String,
    sub: String,
}

async fn grant(s: &TestServer, email: &str) -> Tokens {
    let mut b = s.browser();
    let res =
        b.post_json("/auth/token", &json!({"grant_type": "password", "email": email, "password": PASSWORD})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let access = res.json()["access_token"].as_str().expect("access").to_owned();
    let payload = access.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    Tokens {
        jti: claims["jti"].as_str().expect("jti").to_owned(),
        sid: claims["sid"].as_str().expect("sid").to_owned(),
        sub: claims["sub"].as_str().expect("sub").to_owned(),
        access,
    }
}

async fn revoke_access(s: &TestServer, token: &str) {
    let res = s.browser().post_json("/auth/revoke", &json!({"token": token, "token_type_hint": "access_token"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
}

async fn bearer_logout(s: &TestServer, access: &str) {
    let mut b = s.browser();
    let rb = b
        .bare(Method::POST, "/auth/logout")
        .header("authorization", format!("Bearer {access}"))
        .header("accept", "application/json")
        .json(&json!({}));
    let res = b.send(rb).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
}

#[tokio::test]
async fn clients_are_registered_listed_and_deleted_with_their_secrets_shown_once_and_stored_hashed() {
    let s = server(true).await;
    let res = admin(
        &s,
        Method::POST,
        "/admin/clients",
        Some(json!({"name": "shop", "backchannel_logout_uri": "http://127.0.0.1:9/bc", "webhook_url": "http://127.0.0.1:9/h"})),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let body = res.json();
    let id = body["client_id"].as_str().expect("id");
    let secret = body["client_secret"].as_str().expect("secret");
    assert_eq!(URL_SAFE_NO_PAD.decode(secret).expect("base64url").len(), 32, "256 random bits");
    let whsec = body["webhook_secret"].as_str().expect("a webhook URL comes with a webhook secret");
    assert_eq!(STANDARD.decode(whsec.strip_prefix("whsec_").expect("whsec_")).expect("base64").len(), 32);
    let plain = admin(&s, Method::POST, "/admin/clients", Some(json!({"name": "api"}))).await;
    assert_eq!(plain.status, StatusCode::CREATED);
    assert!(plain.json().get("webhook_secret").is_none(), "no webhook, no webhook secret");

    let list = admin(&s, Method::GET, "/admin/clients", None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.text.contains(secret) && !list.text.contains(whsec), "no secret is ever listed");
    let clients = list.json()["clients"].as_array().expect("clients").clone();
    assert_eq!(clients.len(), 2);
    let shop = clients.iter().find(|c| c["client_id"] == id).expect("listed");
    assert_eq!(shop["name"], "shop");
    assert_eq!(shop["backchannel_logout_uri"], "http://127.0.0.1:9/bc");
    assert_eq!(shop["webhook_url"], "http://127.0.0.1:9/h");
    assert!(shop["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let api = clients.iter().find(|c| c["client_id"] != id).expect("the other");
    assert_eq!((&api["name"], &api["webhook_url"]), (&json!("api"), &Value::Null));

    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM clients WHERE id = $1")
        .bind(id)
        .fetch_one(&s.db().await)
        .await
        .expect("row");
    assert_eq!(stored.len(), 32, "a hash");
    assert_ne!(stored, URL_SAFE_NO_PAD.decode(secret).expect("raw"), "not the secret itself");

    assert_eq!(admin(&s, Method::DELETE, &format!("/admin/clients/{id}"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(admin(&s, Method::DELETE, &format!("/admin/clients/{id}"), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(admin(&s, Method::DELETE, "/admin/clients/nope", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        admin(&s, Method::GET, "/admin/clients", None).await.json()["clients"].as_array().map(Vec::len),
        Some(1)
    );

    // The admin key guards all of it.
    let mut b = s.browser();
    let res = b.send(b.bare(Method::GET, "/admin/clients").header("authorization", "Bearer wrong")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = b.post_json("/admin/clients", &json!({"name": "x"})).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn callback_urls_must_be_http_and_public_and_names_are_required() {
    let s = server(false).await;
    for (field, url) in [
        ("webhook_url", "http://127.0.0.1:8080/hook"),
        ("webhook_url", "http://localhost/hook"),
        ("backchannel_logout_uri", "http://169.254.169.254/latest"),
        ("backchannel_logout_uri", "http://10.0.0.7/logout"),
        ("webhook_url", "http://[::1]/h"),
        ("webhook_url", "http://[::ffff:192.168.0.1]/h"),
        ("webhook_url", "http://2130706433/h"),
        ("webhook_url", "ftp://8.8.8.8/h"),
        ("webhook_url", "file:///etc/passwd"),
        ("webhook_url", "https://user:pass@8.8.8.8/h"),
        ("webhook_url", "not a url"),
    ] {
        let res = admin(&s, Method::POST, "/admin/clients", Some(json!({"name": "n", field: url}))).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}={url}: {}", res.text);
        assert_eq!(res.json()["error"], "invalid_callback");
    }
    let ok =
        admin(&s, Method::POST, "/admin/clients", Some(json!({"name": "n", "webhook_url": "https://8.8.8.8/h"}))).await;
    assert_eq!(ok.status, StatusCode::CREATED, "a public address is fine: {}", ok.text);
    for body in [json!({}), json!({"name": "  "}), json!({"name": "x".repeat(201)}), json!({"name": 5})] {
        let res = admin(&s, Method::POST, "/admin/clients", Some(body.clone())).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}: {}", res.text);
    }
    let listed = admin(&s, Method::GET, "/admin/clients", None).await.json();
    assert_eq!(listed["clients"].as_array().map(Vec::len), Some(1), "nothing refused was stored");
}

#[tokio::test]
async fn the_feed_gives_the_state_then_what_came_after_in_commit_order() {
    let s = server(false).await;
    let client = register_client(&s, "api").await;
    s.register("feed@example.com").await;
    let first = grant(&s, "feed@example.com").await;
    let second = grant(&s, "feed@example.com").await;

    let start = feed(&s, &client, "").await;
    assert_eq!(start["reset"], true, "no position: the whole state");
    let head = start["head"].as_i64().expect("head");

    revoke_access(&s, &first.access).await;
    bearer_logout(&s, &second.access).await;
    let page = feed(&s, &client, &format!("?after={head}")).await;
    assert_eq!(page["reset"], false);
    let events = page["events"].as_array().expect("events");
    let token = events.iter().find(|e| e["type"] == "token" && e["jti"] == first.jti.as_str()).expect("token event");
    assert!(token["exp"].as_i64().is_some_and(|exp| exp > 1_700_000_000), "{token}");
    let session = events.iter().find(|e| e["type"] == "session" && e["sid"] == second.sid.as_str()).expect("session");
    assert!(session["at"].as_i64().is_some());
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().expect("seq")).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > head, "oldest first, after the position: {seqs:?}");
    let new_head = page["head"].as_i64().expect("head");
    assert_eq!(new_head, *seqs.last().expect("some"));

    // Nothing new: nothing, at once.
    let idle = feed(&s, &client, &format!("?after={new_head}")).await;
    assert_eq!(idle, json!({"events": [], "head": new_head, "reset": false}));
    // The whole state has all of it; so does a position from before what is kept, or from
    // another database (ahead of the head).
    for query in ["".to_owned(), format!("?after={}", new_head + 1000)] {
        let all = feed(&s, &client, &query).await;
        assert_eq!(all["reset"], true, "{query}");
        assert!(all["events"].as_array().expect("events").iter().any(|e| e["jti"] == first.jti.as_str()));
    }

    // A token-version bump (admin revoke) names the user and the new version.
    let third = grant(&s, "feed@example.com").await;
    let res =
        admin(&s, Method::POST, &format!("/admin/users/{}/revoke", third.sub), Some(json!({"reason": "x"}))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let page = feed(&s, &client, &format!("?after={new_head}")).await;
    let events = page["events"].as_array().expect("events");
    let user = events.iter().find(|e| e["type"] == "user").expect("user event");
    assert_eq!(user["sub"], third.sub.as_str());
    assert!(user["tv"].as_i64().is_some_and(|tv| tv >= 1));
    assert!(events.iter().any(|e| e["type"] == "session" && e["sid"] == third.sid.as_str()));

    // So does "log out everywhere" (the bump made with the end of the sessions), after them.
    let head = page["head"].as_i64().expect("head");
    let fourth = grant(&s, "feed@example.com").await;
    let mut b = s.browser();
    let rb = b
        .bare(Method::POST, "/auth/logout")
        .header("authorization", format!("Bearer {}", fourth.access))
        .header("accept", "application/json")
        .json(&json!({"scope": "global"}));
    let res = b.send(rb).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let page = feed(&s, &client, &format!("?after={head}")).await;
    let events = page["events"].as_array().expect("events");
    let at = |kind: &str, key: &str, value: &str| events.iter().position(|e| e["type"] == kind && e[key] == value);
    let user = at("user", "sub", &fourth.sub).expect("a user event for the global logout");
    let session = at("session", "sid", &fourth.sid).expect("the session's event");
    assert!(session < user, "the sessions come first: {events:?}");
    let stored = crate::everywhere::token_version(&s, "feed@example.com").await;
    assert_eq!(events[user]["tv"].as_i64(), Some(stored), "the version the logout stored");
    assert!(stored >= 2, "bumped by the revocation and by the logout: {stored}");

    // Bad input is a clear 400.
    for query in ["?after=-1", "?after=x", "?wait=abc", "?after=99999999999999999999"] {
        assert_eq!(poll(&s, &client, query).await.status, StatusCode::BAD_REQUEST, "{query}");
    }
}

#[tokio::test]
async fn a_long_poll_answers_within_milliseconds_of_a_revocation() {
    let s = server(false).await;
    let client = register_client(&s, "api").await;
    s.register("lp@example.com").await;
    for round in 0..5 {
        let t = grant(&s, "lp@example.com").await;
        let head = feed(&s, &client, "").await["head"].as_i64().expect("head");
        let waiting = {
            let (base, auth) = (s.base.clone(), client.basic());
            tokio::spawn(async move {
                let res = reqwest::Client::new()
                    .get(format!("{base}/revocations?after={head}&wait=20"))
                    .header("authorization", auth)
                    .send()
                    .await
                    .expect("poll");
                (res.json::<Value>().await.expect("json"), Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "round {round}: nothing happened yet, so it waits");
        revoke_access(&s, &t.access).await;
        let answered = Instant::now();
        let (page, at) = waiting.await.expect("join");
        let lag = at.saturating_duration_since(answered);
        assert!(lag < Duration::from_millis(250), "round {round}: answered {lag:?} after the revoke response");
        assert!(page["events"].as_array().expect("events").iter().any(|e| e["jti"] == t.jti.as_str()), "{page}");
    }
    // With nothing happening it answers when the wait is up, empty.
    let head = feed(&s, &client, "").await["head"].as_i64().expect("head");
    let started = Instant::now();
    let page = feed(&s, &client, &format!("?after={head}&wait=1")).await;
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
    assert_eq!(page["events"], json!([]));
}

#[tokio::test]
async fn wrong_or_deleted_client_credentials_are_refused_at_once() {
    let s = server(false).await;
    let client = register_client(&s, "api").await;
    assert_eq!(poll(&s, &client, "").await.status, StatusCode::OK);
    let wrong = [
        Client { id: client.id.clone(), secret: "A".repeat(43) },
        Client { id: client.id.clone(), secret: String::new() },
        Client { id: "unknown".into(), secret: client.secret.clone() },
        Client { id: String::new(), secret: String::new() },
    ];
    for c in &wrong {
        let res = poll(&s, c, "").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text);
        assert_eq!(res.json()["error"], "invalid_client");
        assert_eq!(res.header("www-authenticate"), Some("Basic realm=\"signoff\""));
    }
    let mut b = s.browser();
    for auth in [None, Some("Bearer x"), Some("Basic !!!"), Some("Basic")] {
        let mut rb = b.bare(Method::GET, "/revocations");
        if let Some(auth) = auth {
            rb = rb.header("authorization", auth);
        }
        assert_eq!(b.send(rb).await.status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }

    // An open stream and a waiting long-poll end when the client is deleted.
    let (mut stream, waiting) = stream_and_long_poll(&s, &client).await;
    assert_eq!(
        admin(&s, Method::DELETE, &format!("/admin/clients/{}", client.id), None).await.status,
        StatusCode::NO_CONTENT
    );
    let deleted = Instant::now();
    assert_eq!(waiting.await.expect("join"), StatusCode::UNAUTHORIZED);
    assert!(stream.ended_within(Duration::from_secs(1)).await, "the stream ends at once");
    assert!(deleted.elapsed() < Duration::from_secs(1));
    assert_eq!(poll(&s, &client, "").await.status, StatusCode::UNAUTHORIZED);
    let mut b = s.browser();
    let res = b.send(b.bare(Method::GET, "/revocations/stream").header("authorization", client.basic())).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

/// An open stream, current, and a long poll (20 s) waiting at the head, both as `client`; the
/// poll's status once it ends.
async fn stream_and_long_poll(s: &TestServer, client: &Client) -> (Stream, tokio::task::JoinHandle<StatusCode>) {
    let mut stream = open_stream(s, client, None).await;
    stream.until(|f| f.comment == "current").await;
    let head = feed(s, client, "").await["head"].as_i64().expect("head");
    let waiting = {
        let (base, auth) = (s.base.clone(), client.basic());
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(format!("{base}/revocations?after={head}&wait=20"))
                .header("authorization", auth)
                .send()
                .await
                .expect("poll")
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    (stream, waiting)
}

/// One frame of a server-sent event stream: an event or a comment.
#[derive(Debug, Default, Clone)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub comment: String,
}

pub struct Stream {
    res: reqwest::Response,
    buf: String,
    frames: std::collections::VecDeque<Frame>,
    done: bool,
}

async fn open_stream(s: &TestServer, client: &Client, last: Option<i64>) -> Stream {
    let mut rb =
        reqwest::Client::new().get(format!("{}/revocations/stream", s.base)).header("authorization", client.basic());
    if let Some(last) = last {
        rb = rb.header("last-event-id", last.to_string());
    }
    let res = rb.send().await.expect("stream");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().expect("ct").starts_with("text/event-stream"));
    Stream { res, buf: String::new(), frames: Default::default(), done: false }
}

impl Stream {
    /// The next frame, or `None` once the stream has ended.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Some(f);
            }
            if self.done {
                return None;
            }
            match self.res.chunk().await {
                Ok(Some(bytes)) => {
                    self.buf.push_str(&String::from_utf8_lossy(&bytes));
                    while let Some(end) = self.buf.find("\n\n") {
                        let block: String = self.buf.drain(..end + 2).collect();
                        let mut f = Frame::default();
                        for line in block.lines() {
                            if let Some(c) = line.strip_prefix(':') {
                                f.comment = c.trim().to_owned();
                            } else if let Some((k, v)) = line.split_once(':') {
                                let v = v.strip_prefix(' ').unwrap_or(v).to_owned();
                                match k {
                                    "id" => f.id = Some(v),
                                    "event" => f.event = Some(v),
                                    "data" => f.data.push_str(&v),
                                    _ => {}
                                }
                            }
                        }
                        self.frames.push_back(f);
                    }
                }
                _ => self.done = true,
            }
        }
    }

    /// Frames up to and including the first that `stop` accepts (within 10 s).
    async fn until(&mut self, stop: impl Fn(&Frame) -> bool) -> Vec<Frame> {
        let mut seen = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(f) = self.next().await {
                let last = stop(&f);
                seen.push(f);
                if last {
                    return;
                }
            }
            panic!("the stream ended before the expected frame: {seen:?}");
        })
        .await
        .expect("frame in time");
        seen
    }

    async fn ended_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async { while self.next().await.is_some() {} }).await.is_ok()
    }
}

fn revocations(frames: &[Frame]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f.event.as_deref() == Some("revocation"))
        .map(|f| {
            let v: Value = serde_json::from_str(&f.data).expect("json");
            assert_eq!(f.id.as_deref(), Some(v["seq"].to_string().as_str()), "id is the seq");
            v
        })
        .collect()
}

#[tokio::test]
async fn the_stream_sends_the_state_then_each_revocation_resumes_by_last_event_id_and_beats() {
    let s = server(false).await;
    let client = register_client(&s, "api").await;
    s.register("sse@example.com").await;
    let early = grant(&s, "sse@example.com").await;
    revoke_access(&s, &early.access).await;

    let mut stream = open_stream(&s, &client, None).await;
    let state = stream.until(|f| f.comment == "current").await;
    assert!(state[0].comment.starts_with("reset "), "the state replaces what the client held: {state:?}");
    let known = revocations(&state);
    assert!(known.iter().any(|e| e["jti"] == early.jti.as_str()), "{known:?}");

    let mut last = 0;
    for _ in 0..3 {
        let t = grant(&s, "sse@example.com").await;
        revoke_access(&s, &t.access).await;
        let answered = Instant::now();
        let frames = stream.until(|f| f.event.as_deref() == Some("revocation") && f.data.contains(&t.jti)).await;
        assert!(answered.elapsed() < Duration::from_millis(250), "{:?}", answered.elapsed());
        last = revocations(&frames).last().expect("event")["seq"].as_i64().expect("seq");
    }
    // Heartbeats: a comment about every second while nothing happens, so a verifier's
    // staleness budget can be a few seconds (the second outside review's finding 7).
    for _ in 0..3 {
        let quiet = Instant::now();
        let beat = stream.until(|f| !f.comment.is_empty()).await;
        assert!(quiet.elapsed() < Duration::from_millis(1_300), "{beat:?} after {:?}", quiet.elapsed());
    }
    drop(stream);

    // Resuming after the second-to-last gives only the last.
    let gone = grant(&s, "sse@example.com").await;
    bearer_logout(&s, &gone.access).await;
    let mut resumed = open_stream(&s, &client, Some(last)).await;
    let frames = resumed.until(|f| f.comment == "current").await;
    assert!(frames.iter().all(|f| !f.comment.starts_with("reset")), "a resume is no reset: {frames:?}");
    let events = revocations(&frames);
    assert!(events.iter().all(|e| e["seq"].as_i64().expect("seq") > last), "{events:?}");
    assert!(events.iter().any(|e| e["type"] == "session" && e["sid"] == gone.sid.as_str()), "{events:?}");
    assert!(events.iter().any(|e| e["type"] == "token" && e["jti"] == gone.jti.as_str()), "{events:?}");
    // A position the server does not know (another database) starts over.
    let mut odd = open_stream(&s, &client, Some(last + 10_000)).await;
    let frames = odd.until(|f| f.comment == "current").await;
    assert!(frames[0].comment.starts_with("reset "), "{frames:?}");
}

/// A stream read with plain non-blocking reads of its socket: `arrived` is what the server has
/// sent so far, and nothing a client library could still be waiting for.
struct RawStream {
    sock: std::net::TcpStream,
    got: String,
}

impl RawStream {
    async fn open(s: &TestServer, client: &Client) -> Self {
        use std::io::Write;
        let addr = s.base.trim_start_matches("http://");
        let mut sock = std::net::TcpStream::connect(addr).expect("connect");
        let request = format!(
            "GET /revocations/stream HTTP/1.1\r\nhost: {addr}\r\nauthorization: {}\r\naccept: text/event-stream\r\n\r\n",
            client.basic()
        );
        sock.write_all(request.as_bytes()).expect("request");
        sock.set_nonblocking(true).expect("non-blocking");
        let mut stream = Self { sock, got: String::new() };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !stream.arrived().contains(": current") {
            assert!(Instant::now() < deadline, "no `: current` within 5 s: {}", stream.got);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(stream.got.starts_with("HTTP/1.1 200"), "{}", stream.got);
        stream
    }

    fn arrived(&mut self) -> &str {
        use std::io::Read;
        let mut buf = [0u8; 65536];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.got.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("reading the stream: {e}"),
            }
        }
        &self.got
    }
}

// Two workers: the streams' connections and the revoker's run on threads of their own, as in a
// deployed server, so nothing orders their writes but the server itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_answered_once_the_open_streams_have_sent_it() {
    let s = server(false).await;
    let client = register_client(&s, "api").await;
    s.register("sent@example.com").await;
    // As many streams as a client may open: each is one more write the answer waits for.
    let mut streams = Vec::new();
    for _ in 0..16 {
        streams.push(RawStream::open(&s, &client).await);
    }
    // Several nodes (PostgreSQL): a node acknowledges a revocation, which its revoker waits for,
    // once its own streams have sent it.
    let sibling = if on_postgres() { Some(s.sibling().await) } else { None };
    if let Some(b) = &sibling {
        let other = register_client(&s, "api-b").await;
        for _ in 0..16 {
            streams.push(RawStream::open(b, &other).await);
        }
    }
    for round in 0..20 {
        let t = grant(&s, "sent@example.com").await;
        if round % 2 == 0 {
            revoke_access(&s, &t.access).await;
        } else {
            bearer_logout(&s, &t.access).await;
        }
        for (i, stream) in streams.iter_mut().enumerate() {
            let id = if round % 2 == 0 { &t.jti } else { &t.sid };
            assert!(
                stream.arrived().contains(id.as_str()),
                "round {round}: stream {i} had not been sent the revocation when it was answered"
            );
        }
    }
}

#[tokio::test]
async fn any_node_serves_any_client_and_a_stream_resumes_on_another_node_by_position() {
    let a = server(false).await;
    let b = a.sibling().await;
    let client = register_client(&a, "api").await;
    a.register("nodes@example.com").await;

    // The client's stream on node B hears of a revocation answered by node A.
    let mut on_b = open_stream(&b, &client, None).await;
    on_b.until(|f| f.comment == "current").await;
    let t = grant(&a, "nodes@example.com").await;
    revoke_access(&a, &t.access).await;
    let frames = on_b.until(|f| f.event.as_deref() == Some("revocation") && f.data.contains(&t.jti)).await;
    let seen = revocations(&frames).last().expect("event")["seq"].as_i64().expect("seq");
    drop(on_b);

    // More happens (on B); the client resumes on node A from the position B gave it.
    let u = grant(&b, "nodes@example.com").await;
    revoke_access(&b, &u.access).await;
    let mut on_a = open_stream(&a, &client, Some(seen)).await;
    // (On SQLite, node A reads what B wrote within its poll.)
    let frames = on_a.until(|f| f.event.as_deref() == Some("revocation") && f.data.contains(&u.jti)).await;
    assert!(frames.iter().all(|f| !f.comment.starts_with("reset")), "a position of another node is no reset");
    let events = revocations(&frames);
    assert!(events.iter().any(|e| e["jti"] == u.jti.as_str()), "{events:?}");
    assert!(events.iter().all(|e| e["seq"].as_i64().expect("seq") > seen), "{events:?}");

    // Polling: a position one node gave is good on the other, and a client just deleted on one
    // is refused by the other at once.
    let head_a = feed(&a, &client, "").await["head"].as_i64().expect("head");
    let page = feed(&b, &client, &format!("?after={head_a}")).await;
    assert_eq!(page["reset"], false, "{page}");
    let mut on_b = open_stream(&b, &client, Some(head_a)).await;
    on_b.until(|f| f.comment == "current").await;
    assert_eq!(
        admin(&a, Method::DELETE, &format!("/admin/clients/{}", client.id), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(poll(&b, &client, "").await.status, StatusCode::UNAUTHORIZED);
    // On PostgreSQL the delete is answered once every node has applied it; on SQLite within a poll.
    assert!(on_b.ended_within(Duration::from_secs(2)).await, "node B ends the deleted client's stream");
    drop(on_a);
}

#[tokio::test]
async fn a_rotated_secret_keeps_nothing_open_and_the_new_one_reads_on() {
    let s = server(false).await;
    let client = register_client(&s, "rotating reader").await;
    let (mut stream, waiting) = stream_and_long_poll(&s, &client).await;
    let res = admin(&s, Method::POST, &format!("/admin/clients/{}/secret", client.id), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let rotated = Instant::now();
    let renewed = Client { id: client.id.clone(), secret: res.json()["client_secret"].as_str().expect("s").to_owned() };
    assert_eq!(waiting.await.expect("join"), StatusCode::UNAUTHORIZED, "the old secret's long poll ends");
    assert!(stream.ended_within(Duration::from_secs(1)).await, "and its stream");
    assert!(rotated.elapsed() < Duration::from_secs(1));
    assert_eq!(poll(&s, &client, "").await.status, StatusCode::UNAUTHORIZED);
    // The new secret reads the feed, and a later rotation of another client leaves it open.
    let mut fresh = open_stream(&s, &renewed, None).await;
    fresh.until(|f| f.comment == "current").await;
    let other = register_client(&s, "another").await;
    let res = admin(&s, Method::POST, &format!("/admin/clients/{}/secret", other.id), None).await;
    assert_eq!(res.status, StatusCode::OK);
    fresh.until(|f| f.event.as_deref() == Some("revocation")).await;
    assert!(!fresh.ended_within(Duration::from_millis(300)).await, "another client's rotation ends nothing here");
}
