//! Crashes and a database that goes away, with real processes: `signoff` killed with `SIGKILL`
//! in the middle of a burst of logouts (on a SQLite file and on PostgreSQL), and a private
//! PostgreSQL cluster (`initdb`, `pg_ctl`) stopped like a crash under a running node and in the
//! middle of a burst of logouts, then started again.
//!
//! What must hold: every logout that was answered with success stays in force after the
//! restart (its session cookie and its remember-me token are both refused);
//! while the database is gone every answer is a generic `503` (never a `500`, never internals)
//! and `/readyz` fails; when it returns, the node recovers on its own.
//!
//! Figures are printed; run with `--nocapture`.

#[path = "../cluster/harness.rs"]
#[allow(dead_code)] // shared with the cluster tests, which use all of it
mod harness;

use futures_util::StreamExt;
use harness::*;
use reqwest::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Each scenario runs processes of its own; two at once would starve two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Users per round, and sessions (sign-ins) per user.
const USERS: usize = 8;
const SESSIONS_PER_USER: usize = 10;
/// Logouts in flight at once during a burst.
const IN_FLIGHT: usize = 16;

/// One browser sign-in: its cookie, CSRF token and remember-me token.
#[derive(Clone)]
struct Signed {
    cookie: String,
    csrf: String,
    remember: String,
}

async fn sign_in(http: &reqwest::Client, base: &str, email: &str) -> Signed {
    let body = json!({"email": email, "password": PASSWORD, "remember_me": true});
    let mut r = send(http.post(format!("{base}/auth/login")).json(&body)).await;
    // Password hashing is capped (two at once here); past the cap a sign-in is shed with 503.
    while r.status == StatusCode::SERVICE_UNAVAILABLE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        r = send(http.post(format!("{base}/auth/login")).json(&body)).await;
    }
    assert_eq!(r.status, StatusCode::OK, "login: {}", r.json);
    Signed {
        cookie: r.cookie(SESSION).expect("session cookie").to_owned(),
        csrf: r.json["csrf_token"].as_str().expect("csrf").to_owned(),
        remember: r.cookie(REMEMBER).expect("remember cookie").to_owned(),
    }
}

/// Signs up `USERS` users with `SESSIONS_PER_USER` browser sessions each.
async fn sessions(http: &reqwest::Client, base: &str, round: usize) -> Vec<Signed> {
    let mut out = Vec::new();
    for u in 0..USERS {
        let email = format!("f{round}-{u}-{}@example.com", signoff_core::secret::random_id());
        let r =
            send(http.post(format!("{base}/auth/register")).json(&json!({"email": email, "password": PASSWORD}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "register: {}", r.json);
        let signed: Vec<Signed> =
            futures_util::future::join_all((0..SESSIONS_PER_USER).map(|_| sign_in(http, base, &email))).await;
        out.extend(signed);
    }
    out
}

/// How a logout of the burst ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// `200` with one session revoked.
    Acknowledged,
    /// A `503` (the database was gone), or no answer (the process died).
    Unanswered,
}

/// Logs every session out, `IN_FLIGHT` at a time, and calls `fault` once `trigger` logouts
/// have been acknowledged. Any answer other than `200 {"revoked":1}` or `503` fails the test.
async fn burst(
    http: &reqwest::Client,
    base: &str,
    all: &[Signed],
    trigger: usize,
    fault: impl FnOnce() + Send + 'static,
) -> Vec<Outcome> {
    let acked = Arc::new(AtomicUsize::new(0));
    let fault = Arc::new(std::sync::Mutex::new(Some(fault)));
    let results = futures_util::stream::iter(all.iter().cloned().enumerate())
        .map(|(i, s)| {
            let (http, base, acked, fault) = (http.clone(), base.to_owned(), acked.clone(), fault.clone());
            async move {
                let res = http
                    .post(format!("{base}/auth/logout"))
                    .header("Cookie", format!("{SESSION}={}; {REMEMBER}={}", s.cookie, s.remember))
                    .header("X-CSRF-Token", &s.csrf)
                    .header("Origin", ORIGIN)
                    .header("Accept", "application/json")
                    .json(&json!({}))
                    .send()
                    .await;
                let outcome = match res {
                    Ok(r) if r.status() == StatusCode::OK => {
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        assert_eq!(body["revoked"], 1, "logout {i}: {body}");
                        Outcome::Acknowledged
                    }
                    Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => Outcome::Unanswered,
                    Ok(r) => panic!("logout {i}: unexpected {} {}", r.status(), r.text().await.unwrap_or_default()),
                    Err(_) => Outcome::Unanswered,
                };
                if outcome == Outcome::Acknowledged && acked.fetch_add(1, Ordering::SeqCst) + 1 == trigger {
                    let f = fault.lock().expect("lock").take();
                    if let Some(f) = f {
                        f();
                    }
                }
                (i, outcome)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let mut outcomes = vec![Outcome::Unanswered; all.len()];
    for (i, o) in results {
        outcomes[i] = o;
    }
    outcomes
}

/// Checks every acknowledged logout against `base`: the session cookie and the remember-me
/// token are both refused. Returns how many were accepted (must be 0) and how many sessions
/// whose logout went unanswered are still alive (either is consistent).
async fn replay(http: &reqwest::Client, base: &str, all: &[Signed], outcomes: &[Outcome]) -> (Vec<String>, usize) {
    let mut accepted = Vec::new();
    let mut alive = 0;
    for (i, (s, o)) in all.iter().zip(outcomes).enumerate() {
        let by_cookie =
            send(http.get(format!("{base}/auth/session")).header("Cookie", format!("{SESSION}={}", s.cookie))).await;
        let by_remember =
            send(http.get(format!("{base}/auth/session")).header("Cookie", format!("{REMEMBER}={}", s.remember))).await;
        for (what, r) in [("cookie", &by_cookie), ("remember-me token", &by_remember)] {
            assert!(
                matches!(r.status, StatusCode::OK | StatusCode::UNAUTHORIZED),
                "session {i} by {what}: {} {}",
                r.status,
                r.json
            );
        }
        match o {
            Outcome::Acknowledged => {
                if by_cookie.status == StatusCode::OK {
                    accepted.push(format!("session {i}: cookie accepted after an acknowledged logout"));
                }
                if by_remember.status == StatusCode::OK {
                    accepted.push(format!("session {i}: remember-me token accepted after an acknowledged logout"));
                }
            }
            Outcome::Unanswered => alive += usize::from(by_cookie.status == StatusCode::OK),
        }
    }
    (accepted, alive)
}

/// Kills `signoff` with `SIGKILL` in the middle of a burst of logouts, restarts it on the same
/// database, and replays every logged-out credential: over `rounds` rounds.
async fn kill_during_logouts(database_url: &str, label: &str, rounds: usize) {
    let dir = temp_dir("faults");
    let http = client();
    let (mut acked_total, mut unanswered_total, mut accepted_total) = (0, 0, Vec::new());
    let mut node = Node::start(database_url, None, 1000, &dir, 0);
    wait_ready(&http, std::slice::from_ref(&node)).await;
    for round in 0..rounds {
        let all = sessions(&http, &node.base, round).await;
        let pid = node.pid();
        let outcomes = burst(&http, &node.base, &all, all.len() / 3 + round * 7, move || {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        })
        .await;
        let acked = outcomes.iter().filter(|o| **o == Outcome::Acknowledged).count();
        assert!(acked > 0 && acked < all.len(), "round {round}: the kill landed mid-burst ({acked} of {})", all.len());
        drop(node);
        node = Node::start(database_url, None, 1000, &dir, round + 1);
        wait_ready(&http, std::slice::from_ref(&node)).await;
        let (accepted, alive) = replay(&http, &node.base, &all, &outcomes).await;
        println!(
            "{label}, round {round}: {acked} logouts acknowledged before SIGKILL, {} unanswered ({alive} of those \
             sessions still alive), {} credentials accepted after restart",
            all.len() - acked,
            accepted.len()
        );
        acked_total += acked;
        unanswered_total += all.len() - acked;
        accepted_total.extend(accepted);
    }
    println!(
        "{label}: {rounds} kills, {acked_total} acknowledged logouts replayed, {unanswered_total} unanswered, {} \
         accepted",
        accepted_total.len()
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(accepted_total.is_empty(), "{label}: logged-out credentials accepted:\n{}", accepted_total.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_logouts_loses_no_acknowledged_logout_on_sqlite() {
    let _serial = SERIAL.lock().await;
    let dir = temp_dir("faults-sqlite");
    let url = format!("sqlite://{}", dir.join("signoff.db").display());
    kill_during_logouts(&url, "SQLite (WAL, synchronous=FULL)", 3).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_logouts_loses_no_acknowledged_logout_on_postgres() {
    let _serial = SERIAL.lock().await;
    let db = Database::create("signoff_faults").await;
    kill_during_logouts(&db.url, "PostgreSQL", 3).await;
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A PostgreSQL cluster of this test's own, in a temporary folder, on a free port: stopped and
/// started at will. `initdb` refuses to run as root, so as root it runs as the `postgres` user.
struct Cluster {
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn bin(name: &str) -> PathBuf {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        versions.sort();
        let bin = versions.last().map(|v| v.join("bin").join(name));
        bin.filter(|b| b.exists()).unwrap_or_else(|| {
            panic!("{name} not found under /usr/lib/postgresql/*/bin: install Debian's postgresql package")
        })
    }

    fn run(args: &[&str], program: &Path) -> std::process::Output {
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args).stdin(Stdio::null()).output().expect("run a PostgreSQL program")
    }

    fn init() -> Self {
        let dir = temp_dir("pgcluster");
        if is_root() {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().expect("chown");
            assert!(ok.success(), "chown the cluster folder to postgres");
        }
        let data = dir.join("data");
        let out = Self::run(
            &["-D", data.to_str().expect("path"), "-A", "trust", "-U", "postgres", "--no-sync"],
            &Self::bin("initdb"),
        );
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let c = Self { dir, port: restartable_port() };
        c.start();
        c
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c fsync=on",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        let out = Self::run(&["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"], &Self::bin("pg_ctl"));
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops it the way a crash does (`SIGQUIT` to the postmaster, what `pg_ctl stop -m
    /// immediate` sends): no shutdown checkpoint, recovery from the WAL on the next start.
    /// Signalled directly, so it lands at once; waits until the postmaster is gone.
    fn crash(&self) {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
        let pid = pid.lines().next().expect("a pid").trim().to_owned();
        let ok = Command::new("kill").args(["-QUIT", &pid]).status().expect("kill").success();
        assert!(ok, "SIGQUIT to the postmaster {pid}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Path::new(&format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < deadline, "the postmaster did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Self::run(&["-D", &self.data(), "-m", "immediate", "-w", "stop"], &Self::bin("pg_ctl"));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Words that must never reach a client: the database's, the driver's and the server's
/// internals.
const INTERNALS: [&str; 8] = ["postgres", "sqlx", "connection", "refused", "pool", "database", "panicked", "127.0.0.1"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_gone_is_a_generic_503_and_the_node_recovers_on_its_own() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::init();
    let dir = temp_dir("faults-pg-gone");
    let http = client();
    let node = Node::start(&cluster.url(), None, 1000, &dir, 0);
    wait_ready(&http, std::slice::from_ref(&node)).await;
    let base = node.base.clone();
    let c = sign_up(&http, &node, &format!("gone-{}@example.com", signoff_core::secret::random_id())).await;

    cluster.crash();
    let gone = Instant::now();
    // Everything a client may ask while the database is gone. The node may answer from its
    // caches while its lease lasts; after that only 503s. Nothing else, and no internals.
    let mut statuses = std::collections::BTreeMap::<String, Vec<u16>>::new();
    let mut ready_failed_after = None;
    let mut rounds = 0;
    while rounds < 3 || gone.elapsed() < Duration::from_secs(6) {
        rounds += 1;
        let cookie = format!("{SESSION}={}", c.cookie);
        let requests: Vec<(&str, reqwest::RequestBuilder)> = vec![
            ("readyz", http.get(format!("{base}/readyz"))),
            ("session", http.get(format!("{base}/auth/session")).header("Cookie", &cookie)),
            ("sessions", http.get(format!("{base}/auth/sessions")).header("Cookie", &cookie)),
            (
                "login",
                http.post(format!("{base}/auth/login")).json(&json!({"email": "x@example.com", "password": PASSWORD})),
            ),
            (
                "register",
                http.post(format!("{base}/auth/register"))
                    .json(&json!({"email": format!("{}@example.com", signoff_core::secret::random_id()), "password": PASSWORD})),
            ),
            (
                "refresh",
                http.post(format!("{base}/auth/token"))
                    .json(&json!({"grant_type": "refresh_token", "refresh_token": c.refresh})),
            ),
            ("bearer", http.get(format!("{base}/api/me")).bearer_auth(&c.access)),
            ("admin", http.get(format!("{base}/admin/users/{}/sessions", c.user_id)).bearer_auth(ADMIN_KEY)),
        ];
        for (what, rb) in requests {
            let res = rb.header("Origin", ORIGIN).header("Accept", "application/json").send().await.expect("an answer");
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            assert!(
                status != StatusCode::INTERNAL_SERVER_ERROR && (status.as_u16() < 500 || status == 503),
                "{what} while the database is gone: {status} {body}"
            );
            if status.is_server_error() || status.is_client_error() {
                let lower = body.to_ascii_lowercase();
                for word in INTERNALS {
                    assert!(!lower.contains(word), "{what}: {status} body names internals ({word}): {body}");
                }
            }
            if what == "readyz" && status == StatusCode::SERVICE_UNAVAILABLE && ready_failed_after.is_none() {
                ready_failed_after = Some(gone.elapsed());
            }
            statuses.entry(what.to_owned()).or_default().push(status.as_u16());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready_failed_after = ready_failed_after.expect("/readyz failed while the database was gone");
    let log_out = || {
        send(
            http.post(format!("{base}/auth/logout"))
                .header("Cookie", format!("{SESSION}={}", c.cookie))
                .header("X-CSRF-Token", &c.csrf)
                .json(&json!({})),
        )
    };
    // A logout that cannot be written must not be acknowledged.
    let logout = log_out().await;
    assert_eq!(logout.status, StatusCode::SERVICE_UNAVAILABLE, "a logout while the database is gone: {}", logout.json);
    for (what, s) in &statuses {
        let tail = &s[s.len().saturating_sub(3)..];
        assert!(tail.iter().all(|s| *s == 503), "{what}: not refused once the lease ran out: {s:?}");
    }

    cluster.start();
    let back = Instant::now();
    loop {
        let ok = http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == StatusCode::OK);
        if ok {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(30), "the node did not recover:\n{}", node.tail_log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = back.elapsed();
    let session =
        send(http.get(format!("{base}/auth/session")).header("Cookie", format!("{SESSION}={}", c.cookie))).await;
    assert_eq!(session.status, StatusCode::OK, "the unacknowledged logout changed nothing: {}", session.json);
    let logout = log_out().await;
    assert_eq!(logout.status, StatusCode::OK, "logout after recovery: {}", logout.json);
    let session =
        send(http.get(format!("{base}/auth/session")).header("Cookie", format!("{SESSION}={}", c.cookie))).await;
    assert_eq!(session.status, StatusCode::UNAUTHORIZED);
    println!(
        "database gone: /readyz failed after {:.0} ms; answers while gone: {statuses:?}; ready again {:.0} ms after \
         the database came back",
        ready_failed_after.as_secs_f64() * 1000.0,
        recovered.as_secs_f64() * 1000.0
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_crash_during_logouts_loses_no_acknowledged_logout() {
    let _serial = SERIAL.lock().await;
    let cluster = Arc::new(Cluster::init());
    let dir = temp_dir("faults-pg-crash");
    let http = client();
    let node = Node::start(&cluster.url(), None, 1000, &dir, 0);
    wait_ready(&http, std::slice::from_ref(&node)).await;
    let (mut acked_total, mut accepted_total) = (0, Vec::new());
    for round in 0..2 {
        let all = sessions(&http, &node.base, round).await;
        let crashing = cluster.clone();
        let outcomes = burst(&http, &node.base, &all, all.len() / 3, move || crashing.crash()).await;
        let acked = outcomes.iter().filter(|o| **o == Outcome::Acknowledged).count();
        assert!(acked > 0 && acked < all.len(), "round {round}: the crash landed mid-burst ({acked} of {})", all.len());
        cluster.start();
        wait_ready(&http, std::slice::from_ref(&node)).await;
        let (accepted, alive) = replay(&http, &node.base, &all, &outcomes).await;
        println!(
            "PostgreSQL crash, round {round}: {acked} logouts acknowledged before the crash, {} unanswered ({alive} \
             still alive), {} accepted after recovery",
            all.len() - acked,
            accepted.len()
        );
        acked_total += acked;
        accepted_total.extend(accepted);
    }
    println!("PostgreSQL crashes: {acked_total} acknowledged logouts replayed, {} accepted", accepted_total.len());
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(accepted_total.is_empty(), "logged-out credentials accepted:\n{}", accepted_total.join("\n"));
}
