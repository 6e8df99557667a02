//! Registering clients under the names of OpenID Connect Dynamic Client Registration:
//! relying parties (redirect URIs, logout URIs, grants, token authentication, the ID-token
//! signing algorithm), machine clients and services; and what cannot work is refused, naming
//! the field, with nothing stored.

use crate::relying::{admin, server};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// What the admin API shows of a client: the answer to its registration without the secrets.
fn shown(mut registered: Value) -> Value {
    let o = registered.as_object_mut().expect("object");
    o.remove("client_secret");
    o.remove("webhook_secret");
    registered
}

#[tokio::test]
async fn relying_parties_machines_and_services_register_and_read_back_what_they_registered() {
    let s = server(true).await;
    let rp = json!({
        "client_name": "intranet",
        "redirect_uris": ["https://intranet.example/redirect_uri", "http://localhost:8081/redirect_uri"],
        "post_logout_redirect_uris": ["https://intranet.example/bye"],
        "frontchannel_logout_uri": "https://intranet.example/fc?app=1",
        "backchannel_logout_uri": "http://127.0.0.1:9/redirect_uri?logout=backchannel",
        "token_endpoint_auth_method": "client_secret_post",
        "id_token_signed_response_alg": "ES256",
        "response_types": ["code"],
        "grant_types": ["refresh_token", "authorization_code", "authorization_code"],
    });
    let res = admin(&s, Method::POST, "/admin/clients", Some(rp)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let got = res.json();
    assert!(got["client_secret"].as_str().is_some_and(|v| v.len() >= 43), "the secret, once: {got}");
    assert_eq!(got["client_name"], "intranet");
    assert_eq!(got["name"], "intranet", "the old name too");
    assert_eq!(
        got["redirect_uris"],
        json!(["http://localhost:8081/redirect_uri", "https://intranet.example/redirect_uri"]),
        "every one, exactly as given"
    );
    assert_eq!(got["post_logout_redirect_uris"], json!(["https://intranet.example/bye"]));
    assert_eq!(got["frontchannel_logout_uri"], "https://intranet.example/fc?app=1");
    assert_eq!(got["backchannel_logout_uri"], "http://127.0.0.1:9/redirect_uri?logout=backchannel", "a query is kept");
    assert_eq!(got["grant_types"], json!(["authorization_code", "refresh_token"]), "sorted, once each");
    assert_eq!(got["response_types"], json!(["code"]));
    assert_eq!(got["token_endpoint_auth_method"], "client_secret_post");
    assert_eq!(got["id_token_signed_response_alg"], "ES256");
    assert_eq!(got["backchannel_logout_session_required"], false, "the registration metadata's default");
    assert_eq!(got["frontchannel_logout_session_required"], false);
    assert_eq!(got["webhook_url"], Value::Null);

    // The defaults: a relying party signs ID tokens with RS256 and authenticates with Basic; a
    // service (no redirect URI) signs nobody in and keeps EdDSA; a machine asks for
    // client_credentials alone.
    let plain = admin(
        &s,
        Method::POST,
        "/admin/clients",
        Some(json!({"client_name": "wiki", "redirect_uris": ["https://wiki.example/cb"]})),
    )
    .await
    .json();
    assert_eq!(plain["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(plain["response_types"], json!(["code"]));
    assert_eq!(plain["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(plain["id_token_signed_response_alg"], "RS256");
    let service = admin(&s, Method::POST, "/admin/clients", Some(json!({"name": "api"}))).await.json();
    assert_eq!(service["grant_types"], json!([]));
    assert_eq!(service["response_types"], json!([]));
    assert_eq!(service["redirect_uris"], json!([]));
    assert_eq!(service["id_token_signed_response_alg"], "EdDSA");
    let machine = admin(
        &s,
        Method::POST,
        "/admin/clients",
        Some(json!({"client_name": "cron", "grant_types": ["client_credentials"]})),
    )
    .await;
    assert_eq!(machine.status, StatusCode::CREATED, "{}", machine.text);
    assert_eq!(machine.json()["grant_types"], json!(["client_credentials"]));

    let listed = admin(&s, Method::GET, "/admin/clients", None).await.json();
    let clients = listed["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 4);
    let listed_rp = clients.iter().find(|c| c["client_id"] == got["client_id"]).expect("listed");
    assert_eq!(*listed_rp, shown(got), "the list shows what was registered, without secrets");
    assert!(!listed.to_string().contains("secret\""), "no secret is listed: {listed}");
}

#[tokio::test]
async fn registrations_that_cannot_work_are_refused_naming_the_field_and_store_nothing() {
    let s = server(false).await;
    let rp = |extra: Value| {
        let mut body = json!({"client_name": "app", "redirect_uris": ["https://app.example/cb"]});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    let many: Vec<String> = (0..21).map(|i| format!("https://app.example/cb{i}")).collect();
    let cases = [
        (rp(json!({"redirect_uris": ["http://app.example/cb"]})), "invalid_redirect_uri", "redirect_uris"),
        (rp(json!({"redirect_uris": ["http://localhost.evil.example/cb"]})), "invalid_redirect_uri", "redirect_uris"),
        (rp(json!({"redirect_uris": ["https://app.example/cb#top"]})), "invalid_redirect_uri", "fragment"),
        (rp(json!({"redirect_uris": ["/cb"]})), "invalid_redirect_uri", "redirect_uris"),
        (rp(json!({"redirect_uris": ["https://me:pw@app.example/cb"]})), "invalid_redirect_uri", "credentials"),
        (rp(json!({"redirect_uris": many})), "invalid_redirect_uri", "at most 20"),
        (rp(json!({"post_logout_redirect_uris": ["http://app.example/bye"]})), "invalid_redirect_uri", "post_logout"),
        (rp(json!({"frontchannel_logout_uri": "javascript:alert(1)"})), "invalid_redirect_uri", "frontchannel"),
        // Front-Channel Logout 1.0 §2: the scheme, host and port of a redirect URI.
        (
            rp(json!({"frontchannel_logout_uri": "https://other.example/fc"})),
            "invalid_client_metadata",
            "scheme, host and port",
        ),
        (
            rp(json!({"frontchannel_logout_uri": "https://app.example:8443/fc"})),
            "invalid_client_metadata",
            "scheme, host and port",
        ),
        (
            json!({"client_name": "app", "post_logout_redirect_uris": ["https://app.example/bye"]}),
            "invalid_client_metadata",
            "need redirect_uris",
        ),
        (rp(json!({"response_types": ["token"]})), "invalid_client_metadata", "response_types"),
        (rp(json!({"response_types": ["code id_token"]})), "invalid_client_metadata", "response_types"),
        (rp(json!({"response_types": []})), "invalid_client_metadata", "response_types"),
        (json!({"client_name": "m", "response_types": ["code"]}), "invalid_client_metadata", "response_types"),
        (rp(json!({"redirect_uris": ["https://evil.example\\.app.example/cb"]})), "invalid_redirect_uri", "printable"),
        (rp(json!({"redirect_uris": ["HTTPS://app.example/cb"]})), "invalid_redirect_uri", "lower case"),
        // What a browser would be sent to differs from what was registered, or cannot be sent.
        (rp(json!({"redirect_uris": ["https://app.example:70000/cb"]})), "invalid_redirect_uri", "as browsers read it"),
        (rp(json!({"redirect_uris": ["https://1.2.3.999/cb"]})), "invalid_redirect_uri", "as browsers read it"),
        (rp(json!({"redirect_uris": ["https://App.example/cb"]})), "invalid_redirect_uri", "as browsers read it"),
        (rp(json!({"redirect_uris": ["https://app.example/a/../cb"]})), "invalid_redirect_uri", "as browsers read it"),
        (rp(json!({"grant_types": ["implicit"]})), "invalid_client_metadata", "grant_types"),
        (rp(json!({"grant_types": ["password"]})), "invalid_client_metadata", "grant_types"),
        (rp(json!({"grant_types": ["client_credentials"]})), "invalid_client_metadata", "redirect_uris"),
        (
            json!({"client_name": "m", "grant_types": ["authorization_code"]}),
            "invalid_client_metadata",
            "needs redirect_uris",
        ),
        (json!({"client_name": "m", "grant_types": ["refresh_token"]}), "invalid_client_metadata", "refresh_token"),
        (rp(json!({"token_endpoint_auth_method": "none"})), "invalid_client_metadata", "token_endpoint_auth_method"),
        (
            rp(json!({"token_endpoint_auth_method": "private_key_jwt"})),
            "invalid_client_metadata",
            "token_endpoint_auth_method",
        ),
        (
            rp(json!({"id_token_signed_response_alg": "none"})),
            "invalid_client_metadata",
            "id_token_signed_response_alg",
        ),
        (
            rp(json!({"id_token_signed_response_alg": "HS256"})),
            "invalid_client_metadata",
            "id_token_signed_response_alg",
        ),
        (rp(json!({"name": "other"})), "invalid_client_metadata", "differ"),
        (rp(json!({"redirect_uris": "https://app.example/cb"})), "invalid_request", "invalid body"),
    ];
    for (body, error, names) in cases {
        let res = admin(&s, Method::POST, "/admin/clients", Some(body.clone())).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}: {}", res.text);
        assert_eq!(res.json()["error"], error, "{body}: {}", res.text);
        assert!(res.json()["message"].as_str().is_some_and(|m| m.contains(names)), "{body}: {}", res.text);
    }
    let private = rp(json!({"backchannel_logout_uri": "http://10.0.0.7/logout"}));
    let res = admin(&s, Method::POST, "/admin/clients", Some(private)).await;
    assert_eq!(
        (res.status, res.json()["error"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("invalid_callback"))
    );
    let listed = admin(&s, Method::GET, "/admin/clients", None).await.json();
    assert_eq!(listed["clients"], json!([]), "nothing refused was stored");
}
