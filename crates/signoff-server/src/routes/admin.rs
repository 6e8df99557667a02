//! The admin API, authenticated by `Authorization: Bearer <admin key>`; off (404) when no key
//! is configured.

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use signoff_core::UserId;
use signoff_core::secret::ct_eq_str;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Client, Input};
use crate::views;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/users/{user_id}/sessions", get(sessions))
        .route("/admin/users/{user_id}/revoke", post(revoke))
}

/// The admin key must be configured and presented exactly; compared in constant time.
pub fn require_admin(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(key) = state.config().admin_token.as_ref().map(|k| k.expose()) else {
        return Err(ApiError::NotFound);
    };
    require_bearer(key, headers)
}

/// `Authorization: Bearer KEY`, compared in constant time.
pub fn require_bearer(key: &str, headers: &HeaderMap) -> ApiResult<()> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if ct_eq_str(presented, key) { Ok(()) } else { Err(ApiError::InvalidToken) }
}

async fn user(state: &AppState, id: Result<Path<String>, PathRejection>) -> ApiResult<UserId> {
    let Path(id) = id.map_err(|_| ApiError::NotFound)?;
    let id = UserId::from_string(id);
    state.authority().user(&id).await?.ok_or(ApiError::NotFound)?;
    Ok(id)
}

async fn sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let id = user(&state, id).await?;
    let authority = state.authority();
    let list: Vec<_> = authority.devices_of(&id).await?.iter().map(|d| views::listed_device(d, false)).collect();
    Ok(axum::Json(json!({ "sessions": list })).into_response())
}

#[derive(Debug, Deserialize)]
struct RevokeBody {
    reason: Option<String>,
}

async fn revoke(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    Input(body): Input<RevokeBody>,
) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let id = user(&state, id).await?;
    let ended = state.authority().admin_revoke(&id, body.reason.as_deref().unwrap_or_default(), &client).await?;
    state.metrics().sessions_ended.inc_by(ended);
    Ok(axum::Json(json!({ "revoked": ended })).into_response())
}
