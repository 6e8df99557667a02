//! A user's sessions and history: `GET /auth/sessions`, `DELETE /auth/sessions/{id}` (and its
//! form twin), `GET /auth/audit`.

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use signoff_core::SessionId;

use super::require_session;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Client, Input, Wants};
use crate::{cookies, csrf, views};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/sessions", get(list))
        .route("/auth/sessions/{id}", delete(revoke))
        .route("/auth/sessions/{id}/revoke", post(revoke_form))
        .route("/auth/audit", get(audit))
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let ctx = require_session(&state, &headers).await?;
    let authority = state.authority();
    let devices = authority.devices_of(&ctx.user.id).await?;
    let list: Vec<_> = devices.iter().map(|d| views::listed_device(d, d.id == ctx.session.id)).collect();
    Ok(axum::Json(json!({ "sessions": list })).into_response())
}

async fn revoke(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let own = end_one(&state, &client, &headers, id, None).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    if own {
        for c in cookies::clear_all(state.config()) {
            res.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    Ok(res)
}

/// Carries secrets: deliberately not `Debug`, so it can never be logged by accident.
#[derive(Deserialize)]
struct RevokeForm {
    csrf_token: Option<String>,
}

async fn revoke_form(
    State(state): State<AppState>,
    wants: Wants,
    Client(client): Client,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    Input(body): Input<RevokeForm>,
) -> ApiResult<Response> {
    let own = end_one(&state, &client, &headers, id, body.csrf_token.as_deref()).await?;
    let mut res = match (wants.json, own) {
        (true, _) => StatusCode::NO_CONTENT.into_response(),
        (false, true) => Redirect::to("/login?logged_out=1").into_response(),
        (false, false) => Redirect::to("/app/sessions?revoked=1").into_response(),
    };
    if own {
        for c in cookies::clear_all(state.config()) {
            res.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    Ok(res)
}

/// Checks the caller and ends one of its sessions; `true` when that was the caller's own.
async fn end_one(
    state: &AppState,
    client: &signoff_core::ClientInfo,
    headers: &HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body_token: Option<&str>,
) -> ApiResult<bool> {
    let Path(id) = id.map_err(|_| ApiError::NotFound)?;
    let ctx = require_session(state, headers).await?;
    if let Err(e) = csrf::check(headers, state.config(), &ctx, body_token) {
        state.metrics().csrf_refusals.inc();
        return Err(e);
    }
    let id = SessionId::from_string(id);
    state.authority().revoke_session(&ctx, &id, client).await?;
    state.metrics().sessions_ended.inc();
    Ok(id == ctx.session.id)
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<u32>,
}

async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|_| ApiError::bad_request("limit must be a number"))?;
    let ctx = require_session(&state, &headers).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let events = state.authority().audit_of(&ctx.user.id, limit).await?;
    let events: Vec<_> = events.iter().map(views::audit_event).collect();
    Ok(axum::Json(json!({ "events": events })).into_response())
}
