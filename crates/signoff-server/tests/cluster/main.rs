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

mod readiness;
mod relying;
mod restore;
mod shared;

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
    /// A registered client's Global Token Revocation of the user, by e-mail address.
    GlobalTokenRevoke,
}

impl Revocation {
    const ALL: [Revocation; 7] = [
        Self::GlobalLogout,
        Self::AdminRevoke,
        Self::PasswordChange,
        Self::RevokeRefreshToken,
        Self::RevokeTokenSession,
        Self::RevokeAccessToken,
        Self::GlobalTokenRevoke,
    ];

    /// Whether the browser's cookie and remember-me token die too (otherwise only the token
    /// session's access and refresh tokens do, and the cookie must still work).
    fn ends_browser(self) -> bool {
        matches!(self, Self::GlobalLogout | Self::AdminRevoke | Self::PasswordChange | Self::GlobalTokenRevoke)
    }

    /// Whether the browser's session itself ends (not rotated, as a password change does), so
    /// its open event streams on every node must hear `revoked`.
    fn ends_session(self) -> bool {
        matches!(self, Self::GlobalLogout | Self::AdminRevoke | Self::GlobalTokenRevoke)
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

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
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
async fn revoke(http: &reqwest::Client, node: &Node, kind: Revocation, c: &Credentials, gtr: &Basic) -> (f64, u64) {
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
            Revocation::GlobalTokenRevoke => http
                .post(format!("{}/global-token-revocation", node.base))
                .basic_auth(&gtr.0, Some(&gtr.1))
                .json(&json!({"sub_id": {"format": "email", "email": c.email}})),
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

/// A registered client's id and secret.
type Basic = (String, String);

/// Registers the client allowed to ask for Global Token Revocation.
async fn register_gtr_client(http: &reqwest::Client, node: &Node) -> Basic {
    let r = send(
        http.post(format!("{}/admin/clients", node.base))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": "upstream idp", "global_token_revocation": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "register the GTR client: {}", r.json);
    let field = |name: &str| r.json[name].as_str().expect(name).to_owned();
    (field("client_id"), field("client_secret"))
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
    let gtr = register_gtr_client(&http, &nodes[0]).await;
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
        // Every fault meets every kind of revocation in faults x kinds rounds: when the counts
        // share a factor a kind is kept for a whole cycle of faults; when they do not (8 and 7,
        // 5 and 7), stepping both each round pairs them all.
        let kinds = Revocation::ALL.len();
        let kind = if gcd(faults.len(), kinds) > 1 {
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
        let (ms, unavailable) = revoke(&http, &nodes[revoker], kind, &c, &gtr).await;
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
    // 8 faults and 7 kinds of revocation: each kind meets each fault.
    let mut t = scenario(true, 56).await;
    report("three nodes, PostgreSQL + Redis", &mut t);
    assert!(t.accepted.is_empty(), "revoked credentials accepted:\n{}", t.accepted.join("\n"));
    assert!(t.control_failures.is_empty(), "live credentials refused:\n{}", t.control_failures.join("\n"));
    assert!(t.checks >= 56 * 6, "every round probed every node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_without_redis_refuse_every_revoked_credential_through_faults() {
    let mut t = scenario(false, 20).await;
    report("three nodes, PostgreSQL only (LISTEN/NOTIFY)", &mut t);
    assert!(t.accepted.is_empty(), "revoked credentials accepted:\n{}", t.accepted.join("\n"));
    assert!(t.control_failures.is_empty(), "live credentials refused:\n{}", t.control_failures.join("\n"));
}

/// A webhook receiver on loopback that holds every request until released, then answers 200;
/// it records each request's `webhook-id` and when it arrived.
struct HoldingReceiver {
    url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<(String, Instant)>>>,
    release: tokio::sync::watch::Sender<bool>,
}
