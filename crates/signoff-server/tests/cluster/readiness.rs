//! Without Redis the nodes stay ready and revocations stay fast (LISTEN/NOTIFY carries the hints).

use super::*;

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
