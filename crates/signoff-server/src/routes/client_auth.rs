//! How a registered client proves itself to the routes that serve clients (the revocation feed,
//! Global Token Revocation): HTTP Basic with its `client_id` and secret, or, where a route takes
//! it, a bearer access token it got from the `client_credentials` grant.

use axum::http::{HeaderMap, header};
use signoff_core::clients::RegisteredClient;
use signoff_core::token::TokenError;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::routes::bearer;

/// The client of HTTP Basic credentials, checked against the store (401 `invalid_client`).
pub async fn basic(state: &AppState, headers: &HeaderMap) -> ApiResult<RegisteredClient> {
    let (id, secret) = basic_credentials(headers).ok_or(ApiError::InvalidClient)?;
    state.authority().authenticate_client(&id, &secret).await?.ok_or(ApiError::InvalidClient)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    signoff_wire::authorization::basic(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// The client of HTTP Basic credentials or of a `client_credentials` access token (its grant
/// re-checked: the client still exists, its secret is the one the token was issued under).
pub async fn basic_or_bearer(state: &AppState, headers: &HeaderMap) -> ApiResult<RegisteredClient> {
    let Some(token) = bearer(headers) else { return basic(state, headers).await };
    match state.authority().verify_machine(token).await {
        Ok(machine) => Ok(machine.client),
        Err(TokenError::Unavailable) => Err(ApiError::Busy { retry_after_secs: 1 }),
        Err(_) => Err(ApiError::InvalidToken),
    }
}
