//! What every node shares: rate limits counted atomically across nodes, and one set of signing keys.

use super::*;

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
