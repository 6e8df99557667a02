//! Tokens that can die: grants, rotation, the reuse trap, every revocation path, restarts,
//! introspection, key rotation, and interoperability with an independent JWT library.

use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::task::JoinSet;

pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: String,
}

pub(crate) async fn grant(b: &mut Browser, email: &str) -> Tokens {
    let res =
        b.post_json("/auth/token", &json!({"grant_type": "password", "email": email, "password": PASSWORD})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    tokens_of(&res.json())
}

/// The tokens of a token response's body.
fn tokens_of(body: &Value) -> Tokens {
    assert_eq!(body["token_type"], "Bearer");
    Tokens {
        access: body["access_token"].as_str().expect("access").to_owned(),
        refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
    }
}

pub(crate) async fn refresh(b: &mut Browser, token: &str) -> Res {
    b.post_json("/auth/token", &json!({"grant_type": "refresh_token", "refresh_token": token})).await
}

/// `/api/me` with this access token: 200 while it is honoured.
async fn me(b: &mut Browser, access: &str) -> StatusCode {
    let rb = b.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {access}"));
    let res = b.send(rb).await;
    if res.status == StatusCode::UNAUTHORIZED {
        assert_eq!(res.header("www-authenticate"), Some("Bearer error=\"invalid_token\""));
        assert_eq!(res.json()["error"], "invalid_token", "no detail about which check failed");
    }
    res.status
}

fn part(token: &str, i: usize) -> Value {
    let raw = token.split('.').nth(i).expect("part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw).expect("b64")).expect("json")
}

async fn bearer_post(b: &mut Browser, path: &str, access: &str, body: Value) -> Res {
    let rb = b
        .bare(Method::POST, path)
        .header("authorization", format!("Bearer {access}"))
        .header("accept", "application/json")
        .json(&body);
    b.send(rb).await
}

#[tokio::test]
async fn password_grant_issues_an_eddsa_access_token_with_the_contract_claims() {
    let s = TestServer::start().await;
    s.register("tok@example.com").await;
    let mut b = s.browser();
    let res = b
        .post_json("/auth/token", &json!({"grant_type": "password", "email": "tok@example.com", "password": PASSWORD}))
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.json()["expires_in"], 900);
    assert!(res.set_cookies().is_empty(), "token clients get no cookie");
    let t = tokens_of(&res.json());
    assert_eq!(t.refresh.len(), 43, "an opaque 256-bit refresh token");
    let header = part(&t.access, 0);
    assert_eq!(header["alg"], "EdDSA");
    let claims = part(&t.access, 1);
    for c in ["iss", "sub", "aud", "iat", "exp", "jti", "sid", "tv"] {
        assert!(!claims[c].is_null(), "claim {c}");
    }
    assert_eq!(claims["iss"], s.origin.as_str());
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    assert_eq!(claims["tv"], 0);
    let jwks = b.get("/.well-known/jwks.json").await.json();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert_eq!(key["kid"], header["kid"]);
    assert!(key.get("d").is_none(), "never the private key");
    assert_eq!(me(&mut b, &t.access).await, StatusCode::OK);

    let bad = b
        .post_json(
            "/auth/token",
            &json!({"grant_type": "password", "email": "tok@example.com", "password": "wrong!!!"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"], "invalid_grant");
    let odd = b.post_json("/auth/token", &json!({"grant_type": "client_credentials"})).await;
    assert_eq!(odd.json()["error"], "unsupported_grant_type");
    // RFC 6749 clients send forms.
    let rb = b
        .bare(Method::POST, "/auth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=password&username=tok%40example.com&password={}", enc(PASSWORD)));
    assert_eq!(b.send(rb).await.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_rotates_and_a_rotated_token_is_a_theft_that_kills_the_family_and_session() {
    let s = TestServer::with(|c| c.tokens.reuse_grace = time::Duration::ZERO).await;
    s.register("rot@example.com").await;
    let mut b = s.browser();
    let first = grant(&mut b, "rot@example.com").await;
    let res = refresh(&mut b, &first.refresh).await;
    assert_eq!(res.status, StatusCode::OK);
    let second = tokens_of(&res.json());
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    assert_eq!(part(&second.access, 1)["sid"], part(&first.access, 1)["sid"], "same session");
    assert_eq!(me(&mut b, &second.access).await, StatusCode::OK);

    // The thief replays the rotated token.
    let res = refresh(&mut b, &first.refresh).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json()["error"], "invalid_grant");
    // The whole family and its session are gone: the legitimate holder is out too.
    assert_eq!(refresh(&mut b, &second.refresh).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(me(&mut b, &second.access).await, StatusCode::UNAUTHORIZED);
    let reuse: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE kind = 'refresh_token_reuse'")
        .fetch_one(&s.db().await)
        .await
        .expect("count");
    assert_eq!(reuse, 1);
    assert_eq!(refresh(&mut b, "garbage").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn two_racing_refreshes_cannot_both_win() {
    let s = TestServer::with(|c| c.tokens.reuse_grace = time::Duration::ZERO).await;
    s.register("race@example.com").await;
    let mut b = s.browser();
    let t = grant(&mut b, "race@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut c = s.browser();
        let token = t.refresh.clone();
        tasks.push(tokio::spawn(async move { refresh(&mut c, &token).await.status }));
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.expect("task") == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "exactly one of the racing refreshes wins");
}

#[tokio::test]
async fn the_grace_window_accepts_only_the_immediate_predecessor_briefly() {
    let s = TestServer::with(|c| c.tokens.reuse_grace = time::Duration::seconds(5)).await;
    s.register("grace@example.com").await;
    let mut b = s.browser();
    let t0 = grant(&mut b, "grace@example.com").await;
    let t1 = tokens_of(&refresh(&mut b, &t0.refresh).await.json());
    // A racing tab presents t0 again a moment later: honoured.
    let res = refresh(&mut b, &t0.refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(me(&mut b, &t1.access).await, StatusCode::OK);
    // Two steps back is never a race.
    let t2 = tokens_of(&refresh(&mut b, &t1.refresh).await.json());
    let res = refresh(&mut b, &t0.refresh).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(me(&mut b, &t2.access).await, StatusCode::UNAUTHORIZED, "theft revoked the session");

    let t0 = grant(&mut b, "grace@example.com").await;
    let t1 = tokens_of(&refresh(&mut b, &t0.refresh).await.json());
    s.clock.advance(time::Duration::seconds(6));
    assert_eq!(refresh(&mut b, &t0.refresh).await.status, StatusCode::BAD_REQUEST, "after the grace it is theft");
    assert_eq!(me(&mut b, &t1.access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_with_a_bearer_token_kills_it_and_the_refresh_family_on_the_next_request() {
    let s = TestServer::start().await;
    s.register("blog@example.com").await;
    let mut b = s.browser();
    let t = grant(&mut b, "blog@example.com").await;
    let other = grant(&mut b, "blog@example.com").await;
    let res = bearer_post(&mut b, "/auth/logout", &t.access, json!({"refresh_token": t.refresh})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"revoked": 1, "cleared": true}));
    assert_eq!(me(&mut b, &t.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&mut b, &t.refresh).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(me(&mut b, &other.access).await, StatusCode::OK, "another session's token lives on");
    let denied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM denied_tokens").fetch_one(&s.db().await).await.expect("n");
    assert_eq!(denied, 1, "the presented access token is denylisted until its expiry");
}

#[tokio::test]
async fn rfc7009_revocation_of_access_and_refresh_tokens() {
    let s = TestServer::start().await;
    s.register("rev@example.com").await;
    let mut b = s.browser();
    let t = grant(&mut b, "rev@example.com").await;
    for junk in ["", "not-a-token", "a.b.c"] {
        let res = b.post_json("/auth/revoke", &json!({"token": junk})).await;
        assert_eq!(res.status, StatusCode::OK, "200 for any token: {junk:?}");
    }
    // A misleading hint is not trusted.
    let res = b.post_json("/auth/revoke", &json!({"token": t.access, "token_type_hint": "refresh_token"})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(me(&mut b, &t.access).await, StatusCode::UNAUTHORIZED, "the very next request fails");
    let fresh = tokens_of(&refresh(&mut b, &t.refresh).await.json());
    assert_eq!(me(&mut b, &fresh.access).await, StatusCode::OK, "revoking the access token left the family");
    let rb = b
        .bare(Method::POST, "/auth/revoke")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", fresh.refresh));
    assert_eq!(b.send(rb).await.status, StatusCode::OK);
    assert_eq!(refresh(&mut b, &fresh.refresh).await.status, StatusCode::BAD_REQUEST, "the family is gone");
}

#[tokio::test]
async fn token_version_bumps_kill_every_older_token_at_once() {
    let s = TestServer::start().await;
    s.register("tv@example.com").await;
    let mut b = s.browser();
    let a = grant(&mut b, "tv@example.com").await;
    let c = grant(&mut b, "tv@example.com").await;
    // Global logout with a bearer token: every session, every token.
    let res = bearer_post(&mut b, "/auth/logout", &a.access, json!({"scope": "global"})).await;
    assert_eq!(res.json(), json!({"revoked": 2, "cleared": true}));
    assert_eq!(me(&mut b, &a.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&mut b, &c.access).await, StatusCode::UNAUTHORIZED);

    // A password change bumps the version too; tokens issued after it work.
    let mut web = s.browser();
    web.login("tv@example.com", PASSWORD).await;
    let d = grant(&mut b, "tv@example.com").await;
    assert_eq!(part(&d.access, 1)["tv"], 1);
    let res = web
        .post_json("/auth/password", &json!({"current_password": PASSWORD, "new_password": "another long passphrase"}))
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(me(&mut b, &d.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&mut b, &d.refresh).await.status, StatusCode::BAD_REQUEST, "refresh tokens are revoked too");
    let res = b
        .post_json(
            "/auth/token",
            &json!({"grant_type": "password", "email": "tv@example.com", "password": "another long passphrase"}),
        )
        .await;
    let e = tokens_of(&res.json());
    assert_eq!(part(&e.access, 1)["tv"], 2);
    assert_eq!(me(&mut b, &e.access).await, StatusCode::OK);
}

#[tokio::test]
async fn revoking_the_session_kills_its_tokens_and_expiry_is_enforced() {
    let s = TestServer::start().await;
    let mut web = s.signed_in("sess@example.com").await;
    let mut b = s.browser();
    let t = grant(&mut b, "sess@example.com").await;
    let sid = part(&t.access, 1)["sid"].as_str().expect("sid").to_owned();
    let rb = web
        .request(Method::DELETE, &format!("/auth/sessions/{sid}"))
        .header("x-csrf-token", web.csrf.clone().expect("csrf"));
    assert_eq!(web.send(rb).await.status, StatusCode::NO_CONTENT);
    assert_eq!(me(&mut b, &t.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&mut b, &t.refresh).await.status, StatusCode::BAD_REQUEST);

    let t = grant(&mut b, "sess@example.com").await;
    s.clock.advance(time::Duration::minutes(14));
    assert_eq!(me(&mut b, &t.access).await, StatusCode::OK);
    s.clock.advance(time::Duration::minutes(2));
    assert_eq!(me(&mut b, &t.access).await, StatusCode::UNAUTHORIZED, "expired");
}

#[tokio::test]
async fn a_revoked_token_stays_revoked_after_a_restart() {
    let s = TestServer::start().await;
    s.register("restart@example.com").await;
    let mut b = s.browser();
    let t = grant(&mut b, "restart@example.com").await;
    let live = grant(&mut b, "restart@example.com").await;
    b.post_json("/auth/revoke", &json!({"token": t.access})).await;
    assert_eq!(me(&mut b, &t.access).await, StatusCode::UNAUTHORIZED);
    let s = s.restart().await;
    let mut b = s.browser();
    assert_eq!(me(&mut b, &live.access).await, StatusCode::OK, "keys survive the restart");
    assert_eq!(me(&mut b, &t.access).await, StatusCode::UNAUTHORIZED, "the denylist survives the restart");
}

#[tokio::test]
async fn introspection_needs_the_admin_key_and_reports_liveness() {
    let key = "i".repeat(43);
    let s = TestServer::with(|c| c.admin_token = Some(signoff_server::config::AdminKey("i".repeat(43)))).await;
    s.register("intro@example.com").await;
    let mut b = s.browser();
    let t = grant(&mut b, "intro@example.com").await;
    let res = b.post_json("/auth/introspect", &json!({"token": t.access})).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let ask = |b: &Browser, token: &str| {
        b.bare(Method::POST, "/auth/introspect")
            .header("authorization", format!("Bearer {key}"))
            .json(&json!({"token": token}))
    };
    let res = b.send(ask(&b, &t.access)).await.json();
    assert_eq!(res["active"], true);
    for c in ["sub", "sid", "jti", "exp", "iat"] {
        assert!(!res[c].is_null(), "{c}");
    }
    let res = b.send(ask(&b, &t.refresh)).await.json();
    assert_eq!((res["active"].as_bool(), res["token_type"].as_str()), (Some(true), Some("refresh_token")));
    b.post_json("/auth/revoke", &json!({"token": t.access})).await;
    assert_eq!(b.send(ask(&b, &t.access)).await.json(), json!({"active": false}));
    assert_eq!(b.send(ask(&b, "nonsense")).await.json(), json!({"active": false}));
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key() {
    let s = TestServer::start().await;
    s.register("keys@example.com").await;
    let mut b = s.browser();
    let old = grant(&mut b, "keys@example.com").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(["keys", "rotate"])
        .env("SIGNOFF_DATABASE_URL", &s.db_url)
        .env("SIGNOFF_PUBLIC_URL", &s.origin)
        .env("SIGNOFF_LOG_LEVEL", "warn")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rotated: Value = serde_json::from_slice(&out.stdout).expect("json");
    let new_kid = rotated["kid"].as_str().expect("kid").to_owned();
    assert_eq!(rotated["keys"]["EdDSA"], new_kid.as_str(), "kid is the access-token key's");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("private"), "keys are never logged");
    // This server learns of the new key when it meets a token signed with it, or on its next
    // periodic reload; a restart here makes it pick the new key for signing at once.
    let s = s.restart().await;
    let mut b = s.browser();
    let new = grant(&mut b, "keys@example.com").await;
    assert_eq!(part(&new.access, 0)["kid"], new_kid.as_str());
    assert_ne!(part(&old.access, 0)["kid"], new_kid.as_str());
    assert_eq!(me(&mut b, &old.access).await, StatusCode::OK, "tokens of the previous key verify until they expire");
    assert_eq!(me(&mut b, &new.access).await, StatusCode::OK);
    // Every algorithm rotated: the JWKS has the old and the new key of each.
    let jwks = b.get("/.well-known/jwks.json").await.json();
    let keys = jwks["keys"].as_array().expect("keys");
    for alg in ["EdDSA", "RS256", "ES256"] {
        let of_alg: Vec<&str> =
            keys.iter().filter(|k| k["alg"] == alg).map(|k| k["kid"].as_str().expect("kid")).collect();
        assert_eq!(of_alg.len(), 2, "{alg}: {jwks}");
        assert!(of_alg.contains(&rotated["keys"][alg].as_str().expect("rotated")), "{alg}: {rotated}");
    }
    assert_eq!(keys.len(), 6);
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_holding_the_keys_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    // The embedded store's files (PostgreSQL keeps its own files private).
    let s = TestServer::on_sqlite().await;
    let path = s.db_url.trim_start_matches("sqlite://");
    for file in [path.to_owned(), format!("{path}-wal"), format!("{path}-shm")] {
        let mode = std::fs::metadata(&file).expect("db file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}: {mode:o}");
    }
}

#[tokio::test]
async fn an_independent_jwt_library_verifies_our_tokens_and_forgeries_are_refused() {
    let s = TestServer::start().await;
    s.register("interop@example.com").await;
    let mut b = s.browser();
    let t = grant(&mut b, "interop@example.com").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/jwt_interop.py");
    let base = s.base.clone();
    let access = t.access.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").args([script, &base, &access]).output()
    })
    .await
    .expect("join")
    .expect("python3 runs (PyJWT and cryptography must be installed: pip install pyjwt cryptography)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("interop ok"), "{text}");
    // An expired token is refused too.
    s.clock.advance(time::Duration::minutes(16));
    assert_eq!(me(&mut b, &t.access).await, StatusCode::UNAUTHORIZED);
}

// ---- Tokens under attack (the outside review, issue 8, items 1–7): refresh grace races,
// revocation of a grant, keys withdrawn from a running server; races count survivors.

#[tokio::test]
async fn the_refresh_grace_returns_the_same_successor_once_and_never_forks_the_family() {
    let s = TestServer::with(|c| c.tokens.reuse_grace = time::Duration::seconds(5)).await;
    let email = s.register("grace-rt@example.com").await;
    let mut b = s.browser();
    let mut t = grant(&mut b, &email).await;
    let http = client();
    for round in 0..3 {
        let (status, body) = refresh_once(http.clone(), s.base.clone(), t.refresh.clone()).await;
        assert_eq!(status, StatusCode::OK);
        let next = tokens_of(&body);
        let mut set = JoinSet::new();
        for _ in 0..RACERS {
            set.spawn(refresh_once(http.clone(), s.base.clone(), t.refresh.clone()));
        }
        let answers = set.join_all().await;
        let ok: Vec<&Value> = answers.iter().filter(|(st, _)| *st == StatusCode::OK).map(|(_, b)| b).collect();
        assert_eq!(ok.len(), 1, "round {round}: the predecessor was honoured {} times", ok.len());
        assert_eq!(ok[0]["refresh_token"], next.refresh.as_str(), "round {round}: the racer got the same successor");
        assert!(answers.iter().all(|(st, b)| *st == StatusCode::OK || b["error"] == "invalid_grant"));
        let family: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM refresh_tokens WHERE used_at IS NULL AND family_id = \
             (SELECT family_id FROM refresh_tokens ORDER BY created_at DESC LIMIT 1)",
        )
        .fetch_one(&s.db().await)
        .await
        .expect("count");
        assert_eq!(family, 1, "round {round}: one current token in the family");
        assert_eq!(bearer_status(&s, &next.access).await, StatusCode::OK);
        t = next;
    }
}

#[tokio::test]
async fn revoking_a_refresh_token_racing_grace_replays_leaves_nothing_alive_in_its_family() {
    let s = TestServer::with(|c| c.tokens.reuse_grace = time::Duration::seconds(5)).await;
    let email = s.register("race-rt@example.com").await;
    let http = client();
    for round in 0..3 {
        let mut b = s.browser();
        let t0 = grant(&mut b, &email).await;
        let (_, body) = refresh_once(http.clone(), s.base.clone(), t0.refresh.clone()).await;
        let t1 = tokens_of(&body);
        let mut set = JoinSet::new();
        for _ in 0..RACERS {
            set.spawn(refresh_once(http.clone(), s.base.clone(), t0.refresh.clone()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let res = b.post_json("/auth/revoke", &json!({"token": t1.refresh})).await;
        assert_eq!(res.status, StatusCode::OK);
        let answers = set.join_all().await;
        let mut handed_out: Vec<Tokens> =
            answers.iter().filter(|(st, _)| *st == StatusCode::OK).map(|(_, b)| tokens_of(b)).collect();
        handed_out.push(t1);
        for (i, t) in handed_out.iter().enumerate() {
            let (status, _) = refresh_once(http.clone(), s.base.clone(), t.refresh.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "round {round}: refresh token {i} outlived the revocation");
            assert_eq!(
                bearer_status(&s, &t.access).await,
                StatusCode::UNAUTHORIZED,
                "round {round}: access token {i} lives"
            );
        }
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM refresh_tokens").fetch_one(&s.db().await).await.expect("n");
        assert_eq!(left, 0, "round {round}: no token was inserted into the revoked family");
    }
}

#[tokio::test]
async fn rfc7009_revoking_a_refresh_token_kills_the_access_tokens_of_its_grant() {
    let s = TestServer::start().await;
    let email = s.register("grant@example.com").await;
    let mut b = s.browser();
    let t = grant(&mut b, &email).await;
    let other = grant(&mut b, &email).await;
    assert_eq!(bearer_status(&s, &t.access).await, StatusCode::OK);
    let res = b.post_json("/auth/revoke", &json!({"token": t.refresh, "token_type_hint": "refresh_token"})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(bearer_status(&s, &t.access).await, StatusCode::UNAUTHORIZED, "the grant's access token died with it");
    assert_eq!(bearer_status(&s, &other.access).await, StatusCode::OK, "another grant lives on");
}

fn cli(s: &TestServer, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(args)
        .env("SIGNOFF_DATABASE_URL", &s.db_url)
        .env("SIGNOFF_PUBLIC_URL", &s.origin)
        .env("SIGNOFF_LOG_LEVEL", "warn")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let raw = token.split('.').next().expect("header");
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).expect("b64"))
            .expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

async fn jwks_kids(s: &TestServer) -> Vec<String> {
    let mut b = s.browser();
    b.get("/.well-known/jwks.json").await.json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

#[tokio::test]
async fn key_rotation_and_withdrawal_reach_a_running_server_at_once() {
    let s = TestServer::start().await;
    let email = s.register("kid@example.com").await;
    let mut b = s.browser();
    let old = grant(&mut b, &email).await;
    let old_kid = kid_of(&old.access);
    let new_kid = cli(&s, &["keys", "rotate"])["kid"].as_str().expect("kid").to_owned();
    // The feed carries the rotation: within a poll or two the running server signs with it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let new = grant(&mut b, &email).await;
    assert_eq!(kid_of(&new.access), new_kid, "signs with the new key without a restart");
    assert!(jwks_kids(&s).await.contains(&new_kid));
    assert_eq!(bearer_status(&s, &old.access).await, StatusCode::OK, "the retired key still verifies its tokens");

    // The old key is compromised: withdraw it. Its tokens die everywhere, at once.
    let out = cli(&s, &["keys", "revoke", &old_kid]);
    assert_eq!(out["revoked"], old_kid.as_str());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(bearer_status(&s, &old.access).await, StatusCode::UNAUTHORIZED, "tokens of a withdrawn key are dead");
    assert_eq!(bearer_status(&s, &new.access).await, StatusCode::OK);
    assert!(!jwks_kids(&s).await.contains(&old_kid), "the JWKS no longer offers it");

    // Withdrawing the signing key itself puts a new one in its place.
    let out = cli(&s, &["keys", "revoke", &new_kid]);
    let replacement = out["new_signing_kid"].as_str().expect("replacement").to_owned();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(bearer_status(&s, &new.access).await, StatusCode::UNAUTHORIZED);
    let third = grant(&mut b, &email).await;
    assert_eq!(kid_of(&third.access), replacement);
    assert_eq!(bearer_status(&s, &third.access).await, StatusCode::OK);

    // The ID-token keys are withdrawn the same way, each replaced by one of its own algorithm,
    // and the access-token key is untouched.
    for alg in ["RS256", "ES256"] {
        let jwks = s.browser().get("/.well-known/jwks.json").await.json();
        let signing = |jwks: &Value| -> Vec<String> {
            let keys = jwks["keys"].as_array().expect("keys").iter();
            keys.filter(|k| k["alg"] == alg).map(|k| k["kid"].as_str().expect("kid").to_owned()).collect()
        };
        let before = signing(&jwks);
        let withdrawn = before.first().expect("a key of the algorithm").clone();
        let out = cli(&s, &["keys", "revoke", &withdrawn]);
        let replacement = out["new_signing_kid"].as_str().expect("replacement").to_owned();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let after = signing(&s.browser().get("/.well-known/jwks.json").await.json());
        assert!(after.contains(&replacement) && !after.contains(&withdrawn), "{alg}: {before:?} then {after:?}");
        assert_eq!(bearer_status(&s, &third.access).await, StatusCode::OK, "{alg}");
    }
}
