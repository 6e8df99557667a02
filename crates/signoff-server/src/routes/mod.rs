//! Handlers, grouped by the part of the contract they serve.

pub mod account;
pub mod admin;
pub mod auth;
pub mod client_auth;
pub mod clients;
pub mod demo;
pub mod dev_inbox;
pub mod email_flows;
pub mod events;
pub mod feed;
pub mod gateway;
pub mod global_revocation;
pub mod logout;
pub mod oidc;
pub mod ops;
mod registration;
pub mod sessions;
pub mod ssf;
pub mod ssf_receiver;
pub mod tokens;

use axum::http::HeaderMap;
use signoff_core::SessionContext;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::{cookies, csrf};

/// The live session named by the request's session cookie, if any. `touch` records activity;
/// logout and read-only pages that must not change state pass `false`.
pub async fn current_session(state: &AppState, headers: &HeaderMap, touch: bool) -> ApiResult<Option<SessionContext>> {
    let Some(secret) = cookies::session_secret(headers, state.config()) else {
        return Ok(None);
    };
    let authority = state.authority();
    let ctx = if touch { authority.authenticate(&secret).await? } else { authority.peek(&secret).await? };
    Ok(ctx)
}

/// Like [`current_session`] with `touch`, but a missing session is `401 unauthenticated`.
pub async fn require_session(state: &AppState, headers: &HeaderMap) -> ApiResult<SessionContext> {
    current_session(state, headers, true).await?.ok_or(ApiError::Unauthenticated)
}

/// A body field that must be there and not empty (`400` naming it otherwise).
pub fn required<'a>(value: &'a Option<String>, name: &str) -> ApiResult<&'a str> {
    value.as_deref().ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
}

/// The cross-site checks of a cookie-authenticated change, counted when they refuse.
pub fn csrf_guard(
    state: &AppState,
    headers: &HeaderMap,
    ctx: &SessionContext,
    body_token: Option<&str>,
) -> ApiResult<()> {
    csrf::check(headers, state.config(), ctx, body_token).inspect_err(|_| {
        state.metrics().csrf_refusals.inc();
    })
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    signoff_wire::authorization::bearer(headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?)
}
