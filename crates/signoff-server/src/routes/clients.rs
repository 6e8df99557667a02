//! `/admin/clients`: registering the applications and services that rely on signoff (admin
//! bearer key). The secrets are in the `201` answer and nowhere else, ever.

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use signoff_core::clients::{EndpointKind, GrantType, RegisteredClient};
use signoff_core::outbox::{DeliveryPage, DeliveryStatus, parse_cursor};

use super::admin::require_admin;
use super::registration::Registration;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Input, flex_u64};
use crate::views;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/clients", get(list).post(register))
        .route("/admin/clients/{client_id}", delete(remove))
        .route("/admin/clients/{client_id}/deliveries", get(deliveries))
        .route("/admin/clients/{client_id}/deliveries/{delivery_id}/retry", post(retry))
        .route("/admin/clients/{client_id}/webhook-secret", post(rotate_webhook_secret))
        .route("/admin/clients/{client_id}/secret", post(rotate_secret))
}

/// Deliveries listed per page unless asked otherwise, and at most.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;
/// How long a replaced webhook secret is still signed with, unless asked otherwise, and at most.
const DEFAULT_OVERLAP: u64 = 24 * 3600;
const MAX_OVERLAP: u64 = 7 * 24 * 3600;

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Input(body): Input<Registration>,
) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let checked = body.check(&state).await?;
    let new = state.authority().register_client(checked.name, checked.endpoints, checked.profile).await?;
    let mut out = listed(&new.client);
    out["client_secret"] = json!(new.client_secret.expose());
    if let Some(secret) = &new.client.webhook_secret {
        out["webhook_secret"] = json!(secret);
    }
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

/// A client as the admin API shows it: the registration's names, no secrets.
fn listed(c: &RegisteredClient) -> serde_json::Value {
    let p = &c.profile;
    let uris = |kind| c.endpoints_of(kind).collect::<Vec<_>>();
    json!({
        "client_id": c.id,
        "name": c.name,
        "client_name": c.name,
        "redirect_uris": uris(EndpointKind::Redirect),
        "post_logout_redirect_uris": uris(EndpointKind::PostLogoutRedirect),
        "frontchannel_logout_uri": c.endpoint(EndpointKind::FrontchannelLogout),
        "frontchannel_logout_session_required": p.frontchannel_logout_session_required,
        "backchannel_logout_uri": c.endpoint(EndpointKind::BackchannelLogout),
        "backchannel_logout_session_required": p.backchannel_logout_session_required,
        "webhook_url": c.endpoint(EndpointKind::Webhook),
        "grant_types": p.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types": if p.allows(GrantType::AuthorizationCode) { vec!["code"] } else { vec![] },
        "token_endpoint_auth_method": p.token_endpoint_auth_method.as_str(),
        "id_token_signed_response_alg": p.id_token_signed_response_alg.as_str(),
        "global_token_revocation": p.global_token_revocation,
        "shared_signals": p.shared_signals,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    status: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

impl DeliveriesQuery {
    fn page(self) -> ApiResult<DeliveryPage> {
        let status = match self.status.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                DeliveryStatus::parse(s)
                    .ok_or_else(|| ApiError::bad_request("status: pending, delivered or failed"))?,
            ),
        };
        let before = match self.before.as_deref() {
            None | Some("") => None,
            Some(c) => Some(parse_cursor(c).ok_or_else(|| ApiError::bad_request("before: not a cursor from `next`"))?),
        };
        let limit = match self.limit.as_deref() {
            None | Some("") => DEFAULT_PAGE,
            Some(n) => n
                .parse()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| ApiError::bad_request(format!("limit: 1 to {MAX_PAGE}")))?,
        };
        Ok(DeliveryPage { status, before, limit })
    }
}

/// A page of a client's deliveries, newest first; `next` is the cursor of the page after.
async fn deliveries(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let Path(id) = id.map_err(|_| ApiError::NotFound)?;
    let Query(query) = query.map_err(|_| ApiError::bad_request("query: status, before, limit"))?;
    let page = query.page()?;
    let list = state.authority().client_deliveries(&id, &page).await?.ok_or(ApiError::NotFound)?;
    let next = (list.len() == page.limit as usize).then(|| list.last().map(|d| d.cursor())).flatten();
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
                "last_error": d.last_error,
                "next_attempt_at": views::rfc3339(d.next_attempt_at),
                "created_at": views::rfc3339(d.created_at),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "deliveries": deliveries, "next": next })).into_response())
}

#[derive(Debug, Deserialize)]
struct Rotation {
    #[serde(default, deserialize_with = "flex_u64")]
    overlap_seconds: Option<u64>,
}

/// A new webhook secret, shown this once; the old one is still signed with during the overlap
/// (every webhook then carries both signatures), so receivers switch without losing one.
async fn rotate_webhook_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    Input(body): Input<Rotation>,
) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let Path(id) = id.map_err(|_| ApiError::NotFound)?;
    let overlap = body.overlap_seconds.unwrap_or(DEFAULT_OVERLAP);
    if overlap > MAX_OVERLAP {
        return Err(ApiError::bad_request(format!("overlap_seconds: 0 to {MAX_OVERLAP}")));
    }
    let overlap = time::Duration::seconds(overlap as i64);
    match state.authority().rotate_webhook_secret(&id, overlap).await? {
        None => Err(ApiError::NotFound),
        Some(None) => Err(ApiError::Unprocessable("no_webhook_url", "the client has no webhook URL".into())),
        Some(Some((secret, until))) => Ok(axum::Json(json!({
            "webhook_secret": secret,
            "previous_valid_until": (overlap > time::Duration::ZERO).then(|| views::rfc3339(until)),
        }))
        .into_response()),
    }
}

/// A new client secret, shown this once. The old one is refused at once on every node, and the
/// machine tokens it got by `client_credentials` die with it (relying services hear of it on the
/// feed); the client's other credentials (its webhook secret, its users' tokens) stay.
async fn rotate_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let Path(id) = id.map_err(|_| ApiError::NotFound)?;
    let secret = state.authority().rotate_client_secret(&id).await?.ok_or(ApiError::NotFound)?;
    let mut res = axum::Json(json!({ "client_id": id, "client_secret": secret.expose() })).into_response();
    res.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(res)
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
