//! Forward authentication (`/authz/auth-request` for nginx, `/authz/forward-auth` for Caddy and
//! Traefik), driven the way the proxies call it: a GET carrying the original request's cookies,
//! `Authorization` and forwarding headers. (The real proxies in front of an app are the
//! end-to-end tests' job.)

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn identity(res: &Res) -> (String, String, String) {
    let h = |n: &str| res.header(n).unwrap_or_else(|| panic!("{n} missing")).to_owned();
    (h("x-signoff-user"), h("x-signoff-email"), h("x-signoff-session"))
}

#[tokio::test]
async fn auth_request_answers_200_with_identity_401_with_sign_in_and_refuses_right_after_logout() {
    let s = TestServer::start().await;
    let mut anonymous = s.browser();
    let original = format!("{}/app/reports?year=2026", s.origin);
    let res =
        anonymous.send(anonymous.bare(Method::GET, "/authz/auth-request").header("x-original-url", &original)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.location(), Some(format!("/login?return_to={}", enc(&original)).as_str()));
    assert_eq!(res.header("cache-control"), Some("no-store"));

    let mut b = s.signed_in("gate@example.com").await;
    let res = b.send(b.bare(Method::GET, "/authz/auth-request")).await;
    assert_eq!(res.status, StatusCode::OK);
    let (user, email, session) = identity(&res);
    let me = b.get_json("/auth/session").await.json();
    assert_eq!((user.as_str(), email.as_str()), (me["user"]["id"].as_str().unwrap(), "gate@example.com"));
    assert_eq!(session, me["session"]["id"].as_str().unwrap());
    assert_eq!(res.header("cache-control"), Some("no-store"));

    let cookie = b.session_cookie().expect("cookie").clone();
    assert_eq!(b.post_json("/auth/logout", &json!({})).await.status, StatusCode::OK);
    let replay = s.browser();
    let res = replay
        .bare(Method::GET, "/authz/auth-request")
        .header("cookie", format!("__Host-signoff_session={cookie}"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the first request after logout is refused");
}

#[tokio::test]
async fn bearer_tokens_pass_until_revoked_and_forwarding_headers_count_only_from_trusted_proxies() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("bear@example.com").await;
    let t = b
        .post_json("/auth/token", &json!({"grant_type": "password", "email": "bear@example.com", "password": PASSWORD}))
        .await
        .json();
    let access = t["access_token"].as_str().expect("token").to_owned();
    let gate = |path: &str| s.browser().bare(Method::GET, path).header("authorization", format!("Bearer {access}"));
    let res = gate("/authz/forward-auth").send().await.expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-signoff-session"));
    assert_eq!(b.post_json("/auth/revoke", &json!({"token": access})).await.status, StatusCode::OK);
    for path in ["/authz/forward-auth", "/authz/auth-request"] {
        assert_eq!(gate(path).send().await.expect("request").status(), StatusCode::UNAUTHORIZED, "{path} after revoke");
    }

    // Forwarding headers from a peer outside trusted_proxies are ignored: no return_to.
    let untrusting = TestServer::with(|c| c.trusted_proxies = vec!["10.0.0.0/8".parse().expect("cidr")]).await;
    let mut anonymous = untrusting.browser();
    let original = format!("{}/app", untrusting.origin);
    let res =
        anonymous.send(anonymous.bare(Method::GET, "/authz/auth-request").header("x-original-url", &original)).await;
    assert_eq!(res.location(), Some("/login?return_to=%2F"));
}

#[tokio::test]
async fn forward_auth_redirects_navigations_and_refuses_api_calls() {
    let s = TestServer::start().await;
    let host = s.origin.trim_start_matches("http://").to_owned();
    let mut anonymous = s.browser();
    let navigate = anonymous
        .bare(Method::GET, "/authz/forward-auth")
        .header("accept", "text/html,application/xhtml+xml")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", &host)
        .header("x-forwarded-uri", "/app/inbox?folder=2");
    let res = anonymous.send(navigate).await;
    assert_eq!(res.status, StatusCode::FOUND);
    let expected = format!("{}/app/inbox?folder=2", s.origin);
    assert_eq!(res.location(), Some(format!("/login?return_to={}", enc(&expected)).as_str()));
    assert_eq!(res.header("cache-control"), Some("no-store"));

    // A POST, or a call that wants JSON, is an API call: 401, never a redirect.
    let post = anonymous
        .bare(Method::GET, "/authz/forward-auth")
        .header("accept", "text/html")
        .header("x-forwarded-method", "POST");
    let res = anonymous.send(post).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    let api = anonymous.bare(Method::GET, "/authz/forward-auth").header("accept", "application/json");
    assert_eq!(anonymous.send(api).await.status, StatusCode::UNAUTHORIZED);

    // An off-site return target is not carried: the default instead.
    let evil = anonymous
        .bare(Method::GET, "/authz/forward-auth")
        .header("accept", "text/html")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-uri", "/phish");
    assert_eq!(anonymous.send(evil).await.location(), Some("/login?return_to=%2F"));

    // Traefik (X-Forwarded-Server) would resolve a relative Location against signoff's own
    // address: it gets the sign-in URL on the public origin.
    let traefik = anonymous
        .bare(Method::GET, "/authz/forward-auth")
        .header("accept", "text/html")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", &host)
        .header("x-forwarded-uri", "/app/inbox?folder=2")
        .header("x-forwarded-server", "traefik-1");
    let res = anonymous.send(traefik).await;
    assert_eq!(res.status, StatusCode::FOUND);
    assert_eq!(res.location(), Some(format!("{}/login?return_to={}", s.origin, enc(&expected)).as_str()));

    let mut b = s.signed_in("fwd@example.com").await;
    let res = b.send(b.bare(Method::GET, "/authz/forward-auth")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(identity(&res).1, "fwd@example.com");
}
