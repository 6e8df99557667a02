//! Single logout to the apps a browser signed in to through the OpenID provider: when the
//! browser's sign-in ends, each app it signed in to, and only those, gets one back-channel logout
//! token with the `sid` its ID token carried; a rotation of the session (a password change) ends
//! no sign-in; services without redirect URIs keep hearing of every ended session.

use super::*;
use crate::oidc::{Rp, code, exchange, pkce, verified};

/// Signs browser `b` in to `rp` by the code flow; the ID token's claims.
async fn sign_in_to(s: &TestServer, b: &mut Browser, rp: &Rp) -> Value {
    let (verifier, challenge) = pkce();
    let c = code(b, rp, &challenge, &[]).await;
    let t = exchange(s, rp, &c, &verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    verified(s, t.json()["id_token"].as_str().expect("id token")).await.1
}

/// Everything the receiver gets within `d`, by path.
async fn gathered(r: &mut Receiver, d: Duration) -> Vec<Received> {
    let mut got = Vec::new();
    while let Ok(Some(one)) = tokio::time::timeout(d, r.got.recv()).await {
        got.push(one);
    }
    got
}

#[tokio::test]
async fn an_ended_sign_in_reaches_each_app_it_signed_in_to_once_by_its_sid_and_no_other() {
    let s = crate::relying::server(true).await;
    let mut r = receiver().await;
    let app = |path: &str| json!({"backchannel_logout_uri": format!("{}{path}", r.base)});
    let (a, b_app, unused) =
        (Rp::register(&s, app("/a")).await, Rp::register(&s, app("/b")).await, Rp::register(&s, app("/c")).await);
    // A service (no redirect URIs): today's behaviour, a logout token per ended session.
    let res = crate::relying::admin(
        &s,
        Method::POST,
        "/admin/clients",
        Some(json!({"name": "svc", "backchannel_logout_uri": format!("{}/s", r.base)})),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);

    let mut b = s.signed_in("single@example.com").await;
    let one = sign_in_to(&s, &mut b, &a).await;
    let two = sign_in_to(&s, &mut b, &b_app).await;
    assert_eq!(one["sid"], two["sid"], "one sign-in, two apps");
    let (user, sid) = (one["sub"].as_str().expect("sub").to_owned(), one["sid"].as_str().expect("sid").to_owned());

    // A password change rotates the session: the service hears the old session id end, the apps
    // nothing (their sign-in goes on).
    let old_session = sid_of(&mut b).await;
    let res = b
        .post_json(
            "/auth/password",
            &json!({"current_password": PASSWORD, "new_password": "another passphrase for the apps"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let got = gathered(&mut r, Duration::from_millis(800)).await;
    let paths: Vec<&str> = got.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(paths, vec!["/s"], "only the service hears of the rotation");
    let (_, claims) = logout_token(&s, &got[0]).await;
    assert_eq!(claims["sid"], old_session.as_str());

    // Signing out ends the sign-in: each app it signed in to gets one logout token with its sid.
    log_out(&mut b).await;
    let mut got = gathered(&mut r, Duration::from_millis(1500)).await;
    got.sort_by(|x, y| x.path.cmp(&y.path));
    let paths: Vec<&str> = got.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(paths, vec!["/a", "/b", "/s"], "the two apps and the service; never the unused app");
    for (g, rp) in got.iter().zip([&a, &b_app]) {
        let (header, claims) = logout_token(&s, g).await;
        assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("RS256"), Some("logout+jwt")));
        assert_eq!(claims["sid"].as_str(), Some(sid.as_str()), "{}", g.path);
        assert!(claims.get("sub").is_none(), "an app is told the sign-in, not the user: {}", g.path);
        assert_eq!(claims["aud"], rp.id.as_str());
    }
    let (_, svc) = logout_token(&s, &got[2]).await;
    assert_ne!(svc["sid"], sid.as_str(), "the service hears the session's id");
    assert_eq!(svc["sub"], user.as_str(), "and the user's");
    let unused_deliveries =
        crate::relying::admin(&s, Method::GET, &format!("/admin/clients/{}/deliveries", unused.id), None).await;
    assert_eq!(unused_deliveries.json()["deliveries"], json!([]));
}

#[tokio::test]
async fn signing_out_everywhere_elsewhere_or_one_device_ends_that_devices_app_sign_ins() {
    let s = crate::relying::server(true).await;
    let mut r = receiver().await;
    let rp = Rp::register(&s, json!({"backchannel_logout_uri": format!("{}/a", r.base)})).await;
    s.register("devices@example.com").await;
    let (mut laptop, mut phone, mut tablet) = (s.browser(), s.browser(), s.browser());
    for b in [&mut laptop, &mut phone, &mut tablet] {
        b.login("devices@example.com", PASSWORD).await;
    }
    let on_laptop = sign_in_to(&s, &mut laptop, &rp).await;
    let on_phone = sign_in_to(&s, &mut phone, &rp).await;
    assert_ne!(on_laptop["sid"], on_phone["sid"], "a sign-in per browser");
    // The device list shows, per device, the apps it signed in to (the tablet: none).
    let listed = tablet.get_json("/auth/sessions").await.json();
    let apps_of = |session: &str| -> Value {
        let list = listed["sessions"].as_array().expect("sessions");
        list.iter().find(|d| d["id"] == session).map(|d| d["apps"].clone()).unwrap_or_default()
    };
    let (laptop_id, tablet_id) = (sid_of(&mut laptop).await, sid_of(&mut tablet).await);
    assert_eq!(apps_of(&laptop_id), json!([{"client_id": rp.id, "name": "rp"}]));
    assert_eq!(apps_of(&tablet_id), json!([]));
    let page = tablet.get("/app/sessions").await;
    assert!(page.text.contains("Signed in to rp"), "the demo's device page names the apps");

    // The tablet ends the phone's session (revoke one): the phone's app sign-in ends, alone.
    let phone_session = sid_of(&mut phone).await;
    let csrf = tablet.get_json("/auth/session").await.json()["csrf_token"].as_str().expect("csrf").to_owned();
    let rb = tablet
        .request(Method::DELETE, &format!("/auth/sessions/{phone_session}"))
        .header("x-csrf-token", csrf)
        .header("accept", "application/json");
    let res = tablet.send(rb).await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
    let got = gathered(&mut r, Duration::from_millis(1500)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(logout_token(&s, &got[0]).await.1["sid"], on_phone["sid"]);

    // The tablet signs out everywhere else: the laptop's app sign-in ends.
    let csrf = tablet.get_json("/auth/session").await.json()["csrf_token"].as_str().expect("csrf").to_owned();
    let rb = tablet
        .request(Method::POST, "/auth/logout")
        .header("x-csrf-token", csrf)
        .header("accept", "application/json")
        .json(&json!({"scope": "others"}));
    assert_eq!(tablet.send(rb).await.status, StatusCode::OK);
    let got = gathered(&mut r, Duration::from_millis(1500)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(logout_token(&s, &got[0]).await.1["sid"], on_laptop["sid"]);
    assert_eq!(tablet.session_status().await, StatusCode::OK, "the tablet itself stays signed in");

    // An administrator revokes the account: the tablet's app sign-in ends too.
    let on_tablet = sign_in_to(&s, &mut tablet, &rp).await;
    let user = on_tablet["sub"].as_str().expect("sub");
    let res = crate::relying::admin(
        &s,
        Method::POST,
        &format!("/admin/users/{user}/revoke"),
        Some(json!({"reason": "test"})),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let got = gathered(&mut r, Duration::from_millis(1500)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(logout_token(&s, &got[0]).await.1["sid"], on_tablet["sid"]);
}

/// Signs browser `b` in to `rp`; the ID token itself.
async fn id_token_of(s: &TestServer, b: &mut Browser, rp: &Rp) -> String {
    let (verifier, challenge) = pkce();
    let c = code(b, rp, &challenge, &[]).await;
    let t = exchange(s, rp, &c, &verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    t.json()["id_token"].as_str().expect("id token").to_owned()
}

#[tokio::test]
async fn an_apps_logout_ends_the_sign_in_and_redirects_once_the_other_apps_were_told() {
    let s = crate::relying::server(true).await;
    let mut r = receiver().await;
    let bye = "https://rp.example/bye";
    let a = Rp::register(
        &s,
        json!({"backchannel_logout_uri": format!("{}/a", r.base), "post_logout_redirect_uris": [bye]}),
    )
    .await;
    let other = Rp::register(&s, json!({"backchannel_logout_uri": format!("{}/b", r.base)})).await;
    let mut b = s.signed_in("rp-logout@example.com").await;
    let hint = id_token_of(&s, &mut b, &a).await;
    let _ = id_token_of(&s, &mut b, &other).await;

    let q = format!("id_token_hint={}&post_logout_redirect_uri={}&state=bye-1", enc(&hint), enc(bye));
    let res = b.get(&format!("/oidc/logout?{q}")).await;
    assert_eq!(res.status, StatusCode::FOUND, "{}", res.text);
    assert_eq!(res.location(), Some(format!("{bye}?state=bye-1").as_str()));
    assert!(res.set_cookies().iter().any(|c| c.contains("Max-Age=0")), "the browser's cookies are cleared");
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED, "the session ended");
    // Both apps were told before the browser was sent back: their logout tokens are in already.
    let mut got = Vec::new();
    while let Ok(one) = r.got.try_recv() {
        got.push(one);
    }
    got.sort_by(|x, y| x.path.cmp(&y.path));
    let paths: Vec<&str> = got.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(paths, vec!["/a", "/b"], "delivered before the redirect");
    let (_, claims) = verified(&s, &hint).await;
    for g in &got {
        assert_eq!(logout_token(&s, g).await.1["sid"], claims["sid"]);
    }

    // An app that does not answer holds the redirect back no longer than the wait (2 s here);
    // its logout keeps being retried.
    let mut b = s.browser();
    b.login("rp-logout@example.com", PASSWORD).await;
    let hint = id_token_of(&s, &mut b, &a).await;
    let _ = id_token_of(&s, &mut b, &other).await;
    *r.hang.lock().expect("lock") = true;
    let started = std::time::Instant::now();
    let q = format!("id_token_hint={}&post_logout_redirect_uri={}", enc(&hint), enc(bye));
    let res = b.get(&format!("/oidc/logout?{q}")).await;
    let took = started.elapsed();
    assert_eq!((res.status, res.location()), (StatusCode::FOUND, Some(bye)));
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(8), "waited {took:?}");
}

#[tokio::test]
async fn a_sign_in_a_remembered_device_carries_on_ends_with_the_series_and_its_apps_are_told() {
    let s = crate::relying::server(true).await;
    let mut r = receiver().await;
    let rp = Rp::register(&s, json!({"backchannel_logout_uri": format!("{}/a", r.base)})).await;
    s.register("kept@example.com").await;
    let mut b = s.browser();
    let res = b
        .post_json("/auth/login", &json!({"email": "kept@example.com", "password": PASSWORD, "remember_me": true}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let claims = sign_in_to(&s, &mut b, &rp).await;

    // The session lapses (its absolute end passes) and is ended by the next request that meets
    // it; the remember-me series carries the sign-in on, so the app is told nothing.
    s.clock.advance(time::Duration::hours(11));
    let mut session_only = s.browser();
    session_only.jar = b.jar.clone();
    session_only.jar.remove(REMEMBER);
    assert_eq!(session_only.session_status().await, StatusCode::UNAUTHORIZED, "the session lapsed");
    assert!(r.nothing_for(Duration::from_millis(800)).await, "the sign-in goes on: no logout yet");

    // Signing out with the remember-me cookie alone ends the series, and with it the sign-in.
    let mut remembered = s.browser();
    remembered.jar = b.jar.clone();
    remembered.jar.remove(SESSION);
    let rb = remembered.request(Method::POST, "/auth/logout").header("accept", "application/json").json(&json!({}));
    let res = remembered.send(rb).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let got = r.next(Duration::from_secs(5)).await;
    assert_eq!(got.path, "/a");
    assert_eq!(logout_token(&s, &got).await.1["sid"], claims["sid"]);
}

#[tokio::test]
async fn an_apps_logout_reaches_a_browser_that_holds_only_its_remember_me_cookie() {
    let s = crate::relying::server(true).await;
    let mut r = receiver().await;
    let bye = "https://rp.example/bye";
    let rp = Rp::register(
        &s,
        json!({"backchannel_logout_uri": format!("{}/a", r.base), "post_logout_redirect_uris": [bye]}),
    )
    .await;
    s.register("restart@example.com").await;
    let mut b = s.browser();
    let res = b
        .post_json("/auth/login", &json!({"email": "restart@example.com", "password": PASSWORD, "remember_me": true}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let hint = id_token_of(&s, &mut b, &rp).await;
    // The browser restarts: the session cookie is gone, the remember-me cookie stays.
    b.jar.remove(SESSION);
    let q = format!("id_token_hint={}&post_logout_redirect_uri={}", enc(&hint), enc(bye));
    let res = b.get(&format!("/oidc/logout?{q}")).await;
    assert_eq!((res.status, res.location()), (StatusCode::FOUND, Some(bye)), "{}", res.text);
    assert!(res.set_cookies().iter().any(|c| c.starts_with(REMEMBER) && c.contains("Max-Age=0")), "forgotten");
    let got = r.next(Duration::from_secs(5)).await;
    assert_eq!(logout_token(&s, &got).await.1["sid"], verified(&s, &hint).await.1["sid"]);
    // Nothing signs the browser back in.
    let mut again = s.browser();
    again.jar = b.jar.clone();
    assert_eq!(again.session_status().await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn authorize_token_and_logout_on_different_nodes_serve_and_end_one_sign_in() {
    let a = crate::relying::server(true).await;
    let b = a.sibling_with(|c| c.allow_private_callbacks = true).await;
    let mut r = receiver().await;
    let bye = "https://rp.example/bye";
    let rp = Rp::register(
        &a,
        json!({"backchannel_logout_uri": format!("{}/a", r.base), "post_logout_redirect_uris": [bye]}),
    )
    .await;
    let mut on_a = a.signed_in("nodes-oidc@example.com").await;
    // The code from node A, redeemed at node B; a second use at node A revokes what B issued.
    let (verifier, challenge) = pkce();
    let c = code(&mut on_a, &rp, &challenge, &[]).await;
    let first = exchange(&b, &rp, &c, &verifier).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let again = exchange(&a, &rp, &c, &verifier).await;
    assert_eq!((again.status, again.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let access = first.json()["access_token"].as_str().expect("access").to_owned();
    // On node B too, once it has read the revocation feed (at once on PostgreSQL, which waits
    // for every node; within SQLite's poll, 250 ms, between processes).
    let mut probe = b.browser();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let rb = probe.bare(Method::GET, "/oidc/userinfo").header("authorization", format!("Bearer {access}"));
        if probe.send(rb).await.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "revoked on the node that issued it too");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // A fresh sign-in to the app; the app's logout goes to node B with node A's browser.
    let hint = id_token_of(&a, &mut on_a, &rp).await;
    let mut on_b = b.browser();
    on_b.jar = on_a.jar.clone();
    let q = format!("id_token_hint={}&post_logout_redirect_uri={}", enc(&hint), enc(bye));
    let res = on_b.get(&format!("/oidc/logout?{q}")).await;
    assert_eq!((res.status, res.location()), (StatusCode::FOUND, Some(bye)), "{}", res.text);
    let got = r.next(Duration::from_secs(5)).await;
    assert_eq!(logout_token(&a, &got).await.1["sid"], verified(&a, &hint).await.1["sid"]);
    // Node A too (within SQLite's poll between processes; at once on PostgreSQL).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while on_a.session_status().await != StatusCode::UNAUTHORIZED {
        assert!(std::time::Instant::now() < deadline, "ended on node A too");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The sids of the next `n` logout tokens the app at `/a` gets, sorted.
async fn told(s: &TestServer, r: &mut Receiver, n: usize, case: &str) -> Vec<String> {
    let mut sids = Vec::new();
    for _ in 0..n {
        let got = r.next(Duration::from_secs(5)).await;
        assert_eq!(got.path, "/a", "{case}");
        sids.push(logout_token(s, &got).await.1["sid"].as_str().expect("sid").to_owned());
    }
    assert!(r.nothing_for(Duration::from_millis(300)).await, "{case}: nothing more");
    sids.sort();
    sids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn every_other_way_a_browsers_sign_in_ends_tells_its_app() {
    let s = crate::relying::server(true).await;
    let mut r = receiver().await;
    let rp = Rp::register(&s, json!({"backchannel_logout_uri": format!("{}/a", r.base), "grant_types": ["authorization_code", "refresh_token"]})).await;
    let sid = |c: &Value| c["sid"].as_str().expect("sid").to_owned();

    // Expiry: the clock moves past the idle timeout; the sweep (or the next request) ends it.
    let mut b = s.signed_in("lapse@example.com").await;
    let lapsed = sid(&sign_in_to(&s, &mut b, &rp).await);
    s.clock.advance(time::Duration::hours(11));
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(told(&s, &mut r, 1, "expiry").await, vec![lapsed]);

    // An e-mail change: the other device's sign-in ends; this one's goes on (rotated).
    let mut a = s.signed_in("mail@example.com").await;
    let mut b = another(&s, "mail@example.com").await;
    let (_, other) = (sign_in_to(&s, &mut a, &rp).await, sid(&sign_in_to(&s, &mut b, &rp).await));
    let res =
        a.post_json("/auth/email", &json!({"current_password": PASSWORD, "new_email": "mail2@example.com"})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text);
    let link = link_in(&s.inbox().wait_for("mail2@example.com", 1).await[0].text);
    assert_eq!(a.post_json("/auth/email/confirm", &json!({"token": token_of(&link)})).await.status, StatusCode::OK);
    assert_eq!(told(&s, &mut r, 1, "e-mail change").await, vec![other]);

    // A security report and a password reset: every sign-in of the user.
    for case in ["security report", "password reset"] {
        let email = if case == "security report" { "report@example.com" } else { "reset@example.com" };
        let mut a = s.signed_in(email).await;
        let mut b = another(&s, email).await;
        let both = sorted(vec![sid(&sign_in_to(&s, &mut a, &rp).await), sid(&sign_in_to(&s, &mut b, &rp).await)]);
        if case == "security report" {
            assert_eq!(
                a.post_json("/auth/security-report", &json!({"details": "not me"})).await.status,
                StatusCode::OK
            );
        } else {
            let res = s.browser().post_json("/auth/password-reset", &json!({"email": email})).await;
            assert_eq!(res.status, StatusCode::ACCEPTED);
            let link = link_in(&s.inbox().wait_for(email, 1).await[0].text);
            let body = json!({"token": token_of(&link), "new_password": "a brand new passphrase"});
            assert_eq!(s.browser().post_json("/auth/password-reset/confirm", &body).await.status, StatusCode::OK);
        }
        assert_eq!(told(&s, &mut r, 2, case).await, both, "{case}");
    }

    // Theft of a remember-me token: the copied validator, presented after the grace, ends the
    // series and the session it carries, and so the sign-in.
    s.register("kept@example.com").await;
    let mut b = s.browser();
    let res = b
        .post_json("/auth/login", &json!({"email": "kept@example.com", "password": PASSWORD, "remember_me": true}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let kept = sid(&sign_in_to(&s, &mut b, &rp).await);
    let copied = b.jar.get(REMEMBER).cloned().expect("remember-me cookie");
    b.jar.remove(SESSION);
    assert_eq!(b.session_status().await, StatusCode::OK, "resumed: the validator rotates");
    s.clock.advance(time::Duration::seconds(30));
    let mut thief = s.browser();
    thief.jar.insert(REMEMBER.into(), copied);
    assert_eq!(thief.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(told(&s, &mut r, 1, "remember-me theft").await, vec![kept]);

    // The app's own refresh token presented again after it was rotated: theft, the session ends.
    let mut b = s.signed_in("refresh@example.com").await;
    let (verifier, challenge) = pkce();
    let c = code(&mut b, &rp, &challenge, &[]).await;
    let t = exchange(&s, &rp, &c, &verifier).await.json();
    let stolen = sid(&verified(&s, t["id_token"].as_str().expect("id")).await.1);
    let refresh = |token: String| {
        let (s, rp) = (&s, &rp);
        async move {
            let mut x = s.browser();
            let rb = x
                .bare(Method::POST, "/oidc/token")
                .header("authorization", rp.basic())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("grant_type=refresh_token&refresh_token={}", enc(&token)));
            x.send(rb).await
        }
    };
    let old = t["refresh_token"].as_str().expect("refresh").to_owned();
    assert_eq!(refresh(old.clone()).await.status, StatusCode::OK);
    s.clock.advance(time::Duration::minutes(1));
    assert_eq!(refresh(old).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(told(&s, &mut r, 1, "refresh reuse").await, vec![stolen]);
}
