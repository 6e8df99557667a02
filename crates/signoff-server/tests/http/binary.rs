//! The real `signoff serve` process: configuration from the environment, JSON logs with request
//! ids, and a graceful stop on SIGTERM.

use reqwest::StatusCode;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn serve_reads_the_environment_logs_json_and_stops_gracefully_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("signoff-bin-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_signoff"))
        .arg("serve")
        .env("SIGNOFF_LISTEN", format!("127.0.0.1:{port}"))
        .env("SIGNOFF_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("SIGNOFF_DATABASE_URL", format!("sqlite://{}", dir.join("bin.db").display()))
        .env("SIGNOFF_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
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

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "graceful stop exits 0, got {exit:?}");

    let lines: Vec<serde_json::Value> = BufReader::new(child.stderr.take().expect("stderr"))
        .lines()
        .map(|l| serde_json::from_str(&l.expect("line")).expect("every log line is JSON"))
        .collect();
    assert!(lines.iter().any(|l| l["request_id"] == request_id.as_str() && l["route"] == "/readyz"));
    assert!(lines.iter().any(|l| l["message"] == "signoff stopped"));
    std::fs::remove_dir_all(&dir).expect("cleanup");
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
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let checked = |s: &&StatusCode| **s == StatusCode::UNAUTHORIZED;
    assert!(statuses.iter().all(|s| checked(&s) || *s == StatusCode::SERVICE_UNAVAILABLE), "{statuses:?}");
    assert!(statuses.iter().filter(checked).count() >= 40, "most were checked: {statuses:?}");
    // 64 argon2id hashes at once need 64 × 19 MiB; a bounded pool needs a few of them.
    assert!(peak < 200, "peak memory {peak} MiB (before the storm {before} MiB)");
}
