//! Load without loss: two `signoff` nodes on one PostgreSQL database with a private Redis,
//! driven at the machine's limit for `SIGNOFF_SOAK_SECONDS` (default 60) by virtual users that
//! mix validation (cookies and access tokens), sign-ins (browser and token), refreshes,
//! logouts, revoke-one and password changes on either node at random.
//!
//! Every credential a revocation ended is probed on the other node right after the revocation
//! answered (the very next request), and again on both nodes by a checker once the load stops:
//! the count of revoked credentials accepted must be 0. Live credentials must keep working.
//! The nodes' resident memory is sampled each second: after the first third of the run it may
//! grow by no more than what the caches hold (bounded), with room for the allocator.
//!
//! Figures are printed; run with `--nocapture`.

#[path = "../cluster/harness.rs"]
#[allow(dead_code)] // shared with the cluster tests, which use all of it
mod harness;

use harness::*;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Virtual users, each a task of its own.
const USERS: usize = 16;
/// Browser sessions and token sessions a user keeps at most (the server's own cap is 100).
const MAX_SESSIONS: usize = 12;
const MAX_TOKENS: usize = 4;
/// The refresh-token reuse grace the nodes run with (the contract's "a few seconds").
const REFRESH_GRACE_SECS: u64 = 2;
/// Growth of a node's resident memory allowed after the first third of the run.
const MEMORY_SLACK_MIB: u64 = 64;

/// A credential that a revocation ended.
#[derive(Debug, Clone)]
enum Revoked {
    Cookie(String),
    Remember(String),
    Access(String),
    Refresh(String),
}

#[derive(Clone)]
struct Browser {
    id: String,
    cookie: String,
    csrf: String,
    remember: Option<String>,
}

#[derive(Clone)]
struct Tokens {
    access: String,
    refresh: String,
}

/// What every virtual user saw, summed.
#[derive(Default)]
struct Tally {
    requests: BTreeMap<&'static str, u64>,
    shed: u64,
    revoked: Vec<Revoked>,
    /// Revoked credentials accepted by the other node right after the revocation answered.
    accepted_next: Vec<String>,
    /// Live credentials refused (401 where 200 was due).
    refused_live: Vec<String>,
    unexpected: Vec<String>,
    /// Every secret handed out or sent (for the secrets-hygiene scan).
    secrets: Vec<String>,
}

struct Rng(u64);

impl Rng {
    fn new() -> Self {
        Self(u64::from_le_bytes(signoff_core::secret::random_bytes::<8>()) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn fresh_password() -> String {
    format!("soak {} lantern {} orbit", signoff_core::secret::random_id(), signoff_core::secret::random_id())
}

struct User<'a> {
    http: reqwest::Client,
    nodes: &'a [String],
    email: String,
    password: String,
    browsers: Vec<Browser>,
    tokens: Vec<Tokens>,
    rng: Rng,
    t: Tally,
}

impl User<'_> {
    fn node(&mut self) -> String {
        self.nodes[self.rng.below(self.nodes.len())].clone()
    }

    fn count(&mut self, what: &'static str) {
        *self.t.requests.entry(what).or_default() += 1;
    }

    fn unexpected(&mut self, what: &str, r: &Res) {
        self.t.unexpected.push(format!("{what}: {} {}", r.status, r.json));
    }

    async fn sign_in(&mut self) {
        let node = self.node();
        self.count("sign-in");
        let remember = self.rng.below(2) == 0;
        let r = send(
            self.http
                .post(format!("{node}/auth/login"))
                .json(&json!({"email": self.email, "password": self.password, "remember_me": remember})),
        )
        .await;
        match r.status {
            StatusCode::OK => {
                let b = Browser {
                    id: r.json["session"]["id"].as_str().unwrap_or_default().to_owned(),
                    cookie: r.cookie(SESSION).unwrap_or_default().to_owned(),
                    csrf: r.json["csrf_token"].as_str().unwrap_or_default().to_owned(),
                    remember: r.cookie(REMEMBER).map(str::to_owned),
                };
                self.t.secrets.extend([b.cookie.clone(), b.csrf.clone()].into_iter().chain(b.remember.clone()));
                self.browsers.push(b);
            }
            StatusCode::SERVICE_UNAVAILABLE => self.t.shed += 1,
            _ => self.unexpected("sign-in", &r),
        }
    }

    async fn token_sign_in(&mut self) {
        let node = self.node();
        self.count("token sign-in");
        let r = send(
            self.http
                .post(format!("{node}/auth/token"))
                .json(&json!({"grant_type": "password", "email": self.email, "password": self.password})),
        )
        .await;
        match r.status {
            StatusCode::OK => {
                let t = Tokens {
                    access: r.json["access_token"].as_str().unwrap_or_default().to_owned(),
                    refresh: r.json["refresh_token"].as_str().unwrap_or_default().to_owned(),
                };
                self.t.secrets.extend([t.access.clone(), t.refresh.clone()]);
                self.tokens.push(t);
            }
            StatusCode::SERVICE_UNAVAILABLE => self.t.shed += 1,
            _ => self.unexpected("token sign-in", &r),
        }
    }

    async fn validate_cookie(&mut self) {
        let Some(b) = self.pick_browser() else { return };
        let node = self.node();
        self.count("validate cookie");
        let r = send(self.http.get(format!("{node}/auth/session")).header("Cookie", format!("{SESSION}={}", b.cookie)))
            .await;
        match r.status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => self.t.refused_live.push(format!("session {} on {node}", b.id)),
            _ => self.unexpected("validate cookie", &r),
        }
    }

    async fn validate_access(&mut self) {
        if self.tokens.is_empty() {
            return;
        }
        let i = self.rng.below(self.tokens.len());
        let access = self.tokens[i].access.clone();
        let node = self.node();
        self.count("validate access token");
        let r = send(self.http.get(format!("{node}/api/me")).bearer_auth(&access)).await;
        match r.status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => self.t.refused_live.push(format!("access token on {node}")),
            _ => self.unexpected("validate access token", &r),
        }
    }

    async fn refresh(&mut self) {
        if self.tokens.is_empty() {
            return;
        }
        let i = self.rng.below(self.tokens.len());
        let old = self.tokens[i].clone();
        let node = self.node();
        self.count("refresh");
        let r = send(
            self.http
                .post(format!("{node}/auth/token"))
                .json(&json!({"grant_type": "refresh_token", "refresh_token": old.refresh})),
        )
        .await;
        match r.status {
            StatusCode::OK => {
                self.tokens[i] = Tokens {
                    access: r.json["access_token"].as_str().unwrap_or_default().to_owned(),
                    refresh: r.json["refresh_token"].as_str().unwrap_or_default().to_owned(),
                };
                self.t.secrets.extend([self.tokens[i].access.clone(), self.tokens[i].refresh.clone()]);
                // Rotation ended the old refresh token (past the grace for racing tabs, in
                // which it gets this same successor again): replayed at the end, after the
                // grace (a replay takes the family down with it, as theft).
                self.t.revoked.push(Revoked::Refresh(old.refresh));
            }
            StatusCode::SERVICE_UNAVAILABLE => self.t.shed += 1,
            _ => self.unexpected("refresh", &r),
        }
    }

    fn pick_browser(&mut self) -> Option<Browser> {
        (!self.browsers.is_empty()).then(|| self.browsers[self.rng.below(self.browsers.len())].clone())
    }

    fn other(&self, node: &str) -> String {
        self.nodes.iter().find(|n| *n != node).cloned().unwrap_or_else(|| node.to_owned())
    }

    /// The very next request after a revocation, on the other node: refused.
    async fn probe_next(&mut self, node: &str, cookie: &str) {
        let other = self.other(node);
        self.count("probe after revocation");
        let r =
            send(self.http.get(format!("{other}/auth/session")).header("Cookie", format!("{SESSION}={cookie}"))).await;
        if r.status != StatusCode::UNAUTHORIZED {
            self.t.accepted_next.push(format!("a session cookie on {other} right after its revocation: {}", r.status));
        }
    }

    fn end_browser(&mut self, b: &Browser) {
        self.browsers.retain(|x| x.cookie != b.cookie);
        self.t.revoked.push(Revoked::Cookie(b.cookie.clone()));
        if let Some(r) = &b.remember {
            self.t.revoked.push(Revoked::Remember(r.clone()));
        }
    }

    async fn logout(&mut self) {
        let Some(b) = self.pick_browser() else { return };
        let node = self.node();
        self.count("logout");
        let mut cookie = format!("{SESSION}={}", b.cookie);
        if let Some(r) = &b.remember {
            cookie.push_str(&format!("; {REMEMBER}={r}"));
        }
        let r = send(
            self.http
                .post(format!("{node}/auth/logout"))
                .header("Cookie", cookie)
                .header("X-CSRF-Token", &b.csrf)
                .json(&json!({})),
        )
        .await;
        match r.status {
            StatusCode::OK => {
                self.end_browser(&b);
                self.probe_next(&node, &b.cookie).await;
            }
            StatusCode::SERVICE_UNAVAILABLE => self.t.shed += 1,
            _ => self.unexpected("logout", &r),
        }
    }

    async fn revoke_one(&mut self) {
        if self.browsers.len() < 2 {
            return;
        }
        let i = self.rng.below(self.browsers.len());
        let j = (i + 1 + self.rng.below(self.browsers.len() - 1)) % self.browsers.len();
        let (me, victim) = (self.browsers[i].clone(), self.browsers[j].clone());
        let node = self.node();
        self.count("revoke one");
        let r = send(
            self.http
                .delete(format!("{node}/auth/sessions/{}", victim.id))
                .header("Cookie", format!("{SESSION}={}", me.cookie))
                .header("X-CSRF-Token", &me.csrf),
        )
        .await;
        match r.status {
            StatusCode::NO_CONTENT => {
                self.end_browser(&victim);
                self.probe_next(&node, &victim.cookie).await;
            }
            StatusCode::SERVICE_UNAVAILABLE => self.t.shed += 1,
            _ => self.unexpected("revoke one", &r),
        }
    }

    async fn change_password(&mut self) {
        let Some(me) = self.pick_browser() else { return };
        let node = self.node();
        let new_password = fresh_password();
        self.count("password change");
        let r = send(
            self.http
                .post(format!("{node}/auth/password"))
                .header("Cookie", format!("{SESSION}={}", me.cookie))
                .header("X-CSRF-Token", &me.csrf)
                .json(&json!({"current_password": self.password, "new_password": new_password})),
        )
        .await;
        match r.status {
            StatusCode::OK => {
                self.t.secrets.push(new_password.clone());
                self.password = new_password;
                // Every session ends but this one, which goes on under a new id and cookie;
                // every remember-me, refresh and access token dies.
                for b in std::mem::take(&mut self.browsers) {
                    self.end_browser(&b);
                }
                for t in std::mem::take(&mut self.tokens) {
                    self.t.revoked.push(Revoked::Access(t.access));
                    self.t.revoked.push(Revoked::Refresh(t.refresh));
                }
                if let Some(cookie) = r.cookie(SESSION) {
                    self.t.secrets.push(cookie.to_owned());
                    self.browsers.push(Browser {
                        id: r.json["session"]["id"].as_str().unwrap_or_default().to_owned(),
                        cookie: cookie.to_owned(),
                        csrf: r.json["csrf_token"].as_str().unwrap_or(&me.csrf).to_owned(),
                        remember: None,
                    });
                } else {
                    self.unexpected("password change (no new cookie)", &r);
                }
                self.probe_next(&node, &me.cookie).await;
            }
            StatusCode::SERVICE_UNAVAILABLE => self.t.shed += 1,
            _ => self.unexpected("password change", &r),
        }
    }

    async fn run(mut self, until: Instant) -> Tally {
        let node = self.node();
        let r = send(
            self.http
                .post(format!("{node}/auth/register"))
                .json(&json!({"email": self.email, "password": self.password})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "register: {}", r.json);
        self.t.secrets.push(self.password.clone());
        while Instant::now() < until {
            let roll = self.rng.below(100);
            match roll {
                0..40 => self.validate_cookie().await,
                40..55 => self.validate_access().await,
                55..67 => self.refresh().await,
                67..75 if self.browsers.len() < MAX_SESSIONS => self.sign_in().await,
                75..80 if self.tokens.len() < MAX_TOKENS => self.token_sign_in().await,
                80..88 => self.logout().await,
                88..96 => self.revoke_one().await,
                96..98 => self.change_password().await,
                _ => self.validate_cookie().await,
            }
            if self.browsers.is_empty() {
                self.sign_in().await;
            }
        }
        self.t
    }
}

/// Seconds into the run, and each node's resident memory in KiB.
type Sample = (f64, Vec<u64>);

/// Resident memory of a process, in KiB.
fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The machine's CPU time so far, busy and in all (`/proc/stat`, in ticks).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    let total: u64 = fields.iter().take(8).sum();
    (total - idle, total)
}

/// One revoked credential, tried on `node`: whether it was accepted.
async fn accepted(http: &reqwest::Client, node: &str, cred: &Revoked) -> Result<bool, String> {
    let r = match cred {
        Revoked::Cookie(c) => {
            send(http.get(format!("{node}/auth/session")).header("Cookie", format!("{SESSION}={c}"))).await
        }
        Revoked::Remember(c) => {
            send(http.get(format!("{node}/auth/session")).header("Cookie", format!("{REMEMBER}={c}"))).await
        }
        Revoked::Access(t) => send(http.get(format!("{node}/api/me")).bearer_auth(t)).await,
        Revoked::Refresh(t) => {
            send(
                http.post(format!("{node}/auth/token"))
                    .json(&json!({"grant_type": "refresh_token", "refresh_token": t})),
            )
            .await
        }
    };
    match r.status {
        s if s.is_success() => Ok(true),
        StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => Ok(false),
        s => Err(format!("{cred:?} on {node}: {s} {}", r.json)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_at_full_load_lose_no_revocation() {
    let seconds: u64 = std::env::var("SIGNOFF_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let db = Database::create("signoff_soak").await;
    let redis = Redis::start();
    let dir = temp_dir("soak");
    // With the secrets-hygiene scan on (scripts/test), the nodes log at trace level, and their
    // logs are searched for every secret this run handled.
    let scan = std::env::var_os("SIGNOFF_TEST_SECRET_SCAN").map(std::path::PathBuf::from);
    let grace = REFRESH_GRACE_SECS.to_string();
    let mut settings = vec![("SIGNOFF_REFRESH_REUSE_GRACE_SECONDS", grace.as_str())];
    if scan.is_some() {
        settings.push(("SIGNOFF_LOG_LEVEL", "trace"));
    }
    let nodes: Vec<Node> =
        (0..2).map(|i| Node::start_with(&db.url, Some(&redis.url()), 2000, &dir, i, &settings)).collect();
    let http = client();
    wait_ready(&http, &nodes).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    let started = Instant::now();
    let cpu_before = cpu_ticks();
    let until = started + Duration::from_secs(seconds);
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let sampler = {
        let (pids, samples) = (nodes.iter().map(Node::pid).collect::<Vec<_>>(), samples.clone());
        tokio::spawn(async move {
            while Instant::now() < until {
                let rss: Vec<u64> = pids.iter().map(|p| rss_kib(p).unwrap_or(0)).collect();
                samples.lock().expect("samples").push((started.elapsed().as_secs_f64(), rss));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let users = (0..USERS).map(|i| {
        let user = User {
            http: http.clone(),
            nodes: &bases,
            email: format!("soak{i}-{}@example.com", signoff_core::secret::random_id()),
            password: fresh_password(),
            browsers: Vec::new(),
            tokens: Vec::new(),
            rng: Rng::new(),
            t: Tally::default(),
        };
        user.run(until)
    });
    let tallies = futures_util::future::join_all(users).await;
    sampler.await.expect("sampler");
    let load_secs = started.elapsed().as_secs_f64();
    let cpu_after = cpu_ticks();
    let busy = (cpu_after.0 - cpu_before.0) as f64 / (cpu_after.1 - cpu_before.1).max(1) as f64;

    let mut t = Tally::default();
    for u in tallies {
        for (k, v) in u.requests {
            *t.requests.entry(k).or_default() += v;
        }
        t.shed += u.shed;
        t.revoked.extend(u.revoked);
        t.accepted_next.extend(u.accepted_next);
        t.refused_live.extend(u.refused_live);
        t.unexpected.extend(u.unexpected);
        t.secrets.extend(u.secrets);
    }

    // The checker: every revoked credential on every node, once the grace in which the
    // immediate predecessor of a rotated refresh token still gets its successor again (racing
    // tabs; the contract allows it) has passed for every rotation.
    tokio::time::sleep(Duration::from_millis(REFRESH_GRACE_SECS * 1000 + 500)).await;
    let mut replayed_accepted = Vec::new();
    let mut replay_errors = Vec::new();
    let checking = Instant::now();
    for cred in &t.revoked {
        for node in &bases {
            match accepted(&http, node, cred).await {
                Ok(true) => replayed_accepted.push(format!("{cred:?} accepted by {node}")),
                Ok(false) => {}
                Err(e) => replay_errors.push(e),
            }
        }
    }

    let samples = samples.lock().expect("samples").clone();
    let third = samples.iter().find(|(at, _)| *at >= seconds as f64 / 3.0).map(|(_, r)| r.clone()).unwrap_or_default();
    let last = samples.last().map(|(_, r)| r.clone()).unwrap_or_default();
    let peak: Vec<u64> = (0..nodes.len())
        .map(|i| samples.iter().map(|(_, r)| r.get(i).copied().unwrap_or(0)).max().unwrap_or(0))
        .collect();
    let total: u64 = t.requests.values().sum();
    let mut metrics = String::new();
    for node in &bases {
        let text = http.get(format!("{node}/metrics")).send().await.expect("metrics").text().await.unwrap_or_default();
        let cached: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("signoff_cached_sessions ") || l.starts_with("signoff_denied_tokens "))
            .collect();
        metrics.push_str(&format!("{node}: {} ", cached.join(", ")));
    }
    println!(
        "soak, 2 nodes on PostgreSQL + Redis, {USERS} users, {load_secs:.0} s, CPU {:.0}% busy: {total} requests \
         ({:.0}/s), {} shed with 503; {:?}\n  revoked credentials: {}, accepted by the other node right after: {}, accepted at the \
         end (each on both nodes, {:.1} s): {}\n  live credentials refused: {}; unexpected answers: {}\n  resident \
         memory KiB per node: at a third {third:?}, at the end {last:?}, peak {peak:?}; {metrics}",
        busy * 100.0,
        total as f64 / load_secs,
        t.shed,
        t.requests,
        t.revoked.len(),
        t.accepted_next.len(),
        checking.elapsed().as_secs_f64(),
        replayed_accepted.len(),
        t.refused_live.len(),
        t.unexpected.len(),
    );
    if !replayed_accepted.is_empty() || !t.accepted_next.is_empty() {
        for n in &nodes {
            eprintln!("--- {} log tail:\n{}", n.base, n.tail_log());
        }
    }
    drop(nodes);
    if let Some(scan) = &scan {
        std::fs::create_dir_all(scan).expect("scan dir");
        let mut secrets = t.secrets.join("\n");
        secrets.push_str(&format!("\n{ADMIN_KEY}\n"));
        std::fs::write(scan.join(format!("secrets-soak-{}.txt", std::process::id())), secrets).expect("secrets");
        for i in 0..2 {
            let log = dir.join(format!("node{i}.log"));
            std::fs::copy(&log, scan.join(format!("soak-node{i}-{}.log", std::process::id()))).expect("node log");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(t.accepted_next.is_empty(), "accepted right after revocation:\n{}", t.accepted_next.join("\n"));
    assert!(replayed_accepted.is_empty(), "revoked credentials accepted:\n{}", replayed_accepted.join("\n"));
    assert!(replay_errors.is_empty(), "the checker got answers other than 200/400/401:\n{}", replay_errors.join("\n"));
    assert!(t.unexpected.is_empty(), "unexpected answers:\n{}", t.unexpected.join("\n"));
    assert!(t.refused_live.is_empty(), "live credentials refused:\n{}", t.refused_live.join("\n"));
    assert!(t.revoked.len() > 100, "the soak revoked too little to matter: {}", t.revoked.len());
    for (i, (a, b)) in third.iter().zip(&last).enumerate() {
        assert!(
            *b <= a + MEMORY_SLACK_MIB * 1024,
            "node {i} grew from {a} KiB to {b} KiB after the first third of the run"
        );
    }
}
