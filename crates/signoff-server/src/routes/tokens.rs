//! The token endpoints: `POST /auth/token` (password and refresh_token grants), `POST
//! /auth/revoke` (RFC 7009), `POST /auth/introspect` (RFC 7662, admin key),
//! `GET /.well-known/jwks.json` and `GET /.well-known/signoff-configuration`, which tells a
//! verifier the issuer and audience to expect.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::admin::require_admin;
use crate::app::AppState;
use crate::csrf;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Client, Input};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/token", post(token))
        .route("/auth/revoke", post(revoke))
        .route("/auth/introspect", post(introspect))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/signoff-configuration", get(configuration))
}

/// Carries secrets: deliberately not `Debug`, so it can never be logged by accident.
#[derive(Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    email: Option<String>,
    /// RFC 6749 spells the account `username`; either is accepted.
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
}

async fn token(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Input(body): Input<TokenRequest>,
) -> ApiResult<Response> {
    // A browser page elsewhere must not be able to sign someone in to tokens either.
    csrf::check_origin(&headers, state.config())?;
    let authority = state.authority();
    let pair = match body.grant_type.as_deref() {
        Some("password") => {
            let email = body.email.as_deref().or(body.username.as_deref());
            let (Some(email), Some(password)) = (email, body.password.as_deref()) else {
                return Err(ApiError::bad_request("email and password are required"));
            };
            let pair = authority.password_grant(email, password, &client).await.map_err(|e| match e {
                signoff_core::CoreError::InvalidCredentials => {
                    state.metrics().login_failures.inc();
                    ApiError::from(signoff_core::CoreError::InvalidGrant)
                }
                e => ApiError::from(e),
            })?;
            // A password grant is a sign-in (it opens a session), like /auth/login.
            state.metrics().logins.inc();
            pair
        }
        Some("refresh_token") => {
            let refresh =
                body.refresh_token.as_deref().ok_or_else(|| ApiError::bad_request("refresh_token is required"))?;
            authority.refresh_grant(refresh, None, &client).await?
        }
        Some(_) => return Err(ApiError::BadRequest("unsupported_grant_type", "use password or refresh_token".into())),
        None => return Err(ApiError::bad_request("grant_type is required")),
    };
    let mut res = axum::Json(json!({
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
    }))
    .into_response();
    res.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(res)
}

/// Carries secrets: deliberately not `Debug`, so it can never be logged by accident.
#[derive(Deserialize)]
struct TokenBody {
    token: Option<String>,
    token_type_hint: Option<String>,
}

/// RFC 7009: `200` for any token, valid or not; possession is the right to revoke.
async fn revoke(
    State(state): State<AppState>,
    Client(client): Client,
    Input(body): Input<TokenBody>,
) -> ApiResult<Response> {
    let token = body.token.as_deref().ok_or_else(|| ApiError::bad_request("token is required"))?;
    let ended = state.authority().revoke_token(token, body.token_type_hint.as_deref(), &client).await?;
    state.metrics().sessions_ended.inc_by(ended);
    Ok(axum::Json(json!({})).into_response())
}

/// RFC 7662, for resource servers holding the admin key.
async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Input(body): Input<TokenBody>,
) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let token = body.token.as_deref().ok_or_else(|| ApiError::bad_request("token is required"))?;
    Ok(axum::Json(state.authority().introspect(token).await?).into_response())
}

/// What a verifier or a logout-token receiver must expect of signoff's tokens, so that it needs
/// only a URL of signoff and its client credentials. The endpoints name the public URL; a
/// verifier on an internal network keeps using the address it was given.
async fn configuration(State(state): State<AppState>) -> Response {
    let c = state.config();
    let origin = &c.public_origin;
    let body = json!({
        // What the tokens are signed with, so the two can never differ.
        "issuer": c.tokens.issuer,
        "token_audience": c.tokens.audience,
        "jwks_uri": format!("{origin}/.well-known/jwks.json"),
        "token_endpoint": format!("{origin}/auth/token"),
        "revocation_endpoint": format!("{origin}/auth/revoke"),
        "introspection_endpoint": format!("{origin}/auth/introspect"),
        "revocation_feed_endpoint": format!("{origin}/revocations"),
        "revocation_stream_endpoint": format!("{origin}/revocations/stream"),
        "token_signing_alg_values_supported": ["EdDSA"],
    });
    let mut res = axum::Json(body).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}

async fn jwks(State(state): State<AppState>) -> ApiResult<Response> {
    let mut res = axum::Json(state.authority().current_jwks().await?).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    Ok(res)
}
