//! Three `signoff` processes on one PostgreSQL database (with a private Redis, and once
//! without): every credential is warmed on every node, revoked through one node, and then sent
//! to every node by requests started after the revoke response. Faults are injected between
//! the warm-up and the revocation: `CLIENT KILL`, a Redis restart (empty), Redis down across the
//! revocation and the probes, `CLIENT PAUSE` (no hint or acknowledgement announced), a node
//! paused with `SIGSTOP` across the revocation for less than its lease (it must be fenced and
//! waited out) and for longer, and every database connection terminated. The count of revoked credentials accepted must be 0.
//!
//! Figures (logout latency, 503s, time to recover) are printed; run with `--nocapture`.

mod harness;

use futures_util::future::join_all;
use harness::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

/// The nodes' lease in these tests (the default is 2 s; shorter keeps pauses short).
const LEASE_MS: u64 = 1000;

/// Serialises the scenarios: each runs three nodes, and two at once would starve two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    ClientKill,
    RedisRestart,
    /// Redis holds every write (publishes) for a while: no hint and no acknowledgement is
    /// announced, so revokers must fence.
    HintsLost,
    /// A node stopped across the revocation for less than its lease, continued before the
    /// revocation answers: only fencing and waiting out its lease keeps it from answering
    /// from its caches.
    ShortPause,
    /// A node stopped for longer than its lease.
    Pause,
    DatabaseCut,
    /// Redis killed before the revocation and started again (empty) only after every node was
    /// probed: the revocation and the probes run without it.
    RedisDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revocation {
    GlobalLogout,
    AdminRevoke,
    PasswordChange,
    RevokeRefreshToken,
    RevokeTokenSession,
    /// RFC 7009 on the access token alone: only the denylist stops it (its session lives on).
    RevokeAccessToken,
}

impl Revocation {
    const ALL: [Revocation; 6] = [
        Self::GlobalLogout,
        Self::AdminRevoke,
        Self::PasswordChange,
        Self::RevokeRefreshToken,
        Self::RevokeTokenSession,
        Self::RevokeAccessToken,
    ];

    /// Whether the browser's cookie and remember-me token die too (otherwise only the token
    /// session's access and refresh tokens do, and the cookie must still work).
    fn ends_browser(self) -> bool {
        matches!(self, Self::GlobalLogout | Self::AdminRevoke | Self::PasswordChange)
    }

    /// Whether the browser's session itself ends (not rotated, as a password change does), so
    /// its open event streams on every node must hear `revoked`.
    fn ends_session(self) -> bool {
        matches!(self, Self::GlobalLogout | Self::AdminRevoke)
    }

    /// Whether the refresh token dies too.
    fn ends_refresh(self) -> bool {
        self != Self::RevokeAccessToken
    }
}

#[derive(Debug, Default)]
struct Tally {
    checks: u64,
    /// Revoked credentials accepted: must stay empty.
    accepted: Vec<String>,
    refused_503: u64,
    revoke_503: u64,
    /// Live credentials (the control) refused with something other than 503, and answers that
    /// are errors (5xx other than 503).
    control_failures: Vec<String>,
    /// Revocation latency by kind, rounds without a fault.
    logout_ms: std::collections::BTreeMap<String, Vec<f64>>,
    /// Event streams opened before a revocation, and those that heard `revoked`.
    streams: u64,
    streams_told: u64,
    faulted_ms: Vec<(Fault, f64)>,
    recover_ms: Vec<(Fault, f64)>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn me_with_cookie(http: &reqwest::Client, node: &Node, cookie: &str) -> impl std::future::Future<Output = Res> + use<> {
    send(http.get(format!("{}/api/me", node.base)).header("Cookie", cookie.to_owned()))
}

/// Warms every node with every credential. Refresh and remember-me tokens rotate on use, and
/// a resume from remember-me supersedes the session it backed, so the newest of each is kept.
async fn warm(http: &reqwest::Client, nodes: &[Node], c: &mut Credentials) {
    for node in nodes {
        let r = send(
            http.post(format!("{}/auth/token", node.base))
                .json(&json!({"grant_type": "refresh_token", "refresh_token": c.refresh})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "refresh warm-up on {}: {}", node.base, r.json);
        c.refresh = r.json["refresh_token"].as_str().expect("refresh").to_owned();
        c.access = r.json["access_token"].as_str().expect("access").to_owned();
        let r = send(
            http.get(format!("{}/auth/session", node.base)).header("Cookie", format!("{REMEMBER}={}", c.remember)),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "remember-me warm-up on {}: {}", node.base, r.json);
        c.remember = r.cookie(REMEMBER).expect("rotated remember-me cookie").to_owned();
        c.cookie = r.cookie(SESSION).expect("resumed session cookie").to_owned();
        c.csrf = r.json["csrf_token"].as_str().expect("csrf").to_owned();
    }
    for node in nodes {
        let r = me_with_cookie(http, node, &format!("{SESSION}={}", c.cookie)).await;
        assert_eq!(r.status, StatusCode::OK, "cookie warm-up on {}: {}", node.base, r.json);
        let r = send(http.get(format!("{}/api/me", node.base)).bearer_auth(&c.access)).await;
        assert_eq!(r.status, StatusCode::OK, "access-token warm-up on {}: {}", node.base, r.json);
    }
}

/// Revokes through `node`, retrying on 503 (revocations are idempotent); returns the latency
/// of the attempt that succeeded and how many answered 503.
async fn revoke(http: &reqwest::Client, node: &Node, kind: Revocation, c: &Credentials) -> (f64, u64) {
    let mut unavailable = 0;
    loop {
        let cookie = format!("{SESSION}={}", c.cookie);
        let req = match kind {
            Revocation::GlobalLogout => http
                .post(format!("{}/auth/logout", node.base))
                .header("Cookie", &cookie)
                .header("X-CSRF-Token", &c.csrf)
                .json(&json!({"scope": "global"})),
            Revocation::AdminRevoke => http
                .post(format!("{}/admin/users/{}/revoke", node.base, c.user_id))
                .bearer_auth(ADMIN_KEY)
                .json(&json!({"reason": "cluster test"})),
            Revocation::PasswordChange => http
                .post(format!("{}/auth/password", node.base))
                .header("Cookie", &cookie)
                .header("X-CSRF-Token", &c.csrf)
                .json(&json!({"current_password": PASSWORD, "new_password": "another quite strong passphrase 7"})),
            Revocation::RevokeRefreshToken => http
                .post(format!("{}/auth/revoke", node.base))
                .json(&json!({"token": c.refresh, "token_type_hint": "refresh_token"})),
            Revocation::RevokeTokenSession => http
                .delete(format!("{}/auth/sessions/{}", node.base, c.token_session))
                .header("Cookie", &cookie)
                .header("X-CSRF-Token", &c.csrf),
            Revocation::RevokeAccessToken => http
                .post(format!("{}/auth/revoke", node.base))
                .json(&json!({"token": c.access, "token_type_hint": "access_token"})),
        };
        let started = Instant::now();
        let r = send(req).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match r.status {
            StatusCode::OK | StatusCode::NO_CONTENT => return (ms, unavailable),
            StatusCode::SERVICE_UNAVAILABLE => {
                unavailable += 1;
                assert!(unavailable < 50, "revocation kept answering 503");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // A retry finds the work done by the attempt that answered 503 (the password already
            // changed, the session already gone), which was never proven to the other nodes: a
            // logout that finds nothing to end proves the feed's head before it answers.
            StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND if unavailable > 0 => loop {
                let proof = send(http.post(format!("{}/auth/logout", node.base)).json(&json!({}))).await;
                match proof.status {
                    StatusCode::OK => return (ms, unavailable),
                    StatusCode::SERVICE_UNAVAILABLE => tokio::time::sleep(Duration::from_millis(50)).await,
                    other => panic!("the proving logout answered {other}: {}", proof.json),
                }
            },
            other => panic!("{kind:?} through {} answered {other}: {}", node.base, r.json),
        }
    }
}

/// Sends every revoked credential to every node at once and records what was accepted.
async fn check(http: &reqwest::Client, nodes: &[Node], kind: Revocation, c: &Credentials, round: usize, t: &mut Tally) {
    let mut probes = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let access = send(http.get(format!("{}/api/me", node.base)).bearer_auth(&c.access));
        let refresh = send(
            http.post(format!("{}/auth/token", node.base))
                .json(&json!({"grant_type": "refresh_token", "refresh_token": c.refresh})),
        );
        probes.push((i, "access token", Box::pin(access) as std::pin::Pin<Box<dyn std::future::Future<Output = Res>>>));
        if kind.ends_refresh() {
            probes.push((i, "refresh token", Box::pin(refresh)));
        }
        let cookie = me_with_cookie(http, node, &format!("{SESSION}={}", c.cookie));
        let remember = me_with_cookie(http, node, &format!("{REMEMBER}={}", c.remember));
        probes.push((i, "session cookie", Box::pin(cookie)));
        if kind.ends_browser() {
            probes.push((i, "remember-me token", Box::pin(remember)));
        }
    }
    let labels: Vec<(usize, &str)> = probes.iter().map(|(i, what, _)| (*i, *what)).collect();
    let results = join_all(probes.into_iter().map(|(_, _, f)| f)).await;
    for ((node, what), res) in labels.into_iter().zip(results) {
        t.checks += 1;
        let control = what == "session cookie" && !kind.ends_browser();
        match (control, res.status) {
            (_, StatusCode::SERVICE_UNAVAILABLE) => t.refused_503 += 1,
            (_, error) if error.is_server_error() => {
                t.control_failures.push(format!("round {round}: {what} got {error} on node {node}"));
            }
            (false, StatusCode::OK) => {
                t.accepted.push(format!("round {round}: {what} accepted by node {node} after {kind:?}"));
            }
            (false, _) => {}
            (true, StatusCode::OK) => {}
            (true, other) => t.control_failures.push(format!("round {round}: live cookie got {other} on node {node}")),
        }
    }
}

async fn scenario(with_redis: bool, rounds: usize) -> Tally {
    let _serial = SERIAL.lock().await;
    let db = Database::create("signoff_cluster").await;
    let mut redis = with_redis.then(Redis::start);
    let dir = temp_dir("cluster");
    let redis_url = redis.as_ref().map(Redis::url);
    let nodes: Vec<Node> = (0..3).map(|i| Node::start(&db.url, redis_url.as_deref(), LEASE_MS, &dir, i)).collect();
    let http = client();
    wait_ready(&http, &nodes).await;
    let faults: &[Fault] = if with_redis {
        &[
            Fault::None,
            Fault::ClientKill,
            Fault::RedisRestart,
            Fault::ShortPause,
            Fault::HintsLost,
            Fault::Pause,
            Fault::DatabaseCut,
            Fault::RedisDown,
        ]
    } else {
        &[Fault::None, Fault::ShortPause, Fault::Pause, Fault::DatabaseCut, Fault::None]
    };
    let mut t = Tally::default();
    for round in 0..rounds {
        let fault = faults[round % faults.len()];
        // Every fault meets every kind of revocation: when the counts share a factor (8 faults,
        // 6 kinds) a kind is kept for a whole cycle of faults; when they do not (5 and 6),
        // stepping both each round already pairs them all.
        let kinds = Revocation::ALL.len();
        let kind = if faults.len().is_multiple_of(2) || faults.len().is_multiple_of(3) {
            Revocation::ALL[(round / faults.len()) % kinds]
        } else {
            Revocation::ALL[round % kinds]
        };
        let (home, revoker, paused) = (round % 3, (round + 1) % 3, (round + 2) % 3);
        let mut c =
            sign_up(&http, &nodes[home], &format!("c{round}-{}@example.com", signoff_core::secret::random_id())).await;
        warm(&http, &nodes, &mut c).await;
        // The browser's open pages, one event stream on every node.
        let mut streams = Vec::new();
        if kind.ends_session() {
            for node in &nodes {
                let res = http
                    .get(format!("{}/auth/events", node.base))
                    .header("Cookie", format!("{SESSION}={}", c.cookie))
                    .header("Accept", "text/event-stream")
                    .send()
                    .await
                    .expect("events");
                assert_eq!(res.status(), StatusCode::OK, "event stream on {}", node.base);
                streams.push(res);
            }
        }
        let mut resume_at = None;
        match fault {
            Fault::None => {}
            Fault::ClientKill => {
                let r = redis.as_ref().expect("redis");
                r.command("CLIENT KILL TYPE pubsub");
                r.command("CLIENT KILL TYPE normal");
            }
            Fault::RedisRestart => redis.as_mut().expect("redis").restart(),
            Fault::RedisDown => redis.as_mut().expect("redis").stop(),
            Fault::HintsLost => {
                redis.as_ref().expect("redis").command("CLIENT PAUSE 1500 WRITE");
            }
            Fault::ShortPause => {
                nodes[paused].signal("-STOP");
                resume_at = Some(Instant::now() + Duration::from_millis(LEASE_MS / 3));
            }
            Fault::Pause => {
                nodes[paused].signal("-STOP");
                resume_at = Some(Instant::now() + Duration::from_millis(LEASE_MS + 600));
            }
            Fault::DatabaseCut => {
                db.terminate_connections().await;
            }
        }
        // A short pause is continued while the revocation waits (it must outwait the lease).
        let early = (fault == Fault::ShortPause).then(|| {
            let (pid, at) = (nodes[paused].pid(), resume_at.take().expect("resume time"));
            tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                let _ = std::process::Command::new("kill").args(["-CONT", &pid]).status();
            })
        });
        let (ms, unavailable) = revoke(&http, &nodes[revoker], kind, &c).await;
        if let Some(task) = early {
            task.await.expect("continue");
        }
        t.revoke_503 += unavailable;
        if fault == Fault::None {
            t.logout_ms.entry(format!("{kind:?}")).or_default().push(ms);
        } else {
            t.faulted_ms.push((fault, ms));
        }
        // Every probe below starts after the revoke response. A paused node's probes wait in
        // its socket until it is continued, past its lease.
        let continuing = resume_at.map(|at| {
            let pid = nodes[paused].pid();
            tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                let _ = std::process::Command::new("kill").args(["-CONT", &pid]).status();
            })
        });
        check(&http, &nodes, kind, &c, round, &mut t).await;
        if let Some(task) = continuing {
            task.await.expect("continue");
        }
        if fault == Fault::RedisDown {
            redis.as_mut().expect("redis").resume();
        }
        for (node, mut stream) in streams.into_iter().enumerate() {
            t.streams += 1;
            let mut seen = String::new();
            let told = tokio::time::timeout(Duration::from_secs(10), async {
                while let Ok(Some(chunk)) = stream.chunk().await {
                    seen.push_str(&String::from_utf8_lossy(&chunk));
                    if seen.contains("event: revoked") {
                        return true;
                    }
                }
                false
            })
            .await
            .unwrap_or(false);
            if told {
                t.streams_told += 1;
            } else {
                t.control_failures.push(format!("round {round}: the event stream on node {node} did not hear revoked"));
            }
        }
        let recovering = Instant::now();
        wait_ready(&http, &nodes).await;
        if fault != Fault::None {
            t.recover_ms.push((fault, recovering.elapsed().as_secs_f64() * 1000.0));
        }
    }
    if !t.accepted.is_empty() || !t.control_failures.is_empty() {
        for n in &nodes {
            eprintln!("--- {} log tail:\n{}", n.base, n.tail_log());
        }
    }
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
    t
}

fn report(name: &str, t: &mut Tally) {
    let mut latency = Vec::new();
    for (kind, ms) in &mut t.logout_ms {
        ms.sort_by(f64::total_cmp);
        latency.push(format!(
            "{kind} (n={}) p50 {:.1} ms, max {:.1} ms",
            ms.len(),
            percentile(ms, 0.5),
            ms.last().copied().unwrap_or(f64::NAN)
        ));
    }
    let faulted: Vec<String> = t.faulted_ms.iter().map(|(f, ms)| format!("{f:?} {ms:.0} ms")).collect();
    let recovered: Vec<String> = t.recover_ms.iter().map(|(f, ms)| format!("{f:?} {ms:.0} ms")).collect();
    println!(
        "{name}: {} probes, {} revoked credentials accepted, {} refused with 503; revocations answered 503 {} times \
         (then retried); {} of {} open event streams told\n  revocation latency without faults: {}\n  \
         with a fault just before: {}\n  back to ready after the fault: {}",
        t.checks,
        t.accepted.len(),
        t.refused_503,
        t.revoke_503,
        t.streams_told,
        t.streams,
        latency.join("; "),
        faulted.join(", "),
        recovered.join(", "),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_with_redis_refuse_every_revoked_credential_through_faults() {
    let mut t = scenario(true, 48).await;
    report("three nodes, PostgreSQL + Redis", &mut t);
    assert!(t.accepted.is_empty(), "revoked credentials accepted:\n{}", t.accepted.join("\n"));
    assert!(t.control_failures.is_empty(), "live credentials refused:\n{}", t.control_failures.join("\n"));
    assert!(t.checks >= 48 * 6, "every round probed every node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_without_redis_refuse_every_revoked_credential_through_faults() {
    let mut t = scenario(false, 20).await;
    report("three nodes, PostgreSQL only (LISTEN/NOTIFY)", &mut t);
    assert!(t.accepted.is_empty(), "revoked credentials accepted:\n{}", t.accepted.join("\n"));
    assert!(t.control_failures.is_empty(), "live credentials refused:\n{}", t.control_failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_signing_keys_are_shared_by_every_node() {
    let _serial = SERIAL.lock().await;
    let db = Database::create("signoff_cluster").await;
    let dir = temp_dir("cluster-shared");
    let extra = [("SIGNOFF_REGISTER_MAX_PER_IP", "4"), ("SIGNOFF_LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_IP", "5")];
    let nodes: Vec<Node> = (0..2).map(|i| Node::start_with(&db.url, None, LEASE_MS, &dir, i, &extra)).collect();
    let http = client();
    wait_ready(&http, &nodes).await;
    let register = |node: &Node, email: String| {
        send(http.post(format!("{}/auth/register", node.base)).json(&json!({"email": email, "password": PASSWORD})))
    };

    // Four registrations from one address, two through each node: the fifth is refused by both.
    for i in 0..4 {
        let r = register(&nodes[i % 2], format!("shared{i}@example.com")).await;
        assert_eq!(r.status, StatusCode::CREATED, "registration {i}: {}", r.json);
    }
    for node in &nodes {
        let r = register(node, format!("late-{}@example.com", node.base.len())).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "the address used its registrations on the other node too");
    }

    // Five failed sign-ins for one account from one address, spread over both nodes: the sixth
    // attempt is refused by either node.
    let login = |node: &Node, password: &str| {
        send(
            http.post(format!("{}/auth/login", node.base))
                .json(&json!({"email": "shared0@example.com", "password": password})),
        )
    };
    for i in 0..5 {
        let r = login(&nodes[i % 2], "wrong password entirely").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "failure {i}: {}", r.json);
    }
    for node in &nodes {
        let r = login(node, "wrong password entirely").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "failures on the other node count here: {}", r.json);
    }

    // A key rotated by one process signs on every node at once; withdrawing the old one kills
    // its tokens on every node before the withdrawing process returns.
    let grant = |node: &Node, email: &str| {
        send(
            http.post(format!("{}/auth/token", node.base))
                .json(&json!({"grant_type": "password", "email": email, "password": PASSWORD})),
        )
    };
    let old = grant(&nodes[0], "shared1@example.com").await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.json);
    let old_token = old.json["access_token"].as_str().expect("token").to_owned();
    let old_kid = kid(&old_token);
    let rotated = cli(&db.url, &["keys", "rotate"]);
    let new_kid = rotated["kid"].as_str().expect("kid").to_owned();
    assert_ne!(new_kid, old_kid);
    for node in &nodes {
        let r = grant(node, "shared2@example.com").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(
            kid(r.json["access_token"].as_str().expect("token")),
            new_kid,
            "{} signs with the new key",
            node.base
        );
        let me = send(http.get(format!("{}/api/me", node.base)).bearer_auth(&old_token)).await;
        assert_eq!(me.status, StatusCode::OK, "a rotated key's tokens live on until they expire");
    }
    cli(&db.url, &["keys", "revoke", &old_kid]);
    for node in &nodes {
        let me = send(http.get(format!("{}/api/me", node.base)).bearer_auth(&old_token)).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{} refuses a withdrawn key's token at once", node.base);
    }
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Limits meant for the whole cluster hold against a parallel burst spread over three nodes
/// (the second outside review's finding 2: each node checked the shared counter before, and
/// wrote it only after, the password was hashed, so three nodes checked 15 passwords where the
/// limit is 5). Every attempt is counted on the shared counter before its work, atomically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parallel_burst_over_three_nodes_gets_no_more_than_the_limit() {
    let _serial = SERIAL.lock().await;
    let db = Database::create("signoff_cluster").await;
    let dir = temp_dir("cluster-burst");
    let extra = [
        ("SIGNOFF_TRUST_PROXY", "true"),
        ("SIGNOFF_LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_IP", "5"),
        ("SIGNOFF_LOGIN_MAX_FAILURES_PER_ACCOUNT", "12"),
        ("SIGNOFF_PASSWORD_HASH_CONCURRENCY", "8"),
        ("SIGNOFF_REGISTER_MAX_PER_IP", "4"),
        ("SIGNOFF_PASSWORD_RESET_MAX_PER_IP", "3"),
    ];
    let nodes: Vec<Node> = (0..3).map(|i| Node::start_with(&db.url, None, LEASE_MS, &dir, i, &extra)).collect();
    let http = client();
    wait_ready(&http, &nodes).await;
    let owner = send(
        http.post(format!("{}/auth/register", nodes[0].base))
            .header("x-forwarded-for", "198.51.100.1")
            .json(&json!({"email": "burst@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(owner.status, StatusCode::CREATED, "{}", owner.json);

    // Counts the answers of `n` requests sent at once, spread over the nodes in turn.
    let burst = async |n: usize, request: &(dyn Fn(usize, &Node) -> reqwest::RequestBuilder + Sync)| {
        let answers = futures_util::future::join_all((0..n).map(|i| send(request(i, &nodes[i % nodes.len()])))).await;
        let mut counts = std::collections::BTreeMap::<u16, usize>::new();
        for a in answers {
            *counts.entry(a.status.as_u16()).or_default() += 1;
        }
        counts
    };
    let wrong = |node: &Node, ip: &str| {
        http.post(format!("{}/auth/login", node.base))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": "burst@example.com", "password": "not the password at all"}))
    };

    // 30 guesses from one address at once: five are checked, per account and address.
    let counts = burst(30, &|_, node| wrong(node, "203.0.113.9")).await;
    eprintln!("one address, 30 guesses over 3 nodes: {counts:?}");
    assert_eq!(counts.get(&401).copied().unwrap_or(0), 5, "checked guesses: {counts:?}");
    assert!(counts.keys().all(|s| [401, 429, 503].contains(s)), "{counts:?}");
    // Once they are settled, the limit is reached for good on every node: 429, not 503.
    for node in &nodes {
        let r = send(wrong(node, "203.0.113.9")).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json);
    }

    // The owner, from their own address, still signs in, and a success gives its
    // attempt back to the account's count.
    let ok = send(
        http.post(format!("{}/auth/login", nodes[2].base))
            .header("x-forwarded-for", "198.51.100.1")
            .json(&json!({"email": "burst@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);

    // 40 guesses from 40 addresses at once: seven more are checked for the account (12 in all).
    let counts = burst(40, &|i, node| wrong(node, &format!("203.0.113.{}", 100 + i))).await;
    eprintln!("40 addresses, 40 guesses over 3 nodes: {counts:?}");
    assert_eq!(counts.get(&401).copied().unwrap_or(0), 7, "checked guesses: {counts:?}");

    // Registrations from one address at once: four in the hour, whichever nodes take them.
    let counts = burst(15, &|i: usize, node: &Node| {
        http.post(format!("{}/auth/register", node.base))
            .header("x-forwarded-for", "192.0.2.44")
            .json(&json!({"email": format!("new{i}@example.com"), "password": PASSWORD}))
    })
    .await;
    eprintln!("15 registrations from one address over 3 nodes: {counts:?}");
    assert_eq!(counts.get(&201).copied().unwrap_or(0), 4, "{counts:?}");

    // Password reset requests from one address at once: three.
    let counts = burst(15, &|i: usize, node: &Node| {
        http.post(format!("{}/auth/password-reset", node.base))
            .header("x-forwarded-for", "192.0.2.45")
            .header("accept", "application/json")
            .json(&json!({"email": format!("someone{i}@example.com")}))
    })
    .await;
    eprintln!("15 reset requests from one address over 3 nodes: {counts:?}");
    assert_eq!(counts.get(&202).copied().unwrap_or(0), 3, "{counts:?}");

    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A verifier library (`signoff-verify`) following one node while the others revoke: each
/// revocation is refused by it within milliseconds of the revoking node's answer, a withdrawn
/// signing key too, and the node it follows paused past the verifier's budget makes it refuse
/// every token until the node runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_following_one_node_hears_the_revocations_of_the_others() {
    use signoff_verify::{Options, Verifier, VerifyError};
    let _serial = SERIAL.lock().await;
    let db = Database::create("signoff_cluster").await;
    let redis = Redis::start();
    let dir = temp_dir("cluster-verifier");
    let nodes: Vec<Node> = (0..3).map(|i| Node::start(&db.url, Some(&redis.url()), LEASE_MS, &dir, i)).collect();
    let http = client();
    wait_ready(&http, &nodes).await;
    let c = sign_up(&http, &nodes[0], "verifier@example.com").await;
    let client = send(
        http.post(format!("{}/admin/clients", nodes[1].base)).bearer_auth(ADMIN_KEY).json(&json!({"name": "api"})),
    )
    .await;
    assert_eq!(client.status, StatusCode::CREATED, "{}", client.json);
    let mut options = Options::new(
        &nodes[2].base,
        client.json["client_id"].as_str().expect("id"),
        client.json["client_secret"].as_str().expect("secret"),
    );
    // Given a node's own address: the issuer and audience (the public origin) come from signoff.
    options.stale_after = Duration::from_secs(3);
    let v = Verifier::start(options).await;
    let refused = |token: String, why: VerifyError| {
        let v = v.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if v.verify(&token).await == Err(why.clone()) {
                    return true;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            false
        }
    };

    let mut refresh = c.refresh.clone();
    let mut lags = Vec::new();
    for round in 0..200 {
        let node = &nodes[round % 2];
        let r = send(
            http.post(format!("{}/auth/token", node.base))
                .json(&json!({"grant_type": "refresh_token", "refresh_token": refresh})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        refresh = r.json["refresh_token"].as_str().expect("refresh").to_owned();
        let access = r.json["access_token"].as_str().expect("access").to_owned();
        assert!(v.verify(&access).await.is_ok(), "round {round}");
        let out = send(http.post(format!("{}/auth/revoke", node.base)).json(&json!({"token": access}))).await;
        assert_eq!(out.status, StatusCode::OK);
        let answered = Instant::now();
        assert!(refused(access, VerifyError::Revoked).await, "round {round}: still accepted 2 s after the revoke");
        lags.push(answered.elapsed().as_secs_f64() * 1000.0);
    }
    lags.sort_by(f64::total_cmp);
    println!(
        "verifier on node 2, revocations on nodes 0 and 1 (200): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99)
    );

    // A withdrawn signing key: its tokens die in the verifier too.
    let old = send(
        http.post(format!("{}/auth/token", nodes[0].base))
            .json(&json!({"grant_type": "password", "email": "verifier@example.com", "password": PASSWORD})),
    )
    .await;
    let old = old.json["access_token"].as_str().expect("token").to_owned();
    assert!(v.verify(&old).await.is_ok());
    cli(&db.url, &["keys", "rotate"]);
    cli(&db.url, &["keys", "revoke", &kid(&old)]);
    assert!(refused(old, VerifyError::InvalidToken("unknown key")).await, "a withdrawn key's token is refused");

    // The followed node paused past the budget: stale; continued: fresh again.
    let live = send(
        http.post(format!("{}/auth/token", nodes[1].base))
            .json(&json!({"grant_type": "password", "email": "verifier@example.com", "password": PASSWORD})),
    )
    .await;
    let live = live.json["access_token"].as_str().expect("token").to_owned();
    assert!(v.verify(&live).await.is_ok());
    nodes[2].signal("-STOP");
    let stopped = Instant::now();
    while v.verify(&live).await != Err(VerifyError::Stale) {
        assert!(
            stopped.elapsed() < Duration::from_secs(6),
            "still trusted {:?} after its node stopped",
            stopped.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nodes[2].signal("-CONT");
    let resumed = Instant::now();
    while v.verify(&live).await.is_err() {
        assert!(resumed.elapsed() < Duration::from_secs(10), "not trusted again after its node resumed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (stale_after, fresh_after) = (stopped.elapsed() - resumed.elapsed(), resumed.elapsed());
    println!("verifier: stale {stale_after:?} after its node stopped, fresh {fresh_after:?} after it resumed");
    v.close();
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A webhook receiver on loopback that holds every request until released, then answers 200;
/// it records each request's `webhook-id` and when it arrived.
struct HoldingReceiver {
    url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<(String, Instant)>>>,
    release: tokio::sync::watch::Sender<bool>,
}

async fn holding_receiver() -> HoldingReceiver {
    let got: std::sync::Arc<std::sync::Mutex<Vec<(String, Instant)>>> = Default::default();
    let (release, released) = tokio::sync::watch::channel(false);
    let seen = got.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let (seen, mut released) = (seen.clone(), released.clone());
        async move {
            let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            seen.lock().expect("lock").push((id, Instant::now()));
            let _ = released.wait_for(|r| *r).await;
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    HoldingReceiver { url, got, release }
}

/// Two nodes on PostgreSQL share one outbox. The first is killed (`kill -9`) while a webhook it
/// is sending is still unanswered: once its claim runs out the other node sends what it held
/// (the one in flight again, with the same `webhook-id`), and every notification arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_delivery_leaves_its_deliveries_to_the_other() {
    const CLAIM_SECONDS: u64 = 20;
    let _serial = SERIAL.lock().await;
    let db = Database::create("signoff_cluster").await;
    let dir = temp_dir("cluster-outbox");
    let claim = CLAIM_SECONDS.to_string();
    let extra = [("SIGNOFF_ALLOW_PRIVATE_CALLBACKS", "true"), ("SIGNOFF_DELIVERY_CLAIM_SECONDS", claim.as_str())];
    let first = Node::start_with(&db.url, None, LEASE_MS, &dir, 0, &extra);
    let http = client();
    wait_ready(&http, std::slice::from_ref(&first)).await;
    let r = holding_receiver().await;
    let registered = send(
        http.post(format!("{}/admin/clients", first.base))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": "hooks", "webhook_url": r.url})),
    )
    .await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.json);
    let client_id = registered.json["client_id"].as_str().expect("id").to_owned();
    sign_up(&http, &first, "outbox@example.com").await;
    let revoke_one = |node: &Node| {
        let (http, base) = (http.clone(), node.base.clone());
        async move {
            let grant = json!({"grant_type": "password", "email": "outbox@example.com", "password": PASSWORD});
            let t = send(http.post(format!("{base}/auth/token")).json(&grant)).await;
            assert_eq!(t.status, StatusCode::OK, "{}", t.json);
            let token = t.json["access_token"].as_str().expect("access").to_owned();
            let out = send(http.post(format!("{base}/auth/revoke")).json(&json!({"token": token}))).await;
            assert_eq!(out.status, StatusCode::OK, "{}", out.json);
        }
    };

    // Six revocations while the first node is alone: it claims their webhooks and starts
    // sending, and the receiver holds the first request unanswered.
    for _ in 0..6 {
        revoke_one(&first).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.got.lock().expect("lock").is_empty() {
        assert!(Instant::now() < deadline, "no delivery started:\n{}", first.tail_log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_flight: Vec<String> = r.got.lock().expect("lock").iter().map(|(id, _)| id.clone()).collect();
    let second = Node::start_with(&db.url, None, LEASE_MS, &dir, 1, &extra);
    wait_ready(&http, std::slice::from_ref(&second)).await;
    first.signal("-KILL");
    let killed = Instant::now();
    drop(first);
    // Six more through the survivor, then the receiver answers everything.
    for _ in 0..6 {
        revoke_one(&second).await;
    }
    r.release.send_replace(true);

    // All twelve arrive and are recorded delivered, the killed node's ones once its claim ran
    // out.
    let path = format!("{}/admin/clients/{client_id}/deliveries?limit=200", second.base);
    let deadline = Instant::now() + Duration::from_secs(CLAIM_SECONDS + 20);
    let mut list = json!(null);
    loop {
        list = send(http.get(&path).bearer_auth(ADMIN_KEY)).await.json;
        let d = list["deliveries"].as_array().cloned().unwrap_or_default();
        if d.len() == 12 && d.iter().all(|x| x["status"] == "delivered") {
            break;
        }
        assert!(Instant::now() < deadline, "not all delivered: {list}\n{}", second.tail_log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = r.got.lock().expect("lock").clone();
    let mut ids: Vec<&String> = got.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "every webhook arrived: {got:?}");
    let listed: Vec<&str> =
        list["deliveries"].as_array().expect("list").iter().filter_map(|d| d["id"].as_str()).collect();
    assert!(ids.iter().all(|id| listed.contains(&id.as_str())), "only the outbox's deliveries arrived");
    // What the killed node had in flight came again, from the survivor, after the claim.
    for id in &in_flight {
        let times: Vec<Instant> = got.iter().filter(|(g, _)| g == id).map(|(_, t)| *t).collect();
        assert_eq!(times.len(), 2, "{id} sent by the killed node and again by the survivor: {got:?}");
        // Not before the killed node's claim ran out (it was taken just before the first send).
        let waited = times[1] - times[0];
        assert!(waited >= Duration::from_secs(CLAIM_SECONDS - 1), "resent after {waited:?}, within the claim");
    }
    // Nothing else was sent twice: a live node's deliveries are made once.
    let repeats = got.iter().filter(|(id, _)| got.iter().filter(|(g, _)| g == id).count() > 1).count();
    assert_eq!(repeats, in_flight.len() * 2, "{got:?}");
    println!(
        "node killed mid-delivery: {} in flight resent by the survivor {:.1} s after the kill",
        in_flight.len(),
        got.iter()
            .filter(|(id, _)| in_flight.contains(id))
            .map(|(_, t)| *t)
            .max()
            .map_or(0.0, |t| (t - killed).as_secs_f64())
    );
}

/// The optional Redis gone: the nodes stay ready (hints go through PostgreSQL LISTEN/NOTIFY
/// beside Redis all along) and a revocation on one node is still refused by the others at once,
/// without waiting out a lease (which a lost hint would cost: a fence and about two seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_the_nodes_stay_ready_and_revocations_stay_fast() {
    let _serial = SERIAL.lock().await;
    let db = Database::create("signoff_cluster").await;
    let mut redis = Redis::start();
    let dir = temp_dir("cluster-redis-down");
    let nodes: Vec<Node> = (0..2).map(|i| Node::start(&db.url, Some(&redis.url()), LEASE_MS, &dir, i)).collect();
    let http = client();
    wait_ready(&http, &nodes).await;
    redis.stop();
    // Past a few of the listeners' pings (250 ms): both know Redis is gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for node in &nodes {
        let ready = send(http.get(format!("{}/readyz", node.base))).await;
        assert_eq!(ready.status, StatusCode::OK, "{}: {}", node.base, ready.json);
        assert!(ready.json["redis"].as_str().is_some_and(|r| r.contains("LISTEN/NOTIFY")), "{}", ready.json);
    }
    let mut lags = Vec::new();
    for round in 0..20 {
        let c = sign_up(&http, &nodes[round % 2], &format!("redis-down-{round}@example.com")).await;
        let other = &nodes[(round + 1) % 2];
        let me = |node: &Node, token: &str| http.get(format!("{}/api/me", node.base)).bearer_auth(token.to_owned());
        assert_eq!(send(me(other, &c.access)).await.status, StatusCode::OK);
        let started = Instant::now();
        let out =
            send(http.post(format!("{}/auth/revoke", nodes[round % 2].base)).json(&json!({"token": c.access}))).await;
        assert_eq!(out.status, StatusCode::OK, "round {round}: {}", out.json);
        lags.push(started.elapsed().as_secs_f64() * 1000.0);
        let refused = send(me(other, &c.access)).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "round {round}: the other node still accepts it");
    }
    lags.sort_by(f64::total_cmp);
    println!("redis down: revoke answered p50 {:.1} ms, max {:.1} ms", percentile(&lags, 0.5), lags[lags.len() - 1]);
    assert!(percentile(&lags, 0.5) < 500.0, "no fence and lease wait per revocation: {lags:?}");
    redis.resume();
    wait_ready(&http, &nodes).await;
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}
