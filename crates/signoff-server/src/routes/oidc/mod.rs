//! The OpenID provider: discovery (`GET /.well-known/openid-configuration`), the authorization
//! endpoint (`/oidc/authorize`), the token endpoint (`POST /oidc/token`), UserInfo
//! (`/oidc/userinfo`) and RP-Initiated Logout (`/oidc/logout`). The access tokens are
//! signoff's own (they die with the session); the ID tokens are signed with each client's
//! `id_token_signed_response_alg`.

mod authorize;
pub(crate) mod frontchannel;
mod logout;
mod token;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oidc/authorize", get(authorize::authorize).post(authorize::authorize_form))
        .route("/oidc/token", axum::routing::post(token::token))
        .route("/oidc/userinfo", get(token::userinfo).post(token::userinfo))
        .route("/oidc/logout", get(logout::end_session).post(logout::end_session_form))
        .route("/oidc/frontchannel", get(frontchannel::signed_out))
}

/// OpenID Connect Discovery 1.0 §3: the issuer is the public URL's origin, as in every token.
async fn discovery(State(state): State<AppState>) -> Response {
    let c = state.config();
    let origin = &c.public_origin;
    let body = json!({
        "issuer": c.tokens.issuer,
        "authorization_endpoint": format!("{origin}/oidc/authorize"),
        "token_endpoint": format!("{origin}/oidc/token"),
        "userinfo_endpoint": format!("{origin}/oidc/userinfo"),
        "jwks_uri": format!("{origin}/.well-known/jwks.json"),
        "end_session_endpoint": format!("{origin}/oidc/logout"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": true,
        "frontchannel_logout_session_supported": true,
        "scopes_supported": ["openid", "email"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "email", "email_verified"],
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "global_token_revocation_endpoint": format!("{origin}/global-token-revocation"),
        // Basic; a client's own `client_credentials` token works too (the contract says so).
        "global_token_revocation_endpoint_auth_methods_supported": ["client_secret_basic"],
    });
    let mut res = axum::Json(body).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}
