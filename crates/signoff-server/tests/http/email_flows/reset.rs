//! Forgot password: a reset ends everything, a link works once and dies with any other change, requests are throttled.

use super::*;

#[tokio::test]
async fn a_password_reset_ends_every_session_and_token_this_browser_included() {
    let s = TestServer::start().await;
    let email = s.register("forgot@example.com").await;
    let mut here = s.browser();
    here.login(&email, PASSWORD).await;
    let here_cookie = here.session_cookie().cloned().expect("cookie");
    let mut there = s.browser();
    there.login(&email, PASSWORD).await;
    let mut kept = remembered(&s, &email).await;
    let pair = tokens(&s, &email).await;
    let there_events = listen(&there).await;

    // Known and unknown addresses get the same answer.
    let mut anon = s.browser();
    let known = anon.post_json("/auth/password-reset", &json!({"email": "Forgot@Example.com"})).await;
    let unknown = anon.post_json("/auth/password-reset", &json!({"email": "nobody@example.com"})).await;
    let garbage = anon.post_json("/auth/password-reset", &json!({"email": "not an address"})).await;
    for res in [&known, &unknown, &garbage] {
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text);
        assert_eq!(res.json(), json!({"status": "reset_requested"}));
    }
    let mail = s.inbox().wait_for(&email, 1).await;
    assert_eq!(mail[0].subject, "Reset your password");
    let link = link_in(&mail[0].text);
    assert!(link.starts_with(&format!("{}/auth/password-reset/confirm?token=", s.base)), "{link}");
    // The unknown address cost the same (an outbox row) and got nothing; the one that is no
    // address wrote nothing.
    assert_eq!(settled(&s, "nobody@example.com").await, vec![("mail.password_reset".into(), "skipped".into())]);
    assert!(s.inbox().to("nobody@example.com").is_empty());
    let resets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE event = 'mail.password_reset'")
        .fetch_one(&s.db().await)
        .await
        .expect("count");
    assert_eq!(resets, 2);
    let page = s.browser().get(&link[s.base.len()..]).await;
    assert!(page.text.contains("name=\"new_password\""), "{}", page.text);
    assert_eq!(here.session_status().await, StatusCode::OK, "asking and opening the page change nothing");

    // A weak password is refused and nothing changes; the link still works after.
    let weak = here
        .post_json("/auth/password-reset/confirm", &json!({"token": token_of(&link), "new_password": "password"}))
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", weak.text);
    assert_eq!(there.session_status().await, StatusCode::OK);

    let res = here
        .post_json(
            "/auth/password-reset/confirm",
            &json!({"token": token_of(&link), "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["status"], "password_reset");
    assert!(res.json()["revoked"].as_u64().is_some_and(|n| n >= 3), "{}", res.text);
    assert!(res.header("clear-site-data").is_some(), "this browser is told to forget the sign-in");
    assert!(here.session_cookie().is_none(), "this browser's cookies are cleared");
    here.jar.insert("__Host-signoff_session".into(), here_cookie);
    assert_eq!(here.session_status().await, StatusCode::UNAUTHORIZED, "and its session is dead on the server");
    // Every session, this browser's included, is dead on the very next request.
    for (name, b) in [("there", &mut there), ("remembered", &mut kept)] {
        assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED, "{name}");
    }
    assert_eq!(tokens_live(&s, &pair).await, (false, false), "access and refresh tokens died");
    assert_eq!(token_version(&s, &email).await, 1);
    assert_eq!(revoked(there_events).await["reason"], "password_reset");
    assert_eq!(login_status(&s, &email, PASSWORD).await, StatusCode::UNAUTHORIZED, "old password");
    let mut back = s.browser();
    assert_eq!(back.login(&email, "a brand new passphrase").await.status, StatusCode::OK);
    // Used once; the account hears the password was reset.
    let again = back
        .post_json(
            "/auth/password-reset/confirm",
            &json!({"token": token_of(&link), "new_password": "yet another passphrase"}),
        )
        .await;
    assert_eq!((again.status, again.json()["error"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_token")));
    let mail = s.inbox().wait_for(&email, 2).await;
    assert_eq!(mail[1].subject, "Your password was reset");
    assert!(!mail[1].text.contains("token="));
    let events = back.get_json("/auth/audit").await.json()["events"].clone();
    let kinds: Vec<&str> = events.as_array().expect("events").iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(kinds.contains(&"password_reset_requested") && kinds.contains(&"password_reset"), "{kinds:?}");
}

#[tokio::test]
async fn a_reset_link_dies_on_expiry_tampering_a_newer_link_and_any_other_password_change() {
    let s = TestServer::with(|c| {
        c.mail_token_ttl = time::Duration::seconds(600);
        c.throttle.password_reset_max_per_email = 100;
    })
    .await;
    let email = s.register("links@example.com").await;
    let invalid = |res: &Res| res.status == StatusCode::BAD_REQUEST && res.json()["error"] == "invalid_token";

    // Expired.
    let token = reset_token(&s, &email, 1).await;
    s.clock.advance(time::Duration::seconds(601));
    assert!(invalid(&reset_with(&s, &token).await), "expired");

    // Tampered, malformed, missing.
    let token = reset_token(&s, &email, 2).await;
    let mut flipped = token.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    for bad in [String::from_utf8(flipped).expect("ascii"), token[..42].to_owned(), format!("{token}x"), "%00".into()] {
        assert!(invalid(&reset_with(&s, &bad).await), "{bad}");
    }
    let res =
        s.browser().post_json("/auth/password-reset/confirm", &json!({"new_password": "a brand new passphrase"})).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);

    // Only the newest link works.
    let newest = reset_token(&s, &email, 3).await;
    assert!(invalid(&reset_with(&s, &token).await), "superseded");

    // The password changed by another path (signed in): the link dies.
    let mut b = s.browser();
    assert_eq!(b.login(&email, PASSWORD).await.status, StatusCode::OK);
    let res = b
        .post_json("/auth/password", &json!({"current_password": PASSWORD, "new_password": "changed the usual way"}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert!(invalid(&reset_with(&s, &newest).await), "outdated by a password change");

    // So does a link when every session is ended ("log out everywhere").
    let token = reset_token(&s, &email, 4).await;
    let mut b = s.browser();
    assert_eq!(b.login(&email, "changed the usual way").await.status, StatusCode::OK);
    assert!(b.post_json("/auth/logout", &json!({"scope": "global"})).await.status.is_success());
    assert!(invalid(&reset_with(&s, &token).await), "outdated by a global logout");
    // And an e-mail change link is dead once the password was reset.
    let mut b = s.browser();
    assert_eq!(b.login(&email, "changed the usual way").await.status, StatusCode::OK);
    let res = b
        .post_json(
            "/auth/email",
            &json!({"current_password": "changed the usual way", "new_email": "elsewhere@example.com"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let change = token_of(&link_in(&s.inbox().wait_for("elsewhere@example.com", 1).await[0].text));
    let reset = reset_token(&s, &email, 5).await;
    assert_eq!(reset_with(&s, &reset).await.status, StatusCode::OK);
    let res = s.browser().post_json("/auth/email/confirm", &json!({"token": change})).await;
    assert!(invalid(&res), "an e-mail change asked for before a reset does not survive it: {}", res.text);
    assert!(login_status(&s, "elsewhere@example.com", "a brand new passphrase").await == StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reset_requests_are_throttled_per_address_and_per_client() {
    let s = TestServer::with(|c| {
        c.trust_proxy = true;
        c.throttle.password_reset_max_per_email = 2;
        c.throttle.password_reset_max_per_ip = 4;
        c.throttle.password_reset_max_per_mailbox = 5;
    })
    .await;
    s.register("limited@example.com").await;
    let mut b = s.browser();
    for _ in 0..2 {
        assert_eq!(reset_from(&mut b, "192.0.2.1", "limited@example.com").await.status, StatusCode::ACCEPTED);
    }
    let res = reset_from(&mut b, "192.0.2.1", "limited@example.com").await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.json()["error"], "too_many_attempts");
    assert!(res.header("retry-after").is_some());
    // An address without an account counts alike (the limit tells nothing).
    for _ in 0..2 {
        assert_eq!(reset_from(&mut b, "192.0.2.1", "ghost@example.com").await.status, StatusCode::ACCEPTED);
    }
    assert_eq!(reset_from(&mut b, "192.0.2.1", "ghost@example.com").await.status, StatusCode::TOO_MANY_REQUESTS);
    // This client has asked four times: another address is refused too.
    assert_eq!(reset_from(&mut b, "192.0.2.1", "third@example.com").await.status, StatusCode::TOO_MANY_REQUESTS);
    // Someone else's requests do not lock the owner out of their own recovery: from the owner's
    // address the owner still gets a link (the outside review's finding 5).
    assert_eq!(reset_from(&mut b, "198.51.100.7", "limited@example.com").await.status, StatusCode::ACCEPTED);
    assert_eq!(s.inbox().wait_for("limited@example.com", 3).await.len(), 3);
    // But the mailbox as a whole has a cap, from every client together: no inbox is flooded.
    assert_eq!(reset_from(&mut b, "198.51.100.8", "limited@example.com").await.status, StatusCode::ACCEPTED);
    assert_eq!(reset_from(&mut b, "198.51.100.9", "limited@example.com").await.status, StatusCode::ACCEPTED);
    assert_eq!(
        reset_from(&mut b, "198.51.100.10", "limited@example.com").await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "five requests for one mailbox in an hour, from any clients, is the cap"
    );
    s.clock.advance(time::Duration::minutes(61));
    assert_eq!(reset_from(&mut b, "192.0.2.1", "limited@example.com").await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_reset_link_used_by_racing_requests_works_exactly_once() {
    let s = TestServer::with(|c| {
        c.throttle.password_reset_max_per_email = 100;
        c.throttle.password_reset_max_per_ip = 100;
    })
    .await;
    let email = s.register("race@example.com").await;
    for round in 1..=12 {
        let token = reset_token(&s, &email, round).await;
        let racers: Vec<_> = (0..3)
            .map(|i| {
                let (base, origin, token) = (s.base.clone(), s.origin.clone(), token.clone());
                tokio::spawn(async move {
                    let body = json!({"token": token, "new_password": format!("round {round} racer {i} passphrase")});
                    let res = reqwest::Client::new()
                        .post(format!("{base}/auth/password-reset/confirm"))
                        .header("origin", origin)
                        .header("accept", "application/json")
                        .json(&body)
                        .send()
                        .await
                        .expect("send");
                    (i, res.status())
                })
            })
            .collect();
        let mut won = Vec::new();
        for racer in racers {
            let (i, status) = racer.await.expect("racer");
            match status {
                StatusCode::OK => won.push(i),
                StatusCode::BAD_REQUEST => {}
                other => panic!("round {round}: racer {i} got {other}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: exactly one racer sets the password, not {won:?}");
        // The password is the winner's.
        let winner = format!("round {round} racer {} passphrase", won[0]);
        assert_eq!(login_status(&s, &email, &winner).await, StatusCode::OK, "round {round}");
    }
}
