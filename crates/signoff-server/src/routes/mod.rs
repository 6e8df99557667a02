//! Handlers, grouped by the part of the contract they serve.

pub mod auth;
pub mod demo;
pub mod logout;
pub mod ops;
pub mod sessions;

use axum::http::HeaderMap;
use signoff_core::SessionContext;

use crate::app::AppState;
use crate::cookies;
use crate::error::{ApiError, ApiResult};

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
