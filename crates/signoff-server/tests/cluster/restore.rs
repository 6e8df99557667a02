//! A database restored from a copy (`pg_dump`, then `pg_restore --clean`) under running nodes,
//! against the README's advice: the feed's positions go back, and the positions after the
//! copy's head are written again with other entries. A node that took one of those for an
//! entry it had applied would pass the revocation over and go on acknowledging it. The nodes
//! must find out, move the feed past every old position, reload, and refuse what is revoked
//! after the restore.

use super::*;
use sqlx::Connection as _;
use std::process::Command;

fn pg_tool(tool: &str, args: &[&str]) {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("{tool} must be installed: {e}"));
    assert!(out.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The feed's head as the database holds it.
async fn head(db: &Database) -> i64 {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query_scalar("SELECT seq FROM revocation_counter WHERE id = 1").fetch_one(&mut conn).await.expect("head")
}

/// A session of `email`'s: its cookie header and CSRF token.
async fn sign_in(http: &reqwest::Client, node: &Node, email: &str) -> (String, String) {
    let r =
        send(http.post(format!("{}/auth/login", node.base)).json(&json!({"email": email, "password": PASSWORD}))).await;
    assert_eq!(r.status, StatusCode::OK, "login: {}", r.json);
    let cookie = format!("{SESSION}={}", r.cookie(SESSION).expect("session cookie"));
    (cookie, r.json["csrf_token"].as_str().expect("csrf").to_owned())
}

/// Logs the session out through `node`, retrying while it answers 503 (a logout is idempotent).
async fn log_out(http: &reqwest::Client, node: &Node, (cookie, csrf): &(String, String)) {
    for _ in 0..20 {
        let r = send(
            http.post(format!("{}/auth/logout", node.base))
                .header("Cookie", cookie)
                .header("X-CSRF-Token", csrf)
                .json(&json!({})),
        )
        .await;
        if r.status != StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(r.status, StatusCode::OK, "logout through {}: {}", node.base, r.json);
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("logout through {} kept answering 503:\n{}", node.base, node.tail_log());
}

async fn me(http: &reqwest::Client, node: &Node, cookie: &str) -> StatusCode {
    send(http.get(format!("{}/api/me", node.base)).header("Cookie", cookie)).await.status
}

/// Takes a copy, moves the feed on past it (three sessions signed in and out), and restores the
/// copy with every node running. Returns the copy's head and the head the feed had reached.
async fn restore_under_the_nodes(http: &reqwest::Client, nodes: &[&Node], db: &Database, dump: &str) -> (i64, i64) {
    pg_tool("pg_dump", &["--format=custom", "--file", dump, "--dbname", &db.url]);
    let copied = head(db).await;
    for i in 0..3 {
        let session = sign_in(http, nodes[i % nodes.len()], "after-the-copy@example.com").await;
        log_out(http, nodes[(i + 1) % nodes.len()], &session).await;
    }
    let reached = head(db).await;
    assert!(reached >= copied + 3, "the feed ran past the copy: {copied} → {reached}");
    // A copy older than a lease: the lease rows it puts back have run out, so a revoker finds
    // no node there to fence.
    tokio::time::sleep(Duration::from_millis(LEASE_MS * 3 / 2)).await;
    pg_tool("pg_restore", &["--clean", "--if-exists", "--single-transaction", "--dbname", &db.url, dump]);
    // The nodes read the feed every 250 ms: one may have found it behind and moved it on already.
    let now = head(db).await;
    assert!(now == copied || now > reached + (1 << 31), "the restore put the feed back: {copied} → {reached} → {now}");
    (copied, reached)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_left_running_across_a_restore_refuse_what_is_revoked_after_it() {
    let _serial = SERIAL.lock().await;
    let db = Database::create("signoff_cluster").await;
    let dir = temp_dir("cluster-restore");
    let dump = dir.join("signoff.dump").to_string_lossy().into_owned();
    let redis = Redis::start();
    let nodes: Vec<Node> = (0..2).map(|i| Node::start(&db.url, Some(&redis.url()), LEASE_MS, &dir, i)).collect();
    let http = client();
    wait_ready(&http, &nodes).await;
    for email in ["alice@example.com", "after-the-copy@example.com"] {
        let r = send(
            http.post(format!("{}/auth/register", nodes[0].base)).json(&json!({"email": email, "password": PASSWORD})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "register: {}", r.json);
    }

    // A session in the copy, held live by both nodes; revoked after the restore through a node
    // that ran across it. Its logout is written at a position both nodes had applied.
    let kept = sign_in(&http, &nodes[0], "alice@example.com").await;
    for node in &nodes {
        assert_eq!(me(&http, node, &kept.0).await, StatusCode::OK, "warm on {}", node.base);
    }
    let (copied, reached) = restore_under_the_nodes(&http, &[&nodes[0], &nodes[1]], &db, &dump).await;
    for node in &nodes {
        assert_eq!(me(&http, node, &kept.0).await, StatusCode::OK, "the copy's session lives on {}", node.base);
    }
    let started = Instant::now();
    log_out(&http, &nodes[0], &kept).await;
    let took = started.elapsed();
    for node in &nodes {
        assert_eq!(
            me(&http, node, &kept.0).await,
            StatusCode::UNAUTHORIZED,
            "{} refuses the session once its logout after the restore answered",
            node.base
        );
    }
    let moved = head(&db).await;
    assert!(moved > reached + (1 << 31), "the feed moved past every old position: {copied} → {reached} → {moved}");
    println!("restore under running nodes: logout through a node that ran across it took {took:?}; head {moved}");

    // Again, with the session revoked through a node started after the restore. The running
    // nodes have found the feed behind them by then (they read it every 250 ms, and a node takes
    // longer to start), so the new node writes past the moved head; the running ones refuse the
    // session within moments of the answer.
    let kept = sign_in(&http, &nodes[1], "alice@example.com").await;
    for node in &nodes {
        assert_eq!(me(&http, node, &kept.0).await, StatusCode::OK, "warm on {}", node.base);
    }
    let (copied, _) = restore_under_the_nodes(&http, &[&nodes[0], &nodes[1]], &db, &dump).await;
    let fresh = Node::start(&db.url, Some(&redis.url()), LEASE_MS, &dir, 2);
    wait_ready(&http, std::slice::from_ref(&fresh)).await;
    log_out(&http, &fresh, &kept).await;
    let answered = Instant::now();
    for node in &nodes {
        loop {
            if me(&http, node, &kept.0).await == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(
                answered.elapsed() < Duration::from_secs(2),
                "{} still accepts a session logged out after the restore:\n{}",
                node.base,
                node.tail_log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    println!(
        "restore under running nodes: a logout through a node started after it was refused everywhere {:?} after its answer",
        answered.elapsed()
    );
    assert!(head(&db).await > copied + (1 << 31), "moved past the old positions again");
    // One node finds the feed behind it and moves it on; the others may find it moved past them.
    let logs: Vec<String> = nodes.iter().map(|n| std::fs::read_to_string(&n.log).unwrap_or_default()).collect();
    assert!(
        logs.iter().any(|log| log.contains("the revocation feed is behind this node")),
        "a node says what it found:\n{}",
        nodes[0].tail_log()
    );
    for (node, log) in nodes.iter().zip(&logs) {
        assert!(
            log.contains("the revocation feed is behind this node") || log.contains("moved past this node"),
            "{} says what it found:\n{}",
            node.base,
            node.tail_log()
        );
    }
    drop((nodes, fresh, redis));
    let _ = std::fs::remove_dir_all(&dir);
}
