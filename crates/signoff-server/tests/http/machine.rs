//! Machine clients through HTTP: the `client_credentials` grant, its token (no user, no
//! session; `sub` is the client), and its end when the client's secret is rotated or the client
//! is deleted — refused here at once, and announced on the feed relying services follow.

use crate::relying::{ADMIN, admin, server};
use crate::support::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn token_request(s: &TestServer, authorization: Option<&str>, form: &[(&str, &str)]) -> Res {
    let mut b = s.browser();
    let mut rb = b.bare(Method::POST, "/oidc/token").form(form);
    if let Some(a) = authorization {
        rb = rb.header("authorization", a);
    }
    b.send(rb).await
}

async fn introspect(s: &TestServer, token: &str) -> Value {
    let mut b = s.browser();
    let rb = b
        .bare(Method::POST, "/auth/introspect")
        .header("authorization", format!("Bearer {ADMIN}"))
        .json(&json!({ "token": token }));
    b.send(rb).await.json()
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

/// Every `session` event of the feed, read as a relying service reads it.
async fn ended_sids(s: &TestServer, id: &str, secret: &str) -> Vec<String> {
    let mut b = s.browser();
    let rb = b.bare(Method::GET, "/revocations").header("authorization", basic(id, secret));
    let res = b.send(rb).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let events = res.json()["events"].as_array().cloned().unwrap_or_default();
    events.iter().filter(|e| e["type"] == "session").map(|e| e["sid"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn a_machine_client_gets_a_token_of_its_own_that_dies_with_its_secret_and_with_the_client() {
    let s = server(false).await;
    let discovery = s.browser().get("/.well-known/openid-configuration").await.json();
    assert!(discovery["grant_types_supported"].as_array().expect("list").contains(&json!("client_credentials")));
    let res = admin(
        &s,
        Method::POST,
        "/admin/clients",
        Some(json!({"name": "billing", "grant_types": ["client_credentials"]})),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let (id, secret) = (
        res.json()["client_id"].as_str().expect("id").to_owned(),
        res.json()["client_secret"].as_str().expect("s").to_owned(),
    );
    // A feed reader, to see what relying services are told.
    let reader = admin(&s, Method::POST, "/admin/clients", Some(json!({"name": "reader"}))).await.json();
    let (rid, rsecret) =
        (reader["client_id"].as_str().expect("id").to_owned(), reader["client_secret"].as_str().expect("s").to_owned());

    let res = token_request(&s, Some(&basic(&id, &secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let body = res.json();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().is_some_and(|e| e > 0));
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none(), "{body}");
    let first = body["access_token"].as_str().expect("token").to_owned();
    let c = claims(&first);
    assert_eq!((c["sub"].as_str(), c["client_id"].as_str()), (Some(id.as_str()), Some(id.as_str())), "{c}");
    let grant = c["sid"].as_str().expect("sid").to_owned();

    let seen = introspect(&s, &first).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!((seen["sub"].as_str(), seen["client_id"].as_str()), (Some(id.as_str()), Some(id.as_str())));
    assert!(seen.get("username").is_none() && seen.get("sid").is_none(), "no user, no session: {seen}");
    // No user: UserInfo and the gateway refuse it.
    let mut b = s.browser();
    let rb = b.bare(Method::GET, "/oidc/userinfo").header("authorization", format!("Bearer {first}"));
    assert_eq!(b.send(rb).await.status, StatusCode::UNAUTHORIZED);
    let rb = b.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {first}"));
    assert_eq!(b.send(rb).await.status, StatusCode::UNAUTHORIZED);

    // Refusals: no such grant for a relying party, a wrong secret, the other method.
    let rp = admin(
        &s,
        Method::POST,
        "/admin/clients",
        Some(json!({"client_name": "rp", "redirect_uris": ["https://rp.example/cb"]})),
    )
    .await
    .json();
    let (rp_id, rp_secret) = (rp["client_id"].as_str().expect("id"), rp["client_secret"].as_str().expect("s"));
    let res = token_request(&s, Some(&basic(rp_id, rp_secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!((res.status, res.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")));
    // Its last character changed (to one it is not: a secret may well end in `A`).
    let last = if secret.ends_with('A') { 'E' } else { 'A' };
    let wrong = format!("{}{last}", &secret[..secret.len() - 1]);
    assert_ne!(wrong, secret);
    let res = token_request(&s, Some(&basic(&id, &wrong)), &[("grant_type", "client_credentials")]).await;
    assert_eq!((res.status, res.json()["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let form = [("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", secret.as_str())];
    let res = token_request(&s, None, &form).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "registered for Basic: {}", res.text);

    // Rotating the secret: the old secret and its token are dead at once, and the feed says so.
    let res = admin(&s, Method::POST, &format!("/admin/clients/{id}/secret"), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let rotated = res.json()["client_secret"].as_str().expect("secret").to_owned();
    assert_ne!(rotated, secret);
    assert_eq!(introspect(&s, &first).await, json!({"active": false}));
    let res = token_request(&s, Some(&basic(&id, &secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "the old secret is refused");
    assert!(ended_sids(&s, &rid, &rsecret).await.contains(&grant), "relying services hear the grant ended");
    // The other admin calls of a client it has not: 404.
    assert_eq!(admin(&s, Method::POST, "/admin/clients/nobody/secret", None).await.status, StatusCode::NOT_FOUND);

    // The new secret gets a token under a new grant; deleting the client ends that one too.
    let res = token_request(&s, Some(&basic(&id, &rotated)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let second = res.json()["access_token"].as_str().expect("token").to_owned();
    let grant2 = claims(&second)["sid"].as_str().expect("sid").to_owned();
    assert_ne!(grant2, grant);
    assert_eq!(introspect(&s, &second).await["active"], true);
    assert_eq!(admin(&s, Method::DELETE, &format!("/admin/clients/{id}"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(introspect(&s, &second).await, json!({"active": false}));
    assert!(ended_sids(&s, &rid, &rsecret).await.contains(&grant2), "and hear the second grant ended");
}

#[tokio::test]
async fn a_revoked_machine_token_is_dead_and_a_rotation_that_lost_a_race_is_not_half_done() {
    let s = server(false).await;
    let res =
        admin(&s, Method::POST, "/admin/clients", Some(json!({"name": "m", "grant_types": ["client_credentials"]})))
            .await;
    let (id, secret) = (
        res.json()["client_id"].as_str().expect("id").to_owned(),
        res.json()["client_secret"].as_str().expect("s").to_owned(),
    );
    let res = token_request(&s, Some(&basic(&id, &secret)), &[("grant_type", "client_credentials")]).await;
    let token = res.json()["access_token"].as_str().expect("token").to_owned();
    let mut b = s.browser();
    assert_eq!(b.post_json("/auth/revoke", &json!({"token": token})).await.status, StatusCode::OK);
    assert_eq!(introspect(&s, &token).await, json!({"active": false}));

    // Rotations at once: each is swapped from the secret it read, or (having lost that race a
    // few times) answered 503 with nothing changed; exactly the last secret written works.
    let reader = admin(&s, Method::POST, "/admin/clients", Some(json!({"name": "reader"}))).await.json();
    let (rid, rsecret) =
        (reader["client_id"].as_str().expect("id").to_owned(), reader["client_secret"].as_str().expect("s").to_owned());
    let ended_before = ended_sids(&s, &rid, &rsecret).await;
    let path = format!("/admin/clients/{id}/secret");
    let answers = futures_util::future::join_all((0..6).map(|_| admin(&s, Method::POST, &path, None))).await;
    let secrets: Vec<String> = answers
        .iter()
        .filter_map(|r| match r.status {
            StatusCode::OK => Some(r.json()["client_secret"].as_str().expect("secret").to_owned()),
            StatusCode::SERVICE_UNAVAILABLE => None,
            other => panic!("{other}: {}", r.text),
        })
        .collect();
    assert!(!secrets.is_empty());
    let mut working = 0;
    for secret in &secrets {
        let res = token_request(&s, Some(&basic(&id, secret)), &[("grant_type", "client_credentials")]).await;
        if res.status == StatusCode::OK {
            working += 1;
        }
    }
    assert_eq!(working, 1, "one secret, the last written, works");
    // Each rotation that answered ended the grant it replaced, each a different one: none of
    // the secrets handed out kept a grant the feed did not end.
    let ended: Vec<String> =
        ended_sids(&s, &rid, &rsecret).await.into_iter().filter(|g| !ended_before.contains(g)).collect();
    let distinct: std::collections::HashSet<&String> = ended.iter().collect();
    assert_eq!((ended.len(), distinct.len()), (secrets.len(), secrets.len()), "{ended:?}");
}
