//! The real `signoff serve` process: configuration from the environment, JSON logs with request
//! ids, and a graceful stop on SIGTERM.

use reqwest::StatusCode;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port, and `signoff serve` on it with a SQLite file at `db` and its stderr
/// piped; the caller adds its own settings.
fn serve_command(db: &std::path::Path) -> (u16, Command) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_signoff"));
    command
        .arg("serve")
        .env("SIGNOFF_LISTEN", format!("127.0.0.1:{port}"))
        .env("SIGNOFF_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("SIGNOFF_DATABASE_URL", format!("sqlite://{}", db.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    (port, command)
}

#[tokio::test]
async fn serve_reads_the_environment_logs_json_and_stops_gracefully_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("signoff-bin-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (port, mut command) = serve_command(&dir.join("bin.db"));
    let mut child = command
        .env("SIGNOFF_LOG_FORMAT", "json")
        // Misspelt: warned about by name, with the setting it resembles.
        .env("SIGNOFF_LOG_LEVLE", "debug")
        .spawn()
        .expect("spawn signoff");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if let Ok(res) = reqwest::get(format!("{base}/readyz")).await {
            break res;
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready.status(), StatusCode::OK);
    let request_id = ready.headers().get("x-request-id").and_then(|v| v.to_str().ok()).expect("id").to_owned();
    assert!(dir.join("bin.db").exists(), "the SQLite file is created on start");
    let http = reqwest::Client::new();
    let registered = http
        .post(format!("{base}/auth/register"))
        .json(&serde_json::json!({"email": "kept@example.com", "password": "correct horse battery staple"}))
        .send()
        .await
        .expect("register");
    assert_eq!(registered.status(), StatusCode::CREATED);

    // An online backup while the server runs: data on stdout, as JSON alone.
    let copy = dir.join("copy.db");
    let backup = Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(["backup", copy.to_str().expect("utf-8")])
        .env("SIGNOFF_DATABASE_URL", format!("sqlite://{}", dir.join("bin.db").display()))
        .output()
        .expect("backup");
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    let said: serde_json::Value = serde_json::from_slice(&backup.stdout).expect("stdout is one JSON document");
    assert!(said["bytes"].as_u64().is_some_and(|b| b > 0), "{said}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&copy).expect("copy").permissions().mode() & 0o777,
        0o600,
        "owner-only, like the database"
    );
    let again = Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(["backup", copy.to_str().expect("utf-8")])
        .env("SIGNOFF_DATABASE_URL", format!("sqlite://{}", dir.join("bin.db").display()))
        .output()
        .expect("backup");
    assert!(!again.status.success() && again.stdout.is_empty(), "an existing file is never overwritten");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // Another process has the file open across the stop (a backup tool, a CLI command): the
    // server's own last close would then leave the log as it is; its checkpoint must not.
    let mut other =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{}", dir.join("bin.db").display()))
            .await
            .expect("open beside the server");
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&mut other).await.expect("read");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "graceful stop exits 0, got {exit:?}");
    // After a clean stop the database file alone holds the data: the log is checkpointed.
    let wal = dir.join("bin.db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).expect("wal").len() == 0, "the -wal file is empty after a stop");
    let alone = dir.join("alone.db");
    std::fs::copy(dir.join("bin.db"), &alone).expect("copy the file alone");
    drop(other);
    for db in [&alone, &copy] {
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'kept@example.com'")
            .fetch_one(&mut conn)
            .await
            .expect("count");
        assert_eq!(n, 1, "{} holds the account", db.display());
    }

    let lines: Vec<serde_json::Value> = BufReader::new(child.stderr.take().expect("stderr"))
        .lines()
        .map(|l| serde_json::from_str(&l.expect("line")).expect("every log line is JSON"))
        .collect();
    assert!(lines.iter().any(|l| l["request_id"] == request_id.as_str() && l["route"] == "/readyz"));
    assert!(lines.iter().any(|l| l["message"] == "signoff stopped"));
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("SIGNOFF_LOG_LEVLE") && m.contains("SIGNOFF_LOG_LEVEL"))),
        "a misspelt variable is named, with the setting it resembles"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// The default text format written to a pipe: every request's access line, written without
/// `tracing` (see `logging::access`), in the layout of every other line and in order, flushed
/// by a graceful stop; and none at all below the `info` level.
#[tokio::test]
async fn the_text_access_log_has_a_line_per_request_and_none_at_warn() {
    for level in ["info", "warn"] {
        let dir = std::env::temp_dir().join(format!("signoff-access-{}", signoff_core::secret::random_id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (port, mut command) = serve_command(&dir.join("a.db"));
        let mut child =
            command.env("SIGNOFF_LOG_LEVEL", level).env_remove("SIGNOFF_LOG_FORMAT").spawn().expect("spawn signoff");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/readyz")).send().await.is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut ids = Vec::new();
        for path in ["/readyz", "/api/me", "/no/such/page", "/readyz"] {
            let res = http.get(format!("{base}{path}")).send().await.expect("request");
            ids.push((res.headers()["x-request-id"].to_str().expect("id").to_owned(), path, res.status().as_u16()));
        }
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
        assert!(status.success());
        assert!(child.wait().expect("wait").success());
        let mut text = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut text).expect("read");
        let access: Vec<&str> = text.lines().filter(|l| l.contains(" INFO access: ")).collect();
        std::fs::remove_dir_all(&dir).expect("cleanup");
        if level == "warn" {
            assert!(access.is_empty(), "no access line at warn: {text}");
            assert!(!text.contains(" INFO "), "{text}");
            continue;
        }
        fn route(path: &str) -> &str {
            if path == "/no/such/page" { "unmatched" } else { path }
        }
        let mut at = 0;
        for (id, path, code) in &ids {
            let i = access.iter().position(|l| l.contains(&format!("request_id={id} "))).unwrap_or_else(|| {
                panic!("no access line for {id} ({path}): {text}");
            });
            assert!(i >= at, "lines are in order: {text}");
            at = i;
            let line = access[i];
            let (time, rest) = line.split_once("  ").expect("time first");
            assert!(time.len() == 27 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
            let prefix =
                format!("INFO access: request request_id={id} method=GET route={} status={code} ms=", route(path));
            let ms = rest.strip_prefix(&prefix).unwrap_or_else(|| panic!("{line}"));
            let (whole, frac) = ms.split_once('.').expect("ms to the microsecond");
            assert!(whole.parse::<u64>().is_ok() && frac.len() == 3 && frac.parse::<u16>().is_ok(), "{line}");
        }
        // Other lines keep the default format, beside the access lines.
        assert!(text.lines().any(|l| l.contains(" INFO ") && l.contains("signoff stopped")), "{text}");
    }
}

/// `signoff serve` with a bad setting or a store it cannot reach: a non-zero exit before it
/// serves, one line on stderr naming what is wrong and where, nothing on stdout, no password.
fn refused_start(env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_signoff"))
        .arg("serve")
        .env_remove("RUST_BACKTRACE")
        .envs(env.iter().copied())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{env:?} must not start: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    assert!(!stderr.contains("secret-pw"), "the password never shows: {stderr}");
    assert!(!stderr.contains("Caused by"), "one line, causes not repeated: {stderr}");
    stderr
}

#[tokio::test]
async fn start_up_errors_name_the_setting_the_host_and_the_cause() {
    let dir = std::env::temp_dir().join(format!("signoff-bin-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let sqlite = format!("sqlite://{}", dir.join("s.db").display());
    let free = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();

    let e = refused_start(&[("SIGNOFF_CLEAR_SITE_DATA", "bogus"), ("SIGNOFF_DATABASE_URL", &sqlite)]);
    assert!(e.contains("SIGNOFF_CLEAR_SITE_DATA") && e.contains("`bogus`"), "{e}");

    let closed = free();
    let e = refused_start(&[("SIGNOFF_DATABASE_URL", &format!("postgres://u:secret-pw@127.0.0.1:{closed}/db"))]);
    assert!(e.contains(&format!("127.0.0.1:{closed}")) && e.contains("connection refused"), "{e}");
    assert!(!e.contains("pool timed out"), "{e}");

    let mut missing = url::Url::parse(&signoff_testdb::server_url()).expect("url");
    missing.set_path("/signoff_no_such_database");
    let e = refused_start(&[("SIGNOFF_DATABASE_URL", missing.as_str())]);
    assert!(e.contains("signoff_no_such_database") && e.contains("does not exist"), "{e}");

    let e = refused_start(&[("SIGNOFF_DATABASE_URL", &format!("sqlite://{}/nope/s.db", dir.display()))]);
    assert!(e.contains(&format!("{}/nope", dir.display())) && e.contains("does not exist"), "{e}");

    // A port in use is found before anything is created or migrated.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let e = refused_start(&[("SIGNOFF_LISTEN", &format!("127.0.0.1:{port}")), ("SIGNOFF_DATABASE_URL", &sqlite)]);
    assert!(e.contains(&format!("127.0.0.1:{port}")) && e.contains("SIGNOFF_LISTEN") && e.contains("in use"), "{e}");
    assert!(!dir.join("s.db").exists(), "no database was created");

    // The settings are where a user looks.
    let help = Command::new(env!("CARGO_BIN_EXE_signoff")).args(["serve", "--help"]).output().expect("help");
    let text = String::from_utf8_lossy(&help.stdout);
    for (key, _, _) in signoff_server::config::KEYS {
        assert!(text.contains(&signoff_server::config::variable(key)), "serve --help lists {key}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn cli_commands_print_their_result_as_json_alone_on_stdout() {
    let dir = std::env::temp_dir().join(format!("signoff-bin-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_signoff"))
            .args(args)
            .env("SIGNOFF_DATABASE_URL", format!("sqlite://{}", dir.join("c.db").display()))
            .env("SIGNOFF_LOG_LEVEL", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), stdin.as_bytes()).expect("write");
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(text.lines().count(), 1, "{args:?}: one line on stdout: {text}");
        serde_json::from_str::<serde_json::Value>(&text).expect("stdout is JSON alone")
    };
    let user = run(&["user", "create", "--email", "cli@example.com"], "correct horse battery staple\n");
    assert_eq!(user["email"], "cli@example.com");
    let kid = run(&["keys", "rotate"], "");
    assert!(kid["kid"].is_string());
    let revoked = run(&["admin", "revoke", "--email", "cli@example.com", "--reason", "test"], "");
    assert_eq!(revoked["user"]["email"], "cli@example.com");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Peak resident memory of a process, from `/proc/PID/status` (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn sixty_four_parallel_sign_ins_keep_memory_bounded() {
    /// Set rather than left to the default (twice the cores), so the bound holds on any machine.
    const HASHES_AT_ONCE: usize = 4;
    let dir = std::env::temp_dir().join(format!("signoff-mem-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_signoff"))
        .arg("serve")
        .env("SIGNOFF_LISTEN", format!("127.0.0.1:{port}"))
        .env("SIGNOFF_PUBLIC_URL", &base)
        .env("SIGNOFF_DATABASE_URL", format!("sqlite://{}", dir.join("mem.db").display()))
        .env("SIGNOFF_LOG_LEVEL", "warn")
        .env("SIGNOFF_PASSWORD_HASH_CONCURRENCY", HASHES_AT_ONCE.to_string())
        // Long enough that a core shared with other tests does not turn sign-ins into 503s.
        .env("SIGNOFF_PASSWORD_HASH_QUEUE_MILLIS", "10000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn signoff");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 64 sign-ins at once, each for another account (so the per-account limits leave about 50
    // in flight, the per-address limit): every one needs an argon2 hash.
    let before = peak_rss_mib(child.id());
    let mut set = tokio::task::JoinSet::new();
    for i in 0..64 {
        let account = serde_json::json!({"email": format!("nobody{i}@example.com"), "password": "a wrong guess"});
        let (http, url) = (http.clone(), format!("{base}/auth/login"));
        set.spawn(async move { http.post(url).json(&account).send().await.expect("login").status() });
    }
    let statuses = set.join_all().await;
    let peak = peak_rss_mib(child.id());
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let resident: Vec<&str> = status.lines().filter(|l| l.starts_with("Rss")).collect();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let checked = |s: &&StatusCode| **s == StatusCode::UNAUTHORIZED;
    assert!(statuses.iter().all(|s| checked(&s) || *s == StatusCode::SERVICE_UNAVAILABLE), "{statuses:?}");
    assert!(statuses.iter().filter(checked).count() >= 40, "most were checked: {statuses:?}");
    // The 40 or more hashes this storm makes would need 19 MiB each at once (760 MiB and up)
    // without the pool; with it they share four working memories (one of them already made for
    // the dummy hash before the storm), 57 MiB more, and the requests themselves need little.
    // The bound is on the growth, not on the process's size, which depends on the build.
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 150,
        "peak memory {peak} MiB, {grown} MiB more than before the storm ({before} MiB); now {resident:?}"
    );
}

/// A child process killed when the test ends, however it ends.
pub(crate) struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `signoff serve` on `port` over `db`, as a client of the outbox test would.
pub(crate) fn spawn_notifying(port: u16, db: &std::path::Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_signoff"))
            .arg("serve")
            .env("SIGNOFF_LISTEN", format!("127.0.0.1:{port}"))
            .env("SIGNOFF_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("SIGNOFF_DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("SIGNOFF_ADMIN_TOKEN", "outbox-test-admin-key-0123456789abcdef")
            .env("SIGNOFF_ALLOW_PRIVATE_CALLBACKS", "true")
            .env("SIGNOFF_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn signoff"),
    )
}

pub(crate) async fn ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
        assert!(Instant::now() < deadline, "signoff did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The receiver is down during a logout, then signoff is killed with SIGKILL and started
/// again: the notification, written with the logout, is delivered after the restart.
#[tokio::test]
async fn a_notification_survives_a_killed_process_and_is_delivered_after_the_restart() {
    let dir = std::env::temp_dir().join(format!("signoff-outbox-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("outbox.db");
    let free = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let (port, hook_port) = (free(), free());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let child = spawn_notifying(port, &db);
    ready(&http, &base).await;
    let admin = "Bearer outbox-test-admin-key-0123456789abcdef";
    let res = http
        .post(format!("{base}/admin/clients"))
        .header("authorization", admin)
        .json(&serde_json::json!({"name": "app", "webhook_url": format!("http://127.0.0.1:{hook_port}/hook")}))
        .send()
        .await
        .expect("register client");
    assert_eq!(res.status(), StatusCode::CREATED);
    let client_id = res.json::<serde_json::Value>().await.expect("json")["client_id"].as_str().expect("id").to_owned();
    let creds = serde_json::json!({"email": "outbox@example.com", "password": "correct horse battery staple"});
    let res = http.post(format!("{base}/auth/register")).json(&creds).send().await.expect("register");
    assert_eq!(res.status(), StatusCode::CREATED);
    let grant = serde_json::json!({"grant_type": "password", "email": "outbox@example.com", "password": "correct horse battery staple"});
    let tokens: serde_json::Value =
        http.post(format!("{base}/auth/token")).json(&grant).send().await.expect("token").json().await.expect("json");
    let access = tokens["access_token"].as_str().expect("access");
    let res = http
        .post(format!("{base}/auth/logout"))
        .bearer_auth(access)
        .header("accept", "application/json")
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::OK);
    // The receiver is down: the first attempt fails; then the process dies without warning.
    let deliveries = format!("{base}/admin/clients/{client_id}/deliveries");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list: serde_json::Value = http
            .get(&deliveries)
            .header("authorization", admin)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        // Both notifications (session.ended, token.revoked) tried once and released: one still
        // claimed when its node dies waits out the claim (a minute) before another takes it.
        let tried = |d: &Vec<serde_json::Value>| {
            d.len() == 2 && d.iter().all(|x| x["status"] == "pending" && x["attempts"] == 1)
        };
        if list["deliveries"].as_array().is_some_and(tried) {
            break;
        }
        assert!(Instant::now() < deadline, "no failed first attempt: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(child); // SIGKILL

    // The receiver comes up, signoff starts again on the same database: it delivers.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", hook_port)).await.expect("bind the receiver's port");
    let (got_tx, mut got) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().fallback(move |body: String| {
        let got_tx = got_tx.clone();
        async move {
            let _ = got_tx.send(body);
            axum::http::StatusCode::NO_CONTENT
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let _child = spawn_notifying(port, &db);
    ready(&http, &base).await;
    // A bearer logout ends the session and denies the token: both are told.
    let mut types = Vec::new();
    for _ in 0..2 {
        let body =
            tokio::time::timeout(Duration::from_secs(30), got.recv()).await.expect("delivered after the restart");
        let event: serde_json::Value = serde_json::from_str(&body.expect("body")).expect("json");
        types.push(event["type"].as_str().expect("type").to_owned());
    }
    types.sort();
    assert_eq!(types, ["session.ended", "token.revoked"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second `signoff serve` on a SQLite file that another process serves is refused at start,
/// naming the file and pointing to PostgreSQL (the second outside review's finding 8: a second
/// process accepted a logged-out cookie for up to one poll of the feed).
#[tokio::test]
async fn a_second_server_on_one_sqlite_file_is_refused() {
    let dir = std::env::temp_dir().join(format!("signoff-bin-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("one.db");
    let http = reqwest::Client::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let _first = spawn_notifying(port, &db);
    ready(&http, &format!("http://127.0.0.1:{port}")).await;
    let second_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut second = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_signoff"))
            .arg("serve")
            .env("SIGNOFF_LISTEN", format!("127.0.0.1:{second_port}"))
            .env("SIGNOFF_PUBLIC_URL", format!("http://127.0.0.1:{second_port}"))
            .env("SIGNOFF_DATABASE_URL", format!("sqlite://{}", db.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn signoff"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = second.0.try_wait().expect("wait") {
            break exit;
        }
        let serving = http.get(format!("http://127.0.0.1:{second_port}/readyz")).send().await.is_ok();
        assert!(!serving && Instant::now() < deadline, "a second server started on the same file");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!exit.success(), "the second server must not start");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.0.stderr.take().expect("stderr"), &mut stderr).expect("read");
    assert!(stderr.contains(&db.display().to_string()), "names the file: {stderr}");
    assert!(stderr.contains("PostgreSQL"), "points to PostgreSQL: {stderr}");
    // The CLI still works beside the server (short-lived tools are not servers).
    let keys = Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(["keys", "rotate"])
        .env("SIGNOFF_DATABASE_URL", format!("sqlite://{}", db.display()))
        .output()
        .expect("run");
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
    drop(_first);
    // Once the first has stopped, the file can be served again.
    let _again = spawn_notifying(second_port, &db);
    ready(&http, &format!("http://127.0.0.1:{second_port}")).await;
    drop(_again);
    let _ = std::fs::remove_dir_all(&dir);
}
