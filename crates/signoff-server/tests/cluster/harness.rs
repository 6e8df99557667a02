//! Real processes for the multi-node test: a fresh PostgreSQL database on the server that
//! `SIGNOFF_TEST_POSTGRES_URL` names, a private `redis-server` on a free port (restartable),
//! and `signoff` nodes started from the built binary. Everything started here is killed here;
//! nothing else is touched.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ORIGIN: &str = "http://localhost:8080";
pub const ADMIN_KEY: &str = "cluster-test-admin-key-0123456789abcdef";
pub const PASSWORD: &str = "correct horse battery staple";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A free port below the ephemeral range, for a server that is stopped and started again: while
/// it is down, no outgoing connection (a client reconnecting to it, even) can take the port.
pub fn restartable_port() -> u16 {
    (0..1000)
        .map(|i| 20_000 + (std::process::id() as u16 % 6000) + i * 7 % 6000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below the ephemeral range")
}

pub fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("signoff-{what}-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub use signoff_testdb::TestDatabase as Database;

/// A private `redis-server` that keeps nothing on disk.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Self {
        let mut r = Self { port: restartable_port(), child: None };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian package redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command("PING").as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One inline command; the first line of the answer.
    pub fn command(&self, cmd: &str) -> Option<String> {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }

    /// Kills it and starts an empty one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Kills it; [`resume`](Self::resume) starts an empty one on the same port.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn resume(&mut self) {
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One `signoff serve` process.
pub struct Node {
    pub base: String,
    pub log: PathBuf,
    child: Child,
}

impl Node {
    pub fn start(database_url: &str, redis_url: Option<&str>, lease_ms: u64, dir: &std::path::Path, i: usize) -> Self {
        Self::start_with(database_url, redis_url, lease_ms, dir, i, &[])
    }

    /// Like [`start`](Self::start), with extra `SIGNOFF_*` settings that win over the defaults.
    pub fn start_with(
        database_url: &str,
        redis_url: Option<&str>,
        lease_ms: u64,
        dir: &std::path::Path,
        i: usize,
        extra: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let log = dir.join(format!("node{i}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_signoff"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SIGNOFF_LISTEN", format!("127.0.0.1:{port}"))
            .env("SIGNOFF_PUBLIC_URL", ORIGIN)
            .env("SIGNOFF_DATABASE_URL", database_url)
            .env("SIGNOFF_ADMIN_TOKEN", ADMIN_KEY)
            .env("SIGNOFF_NODE_LEASE_MILLIS", lease_ms.to_string())
            .env("SIGNOFF_REGISTER_MAX_PER_IP", "100000")
            .env("SIGNOFF_PASSWORD_HASH_CONCURRENCY", "2")
            .env("SIGNOFF_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        if let Some(url) = redis_url {
            cmd.env("SIGNOFF_REDIS_URL", url);
        }
        cmd.envs(extra.iter().copied());
        let child = cmd.spawn().expect("start signoff");
        Self { base: format!("http://127.0.0.1:{port}"), log, child }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.pid()]).status().expect("kill").success();
        assert!(ok, "kill {sig} failed");
    }

    pub fn tail_log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `signoff` CLI command on the database and returns its JSON output.
pub fn cli(database_url: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SIGNOFF_PUBLIC_URL", ORIGIN)
        .env("SIGNOFF_DATABASE_URL", database_url)
        .env("SIGNOFF_LOG_LEVEL", "warn")
        .output()
        .expect("run the signoff CLI");
    assert!(out.status.success(), "signoff {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// The `kid` in a JWT's header.
pub fn kid(jwt: &str) -> String {
    use base64::Engine as _;
    let header = jwt.split('.').next().expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).expect("base64url");
    let header: Value = serde_json::from_slice(&bytes).expect("header");
    header["kid"].as_str().unwrap_or_default().to_owned()
}

/// Waits until every node answers `/readyz` with 200.
pub async fn wait_ready(http: &reqwest::Client, nodes: &[Node]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in nodes {
        loop {
            let ok = http.get(format!("{}/readyz", n.base)).send().await.is_ok_and(|r| r.status() == StatusCode::OK);
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "node {} not ready:\n{}", n.base, n.tail_log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A response's status, JSON body and the cookies it set (name → value; empty = deleted).
pub struct Res {
    pub status: StatusCode,
    pub json: Value,
    pub cookies: Vec<(String, String)>,
}

impl Res {
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Res {
    let res = req.header("Origin", ORIGIN).header("Accept", "application/json").send().await.expect("request");
    let status = res.status();
    let cookies = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let json = res.json().await.unwrap_or(Value::Null);
    Res { status, json, cookies }
}

pub const SESSION: &str = "__Host-signoff_session";
pub const REMEMBER: &str = "__Host-signoff_remember";

/// Every credential one user holds.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user_id: String,
    pub email: String,
    pub cookie: String,
    pub csrf: String,
    pub remember: String,
    pub access: String,
    pub refresh: String,
    /// The session the tokens belong to.
    pub token_session: String,
}

pub async fn sign_up(http: &reqwest::Client, node: &Node, email: &str) -> Credentials {
    let r =
        send(http.post(format!("{}/auth/register", node.base)).json(&json!({"email": email, "password": PASSWORD})))
            .await;
    assert_eq!(r.status, StatusCode::CREATED, "register: {}", r.json);
    let user_id = r.json["user"]["id"].as_str().expect("id").to_owned();
    let login = send(
        http.post(format!("{}/auth/login", node.base))
            .json(&json!({"email": email, "password": PASSWORD, "remember_me": true})),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "login: {}", login.json);
    let tokens = send(
        http.post(format!("{}/auth/token", node.base))
            .json(&json!({"grant_type": "password", "email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(tokens.status, StatusCode::OK, "token: {}", tokens.json);
    let access = tokens.json["access_token"].as_str().expect("access").to_owned();
    Credentials {
        user_id,
        email: email.to_owned(),
        cookie: login.cookie(SESSION).expect("session cookie").to_owned(),
        csrf: login.json["csrf_token"].as_str().expect("csrf").to_owned(),
        remember: login.cookie(REMEMBER).expect("remember cookie").to_owned(),
        token_session: claim(&access, "sid"),
        access,
        refresh: tokens.json["refresh_token"].as_str().expect("refresh").to_owned(),
    }
}

/// One claim of a JWT (not verified: the server does that).
pub fn claim(jwt: &str, name: &str) -> String {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    claims[name].as_str().unwrap_or_default().to_owned()
}

/// The test's HTTP client. Idle connections are dropped well before a node's keep-alive
/// timeout closes them, so no request is sent on a connection the node is closing.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .expect("client")
}
