//! A real server on a loopback port over a real store, and a small browser-like client that
//! keeps cookies the way the tests need to see them.
//!
//! The store is a fresh SQLite file, or, with `SIGNOFF_TEST_BACKEND=postgres`, a fresh database
//! on the PostgreSQL server `SIGNOFF_TEST_POSTGRES_URL` names (created per test, dropped after),
//! opened through `backend.rs` like a deployment does: several nodes, leases and all.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signoff_core::ManualClock;
use signoff_server::{AppState, Config};
use signoff_testdb::TestDatabase;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple";

/// Secrets hygiene (issue 14, point 5). With `SIGNOFF_TEST_SECRET_SCAN=DIR` the suite logs at
/// `trace` level into `DIR`, writes down every secret it handles (passwords sent, cookies and
/// tokens received, mailed-link tokens, admin keys, database and SMTP passwords, client and
/// webhook secrets), and leaves beside them what a server must never leak secrets into: error
/// bodies, each server's metrics and database (the SQLite file, or a `pg_dump` of the
/// PostgreSQL database, audit and outbox included). `scripts/secret-scan DIR` then looks for
/// every secret in everything else: there must be no hit.
pub mod scan {
    use std::collections::HashSet;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, OnceLock};

    pub fn dir() -> Option<&'static Path> {
        static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
        DIR.get_or_init(|| {
            let dir = PathBuf::from(std::env::var_os("SIGNOFF_TEST_SECRET_SCAN")?);
            std::fs::create_dir_all(dir.join("artifacts")).expect("scan dir");
            Some(dir)
        })
        .as_deref()
    }

    /// Notes a secret the suite handled (each once).
    pub fn secret(value: &str) {
        note("secrets", value);
    }

    /// Notes a secret the store keeps by design (a webhook secret, to sign with): searched for
    /// everywhere but in the database's rows.
    pub fn stored(value: &str) {
        note("secrets", value);
        note("stored", value);
    }

    fn note(file: &str, value: &str) {
        static SEEN: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);
        if dir().is_none() || value.trim().is_empty() {
            return;
        }
        let mut seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.get_or_insert_with(HashSet::new).insert((file.to_owned(), value.to_owned())) {
            append(&format!("{file}-{}.txt", std::process::id()), &value.replace('\n', " "));
        }
    }

    /// Appends a line to a file of the scan folder.
    pub fn append(name: &str, line: &str) {
        static LOCK: Mutex<()> = Mutex::new(());
        let Some(dir) = dir() else { return };
        let _held = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(name)).expect("scan file");
        writeln!(f, "{line}").expect("write to the scan folder");
    }

    /// Keeps something a server produced, to be searched for secrets.
    pub fn artifact(name: &str, bytes: &[u8]) {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        artifact_named(&format!("{}-{n}-{name}", std::process::id()), bytes);
    }

    /// Like [`artifact`], under exactly this name (a database file and its `-wal` beside it).
    pub fn artifact_named(name: &str, bytes: &[u8]) {
        let Some(dir) = dir() else { return };
        std::fs::write(dir.join("artifacts").join(name), bytes).expect("write an artifact");
    }

    /// Notes the secrets of a configuration.
    pub fn config(config: &signoff_server::Config) {
        if let Some(key) = &config.admin_token {
            secret(key.expose());
        }
        for url in std::iter::once(config.database_url.expose()).chain(config.smtp_url.as_ref().map(|u| u.expose())) {
            if let Some(pw) = url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_owned)) {
                secret(&pw);
            }
        }
    }

    /// Notes the secrets in a JSON response or request body.
    pub fn json(body: &serde_json::Value) {
        const FIELDS: [&str; 9] = [
            "access_token",
            "refresh_token",
            "client_secret",
            "csrf_token",
            "token",
            "password",
            "current_password",
            "new_password",
            "logout_token",
        ];
        match body {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        serde_json::Value::String(s) if k == "webhook_secret" => stored(s),
                        serde_json::Value::String(s) if FIELDS.contains(&k.as_str()) => secret(s),
                        _ => json(v),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(json),
            _ => {}
        }
    }
}

pub struct TestServer {
    pub base: String,
    pub origin: String,
    pub clock: ManualClock,
    pub db_url: String,
    /// The development inbox this server (and its siblings) writes mail to.
    pub mail_dir: PathBuf,
    dir: PathBuf,
    /// The PostgreSQL database this server (and its siblings) runs on, dropped with the last.
    database: Option<Arc<TestDatabase>>,
    shutdown: Option<oneshot::Sender<()>>,
    state: AppState,
}

/// Whether the suite runs on PostgreSQL (`SIGNOFF_TEST_BACKEND=postgres`) rather than SQLite.
pub fn on_postgres() -> bool {
    match std::env::var("SIGNOFF_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("SIGNOFF_TEST_BACKEND must be sqlite or postgres, not {other}"),
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    /// Starts a server whose configuration `adjust` may change (the public URL and database
    /// are set first).
    pub async fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::on(on_postgres(), adjust).await
    }

    /// A server on a SQLite file whatever the suite's backend (for what only SQLite has).
    pub async fn on_sqlite() -> Self {
        Self::on(false, |_| {}).await
    }

    /// A server on a PostgreSQL database of its own whatever the suite's backend (for what
    /// only PostgreSQL has).
    pub async fn on_postgres() -> Self {
        Self::on(true, |_| {}).await
    }

    /// [`Self::on_postgres`] with a configuration `adjust` may change.
    pub async fn on_postgres_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::on(true, adjust).await
    }

    /// The state this server answers with.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The PostgreSQL database this server runs on, if it runs on one.
    pub fn database(&self) -> Option<&TestDatabase> {
        self.database.as_deref()
    }

    async fn on(postgres: bool, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = std::env::temp_dir().join(format!("signoff-test-{}", signoff_core::secret::random_id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (db_url, database) = if postgres {
            let db = Arc::new(TestDatabase::create("signoff_http").await);
            (db.url.clone(), Some(db))
        } else {
            (format!("sqlite://{}", dir.join("signoff.db").display()), None)
        };
        let mail_dir = dir.join("mail");
        let mut s = Self::start_on(dir, db_url, move |c| {
            c.mail_dir = mail_dir;
            adjust(c);
        })
        .await;
        s.database = database;
        if postgres && !on_postgres() {
            // On PostgreSQL in the SQLite suite's run: as one of several nodes, ready once joined.
            s.ready_as_a_node().await;
        }
        s
    }

    async fn start_on(dir: PathBuf, db_url: String, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_with_clock(dir, db_url, adjust, ManualClock::new(OffsetDateTime::now_utc())).await
    }

    async fn start_with_clock(
        dir: PathBuf,
        db_url: String,
        adjust: impl FnOnce(&mut Config),
        clock: ManualClock,
    ) -> Self {
        // Server logs go to the test's captured output, shown when a test fails; when secrets
        // are scanned for, everything down to `trace` goes to a file that is searched.
        if let Some(dir) = scan::dir() {
            // Appended to: only the first server's subscriber takes hold, later opens must not
            // truncate what it writes.
            let path = dir.join(format!("trace-{}.log", std::process::id()));
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("log");
            let _ = tracing_subscriber::fmt()
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .with_max_level(tracing::Level::TRACE)
                .try_init();
        } else {
            let _ = tracing_subscriber::fmt().with_test_writer().with_max_level(tracing::Level::INFO).try_init();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = Config::defaults();
        config.listen = addr;
        config.serve_at(format!("http://127.0.0.1:{}", addr.port()).parse().expect("url"));
        config.database_url = signoff_server::config::SecretUrl(db_url.clone());
        adjust(&mut config);
        scan::config(&config);
        let mail_dir = config.mail_dir.clone();
        let origin = config.public_origin.clone();
        let backend = signoff_server::backend::open(&config).await.expect("store");
        let state = AppState::new(config, backend, Arc::new(clock.clone())).await.expect("state");
        let kept = state.clone();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            signoff_server::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        let server = Self {
            base: format!("http://{addr}"),
            origin,
            clock,
            db_url,
            mail_dir,
            dir,
            database: None,
            shutdown: Some(tx),
            state: kept,
        };
        server.settle().await;
        server
    }

    /// On several-node backends a node answers from memory only once it has joined the others
    /// (`/readyz` says when): wait for that, as a load balancer would, for a few seconds at most
    /// (a test of an unready node sees it unready).
    async fn settle(&self) {
        if on_postgres() {
            self.ready_as_a_node().await;
        }
    }

    async fn ready_as_a_node(&self) {
        let client = reqwest::Client::new();
        for _ in 0..60 {
            let ready = client.get(format!("{}/readyz", self.base)).send().await;
            if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stops this server and starts another on the same database file (and directory) with
    /// the same public origin, as a restarted deployment would be (the port differs).
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// Like [`restart`](Self::restart), with the configuration `adjust` changes.
    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut Config)) -> Self {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let dir = std::mem::take(&mut self.dir);
        let db_url = std::mem::take(&mut self.db_url);
        // Give the old server a moment to stop accepting before the new one opens the file.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let (origin, mail_dir) = (same_origin(&self.origin), self.mail_dir.clone());
        let mut next = Self::start_on(dir, db_url, move |c| {
            origin(c);
            c.mail_dir = mail_dir;
            adjust(c);
        })
        .await;
        next.origin = self.origin.clone();
        next.database = self.database.take();
        next
    }

    /// A second server process on the same database and public origin: another node (sharing
    /// this one's clock, as nodes share real time).
    pub async fn sibling(&self) -> Self {
        self.sibling_with(|_| {}).await
    }

    /// Like [`sibling`](Self::sibling), with the configuration `adjust` changes (as deployments
    /// configure every node alike).
    pub async fn sibling_with(&self, adjust: impl FnOnce(&mut Config)) -> Self {
        let (db, origin, clock) = (self.db_url.clone(), same_origin(&self.origin), self.clock.clone());
        let mail_dir = self.mail_dir.clone();
        let configure = move |c: &mut Config| {
            origin(c);
            c.mail_dir = mail_dir;
            adjust(c);
        };
        let mut node = Self::start_with_clock(PathBuf::new(), db, configure, clock).await;
        node.origin = self.origin.clone();
        node.database = self.database.clone();
        node
    }

    /// The development inbox (the `.eml` files this server wrote).
    pub fn inbox(&self) -> Inbox {
        Inbox { dir: self.mail_dir.clone() }
    }

    pub fn browser(&self) -> Browser {
        Browser::new(self)
    }

    /// Registers an account over HTTP and returns its e-mail.
    pub async fn register(&self, email: &str) -> String {
        let res = self
            .browser()
            .post_json("/auth/register", &serde_json::json!({"email": email, "password": PASSWORD}))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        email.to_owned()
    }

    /// A registered user signed in over the JSON API.
    pub async fn signed_in(&self, email: &str) -> Browser {
        self.register(email).await;
        let mut b = self.browser();
        b.login(email, PASSWORD).await;
        b
    }

    /// Opens the server's database directly, to look at what it stored (SQL with `$1`-style
    /// parameters works on both backends).
    pub async fn db(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::pool::PoolOptions::<sqlx::Any>::new().max_connections(2).connect(&self.db_url).await.expect("open db")
    }
}

/// Configures a server to present itself as `origin`, whatever port it listens on.
fn same_origin(origin: &str) -> impl FnOnce(&mut Config) + use<> {
    let origin = origin.to_owned();
    move |c| {
        c.serve_at(origin.parse().expect("origin"));
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if scan::dir().is_some() {
            let authority = self.state.authority();
            let snapshot = signoff_server::metrics::Snapshot {
                event_stream_sessions: authority.hub().watched_sessions(),
                caches: authority.cache_sizes(),
                feed_head: authority.client_feed().head(),
                ..Default::default()
            };
            scan::artifact("metrics.txt", self.state.metrics().render(snapshot, None).as_bytes());
            let copy = signoff_core::secret::random_id();
            for suffix in [".db", ".db-wal"] {
                if let Ok(bytes) = std::fs::read(self.dir.join(format!("signoff{suffix}"))) {
                    scan::artifact_named(&format!("sqlite-{copy}{suffix}"), &bytes);
                }
            }
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Res {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok().map(str::to_owned)).collect()
    }

    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }
}

/// A browser-like client: a cookie jar (applied by hand, so tests see every attribute),
/// `Origin` and `Sec-Fetch-Site` like a same-origin page unless told otherwise.
pub struct Browser {
    http: reqwest::Client,
    pub base: String,
    pub origin: String,
    pub jar: BTreeMap<String, String>,
    pub csrf: Option<String>,
    pub user_agent: String,
}

impl Browser {
    fn new(server: &TestServer) -> Self {
        Self {
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
            base: server.base.clone(),
            origin: server.origin.clone(),
            jar: BTreeMap::new(),
            csrf: None,
            user_agent:
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
                    .into(),
        }
    }

    pub fn session_cookie(&self) -> Option<&String> {
        self.jar.get("__Host-signoff_session")
    }

    /// A request carrying the jar's cookies and same-origin browser headers.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let same_origin = method != Method::GET;
        let rb = self.bare(method, path);
        if same_origin { rb.header("origin", &self.origin).header("sec-fetch-site", "same-origin") } else { rb }
    }

    /// A request carrying the jar's cookies and no `Origin` or `Sec-Fetch-Site`.
    pub fn bare(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb =
            self.http.request(method.clone(), format!("{}{}", self.base, path)).header("user-agent", &self.user_agent);
        if !self.jar.is_empty() {
            let cookie = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            rb = rb.header("cookie", cookie);
        }
        rb
    }

    /// Sends and updates the jar from `Set-Cookie` (a `Max-Age=0` removes the cookie).
    pub async fn send(&mut self, rb: reqwest::RequestBuilder) -> Res {
        let res = rb.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        if scan::dir().is_some() {
            if let Ok(body) = serde_json::from_str::<Value>(&text) {
                scan::json(&body);
            }
            // Error reports, not pages: an HTML page answering with an error carries its form
            // again (a reset page keeps the token its holder sent, a sign-out page its CSRF
            // token), to the browser that holds them.
            let html = headers.get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
            if (status.is_client_error() || status.is_server_error()) && !html {
                scan::artifact("error-body.txt", text.as_bytes());
            }
            // Every response's headers but the cookies it sets (`Location` above all).
            let shown: Vec<String> = headers
                .iter()
                .filter(|(k, _)| *k != "set-cookie")
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            scan::append(&format!("headers-{}.log", std::process::id()), &shown.join("\n"));
        }
        for sc in headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let (pair, attrs) = sc.split_once(';').unwrap_or((sc, ""));
            let (name, value) = pair.split_once('=').expect("cookie pair");
            scan::secret(value);
            if attrs.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
        Res { status, headers, text }
    }

    pub async fn get(&mut self, path: &str) -> Res {
        let rb = self.request(Method::GET, path);
        self.send(rb).await
    }

    pub async fn get_json(&mut self, path: &str) -> Res {
        let rb = self.request(Method::GET, path).header("accept", "application/json");
        self.send(rb).await
    }

    pub async fn post_json(&mut self, path: &str, body: &Value) -> Res {
        scan::json(body);
        let mut rb = self.request(Method::POST, path).header("accept", "application/json").json(body);
        if let Some(t) = &self.csrf {
            rb = rb.header("x-csrf-token", t);
        }
        self.send(rb).await
    }

    /// A browser form post: form-encoded, `Accept: text/html`, CSRF token in the body.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Res {
        for (k, v) in fields {
            if k.contains("password") || *k == "token" {
                scan::secret(v);
            }
        }
        let mut fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if let Some(t) = &self.csrf
            && !fields.iter().any(|(k, _)| k == "csrf_token")
        {
            fields.push(("csrf_token".into(), t.clone()));
        }
        let body = fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&");
        let rb = self
            .request(Method::POST, path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html,application/xhtml+xml")
            .body(body);
        self.send(rb).await
    }

    pub async fn login(&mut self, email: &str, password: &str) -> Res {
        let res = self.post_json("/auth/login", &serde_json::json!({"email": email, "password": password})).await;
        assert_eq!(res.status, StatusCode::OK, "login: {}", res.text);
        self.csrf = res.json()["csrf_token"].as_str().map(str::to_owned);
        res
    }

    /// `GET /auth/session` status: 200 while the session lives.
    pub async fn session_status(&mut self) -> StatusCode {
        self.get_json("/auth/session").await.status
    }
}

/// A form body on a request.
pub trait Form {
    fn form<K: AsRef<str>, V: AsRef<str>>(self, fields: &[(K, V)]) -> Self;
}

impl Form for reqwest::RequestBuilder {
    fn form<K: AsRef<str>, V: AsRef<str>>(self, fields: &[(K, V)]) -> Self {
        let body: Vec<String> =
            fields.iter().map(|(k, v)| format!("{}={}", enc(k.as_ref()), enc(v.as_ref()))).collect();
        self.header("content-type", "application/x-www-form-urlencoded").body(body.join("&"))
    }
}

pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The `.eml` files of a server's development inbox, read the way `/dev/mail` reads them.
pub struct Inbox {
    dir: PathBuf,
}

pub use signoff_server::routes::dev_inbox::Shown as Message;

impl Inbox {
    /// Every message to `to` so far, oldest first.
    pub fn to(&self, to: &str) -> Vec<Message> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(dir) => dir
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
            .iter()
            .map(|p| {
                signoff_server::routes::dev_inbox::parse(&std::fs::read(p).expect("read mail"))
                    .expect("a whole message")
            })
            .filter(|m| m.to == to)
            .collect()
    }

    /// Waits (up to 10 s) until `to` has `count` messages, and returns them.
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<Message> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let got = self.to(to);
            if got.len() >= count {
                return got;
            }
            assert!(std::time::Instant::now() < deadline, "{to} has {} messages, not {count}", got.len());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The one link a mail's text carries (a line of its own).
pub fn link_in(text: &str) -> String {
    let links: Vec<&str> = text.lines().map(str::trim).filter(|l| l.starts_with("http")).collect();
    assert_eq!(links.len(), 1, "one link: {text}");
    links[0].to_owned()
}

/// The path and query of a link to this server, and its token.
pub fn token_of(link: &str) -> String {
    let token = link.split_once("token=").expect("a token in the link").1.to_owned();
    scan::secret(&token);
    token
}

// Shared by the races of several parts of the contract (sessions, tokens, logout, accounts):
// real concurrency over a real server, counting survivors.

/// Requests each race sends at once.
pub const RACERS: usize = 200;
pub const REMEMBER: &str = "__Host-signoff_remember";
pub const SESSION: &str = "__Host-signoff_session";

/// Signs `email` in with "remember me" and returns the browser (its session cookie dropped,
/// as after a browser restart) and the remember-me cookie value.
pub async fn remembered(s: &TestServer, email: &str) -> (Browser, String) {
    let mut b = s.browser();
    let res = b.post_json("/auth/login", &json!({"email": email, "password": PASSWORD, "remember_me": true})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    b.jar.remove(SESSION);
    let cookie = b.jar.get(REMEMBER).cloned().expect("remember cookie");
    (b, cookie)
}

/// One `GET /auth/session` carrying only this remember-me cookie: the session cookie it was
/// given, if it was signed in.
pub async fn resume_once(http: reqwest::Client, base: String, remember: String) -> Option<String> {
    let res = http
        .get(format!("{base}/auth/session"))
        .header("cookie", format!("{REMEMBER}={remember}"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("request");
    if res.status() != StatusCode::OK {
        return None;
    }
    res.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.strip_prefix(&format!("{SESSION}=")).map(|v| v.split(';').next().unwrap_or_default().to_owned())
    })
}

/// Whether a session cookie value still signs in.
pub async fn lives(s: &TestServer, session: &str) -> bool {
    let mut b = s.browser();
    b.jar.insert(SESSION.into(), session.into());
    b.session_status().await == StatusCode::OK
}

pub async fn live_sessions(s: &TestServer, email: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = $1")
        .bind(email)
        .fetch_one(&s.db().await)
        .await
        .expect("count")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

pub async fn refresh_once(http: reqwest::Client, base: String, token: String) -> (StatusCode, Value) {
    let res = http
        .post(format!("{base}/auth/token"))
        .header("accept", "application/json")
        .json(&json!({"grant_type": "refresh_token", "refresh_token": token}))
        .send()
        .await
        .expect("request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn bearer_status(s: &TestServer, access: &str) -> StatusCode {
    let mut b = s.browser();
    let rb = b.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {access}"));
    b.send(rb).await.status
}

/// An `Authorization` header for HTTP Basic with a client's id and secret.
pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}
