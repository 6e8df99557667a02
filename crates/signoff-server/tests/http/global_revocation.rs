//! Global Token Revocation over HTTP: who may ask, what is read, and that after the `204` every
//! credential of the user is refused (on PostgreSQL, on a second node too).

use crate::relying::{admin, server};
use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A registered client: its id and secret.
async fn register(s: &TestServer, body: Value) -> (String, String) {
    let res = admin(s, Method::POST, "/admin/clients", Some(body)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let j = res.json();
    (j["client_id"].as_str().expect("id").to_owned(), j["client_secret"].as_str().expect("secret").to_owned())
}

/// `POST /global-token-revocation` with this authorization and body.
async fn ask(s: &TestServer, authorization: Option<&str>, content_type: &str, body: &str) -> Res {
    let mut b = s.browser();
    let mut rb = b.bare(Method::POST, "/global-token-revocation").header("content-type", content_type);
    if let Some(a) = authorization {
        rb = rb.header("authorization", a);
    }
    b.send(rb.body(body.to_owned())).await
}

fn by_email(email: &str) -> String {
    json!({"sub_id": {"format": "email", "email": email}}).to_string()
}

#[tokio::test]
async fn only_a_client_allowed_to_may_ask_and_the_subject_is_read_strictly() {
    let s = server(false).await;
    s.register("asked@example.com").await;
    let (plain_id, plain_secret) = register(&s, json!({"name": "plain"})).await;
    let (id, secret) = register(&s, json!({"name": "idp", "global_token_revocation": true})).await;
    let allowed = basic(&id, &secret);
    let body = by_email("asked@example.com");

    let res = ask(&s, None, "application/json", &body).await;
    assert_eq!((res.status, res.json()["error"].clone()), (StatusCode::UNAUTHORIZED, json!("invalid_client")));
    assert_eq!(ask(&s, Some(&basic(&id, "wrong")), "application/json", &body).await.status, StatusCode::UNAUTHORIZED);
    let res = ask(&s, Some("Bearer not-a-token"), "application/json", &body).await;
    assert_eq!((res.status, res.json()["error"].clone()), (StatusCode::UNAUTHORIZED, json!("invalid_token")));
    // Known, not allowed: 403, whatever its body (which is not read).
    for body in [body.as_str(), "not json"] {
        let res = ask(&s, Some(&basic(&plain_id, &plain_secret)), "application/json", body).await;
        assert_eq!((res.status, res.json()["error"].clone()), (StatusCode::FORBIDDEN, json!("access_denied")));
    }
    // Its own client_credentials token: the same client, the same answer.
    let (machine_id, machine_secret) =
        register(&s, json!({"name": "machine", "grant_types": ["client_credentials"]})).await;
    let token = machine_token(&s, &machine_id, &machine_secret).await;
    let res = ask(&s, Some(&format!("Bearer {token}")), "application/json", &body).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    // A user's access token is no client's.
    let res = s
        .browser()
        .post_json(
            "/auth/token",
            &json!({"grant_type": "password", "email": "asked@example.com", "password": PASSWORD}),
        )
        .await;
    let user_token = res.json()["access_token"].as_str().expect("access").to_owned();
    let res = ask(&s, Some(&format!("Bearer {user_token}")), "application/json", &body).await;
    assert_eq!((res.status, res.json()["error"].clone()), (StatusCode::UNAUTHORIZED, json!("invalid_token")));

    for (content_type, bad, why) in [
        ("application/json", "not json", "not JSON"),
        ("application/json", "{}", "no sub_id"),
        ("application/json", r#"{"sub_id": "asked@example.com"}"#, "a string"),
        ("application/json", r#"{"sub_id": {"format": "email"}}"#, "no email"),
        ("application/json", r#"{"sub_id": {"format": "email", "email": "a@b.c", "sub": "x"}}"#, "an extra member"),
        ("application/json", r#"{"sub_id": {"format": "phone_number", "phone_number": "+12065550100"}}"#, "phone"),
        ("application/json", r#"{"sub_id": {"format": "complex", "user": {}}}"#, "an unknown format"),
    ] {
        let res = ask(&s, Some(&allowed), content_type, bad).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{why}: {}", res.text);
        assert_eq!(res.json()["error"], "invalid_request", "{why}");
    }
    let res = ask(&s, Some(&allowed), "text/plain", &body).await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = json!({"sub_id": {"format": "email", "email": format!("{}@example.com", "a".repeat(200_000))}});
    assert_eq!(
        ask(&s, Some(&allowed), "application/json", &huge.to_string()).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Aliases must name one user.
    s.register("other@example.com").await;
    let two = json!({"sub_id": {"format": "aliases", "identifiers": [
        {"format": "email", "email": "asked@example.com"}, {"format": "email", "email": "other@example.com"}]}});
    let res = ask(&s, Some(&allowed), "application/json", &two.to_string()).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text);
    assert_eq!(me(&s, &user_token).await, StatusCode::OK, "nothing refused, forbidden or contradictory ended anything");
    let res = ask(&s, Some(&allowed), "application/json", &by_email("nobody@example.com")).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.text);
    let other_issuer = json!({"sub_id": {"format": "iss_sub", "iss": "https://elsewhere.example", "sub": "x"}});
    let res = ask(&s, Some(&allowed), "application/json", &other_issuer.to_string()).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "another issuer's subject is nobody here");

    // Advertised, and shown with the client.
    let discovery = s.browser().get_json("/.well-known/openid-configuration").await.json();
    assert_eq!(discovery["global_token_revocation_endpoint"], format!("{}/global-token-revocation", s.base));
    let listed = admin(&s, Method::GET, "/admin/clients", None).await.json();
    let flag = |id: &str| {
        listed["clients"].as_array().expect("clients").iter().find(|c| c["client_id"] == id).expect("listed")
            ["global_token_revocation"]
            .clone()
    };
    assert_eq!((flag(&id), flag(&plain_id)), (json!(true), json!(false)));

    // A deleted client, and a client's token after its secret was rotated, are nobody.
    let (gone_id, gone_secret) =
        register(&s, json!({"name": "gone", "global_token_revocation": true, "grant_types": ["client_credentials"]}))
            .await;
    let old_token = machine_token(&s, &gone_id, &gone_secret).await;
    let rotated = admin(&s, Method::POST, &format!("/admin/clients/{gone_id}/secret"), None).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let res = ask(&s, Some(&format!("Bearer {old_token}")), "application/json", &body).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "a token of the old secret");
    let new_secret = rotated.json()["client_secret"].as_str().expect("secret").to_owned();
    assert_eq!(
        admin(&s, Method::DELETE, &format!("/admin/clients/{gone_id}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    let res = ask(&s, Some(&basic(&gone_id, &new_secret)), "application/json", &body).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "a deleted client");
    assert_eq!(me(&s, &user_token).await, StatusCode::OK);
}

/// Every credential of a user: a browser session, a remember-me device, an access token and a
/// refresh token.
struct Held {
    user_id: String,
    session: String,
    remember: String,
    access: String,
    refresh: String,
}

async fn hold(s: &TestServer, email: &str) -> Held {
    s.register(email).await;
    let (_, remember) = remembered(s, email).await;
    let mut b = s.browser();
    let res = b.login(email, PASSWORD).await;
    let user_id = res.json()["user"]["id"].as_str().expect("user id").to_owned();
    let session = b.session_cookie().cloned().expect("session cookie");
    let res =
        b.post_json("/auth/token", &json!({"grant_type": "password", "email": email, "password": PASSWORD})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let tokens = res.json();
    Held {
        user_id,
        session,
        remember,
        access: tokens["access_token"].as_str().expect("access").to_owned(),
        refresh: tokens["refresh_token"].as_str().expect("refresh").to_owned(),
    }
}

async fn me(node: &TestServer, access: &str) -> StatusCode {
    let mut b = node.browser();
    let rb = b.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {access}"));
    b.send(rb).await.status
}

/// What of `held` `node` still accepts, by name.
async fn accepted(node: &TestServer, held: &Held) -> Vec<&'static str> {
    let mut alive = Vec::new();
    if lives(node, &held.session).await {
        alive.push("session");
    }
    let mut b = node.browser();
    b.jar.insert(REMEMBER.into(), held.remember.clone());
    if b.session_status().await == StatusCode::OK {
        alive.push("remember-me");
    }
    if me(node, &held.access).await == StatusCode::OK {
        alive.push("access token");
    }
    let res = node
        .browser()
        .post_json("/auth/token", &json!({"grant_type": "refresh_token", "refresh_token": held.refresh}))
        .await;
    if res.status == StatusCode::OK {
        alive.push("refresh token");
    }
    alive
}

/// The access token a machine client gets from the `client_credentials` grant.
async fn machine_token(s: &TestServer, id: &str, secret: &str) -> String {
    let mut b = s.browser();
    let rb = b
        .bare(Method::POST, "/oidc/token")
        .header("authorization", basic(id, secret))
        .form(&[("grant_type", "client_credentials")]);
    let res = b.send(rb).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    res.json()["access_token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn after_the_204_every_credential_of_the_user_is_refused_on_every_node() {
    // A user per round, all registered from one address.
    let s = TestServer::with(|c| {
        c.admin_token = Some(signoff_server::config::AdminKey(crate::relying::ADMIN.into()));
        c.throttle.register_max_per_ip = 1_000;
    })
    .await;
    // Several nodes on PostgreSQL: the answer waits until the other node has applied it too.
    let sibling = if on_postgres() { Some(s.sibling().await) } else { None };
    let nodes: Vec<&TestServer> = std::iter::once(&s).chain(sibling.as_ref()).collect();
    let (id, secret) =
        register(&s, json!({"name": "idp", "global_token_revocation": true, "grant_types": ["client_credentials"]}))
            .await;
    let issuer = s.browser().get_json("/.well-known/openid-configuration").await.json()["issuer"].clone();
    s.register("bystander@example.com").await;
    let mut bystander = s.browser();
    bystander.login("bystander@example.com", PASSWORD).await;
    let rounds = 12;
    let mut accepted_after = Vec::new();
    for round in 0..rounds {
        let email = format!("gtr{round}@example.com");
        let held = hold(&s, &email).await;
        // Every node's caches warm with the session and the access token.
        for node in &nodes {
            assert!(lives(node, &held.session).await, "round {round}: the session lives before");
            assert_eq!(me(node, &held.access).await, StatusCode::OK, "round {round}: the token lives before");
        }
        let sub_id = match round % 4 {
            0 => json!({"format": "email", "email": email.to_uppercase()}),
            1 => json!({"format": "opaque", "id": held.user_id}),
            2 => json!({"format": "iss_sub", "iss": issuer, "sub": held.user_id}),
            _ => json!({"format": "aliases", "identifiers": [
                {"format": "phone_number", "phone_number": "+12065550100"},
                {"format": "account", "uri": format!("acct:{email}")},
            ]}),
        };
        let authorization = if (round / 4) % 2 == 0 {
            basic(&id, &secret)
        } else {
            format!("Bearer {}", machine_token(&s, &id, &secret).await)
        };
        let through = nodes[round % nodes.len()];
        let res = ask(through, Some(&authorization), "application/json", &json!({"sub_id": sub_id}).to_string()).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "round {round}: {}", res.text);
        for (n, node) in nodes.iter().enumerate() {
            for what in accepted(node, &held).await {
                accepted_after.push(format!("round {round}, node {n}: {what}"));
            }
        }
        // The control: the same probes accept every credential of a user nobody revoked (on
        // one node: a refresh or remember-me token rotates as it is used).
        let other = hold(&s, &format!("control{round}@example.com")).await;
        let everything = vec!["session", "remember-me", "access token", "refresh token"];
        assert_eq!(accepted(nodes[(round + 1) % nodes.len()], &other).await, everything, "round {round}: control");
    }
    assert!(accepted_after.is_empty(), "accepted after the 204: {accepted_after:?}");
    assert_eq!(bystander.session_status().await, StatusCode::OK, "nobody else is signed out");

    // The user's audit trail says who ended everything.
    let mut back = s.browser();
    back.login("gtr0@example.com", PASSWORD).await;
    let events = back.get_json("/auth/audit").await.json()["events"].clone();
    let event = events
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["type"] == "global_token_revocation")
        .expect("a global_token_revocation event")
        .clone();
    assert_eq!(event["actor"], "client");
}
