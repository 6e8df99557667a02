//! The OpenID provider through HTTP: discovery, the code flow with PKCE, single sign-on,
//! `prompt` and `max_age`, the token endpoint's grants and client authentication, UserInfo, ID
//! tokens checked by an independent library (PyJWT) in every algorithm, a sign-in's `sid` that
//! outlives a password change; and every refusal.

use crate::relying::{admin, server};
use crate::support::*;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest as _;

pub(crate) const REDIRECT: &str = "https://rp.example/callback";

/// A relying party registered with [`REDIRECT`].
pub(crate) struct Rp {
    pub(crate) id: String,
    secret: String,
}

impl Rp {
    pub(crate) async fn register(s: &TestServer, extra: Value) -> Self {
        let mut body = json!({"client_name": "rp", "redirect_uris": [REDIRECT, "https://rp.example/other"]});
        body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        let res = admin(s, Method::POST, "/admin/clients", Some(body)).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        let j = res.json();
        Rp { id: j["client_id"].as_str().expect("id").into(), secret: j["client_secret"].as_str().expect("s").into() }
    }

    pub(crate) fn basic(&self) -> String {
        format!("Basic {}", STANDARD.encode(format!("{}:{}", self.id, self.secret)))
    }
}

/// A PKCE verifier and its S256 challenge.
pub(crate) fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(signoff_core::secret::random_bytes::<32>());
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The authorization request's query for `rp`, with `extra` pairs replacing or adding to the
/// usual ones (an empty value leaves a pair out).
fn query(rp: &Rp, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &rp.id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        pairs.retain(|(name, _)| name != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// The query pairs of a redirect's `Location`.
fn location_pairs(res: &Res) -> (String, std::collections::HashMap<String, String>) {
    let location = res.location().unwrap_or_else(|| panic!("a redirect: {} {}", res.status, res.text));
    let url =
        url::Url::parse(location).or_else(|_| url::Url::parse("http://signoff.test").and_then(|b| b.join(location)));
    let url = url.expect("a URL");
    let base = format!("{}{}", url.origin().ascii_serialization(), url.path());
    (base, url.query_pairs().into_owned().collect())
}

/// Asks for a code as browser `b`; the redirect to the RP with it.
pub(crate) async fn code(b: &mut Browser, rp: &Rp, challenge: &str, extra: &[(&str, &str)]) -> String {
    let res = b.get(&format!("/oidc/authorize?{}", query(rp, challenge, extra))).await;
    assert_eq!(res.status, StatusCode::FOUND, "{}", res.text);
    let (base, pairs) = location_pairs(&res);
    let to = extra.iter().find(|(k, _)| *k == "redirect_uri").map_or(REDIRECT, |(_, v)| *v);
    assert_eq!(base, to, "{pairs:?}");
    pairs.get("code").unwrap_or_else(|| panic!("a code: {pairs:?}")).clone()
}

pub(crate) async fn exchange(s: &TestServer, rp: &Rp, code: &str, verifier: &str) -> Res {
    let mut b = s.browser();
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
        enc(code),
        enc(REDIRECT),
        enc(verifier)
    );
    let rb = b
        .bare(Method::POST, "/oidc/token")
        .header("authorization", rp.basic())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    b.send(rb).await
}

/// The claims of a JWT, its signature checked against the server's JWKS under its own alg.
pub(crate) async fn verified(s: &TestServer, token: &str) -> (Value, Value) {
    let jwks = s.browser().get("/.well-known/jwks.json").await.json();
    let keys = signoff_jwt::keys::public_keys_of_jwks(&jwks);
    let claims: Value =
        signoff_jwt::keys::verify_with(token, |kid| keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key.clone()))
            .expect("signed by a key of the JWKS");
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next().expect("header")).expect("b64");
    (serde_json::from_slice(&header).expect("json"), claims)
}

/// PyJWT's verdict on an ID token: `Ok` or its message. (Off the runtime's thread: the
/// script fetches the JWKS from the server this test runs.)
async fn pyjwt(s: &TestServer, token: &str, client: &str, alg: &str, nonce: &str) -> Result<(), String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/id_token_interop.py");
    let args: Vec<String> = [script, &format!("{}/.well-known/jwks.json", s.base), &s.origin, client, alg, nonce]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let token = token.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new("python3")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs (pip install pyjwt cryptography)");
        child.stdin.take().expect("stdin").write_all(token.as_bytes()).expect("write");
        child.wait_with_output().expect("wait")
    })
    .await
    .expect("join");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() && text.contains("id token interop ok") { Ok(()) } else { Err(text) }
}

#[tokio::test]
async fn the_code_flow_signs_a_browser_in_with_id_tokens_an_independent_library_verifies_in_every_algorithm() {
    let s = server(false).await;
    let discovery = s.browser().get("/.well-known/openid-configuration").await.json();
    assert_eq!(discovery["issuer"], s.origin.as_str());
    for (field, path) in [
        ("authorization_endpoint", "/oidc/authorize"),
        ("token_endpoint", "/oidc/token"),
        ("userinfo_endpoint", "/oidc/userinfo"),
        ("jwks_uri", "/.well-known/jwks.json"),
    ] {
        assert_eq!(discovery[field], format!("{}{path}", s.origin), "{field}");
    }
    assert_eq!(discovery["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(discovery["authorization_response_iss_parameter_supported"], true);

    let mut b = s.signed_in("oidc@example.com").await;
    let session = b.get_json("/auth/session").await.json();
    let user = session["user"]["id"].as_str().expect("user").to_owned();
    let mut sids = Vec::new();
    for alg in ["RS256", "ES256", "EdDSA"] {
        let rp = Rp::register(&s, json!({"id_token_signed_response_alg": alg})).await;
        let (verifier, challenge) = pkce();
        let res = b.get(&format!("/oidc/authorize?{}", query(&rp, &challenge, &[]))).await;
        assert_eq!(res.status, StatusCode::FOUND, "{}", res.text);
        assert_eq!(res.header("cache-control"), Some("no-store"));
        let (base, pairs) = location_pairs(&res);
        assert_eq!(base, REDIRECT);
        assert_eq!((pairs["state"].as_str(), pairs["iss"].as_str()), ("st-123", s.origin.as_str()), "RFC 9207");
        let res = exchange(&s, &rp, &pairs["code"], &verifier).await;
        assert_eq!(res.status, StatusCode::OK, "{alg}: {}", res.text);
        assert_eq!(res.header("cache-control"), Some("no-store"));
        let t = res.json();
        assert_eq!(t["token_type"], "Bearer");
        assert!(t["refresh_token"].as_str().is_some(), "a relying party has the refresh_token grant by default");
        let id_token = t["id_token"].as_str().expect("id_token");
        let (header, claims) = verified(&s, id_token).await;
        assert_eq!(header["alg"], alg);
        assert_eq!((claims["iss"].as_str(), claims["aud"].as_str()), (Some(s.origin.as_str()), Some(rp.id.as_str())));
        assert_eq!((claims["sub"].as_str(), claims["nonce"].as_str()), (Some(user.as_str()), Some("n-456")));
        assert_eq!(claims["email"], "oidc@example.com");
        assert_eq!(claims["email_verified"], false, "signoff does not confirm addresses at registration");
        assert!(claims["auth_time"].as_i64().expect("auth_time") <= claims["iat"].as_i64().expect("iat"));
        sids.push(claims["sid"].as_str().expect("sid").to_owned());
        pyjwt(&s, id_token, &rp.id, alg, "n-456").await.unwrap_or_else(|e| panic!("{alg}: PyJWT refused: {e}"));
        // The checks can fail: another nonce, another audience, another algorithm.
        let other = if alg == "RS256" { "ES256" } else { "RS256" };
        for (client, alg, nonce) in
            [(rp.id.as_str(), alg, "n-other"), ("someone", alg, "n-456"), (&rp.id, other, "n-456")]
        {
            let verdict = pyjwt(&s, id_token, client, alg, nonce).await;
            let why = verdict.expect_err("refused");
            assert!(
                ["nonce", "InvalidAudienceError", "InvalidAlgorithmError"].iter().any(|w| why.contains(w)),
                "{client} {alg} {nonce}: {why}"
            );
        }

        // The access token is signoff's own: UserInfo (GET and POST) and the API take it.
        let access = t["access_token"].as_str().expect("access");
        for method in [Method::GET, Method::POST] {
            let mut c = s.browser();
            let rb = c.bare(method, "/oidc/userinfo").header("authorization", format!("Bearer {access}"));
            let info = c.send(rb).await;
            assert_eq!(info.status, StatusCode::OK, "{}", info.text);
            assert_eq!(info.json(), json!({"sub": user, "email": "oidc@example.com", "email_verified": false}));
        }
        // The app's token is the app's: it names the app, and signoff's gateway and logout
        // take it for nobody (the browser stays signed in).
        assert_eq!(verified(&s, access).await.1["client_id"], rp.id.as_str());
        let mut c = s.browser();
        let rb = c.bare(Method::GET, "/authz/auth-request").header("authorization", format!("Bearer {access}"));
        assert_eq!(c.send(rb).await.status, StatusCode::UNAUTHORIZED, "not a pass to the other apps");
        let rb = c.bare(Method::GET, "/auth/events").header("authorization", format!("Bearer {access}"));
        assert_eq!(c.send(rb).await.status, StatusCode::UNAUTHORIZED, "nor a watch on the browser's session");
        let rb =
            c.bare(Method::POST, "/auth/logout").header("authorization", format!("Bearer {access}")).json(&json!({}));
        let _ = c.send(rb).await;
        assert_eq!(b.session_status().await, StatusCode::OK, "an app's token ends no sign-in");
        let mut c = s.browser();
        let rb = c.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {access}"));
        assert_eq!(c.send(rb).await.status, StatusCode::OK, "signoff's demo API takes it");
        // Refreshed at the OpenID token endpoint by this client only; signoff's own endpoint
        // and another client get invalid_grant.
        let refresh = t["refresh_token"].as_str().expect("refresh").to_owned();
        let mut c = s.browser();
        let other_rp = Rp::register(&s, json!({})).await;
        for (who, basic) in [("another client", other_rp.basic())] {
            let rb = c
                .bare(Method::POST, "/oidc/token")
                .header("authorization", basic)
                .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())]);
            let res = c.send(rb).await;
            assert_eq!(
                (res.status, res.json()["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_grant")),
                "{who}"
            );
        }
        let own = c.post_json("/auth/token", &json!({"grant_type": "refresh_token", "refresh_token": refresh})).await;
        assert_eq!((own.status, own.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
        let rb = c
            .bare(Method::POST, "/oidc/token")
            .header("authorization", rp.basic())
            .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())]);
        let res = c.send(rb).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        let rotated = res.json()["refresh_token"].as_str().expect("refresh").to_owned();
        assert_ne!(rotated, refresh, "rotated");
        // Revoking the app's refresh token ends the app's grant, not the browser's sign-in.
        let res = c.post_json("/auth/revoke", &json!({"token": rotated})).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        assert_eq!(b.session_status().await, StatusCode::OK, "the browser is still signed in");
        let rb = c
            .bare(Method::POST, "/oidc/token")
            .header("authorization", rp.basic())
            .form(&[("grant_type", "refresh_token"), ("refresh_token", rotated.as_str())]);
        assert_eq!(c.send(rb).await.status, StatusCode::BAD_REQUEST, "the grant is over");
    }
    assert!(sids.windows(2).all(|w| w[0] == w[1]), "one browser, one sign-in: {sids:?}");
}

#[tokio::test]
async fn a_second_app_signs_in_without_a_password_and_prompt_none_without_a_session_is_login_required() {
    let s = server(false).await;
    let (first, second) = (Rp::register(&s, json!({})).await, Rp::register(&s, json!({})).await);
    s.register("sso@example.com").await;
    let mut b = s.browser();
    let (verifier, challenge) = pkce();

    // Not signed in: prompt=none comes back with login_required (state and iss too); without
    // it, the sign-in page, which returns to the request.
    let res = b.get(&format!("/oidc/authorize?{}", query(&first, &challenge, &[("prompt", "none")]))).await;
    let (base, pairs) = location_pairs(&res);
    assert_eq!((base.as_str(), pairs["error"].as_str()), (REDIRECT, "login_required"));
    assert_eq!((pairs["state"].as_str(), pairs["iss"].as_str()), ("st-123", s.origin.as_str()));
    assert!(!pairs.contains_key("code"));
    let res = b.get(&format!("/oidc/authorize?{}", query(&first, &challenge, &[]))).await;
    let (base, pairs) = location_pairs(&res);
    assert_eq!(base, "http://signoff.test/login", "{pairs:?}");
    let back = pairs["return_to"].clone();
    assert!(back.starts_with("/oidc/authorize?"), "{back}");
    // Browsers apply the sign-in page's form-action to every redirect of its submission: the
    // page lets its form lead on to the app (Chromium blocks the sign-in otherwise).
    let page = b.get(res.location().expect("to the sign-in page")).await;
    let csp = page.header("content-security-policy").expect("csp").to_owned();
    assert!(csp.contains("form-action 'self' https://rp.example;"), "{csp}");
    let plain = b.get("/login").await;
    assert!(plain.header("content-security-policy").is_some_and(|c| c.contains("form-action 'self';")));
    let login =
        b.post_form("/auth/login", &[("email", "sso@example.com"), ("password", PASSWORD), ("return_to", &back)]).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.text);
    let res = b.get(login.location().expect("back to the request")).await;
    let (base, pairs) = location_pairs(&res);
    assert_eq!(base, REDIRECT, "{pairs:?}");
    let t = exchange(&s, &first, &pairs["code"], &verifier).await.json();
    let (_, one) = verified(&s, t["id_token"].as_str().expect("id")).await;

    // The second app: straight back with a code, no password asked; the same sign-in.
    let (verifier, challenge) = pkce();
    let code = code(&mut b, &second, &challenge, &[("prompt", "none")]).await;
    let t = exchange(&s, &second, &code, &verifier).await.json();
    let (_, two) = verified(&s, t["id_token"].as_str().expect("id")).await;
    assert_eq!(one["sid"], two["sid"]);
    assert_eq!(one["auth_time"], two["auth_time"], "no new authentication");
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_the_password_again_and_keep_the_sign_in() {
    let s = server(false).await;
    let rp = Rp::register(&s, json!({})).await;
    let mut b = s.signed_in("again@example.com").await;
    let (verifier, challenge) = pkce();
    let code1 = code(&mut b, &rp, &challenge, &[]).await;
    let (_, before) =
        verified(&s, exchange(&s, &rp, &code1, &verifier).await.json()["id_token"].as_str().expect("id")).await;

    for extra in [("prompt", "login"), ("max_age", "1"), ("max_age", "0")] {
        s.clock.advance(time::Duration::seconds(2));
        let (verifier, challenge) = pkce();
        let res = b.get(&format!("/oidc/authorize?{}", query(&rp, &challenge, &[extra]))).await;
        let (base, pairs) = location_pairs(&res);
        assert_eq!(base, "http://signoff.test/login", "{extra:?}: {pairs:?}");
        assert_eq!(pairs.get("reauth").map(String::as_str), Some("1"));
        let back = pairs["return_to"].clone();
        // The page asks this account's password again, though the browser is signed in.
        let page = b.get(&format!("/login?reauth=1&return_to={}", enc(&back))).await;
        assert!(
            page.text.contains("enter your password again") && page.text.contains("again@example.com"),
            "{}",
            page.text
        );
        // Going back without signing in again asks again: no loop that hands out a code.
        let res = b.get(&back).await;
        let (base, _) = location_pairs(&res);
        assert_eq!(base, "http://signoff.test/login", "{extra:?}: still no code");
        s.clock.advance(time::Duration::seconds(2));
        let login = b
            .post_form("/auth/login", &[("email", "again@example.com"), ("password", PASSWORD), ("return_to", &back)])
            .await;
        assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.text);
        // The way back takes longer than max_age: the password was entered all the same.
        s.clock.advance(time::Duration::seconds(3));
        let res = b.get(login.location().expect("back")).await;
        let (base, pairs) = location_pairs(&res);
        assert_eq!(base, REDIRECT, "{extra:?}: {pairs:?}");
        let t = exchange(&s, &rp, &pairs["code"], &verifier).await.json();
        let (_, after) = verified(&s, t["id_token"].as_str().expect("id")).await;
        assert_eq!(after["sid"], before["sid"], "{extra:?}: the password entered again keeps the sign-in");
        assert!(after["auth_time"].as_i64() > before["auth_time"].as_i64(), "{extra:?}: a new authentication");
    }
}

#[tokio::test]
async fn the_sign_in_outlives_a_password_change_that_rotates_the_session() {
    let s = server(false).await;
    let rp = Rp::register(&s, json!({})).await;
    let mut b = s.signed_in("rotate@example.com").await;
    let (verifier, challenge) = pkce();
    let code1 = code(&mut b, &rp, &challenge, &[]).await;
    let (_, before) =
        verified(&s, exchange(&s, &rp, &code1, &verifier).await.json()["id_token"].as_str().expect("id")).await;
    let old_session = b.get_json("/auth/session").await.json()["session"]["id"].clone();
    let res = b
        .post_json(
            "/auth/password",
            &json!({"current_password": PASSWORD, "new_password": "a brand new passphrase for this"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_ne!(b.get_json("/auth/session").await.json()["session"]["id"], old_session, "the session was rotated");
    let (verifier, challenge) = pkce();
    let code2 = code(&mut b, &rp, &challenge, &[("prompt", "none")]).await;
    let (_, after) =
        verified(&s, exchange(&s, &rp, &code2, &verifier).await.json()["id_token"].as_str().expect("id")).await;
    assert_eq!(before["sid"], after["sid"]);
}

#[tokio::test]
async fn an_unknown_client_or_a_redirect_uri_not_registered_exactly_gets_a_page_never_a_redirect() {
    let s = server(false).await;
    let rp = Rp::register(&s, json!({})).await;
    let mut b = s.signed_in("page@example.com").await;
    let (_, challenge) = pkce();
    for (case, extra) in [
        ("unknown client", ("client_id", "nope")),
        ("no client", ("client_id", "")),
        ("no redirect_uri", ("redirect_uri", "")),
        ("another site", ("redirect_uri", "https://evil.example/callback")),
        ("a trailing slash", ("redirect_uri", "https://rp.example/callback/")),
        ("another case", ("redirect_uri", "https://RP.example/callback")),
        ("an added query", ("redirect_uri", "https://rp.example/callback?x=1")),
        ("a fragment", ("redirect_uri", "https://rp.example/callback#x")),
        ("http for https", ("redirect_uri", "http://rp.example/callback")),
    ] {
        let q = query(&rp, &challenge, &[extra]);
        for accept in ["application/json", "text/html"] {
            let rb = b.request(Method::GET, &format!("/oidc/authorize?{q}")).header("accept", accept);
            let res = b.send(rb).await;
            assert_eq!(res.status, StatusCode::BAD_REQUEST, "{case} ({accept}): {}", res.text);
            assert!(res.location().is_none(), "{case}: never a redirect");
            assert!(!res.text.contains("code="), "{case}");
        }
    }
    // A redirect_uri given twice (the registered one, then another) is refused here too.
    let twice =
        format!("/oidc/authorize?{}&redirect_uri={}", query(&rp, &challenge, &[]), enc("https://evil.example/cb"));
    let res = b.get(&twice).await;
    assert_eq!((res.status, res.location()), (StatusCode::BAD_REQUEST, None));
}

#[tokio::test]
async fn every_other_refusal_goes_back_to_the_registered_uri_with_state_and_iss() {
    let s = server(false).await;
    let rp = Rp::register(&s, json!({})).await;
    let mut b = s.signed_in("refuse@example.com").await;
    let (_, challenge) = pkce();
    let plain = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    for (case, extra, error) in [
        ("no PKCE", vec![("code_challenge", ""), ("code_challenge_method", "")], "invalid_request"),
        ("plain PKCE", vec![("code_challenge", plain), ("code_challenge_method", "plain")], "invalid_request"),
        ("no method (plain by default)", vec![("code_challenge_method", "")], "invalid_request"),
        ("a short challenge", vec![("code_challenge", "abc")], "invalid_request"),
        ("an implicit flow", vec![("response_type", "id_token")], "unsupported_response_type"),
        ("a hybrid flow", vec![("response_type", "code id_token")], "unsupported_response_type"),
        ("no openid scope", vec![("scope", "email")], "invalid_scope"),
        ("a request object", vec![("request", "eyJ.x.y")], "request_not_supported"),
        ("none with login", vec![("prompt", "none login")], "invalid_request"),
        ("a bad max_age", vec![("max_age", "-1")], "invalid_request"),
    ] {
        let res = b.get(&format!("/oidc/authorize?{}", query(&rp, &challenge, &extra))).await;
        assert_eq!(res.status, StatusCode::FOUND, "{case}: {}", res.text);
        let (base, pairs) = location_pairs(&res);
        assert_eq!(base, REDIRECT, "{case}");
        assert_eq!(pairs.get("error").map(String::as_str), Some(error), "{case}: {pairs:?}");
        assert_eq!((pairs["state"].as_str(), pairs["iss"].as_str()), ("st-123", s.origin.as_str()), "{case}");
        assert!(!pairs.contains_key("code"), "{case}");
    }
    let repeated = format!("/oidc/authorize?{}&state=again", query(&rp, &challenge, &[]));
    let (_, pairs) = location_pairs(&b.get(&repeated).await);
    assert_eq!(pairs["error"], "invalid_request");
}

#[tokio::test]
async fn the_token_endpoint_refuses_wrong_verifiers_secrets_clients_and_uris_and_a_reused_code_revokes_its_tokens() {
    let s = server(false).await;
    let rp = Rp::register(&s, json!({})).await;
    let other = Rp::register(&s, json!({})).await;
    let post = Rp::register(&s, json!({"token_endpoint_auth_method": "client_secret_post"})).await;
    let mut b = s.signed_in("token@example.com").await;
    let invalid_grant = |res: &Res, case: &str| {
        assert_eq!(
            (res.status, res.json()["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{case}: {}",
            res.text
        );
    };

    // A wrong verifier: refused, and the code is spent (the right one then fails too).
    let (verifier, challenge) = pkce();
    let c = code(&mut b, &rp, &challenge, &[]).await;
    invalid_grant(&exchange(&s, &rp, &c, &pkce().0).await, "wrong verifier");
    invalid_grant(&exchange(&s, &rp, &c, &verifier).await, "spent by the wrong verifier");
    // The challenge itself as the verifier (plain PKCE): refused.
    let (_, challenge) = pkce();
    let c = code(&mut b, &rp, &challenge, &[]).await;
    invalid_grant(&exchange(&s, &rp, &c, &challenge).await, "the challenge as verifier");
    // Another client's code, another redirect URI.
    let (verifier, challenge) = pkce();
    let c = code(&mut b, &rp, &challenge, &[]).await;
    invalid_grant(&exchange(&s, &other, &c, &verifier).await, "another client");
    let (verifier, challenge) = pkce();
    let c = code(&mut b, &rp, &challenge, &[("redirect_uri", "https://rp.example/other")]).await;
    invalid_grant(&exchange(&s, &rp, &c, &verifier).await, "another redirect URI");
    invalid_grant(&exchange(&s, &rp, "not-a-code", &verifier).await, "garbage");

    // Client authentication: a wrong secret, none, two methods at once, the method not
    // registered; each 401 invalid_client with a Basic challenge.
    let (verifier, challenge) = pkce();
    let c = code(&mut b, &rp, &challenge, &[]).await;
    let form = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut f = vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), c.clone()),
            ("redirect_uri".to_owned(), REDIRECT.to_owned()),
            ("code_verifier".to_owned(), verifier.clone()),
        ];
        f.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        f
    };
    let wrong = Rp { id: rp.id.clone(), secret: "A".repeat(43) };
    let mut c2 = s.browser();
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "a wrong secret",
            c2.bare(Method::POST, "/oidc/token").header("authorization", wrong.basic()).form(&form(&[])),
        ),
        ("no authentication", c2.bare(Method::POST, "/oidc/token").form(&form(&[]))),
        (
            "two methods",
            c2.bare(Method::POST, "/oidc/token")
                .header("authorization", rp.basic())
                .form(&form(&[("client_id", &rp.id), ("client_secret", &rp.secret)])),
        ),
        (
            "post for a basic client",
            c2.bare(Method::POST, "/oidc/token").form(&form(&[("client_id", &rp.id), ("client_secret", &rp.secret)])),
        ),
        (
            "basic for a post client",
            c2.bare(Method::POST, "/oidc/token").header("authorization", post.basic()).form(&form(&[])),
        ),
    ];
    for (case, rb) in cases {
        let res = c2.send(rb).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{case}: {}", res.text);
        assert_eq!(res.json()["error"], "invalid_client", "{case}");
        assert!(res.header("www-authenticate").is_some_and(|v| v.starts_with("Basic")), "{case}");
    }
    // None of those spent the code: the right client still redeems it, once.
    let first = exchange(&s, &rp, &c, &verifier).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let first = first.json();
    let access = first["access_token"].as_str().expect("access").to_owned();
    let bearer_ok = |access: String| {
        let s = &s;
        async move {
            let mut c = s.browser();
            let rb = c.bare(Method::GET, "/oidc/userinfo").header("authorization", format!("Bearer {access}"));
            c.send(rb).await.status
        }
    };
    assert_eq!(bearer_ok(access.clone()).await, StatusCode::OK);

    // The code again: refused, and what its first use issued is revoked.
    invalid_grant(&exchange(&s, &rp, &c, &verifier).await, "reused");
    assert_eq!(bearer_ok(access).await, StatusCode::UNAUTHORIZED, "the access token of the first use is dead");
    let mut c3 = s.browser();
    let rb = c3
        .bare(Method::POST, "/oidc/token")
        .header("authorization", rp.basic())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", first["refresh_token"].as_str().expect("refresh"))]);
    invalid_grant(&c3.send(rb).await, "the refresh token of the first use");
    assert_eq!(b.session_status().await, StatusCode::OK, "the browser's own session lives on");

    // The post method for a client registered so.
    let (verifier, challenge) = pkce();
    let c = code(&mut b, &post, &challenge, &[]).await;
    let rb = c3.bare(Method::POST, "/oidc/token").form(&[
        ("grant_type", "authorization_code"),
        ("code", &c),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &verifier),
        ("client_id", &post.id),
        ("client_secret", &post.secret),
    ]);
    let res = c3.send(rb).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    // Grants the endpoint does not serve.
    let rb =
        c3.bare(Method::POST, "/oidc/token").header("authorization", rp.basic()).form(&[("grant_type", "password")]);
    let res = c3.send(rb).await;
    assert_eq!((res.status, res.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
}

#[tokio::test]
async fn a_logout_without_a_valid_hint_asks_first_and_only_a_same_site_post_ends_anything() {
    let s = server(false).await;
    let bye = "https://rp.example/bye";
    let rp = Rp::register(&s, json!({"post_logout_redirect_uris": [bye]})).await;
    let mut b = s.signed_in("confirm@example.com").await;
    let (verifier, challenge) = pkce();
    let c = code(&mut b, &rp, &challenge, &[]).await;
    let own_hint = exchange(&s, &rp, &c, &verifier).await.json()["id_token"].as_str().expect("id").to_owned();
    // Another browser's ID token: a real one, for another sign-in.
    let mut elsewhere = s.browser();
    elsewhere.login("confirm@example.com", PASSWORD).await;
    let (verifier, challenge) = pkce();
    let c = code(&mut elsewhere, &rp, &challenge, &[]).await;
    let foreign = exchange(&s, &rp, &c, &verifier).await.json()["id_token"].as_str().expect("id").to_owned();
    let mut forged = own_hint.clone();
    forged.insert(forged.len() - 3, 'A');

    for (case, hint) in
        [("no hint", None), ("a forged hint", Some(forged.as_str())), ("another sign-in's", Some(foreign.as_str()))]
    {
        let mut q = format!("client_id={}&post_logout_redirect_uri={}&state=s1", enc(&rp.id), enc(bye));
        if let Some(h) = hint {
            q = format!("{q}&id_token_hint={}", enc(h));
        }
        for method in [Method::GET, Method::POST] {
            let rb = if method == Method::GET {
                b.request(Method::GET, &format!("/oidc/logout?{q}"))
            } else {
                b.request(Method::POST, "/oidc/logout")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(q.clone())
            };
            let res = b.send(rb.header("accept", "text/html")).await;
            assert_eq!(res.status, StatusCode::OK, "{case} {method}: {}", res.text);
            assert!(
                res.text.contains("Sign out?") && res.text.contains("name=\"confirm\""),
                "{case}: a confirmation page"
            );
            // Not a watching page: when its own form ends the session, signoff.js would leave
            // for the sign-in page before the app's redirect arrived (seen in Chromium).
            assert!(!res.text.contains("data-signoff-watch"), "{case}");
            assert_eq!(b.session_status().await, StatusCode::OK, "{case} {method}: nothing ended");
        }
    }

    // Refused as pages, never redirects: an unregistered or near-miss post-logout URI, one
    // without a client, a client_id that is not the hint's audience.
    for (case, q) in [
        (
            "unregistered",
            format!("client_id={}&post_logout_redirect_uri={}", enc(&rp.id), enc("https://evil.example/bye")),
        ),
        ("near miss", format!("client_id={}&post_logout_redirect_uri={}", enc(&rp.id), enc("https://rp.example/bye/"))),
        ("no client", format!("post_logout_redirect_uri={}", enc(bye))),
        ("another client", format!("client_id=someone&id_token_hint={}", enc(&own_hint))),
    ] {
        let res = b.get(&format!("/oidc/logout?{q}")).await;
        assert_eq!((res.status, res.location()), (StatusCode::BAD_REQUEST, None), "{case}: {}", res.text);
    }
    assert_eq!(b.session_status().await, StatusCode::OK);

    // The confirmation posted from another site is refused; from signoff's page it ends the
    // session and returns to the app with its state.
    let csrf = b.get_json("/auth/session").await.json()["csrf_token"].as_str().expect("csrf").to_owned();
    let form = [
        ("confirm", "1"),
        ("csrf_token", csrf.as_str()),
        ("client_id", rp.id.as_str()),
        ("post_logout_redirect_uri", bye),
        ("state", "s2"),
    ];
    let rb = b.request(Method::POST, "/oidc/logout").header("origin", "https://evil.example").form(&form);
    let res = b.send(rb).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text);
    let rb = b.request(Method::POST, "/oidc/logout").form(&form[..2]);
    let res = b.send(rb.header("origin", "https://evil.example")).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(b.session_status().await, StatusCode::OK, "a cross-site post ends nothing");
    let rb = b.request(Method::POST, "/oidc/logout").form(&[("confirm", "1"), ("client_id", rp.id.as_str())]);
    assert_eq!(b.send(rb).await.status, StatusCode::FORBIDDEN, "no CSRF token");
    let rb = b.request(Method::POST, "/oidc/logout").form(&form);
    let res = b.send(rb).await;
    assert_eq!(
        (res.status, res.location()),
        (StatusCode::FOUND, Some(format!("{bye}?state=s2").as_str())),
        "{}",
        res.text
    );
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(elsewhere.session_status().await, StatusCode::OK, "the other browser's sign-in is its own");
    // Signed out already: straight back (an expired hint of ours too), nothing else to end.
    let q = format!("id_token_hint={}&post_logout_redirect_uri={}", enc(&own_hint), enc(bye));
    s.clock.advance(time::Duration::minutes(20));
    let res = b.get(&format!("/oidc/logout?{q}")).await;
    assert_eq!((res.status, res.location()), (StatusCode::FOUND, Some(bye)));
}

#[tokio::test]
async fn the_signed_out_page_loads_the_front_channel_logouts_of_this_browsers_apps_with_iss_and_sid() {
    let s = server(false).await;
    let discovery = s.browser().get("/.well-known/openid-configuration").await.json();
    assert_eq!(discovery["frontchannel_logout_supported"], true);
    assert_eq!(discovery["frontchannel_logout_session_supported"], true);
    let issuer = discovery["issuer"].as_str().expect("issuer").to_owned();
    let bye = "https://rp.example/bye";
    // Each front-channel URL on the origin of one of its app's redirect URIs.
    let with_origin = |origin: &str| json!([REDIRECT, format!("{origin}/cb")]);
    let a = Rp::register(
        &s,
        json!({"post_logout_redirect_uris": [bye], "frontchannel_logout_uri": "https://a.example/fc?tenant=1",
               "redirect_uris": with_origin("https://a.example")}),
    )
    .await;
    let b_app = Rp::register(
        &s,
        json!({"frontchannel_logout_uri": "https://b.example/fc", "redirect_uris": with_origin("https://b.example")}),
    )
    .await;
    // An app of the same user that this browser never signed in to.
    Rp::register(
        &s,
        json!({"frontchannel_logout_uri": "https://unused.example/fc", "redirect_uris": with_origin("https://unused.example")}),
    )
    .await;
    let plain = Rp::register(&s, json!({})).await;

    // One browser signs in to A, B and an app without front-channel logout; another browser of
    // the same user to A.
    let mut b = s.signed_in("frames@example.com").await;
    let mut hint = String::new();
    for rp in [&a, &b_app, &plain] {
        let (verifier, challenge) = pkce();
        let c = code(&mut b, rp, &challenge, &[]).await;
        let t = exchange(&s, rp, &c, &verifier).await.json();
        if rp.id == a.id {
            hint = t["id_token"].as_str().expect("id token").to_owned();
        }
    }
    let sid = verified(&s, &hint).await.1["sid"].as_str().expect("sid").to_owned();
    let mut other = s.browser();
    other.login("frames@example.com", PASSWORD).await;
    let (verifier, challenge) = pkce();
    let c = code(&mut other, &a, &challenge, &[]).await;
    let other_hint = exchange(&s, &a, &c, &verifier).await.json()["id_token"].as_str().expect("id").to_owned();
    let other_sid = verified(&s, &other_hint).await.1["sid"].as_str().expect("sid").to_owned();

    // RP-initiated logout at A: the page frames A's and B's front-channel URLs with iss and this
    // sign-in's sid, lets frames load from those origins alone, and goes on to A's page.
    let q = format!("id_token_hint={}&post_logout_redirect_uri={}&state=st", enc(&hint), enc(bye));
    let res = b.get(&format!("/oidc/logout?{q}")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    // As a form encoder writes it (every `:` and `/` escaped), in HTML.
    let iss = issuer.replace(':', "%3A").replace('/', "%2F");
    let with =
        |base: &str, s: &str| format!("{base}{}iss={iss}&amp;sid={s}", if base.contains('?') { "&amp;" } else { "?" });
    assert!(res.text.contains(&format!("src=\"{}\"", with("https://a.example/fc?tenant=1", &sid))), "{}", res.text);
    assert!(res.text.contains(&format!("src=\"{}\"", with("https://b.example/fc", &sid))), "{}", res.text);
    assert!(!res.text.contains("unused.example") && !res.text.contains(&other_sid), "only this sign-in's apps");
    assert_eq!(res.text.matches("<iframe").count(), 2);
    assert!(res.text.contains("data-frontchannel-next=\"https://rp.example/bye?state=st\""), "{}", res.text);
    let csp = res.header("content-security-policy").expect("csp");
    assert!(csp.ends_with("; frame-src https://a.example https://b.example"), "{csp}");
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED, "the session ended");

    // Signing out at signoff with the form: the same page, going on to the sign-in page.
    let csrf = other.get_json("/auth/session").await.json()["csrf_token"].as_str().expect("csrf").to_owned();
    let res = other.post_form("/auth/logout", &[("csrf_token", csrf.as_str())]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert!(
        res.text.contains(&format!("src=\"{}\"", with("https://a.example/fc?tenant=1", &other_sid))),
        "{}",
        res.text
    );
    assert_eq!(res.text.matches("<iframe").count(), 1);
    assert!(res.text.contains("data-frontchannel-next=\"/login?logged_out=1\""), "{}", res.text);
    assert_eq!(other.session_status().await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_app_deleted_while_it_signs_a_browser_in_never_makes_a_500() {
    let s = server(false).await;
    let mut b = s.signed_in("vanishing@example.com").await;
    let (mut redeemed, mut refused) = (0, 0);
    for round in 0..25 {
        // The delete races the code's redemption, or (every other round) its issue.
        let rp = Rp::register(&s, json!({})).await;
        let (verifier, challenge) = pkce();
        let path = format!("/admin/clients/{}", rp.id);
        if round % 2 == 0 {
            let c = code(&mut b, &rp, &challenge, &[]).await;
            let (token, deleted) =
                tokio::join!(exchange(&s, &rp, &c, &verifier), admin(&s, Method::DELETE, &path, None));
            assert_eq!(deleted.status, StatusCode::NO_CONTENT, "round {round}: {}", deleted.text);
            match token.status {
                StatusCode::OK => redeemed += 1,
                StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => refused += 1,
                other => panic!("round {round}: {other} {}", token.text),
            }
        } else {
            let ask = format!("/oidc/authorize?{}", query(&rp, &challenge, &[]));
            let (issued, deleted) = tokio::join!(b.get(&ask), admin(&s, Method::DELETE, &path, None));
            assert_eq!(deleted.status, StatusCode::NO_CONTENT, "round {round}: {}", deleted.text);
            assert!(
                matches!(issued.status.as_u16(), 302 | 400 | 404),
                "round {round}: {} {}",
                issued.status,
                issued.text
            );
        }
        // Whatever won, the app is gone: nothing of it signs anyone in.
        assert_eq!(exchange(&s, &rp, "whatever", &verifier).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(redeemed + refused, 13, "every redemption answered");
}

#[tokio::test]
async fn a_logout_by_script_is_sent_to_a_signed_out_page_that_frames_only_what_its_ticket_names() {
    let s = server(false).await;
    let fc = Rp::register(
        &s,
        json!({"frontchannel_logout_uri": "https://fc.example/out", "redirect_uris": [REDIRECT, "https://fc.example/cb"]}),
    )
    .await;
    let plain = Rp::register(&s, json!({})).await;
    let mut b = s.signed_in("script@example.com").await;
    let mut hint = String::new();
    for rp in [&fc, &plain] {
        let (verifier, challenge) = pkce();
        let c = code(&mut b, rp, &challenge, &[]).await;
        let res = exchange(&s, rp, &c, &verifier).await;
        assert_eq!(res.status, StatusCode::OK);
        hint = res.json()["id_token"].as_str().expect("id token").to_owned();
    }
    let sid = verified(&s, &hint).await.1["sid"].as_str().expect("sid").to_owned();
    // A device without apps gets no such URL.
    let mut bare = s.signed_in("script@example.com").await;
    let csrf = bare.get_json("/auth/session").await.json()["csrf_token"].as_str().expect("csrf").to_owned();
    let rb = bare.request(Method::POST, "/auth/logout").header("x-csrf-token", csrf).json(&json!({}));
    let res = bare.send(rb.header("accept", "application/json")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert!(res.json().get("frontchannel_logout").is_none(), "{}", res.text);

    let csrf = b.get_json("/auth/session").await.json()["csrf_token"].as_str().expect("csrf").to_owned();
    let rb = b.request(Method::POST, "/auth/logout").header("x-csrf-token", csrf).json(&json!({}));
    let res = b.send(rb.header("accept", "application/json")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let url = res.json()["frontchannel_logout"].as_str().expect("a signed-out page to go to").to_owned();
    let path = url.strip_prefix(&s.base).unwrap_or_else(|| panic!("on signoff's origin: {url}")).to_owned();
    assert!(path.starts_with("/oidc/frontchannel?t="), "{path}");

    // The page, reached from signoff's own page (as signoff.js goes there).
    let go = |path: String| {
        let base = s.base.clone();
        async move {
            let client =
                reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
            let res = client
                .get(format!("{base}{path}"))
                .header("sec-fetch-site", "same-origin")
                .header("accept", "text/html")
                .send()
                .await
                .expect("get");
            let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let (location, cache, csp) =
                (header("location"), header("cache-control"), header("content-security-policy"));
            (res.status(), location, cache, csp, res.text().await.expect("body"))
        }
    };
    let (status, _, cache, csp, text) = go(format!("{path}&next={}", enc("/app/sessions"))).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert_eq!(text.matches("<iframe").count(), 1, "the app with a front-channel URL, only: {text}");
    assert!(text.contains("src=\"https://fc.example/out?iss="), "{text}");
    assert!(text.contains(&format!("&amp;sid={sid}\"")), "this browser's sign-in: {text}");
    assert!(text.contains("data-frontchannel-next=\"/app/sessions\""), "{text}");
    assert!(csp.is_some_and(|c| c.ends_with("; frame-src https://fc.example")));
    // `next` is checked as a return_to: elsewhere, the sign-in page instead.
    let (_, _, _, _, text) = go(format!("{path}&next={}", enc("https://evil.example/"))).await;
    assert!(text.contains("data-frontchannel-next=\"/login?logged_out=1\""), "{text}");
    // From another site (or with no word on where it came from), nothing is framed.
    let mut other = s.browser();
    let res = other.get(&format!("{path}&next=%2Fapp")).await;
    assert_eq!((res.status, res.location()), (StatusCode::SEE_OTHER, Some("/app")), "{}", res.text);
    // A ticket altered, something else signoff signed (an ID token), or no ticket: straight on.
    let mut forged = path.clone();
    forged.insert(forged.len() - 2, 'A');
    let id_token = format!("/oidc/frontchannel?t={}", enc(&hint));
    for bad in [forged, id_token, "/oidc/frontchannel?t=x.y.z".to_owned(), "/oidc/frontchannel".to_owned()] {
        let (status, location, _, _, text) =
            go(format!("{bad}{}next=%2Fapp", if bad.contains('?') { '&' } else { '?' })).await;
        assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/app")), "{bad}: {text}");
    }
    // Past its minute (and the clocks' leeway), the ticket frames nothing.
    s.clock.advance(time::Duration::seconds(60 + 11));
    let (status, location, _, _, text) = go(path.clone()).await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/login?logged_out=1")), "{text}");
}
