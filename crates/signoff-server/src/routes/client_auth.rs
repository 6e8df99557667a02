//! How a registered client proves itself to the routes that serve clients (the revocation feed,
//! Global Token Revocation, Shared Signals): HTTP Basic with its `client_id` and secret, or,
//! where a route takes it, a bearer access token it got from the `client_credentials` grant; and
//! what it was registered to be allowed ([`Permission`]), checked before its body is read.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use signoff_core::clients::RegisteredClient;
use signoff_core::token::TokenError;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Input;
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

/// What a client may be registered to do beyond proving itself (each `false` unless given).
#[derive(Debug, Clone, Copy)]
pub enum Permission {
    /// End every credential of any user (`global_token_revocation`).
    GlobalTokenRevocation,
    /// Configure Shared Signals streams, told of every user's security events (`shared_signals`).
    SharedSignals,
}

impl Permission {
    fn granted(self, client: &RegisteredClient) -> bool {
        match self {
            Self::GlobalTokenRevocation => client.profile.global_token_revocation,
            Self::SharedSignals => client.profile.shared_signals,
        }
    }

    fn refused(self) -> ApiError {
        let what = match self {
            Self::GlobalTokenRevocation => "this client may not ask for Global Token Revocation",
            Self::SharedSignals => "this client may not receive Shared Signals",
        };
        ApiError::Forbidden("access_denied", what.into())
    }
}

/// A client ([`basic_or_bearer`]) registered with `permission`: else `401`, or `403
/// access_denied` (or `503` when its token cannot be checked yet).
pub async fn permitted(state: &AppState, headers: &HeaderMap, permission: Permission) -> ApiResult<RegisteredClient> {
    let client = basic_or_bearer(state, headers).await?;
    if !permission.granted(&client) {
        return Err(permission.refused());
    }
    Ok(client)
}

/// [`permitted`], decided before anything of the body is read (a caller that may not ask
/// learns nothing of how its body would be taken), then the body, bounded in size and in time
/// as every body is.
pub async fn permitted_with_body<T: DeserializeOwned>(
    state: &AppState,
    request: Request,
    permission: Permission,
) -> ApiResult<(RegisteredClient, T)> {
    let (parts, body) = request.into_parts();
    let client = permitted(state, &parts.headers, permission).await?;
    let Input(body) = Input::<T>::from_request(Request::from_parts(parts, body), state).await?;
    Ok((client, body))
}
