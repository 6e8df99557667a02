//! The token endpoint (OpenID Connect Core §3.1.3, RFC 6749 §4.1.3, §4.4 and §6) and UserInfo
//! (§5.3).
//!
//! A client authenticates the way it registered (`client_secret_basic`, the default, or
//! `client_secret_post`) and with nothing else; any failure is `401 invalid_client`. Errors are
//! RFC 6749 §5.2 JSON; every answer is `Cache-Control: no-store`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use signoff_core::clients::{GrantType, RegisteredClient, TokenAuthMethod};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Client, Input};
use crate::routes::bearer;

/// Carries secrets: deliberately not `Debug`, so it can never be logged by accident.
#[derive(Deserialize)]
pub(super) struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The client the request authenticates as, by the one method it registered.
async fn authenticate(state: &AppState, headers: &HeaderMap, body: &TokenRequest) -> ApiResult<RegisteredClient> {
    let basic =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(signoff_wire::authorization::basic);
    let (id, secret, method) = match (basic, &body.client_secret) {
        (Some((id, secret)), None) => {
            // A client_id in the body too must name the same client.
            if body.client_id.as_deref().is_some_and(|b| b != id) {
                return Err(ApiError::InvalidClient);
            }
            (id, secret, TokenAuthMethod::ClientSecretBasic)
        }
        (None, Some(secret)) => {
            let id = body.client_id.clone().ok_or(ApiError::InvalidClient)?;
            (id, secret.clone(), TokenAuthMethod::ClientSecretPost)
        }
        // None, or two methods at once (RFC 6749 §2.3).
        _ => return Err(ApiError::InvalidClient),
    };
    let client = state.authority().authenticate_client(&id, &secret).await?.ok_or(ApiError::InvalidClient)?;
    if client.profile.token_endpoint_auth_method != method {
        return Err(ApiError::InvalidClient);
    }
    Ok(client)
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

pub(super) async fn token(
    State(state): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    Input(body): Input<TokenRequest>,
) -> ApiResult<Response> {
    let grant = body.grant_type.as_deref().ok_or_else(|| ApiError::bad_request("grant_type is required"))?;
    let unsupported = || {
        ApiError::BadRequest(
            "unsupported_grant_type",
            "use authorization_code, refresh_token or client_credentials".into(),
        )
    };
    let needed = GrantType::parse(grant).ok_or_else(unsupported)?;
    let client = authenticate(&state, &headers, &body).await.inspect_err(|_| {
        tracing::info!(grant, "token endpoint: client authentication failed");
    })?;
    if !client.profile.grant_types.contains(&needed) {
        return Err(ApiError::BadRequest(
            "unauthorized_client",
            format!("this client is not registered for the {grant} grant"),
        ));
    }
    let authority = state.authority();
    let body = match needed {
        GrantType::AuthorizationCode => {
            let field = |v: &Option<String>, name: &str| -> ApiResult<String> {
                v.clone().ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
            };
            let (code, redirect_uri) = (field(&body.code, "code")?, field(&body.redirect_uri, "redirect_uri")?);
            let verifier = field(&body.code_verifier, "code_verifier")?;
            let t = authority.redeem_code(&client, &code, &redirect_uri, &verifier, &info).await?;
            let mut body = json!({
                "access_token": t.access_token,
                "token_type": "Bearer",
                "expires_in": t.expires_in,
                "id_token": t.id_token,
                "scope": "openid email",
            });
            if let Some(refresh) = t.refresh_token {
                body["refresh_token"] = json!(refresh);
            }
            body
        }
        // A machine client's own token: no user, no session, no refresh token (RFC 6749 §4.4.3).
        GrantType::ClientCredentials => {
            let t = authority.client_credentials(&client)?;
            json!({ "access_token": t.access_token, "token_type": "Bearer", "expires_in": t.expires_in })
        }
        GrantType::RefreshToken => {
            let refresh =
                body.refresh_token.as_deref().ok_or_else(|| ApiError::bad_request("refresh_token is required"))?;
            let pair = authority.refresh_grant(refresh, Some(&client.id), &info).await?;
            json!({
                "access_token": pair.access_token,
                "token_type": "Bearer",
                "expires_in": pair.expires_in,
                "refresh_token": pair.refresh_token,
                "scope": "openid email",
            })
        }
    };
    Ok(no_store(axum::Json(body).into_response()))
}

/// UserInfo: the claims about the user of a live access token.
pub(super) async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let token = bearer(&headers).ok_or(ApiError::InvalidToken)?;
    let ctx = state.authority().verify_access(token).await.map_err(|e| match e {
        signoff_core::token::TokenError::Unavailable => ApiError::Busy { retry_after_secs: 1 },
        _ => ApiError::InvalidToken,
    })?;
    let body = json!({ "sub": ctx.user.id, "email": ctx.user.email, "email_verified": false });
    Ok(no_store(axum::Json(body).into_response()))
}
