//! `/admin/clients`: registering the applications and services that rely on signoff (admin
//! bearer key). The secrets are in the `201` answer and nowhere else, ever.

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use signoff_core::clients::RegisteredClient;

use super::admin::require_admin;
use crate::app::AppState;
use crate::callback;
use crate::error::{ApiError, ApiResult};
use crate::extract::Input;
use crate::views;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/clients", get(list).post(register))
        .route("/admin/clients/{client_id}", delete(remove))
        .route("/admin/clients/{client_id}/deliveries", get(deliveries))
        .route("/admin/clients/{client_id}/deliveries/{delivery_id}/retry", post(retry))
}

/// Longest client name kept.
const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
struct Registration {
    name: Option<String>,
    backchannel_logout_uri: Option<String>,
    webhook_url: Option<String>,
}

/// An optional callback URL: empty means none; anything else must pass the SSRF guard.
async fn callback_url(state: &AppState, field: &'static str, raw: Option<String>) -> ApiResult<Option<String>> {
    let Some(raw) = raw.filter(|s| !s.trim().is_empty()) else { return Ok(None) };
    callback::check(raw.trim(), state.config().allow_private_callbacks)
        .await
        .map(|url| Some(url.to_string()))
        .map_err(|e| ApiError::Unprocessable("invalid_callback", format!("{field}: {e}")))
}

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Input(body): Input<Registration>,
) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let name = body.name.map(|n| n.trim().to_owned()).unwrap_or_default();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!("name: 1 to {MAX_NAME_CHARS} printable characters")));
    }
    let backchannel = callback_url(&state, "backchannel_logout_uri", body.backchannel_logout_uri).await?;
    let webhook = callback_url(&state, "webhook_url", body.webhook_url).await?;
    let new = state.authority().register_client(name, backchannel, webhook).await?;
    let mut out = json!({
        "client_id": new.client.id,
        "client_secret": new.client_secret.expose(),
        "name": new.client.name,
        "backchannel_logout_uri": new.client.backchannel_logout_uri,
        "webhook_url": new.client.webhook_url,
        "created_at": views::rfc3339(new.client.created_at),
    });
    if let Some(secret) = &new.client.webhook_secret {
        out["webhook_secret"] = json!(secret);
    }
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

fn listed(c: &RegisteredClient) -> serde_json::Value {
    json!({
        "client_id": c.id,
        "name": c.name,
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "webhook_url": c.webhook_url,
        "created_at": views::rfc3339(c.created_at),
    })
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let clients: Vec<_> = state.authority().clients().await?.iter().map(listed).collect();
    Ok(axum::Json(json!({ "clients": clients })).into_response())
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let Path(id) = id.map_err(|_| ApiError::NotFound)?;
    if state.authority().delete_client(&id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound)
    }
}

async fn deliveries(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let Path(id) = id.map_err(|_| ApiError::NotFound)?;
    let list = state.authority().client_deliveries(&id).await?.ok_or(ApiError::NotFound)?;
    let deliveries: Vec<_> = list
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "kind": d.kind.as_str(),
                "event": d.event,
                "status": d.status.as_str(),
                "attempts": d.attempts,
                "last_status_code": d.last_status_code,
                "next_attempt_at": views::rfc3339(d.next_attempt_at),
                "created_at": views::rfc3339(d.created_at),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "deliveries": deliveries })).into_response())
}

/// Makes a failed delivery pending again (sent at once).
async fn retry(
    State(state): State<AppState>,
    headers: HeaderMap,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let Path((client, delivery)) = ids.map_err(|_| ApiError::NotFound)?;
    if state.authority().retry_delivery(&client, &delivery).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound)
    }
}
