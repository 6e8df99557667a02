//! What a logout sends, channel by channel: the back-channel logout token, the signed webhook, TLS, and one logout token per ended session id, whatever ended it.

use super::*;

#[tokio::test]
async fn a_logout_reaches_the_client_as_a_backchannel_logout_token_and_a_signed_webhook() {
    let s = server().await;
    let mut r = receiver().await;
    let (client_id, secret) = client(&s, &r).await;
    let mut b = s.signed_in("notify@example.com").await;
    let session = b.get_json("/auth/session").await.json();
    let (user, sid) = (
        session["user"]["id"].as_str().expect("u").to_owned(),
        session["session"]["id"].as_str().expect("s").to_owned(),
    );
    let csrf = session["csrf_token"].as_str().expect("csrf").to_owned();
    let rb = b
        .request(Method::POST, "/auth/logout")
        .header("x-csrf-token", csrf)
        .header("accept", "application/json")
        .json(&json!({}));
    assert_eq!(b.send(rb).await.status, StatusCode::OK);

    let mut got = [r.next(Duration::from_secs(5)).await, r.next(Duration::from_secs(5)).await];
    got.sort_by(|a, b| a.path.cmp(&b.path));
    let (bc, hook) = (&got[0], &got[1]);
    assert_eq!(bc.path, "/bc");
    assert_eq!(bc.headers["content-type"], "application/x-www-form-urlencoded");
    let (header, claims) = logout_token(&s, bc).await;
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(claims["iss"], s.origin.as_str());
    assert_eq!(claims["aud"], client_id.as_str());
    assert_eq!((claims["sub"].as_str(), claims["sid"].as_str()), (Some(user.as_str()), Some(sid.as_str())));
    assert_eq!(claims["events"], json!({"http://schemas.openid.net/event/backchannel-logout": {}}));
    assert!(claims.get("nonce").is_none());
    let (iat, exp) = (claims["iat"].as_i64().expect("iat"), claims["exp"].as_i64().expect("exp"));
    assert!(exp > iat && exp - iat <= 120, "short-lived: {iat}..{exp}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    assert_eq!(hook.path, "/hook");
    assert!(webhook_verified(&secret, hook), "Standard Webhooks signature");
    let body: Value = serde_json::from_str(&hook.body).expect("json");
    assert_eq!(body["type"], "session.ended");
    assert_eq!(body["data"], json!({"user_id": user, "session_id": sid, "reason": "logout"}));
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));

    // The same, checked by independent implementations: PyJWT and the Standard Webhooks
    // reference package.
    let interop = |client: String, secret: String| interop(&s, &got, client, secret, "backchannel,webhook");
    let out = interop(client_id.clone(), secret.clone())
        .await
        .expect("join")
        .expect("python3 runs (pip install pyjwt cryptography standardwebhooks)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("notify interop ok"), "{text}");
    // The checks can fail: another audience, another secret.
    let other_secret = format!("whsec_{}", STANDARD.encode([7u8; 32]));
    for (client, secret, why) in [
        ("someone-else".to_owned(), secret.clone(), "InvalidAudienceError"),
        (client_id.clone(), other_secret, "No matching signature found"),
    ] {
        let out = interop(client, secret).await.expect("join").expect("python3");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success() && text.contains(why), "refused for {why}: {text}");
    }

    // The admin view: both delivered, once each.
    let mut seen = json!(null);
    for _ in 0..50 {
        seen = admin(&s, Method::GET, &format!("/admin/clients/{client_id}/deliveries"), None).await.json();
        if seen["deliveries"].as_array().is_some_and(|d| d.len() == 2 && d.iter().all(|x| x["status"] == "delivered")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list = seen["deliveries"].as_array().expect("deliveries");
    assert_eq!(list.len(), 2, "{seen}");
    for d in list {
        assert_eq!(
            (d["status"].as_str(), d["attempts"].as_i64(), d["last_status_code"].as_i64()),
            (Some("delivered"), Some(1), Some(200)),
            "{d}"
        );
    }
    let kinds: Vec<_> = list.iter().map(|d| d["kind"].as_str().expect("kind")).collect();
    assert!(kinds.contains(&"backchannel_logout") && kinds.contains(&"webhook"));
    assert!(r.nothing_for(Duration::from_millis(300)).await, "nothing delivered twice");
    assert_eq!(admin(&s, Method::GET, "/admin/clients/nope/deliveries", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn each_client_gets_logout_tokens_in_the_algorithm_of_its_id_tokens() {
    let s = server().await;
    let mut r = receiver().await;
    // One receiver, a path per client: the default (EdDSA for a client without redirect URIs)
    // and the two it can ask for.
    let mut clients = Vec::new();
    for (path, alg) in [("/ed", None), ("/rs", Some("RS256")), ("/es", Some("ES256"))] {
        let mut body = json!({"client_name": path, "backchannel_logout_uri": format!("{}{path}", r.base)});
        if let Some(alg) = alg {
            body["id_token_signed_response_alg"] = json!(alg);
        }
        let res = admin(&s, Method::POST, "/admin/clients", Some(body)).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        assert_eq!(res.json()["id_token_signed_response_alg"], alg.unwrap_or("EdDSA"));
        clients.push((path, alg.unwrap_or("EdDSA"), res.json()["client_id"].as_str().expect("id").to_owned()));
    }
    let mut b = s.signed_in("algs@example.com").await;
    log_out(&mut b).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(r.next(Duration::from_secs(5)).await);
    }
    for (path, alg, client_id) in clients {
        let one: Vec<Received> = got.iter().filter(|g| g.path == path).cloned().collect();
        assert_eq!(one.len(), 1, "{path}");
        let (header, claims) = logout_token(&s, &one[0]).await;
        assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some(alg), Some("logout+jwt")), "{path}");
        assert_eq!(claims["aud"], client_id.as_str());
        // PyJWT, allowed this algorithm only, verifies it against the JWKS; allowed another, it
        // refuses.
        let other = if alg == "RS256" { "ES256" } else { "RS256" };
        for (allowed, ok) in [(alg, true), (other, false)] {
            let out = interop_as(&s, &one, client_id.clone(), String::new(), "backchannel", allowed)
                .await
                .expect("join")
                .expect("python3 runs (pip install pyjwt cryptography standardwebhooks)");
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            let verdict = if ok { "notify interop ok" } else { "The specified alg value is not allowed" };
            assert!(out.status.success() == ok && text.contains(verdict), "{path} as {allowed}: {text}");
        }
    }
}

#[tokio::test]
async fn an_https_callback_is_called_over_tls() {
    let s = server().await;
    // A bare TCP listener: what arrives first is a TLS ClientHello (record type 0x16), not HTTP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://127.0.0.1:{}/hook", listener.local_addr().expect("addr").port());
    let res = admin(&s, Method::POST, "/admin/clients", Some(json!({"name": "tls", "webhook_url": url}))).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let mut b = s.signed_in("tls@example.com").await;
    log_out(&mut b).await;
    let (mut socket, _) =
        tokio::time::timeout(Duration::from_secs(5), listener.accept()).await.expect("in time").expect("accept");
    let mut first = [0u8; 3];
    tokio::io::AsyncReadExt::read_exact(&mut socket, &mut first).await.expect("read");
    assert_eq!(first[0], 0x16, "a TLS handshake record, got {first:?}");
    assert_eq!(first[1], 0x03, "TLS version major 3");
}

#[tokio::test]
async fn a_password_change_announces_every_session_id_that_died_including_the_rotated_one() {
    let s = server().await;
    let mut r = receiver().await;
    let bc = json!({"name": "bc", "backchannel_logout_uri": format!("{}/bc", r.base)});
    let client_id =
        admin(&s, Method::POST, "/admin/clients", Some(bc)).await.json()["client_id"].as_str().expect("id").to_owned();
    let mut here = s.signed_in("rekey@example.com").await;
    let mut there = s.browser();
    there.login("rekey@example.com", PASSWORD).await;
    let sid = |v: Value| v["session"]["id"].as_str().expect("sid").to_owned();
    let (here_old, there_sid) =
        (sid(here.get_json("/auth/session").await.json()), sid(there.get_json("/auth/session").await.json()));
    let res = here
        .post_json(
            "/auth/password",
            &json!({"current_password": PASSWORD, "new_password": "an entirely new passphrase"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let here_new = sid(here.get_json("/auth/session").await.json());
    assert_ne!(here_new, here_old, "the current session moved to a new id");
    let mut announced = Vec::new();
    for _ in 0..2 {
        let got = r.next(Duration::from_secs(5)).await;
        let (_, claims) = logout_token(&s, &got).await;
        assert_eq!(claims["aud"], client_id.as_str());
        announced.push(claims["sid"].as_str().expect("sid").to_owned());
    }
    announced.sort();
    let mut expected = vec![here_old, there_sid];
    expected.sort();
    assert_eq!(announced, expected, "the other session and the old id of this one");
    assert!(r.nothing_for(Duration::from_millis(800)).await, "the live new id is not announced");
    assert_eq!(here.session_status().await, StatusCode::OK);
    all_delivered(&s, &client_id, 2).await;
}

/// Every way a session ends reaches a client as one logout token per ended session, with that
/// session's `sid`.
#[tokio::test]
async fn every_way_a_session_ends_sends_one_logout_token_per_ended_session() {
    let s = server().await;
    let mut r = receiver().await;
    let bc = json!({"name": "bc", "backchannel_logout_uri": format!("{}/bc", r.base)});
    assert_eq!(admin(&s, Method::POST, "/admin/clients", Some(bc)).await.status, StatusCode::CREATED);

    // Expiry (first: the clock moves on past every session's idle timeout).
    let mut b = s.signed_in("expiry@example.com").await;
    let sid = sid_of(&mut b).await;
    s.clock.advance(time::Duration::hours(11));
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(announced(&s, &mut r, 1, "expiry").await, vec![sid]);

    // Logout, each scope.
    let mut a = s.signed_in("scopes@example.com").await;
    let sid_a = sid_of(&mut a).await;
    log_out(&mut a).await;
    assert_eq!(announced(&s, &mut r, 1, "logout").await, vec![sid_a]);
    let mut a = another(&s, "scopes@example.com").await;
    let mut b = another(&s, "scopes@example.com").await;
    let (sid_a, sid_b) = (sid_of(&mut a).await, sid_of(&mut b).await);
    assert_eq!(a.post_json("/auth/logout", &json!({"scope": "others"})).await.status, StatusCode::OK);
    assert_eq!(announced(&s, &mut r, 1, "logout others").await, vec![sid_b]);
    let mut c = another(&s, "scopes@example.com").await;
    let sid_c = sid_of(&mut c).await;
    assert_eq!(a.post_json("/auth/logout", &json!({"scope": "global"})).await.status, StatusCode::OK);
    assert_eq!(announced(&s, &mut r, 2, "logout global").await, sorted(vec![sid_a, sid_c]));

    // Revoking one session from the device list.
    let mut a = s.signed_in("one@example.com").await;
    let mut b = another(&s, "one@example.com").await;
    let sid_b = sid_of(&mut b).await;
    let res = a.post_json(&format!("/auth/sessions/{sid_b}/revoke"), &json!({})).await;
    assert!(res.status.is_success(), "{}", res.text);
    assert_eq!(announced(&s, &mut r, 1, "revoke one").await, vec![sid_b]);

    // Password and e-mail change: every other session, and the current one's old id.
    for (email, path, body) in [
        (
            "pw@example.com",
            "/auth/password",
            json!({"current_password": PASSWORD, "new_password": "a fresh passphrase 42"}),
        ),
        ("mail@example.com", "/auth/email", json!({"current_password": PASSWORD, "new_email": "mail2@example.com"})),
    ] {
        let mut a = s.signed_in(email).await;
        let mut b = another(&s, email).await;
        let (old_a, sid_b) = (sid_of(&mut a).await, sid_of(&mut b).await);
        let mut res = a.post_json(path, &body).await;
        if path == "/auth/email" {
            // The change happens when the link mailed to the new address is used.
            assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text);
            let link = link_in(&s.inbox().wait_for("mail2@example.com", 1).await[0].text);
            res = a.post_json("/auth/email/confirm", &json!({"token": token_of(&link)})).await;
        }
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text);
        let new_a = sid_of(&mut a).await;
        assert_ne!(new_a, old_a, "{path}: the current session moved to a new id");
        assert_eq!(announced(&s, &mut r, 2, path).await, sorted(vec![old_a, sid_b]), "{path}");
    }

    // A security report ends every session of the user, the reporting one too.
    let mut a = s.signed_in("report@example.com").await;
    let mut b = another(&s, "report@example.com").await;
    let (sid_a, sid_b) = (sid_of(&mut a).await, sid_of(&mut b).await);
    let res = a.post_json("/auth/security-report", &json!({"details": "not me"})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(announced(&s, &mut r, 2, "security report").await, sorted(vec![sid_a, sid_b]));

    // A password reset through a mailed link: every session of the user.
    let mut a = s.signed_in("reset@example.com").await;
    let mut b = another(&s, "reset@example.com").await;
    let (sid_a, sid_b) = (sid_of(&mut a).await, sid_of(&mut b).await);
    let res = s.browser().post_json("/auth/password-reset", &json!({"email": "reset@example.com"})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let link = link_in(&s.inbox().wait_for("reset@example.com", 1).await[0].text);
    let body = json!({"token": token_of(&link), "new_password": "a brand new passphrase"});
    assert_eq!(s.browser().post_json("/auth/password-reset/confirm", &body).await.status, StatusCode::OK);
    assert_eq!(announced(&s, &mut r, 2, "password reset").await, sorted(vec![sid_a, sid_b]));

    // An admin's revoke.
    let mut a = s.signed_in("admin@example.com").await;
    let mut b = another(&s, "admin@example.com").await;
    let (sid_a, sid_b) = (sid_of(&mut a).await, sid_of(&mut b).await);
    let user = a.get_json("/auth/session").await.json()["user"]["id"].as_str().expect("user").to_owned();
    let res = admin(&s, Method::POST, &format!("/admin/users/{user}/revoke"), Some(json!({"reason": "x"}))).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(announced(&s, &mut r, 2, "admin revoke").await, sorted(vec![sid_a, sid_b]));

    // A refresh token presented again after it was rotated (theft): its session ends.
    s.register("reuse@example.com").await;
    let mut t = s.browser();
    let grant = json!({"grant_type": "password", "email": "reuse@example.com", "password": PASSWORD});
    let first = t.post_json("/auth/token", &grant).await.json();
    let access = first["access_token"].as_str().expect("access");
    let payload = URL_SAFE_NO_PAD.decode(access.split('.').nth(1).expect("payload")).expect("b64");
    let sid = serde_json::from_slice::<Value>(&payload).expect("claims")["sid"].as_str().expect("sid").to_owned();
    let old = first["refresh_token"].as_str().expect("refresh").to_owned();
    let rotate = json!({"grant_type": "refresh_token", "refresh_token": old});
    assert_eq!(t.post_json("/auth/token", &rotate).await.status, StatusCode::OK);
    s.clock.advance(time::Duration::minutes(1)); // past the racing-tabs grace
    let reuse = t.post_json("/auth/token", &rotate).await;
    assert_eq!((reuse.status, reuse.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert_eq!(announced(&s, &mut r, 1, "refresh reuse").await, vec![sid]);
}
