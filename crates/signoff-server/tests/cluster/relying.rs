//! Relying services across nodes: a verifier following one node hears the others, and the outbox survives a node killed mid-delivery.

use super::*;

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
