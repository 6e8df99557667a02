//! Shared Signals received (RFC 8935 push, signoff as the receiver): an administrator registers
//! an upstream transmitter (`POST /admin/ssf/receivers`) and gets the endpoint it pushes to and
//! the `Authorization` header it must send. Each SET pushed there is checked — that header
//! first, then the media type, the header's `typ`, the signature against the upstream's JWKS,
//! `iss`, `aud`, freshness and `jti` — and what it asks (a session revoked, a credential
//! changed, an account disabled) is done before the `202`. A refusal is RFC 8935's error body
//! and changes nothing.

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use signoff_core::signals::upstream::{SetRefusal, Upstream};
use signoff_jwt::keys::{PublicKey, public_keys_of_jwks};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::admin::require_admin;
use crate::app::AppState;
use crate::callback;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Client, Input};

/// How long an upstream's keys are used before they are fetched again.
const KEYS_FOR: Duration = Duration::from_secs(300);
/// At most one fetch of an upstream's keys this often (a SET naming an unknown key cannot make
/// signoff fetch on every request).
const REFETCH_AFTER: Duration = Duration::from_secs(10);
/// The largest JWKS and SET read.
const MAX_JWKS: usize = 64 * 1024;
const MAX_SET: usize = 16 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/ssf/receivers", post(register).get(list))
        .route("/admin/ssf/receivers/{id}", axum::routing::delete(remove))
        .route("/ssf/receivers/{id}/events", post(receive))
}

/// Keys by `kid`, as fetched at an instant.
type Fetched = (Instant, Vec<(String, PublicKey)>);

/// Each upstream's keys as last fetched.
#[derive(Default)]
pub struct UpstreamKeys(Mutex<HashMap<String, Fetched>>);

#[derive(Deserialize)]
struct Registration {
    issuer: Option<String>,
    jwks_uri: Option<String>,
    audience: Option<String>,
}

/// `201 {id, endpoint_url, authorization_header, issuer, jwks_uri, audience, created_at}`; the
/// header is shown once.
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Input(body): Input<Registration>,
) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let required = |name: &str, v: Option<String>| {
        v.map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty() && v.len() <= 2048)
            .ok_or_else(|| ApiError::bad_request(format!("{name} is required (at most 2048 characters)")))
    };
    let issuer = required("issuer", body.issuer)?;
    let audience = required("audience", body.audience)?;
    let jwks_uri = required("jwks_uri", body.jwks_uri)?;
    // Keys fetched in the clear could be anyone's: TLS, unless private callbacks are allowed.
    // Checked before the host is looked up.
    if !state.config().allow_private_callbacks && !jwks_uri.to_ascii_lowercase().starts_with("https://") {
        return Err(ApiError::bad_request("jwks_uri must be https"));
    }
    let jwks_uri = callback::check(&jwks_uri, state.config().allow_private_callbacks)
        .await
        .map_err(|e| ApiError::bad_request(format!("jwks_uri: {e}")))?;
    let (upstream, secret) = state.authority().register_signal_upstream(issuer, jwks_uri.to_string(), audience).await?;
    let mut body = listed(&state, &upstream);
    body["authorization_header"] = format!("Bearer {secret}").into();
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
}

fn listed(state: &AppState, u: &Upstream) -> Value {
    json!({
        "id": u.id,
        "endpoint_url": format!("{}/ssf/receivers/{}/events", state.config().public_origin, u.id),
        "issuer": u.issuer,
        "jwks_uri": u.jwks_uri,
        "audience": u.audience,
        "created_at": crate::views::rfc3339(u.created_at),
    })
}

/// `200 {receivers: [...]}`: every upstream, without its secret.
async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    let all = state.authority().signal_upstreams().await?;
    Ok(axum::Json(json!({"receivers": all.iter().map(|u| listed(&state, u)).collect::<Vec<_>>()})).into_response())
}

/// `204`: the upstream's endpoint refuses everything from now on.
async fn remove(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    require_admin(&state, &headers)?;
    if id.len() > 64 || !state.authority().delete_signal_upstream(&id).await? {
        return Err(ApiError::NotFound);
    }
    state.upstream_keys().0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// RFC 8935 §2.3: a refusal.
fn refused(status: StatusCode, refusal: &SetRefusal) -> Response {
    (status, axum::Json(json!({"err": refusal.err(), "description": refusal.description()}))).into_response()
}

async fn receive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Client(client): Client,
    request: Request,
) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let Some(upstream) = state.authority().signal_upstream(&id).await? else { return Err(ApiError::NotFound) };
    // The endpoint's credentials before anything is read: an anonymous caller holds nothing.
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(signoff_core::upstream_secret_hash);
    if !presented.is_some_and(|h| h.ct_eq(&upstream.secret_hash)) {
        let mut res = refused(StatusCode::UNAUTHORIZED, &SetRefusal::AuthenticationFailed);
        res.headers_mut().insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        return Ok(res);
    }
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(signoff_wire::body::media_type);
    if media.as_deref() != Some("application/secevent+jwt") {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            &SetRefusal::InvalidRequest("the body must be application/secevent+jwt"),
        ));
    }
    // Bounded in size and in time, as every body is.
    let deadline = state.config().header_read_timeout;
    let body = match tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_SET)).await {
        Err(_) => return Err(ApiError::RequestTimeout),
        Ok(Err(_)) => return Err(ApiError::PayloadTooLarge),
        Ok(Ok(body)) => body,
    };
    let token = match std::str::from_utf8(&body) {
        Ok(t) if t.len() <= MAX_SET => t.trim(),
        _ => return Ok(refused(StatusCode::BAD_REQUEST, &SetRefusal::InvalidRequest("the body is not a compact SET"))),
    };
    match signoff_jwt::typ(token) {
        Ok(Some(typ))
            if typ.eq_ignore_ascii_case("secevent+jwt") || typ.eq_ignore_ascii_case("application/secevent+jwt") => {}
        Ok(_) => {
            return Ok(refused(
                StatusCode::BAD_REQUEST,
                &SetRefusal::InvalidRequest("the header's typ is not secevent+jwt"),
            ));
        }
        Err(_) => {
            return Ok(refused(StatusCode::BAD_REQUEST, &SetRefusal::InvalidRequest("the body is not a compact SET")));
        }
    }
    let kid = signoff_jwt::kid(token).ok();
    let key = match &kid {
        Some(kid) => key_for(&state, &upstream, kid).await?,
        None => None,
    };
    let claims: Value = match signoff_jwt::keys::verify_with(token, |_| key) {
        Ok(claims) => claims,
        Err(_) => return Ok(refused(StatusCode::BAD_REQUEST, &SetRefusal::InvalidKey)),
    };
    match state.authority().receive_signal(&upstream, &claims, &client).await? {
        Ok(received) => {
            tracing::info!(upstream = %upstream.id, issuer = %upstream.issuer, jti = %received.jti.escape_debug(), events = %received.types.join(" ").escape_debug(), users = received.ends.len(), repeat = received.repeat, "security event received");
            Ok(StatusCode::ACCEPTED.into_response())
        }
        Err(refusal) => {
            tracing::warn!(upstream = %upstream.id, issuer = %upstream.issuer, err = refusal.err(), description = refusal.description(), "security event refused");
            Ok(refused(StatusCode::BAD_REQUEST, &refusal))
        }
    }
}

/// The upstream's key `kid`: from the keys fetched last, or fetched again (at most once per
/// [`REFETCH_AFTER`]) when they are old or lack it.
async fn key_for(state: &AppState, upstream: &Upstream, kid: &str) -> Result<Option<PublicKey>, ApiError> {
    let cache = state.upstream_keys();
    let lookup = |keys: &[(String, PublicKey)]| keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key.clone());
    let retry = || ApiError::Busy { retry_after_secs: REFETCH_AFTER.as_secs() };
    let held = cache.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&upstream.id).cloned();
    if let Some((tried, keys)) = &held {
        let found = lookup(keys);
        if found.is_some() && tried.elapsed() < KEYS_FOR {
            return Ok(found);
        }
        // Looked at too recently to look again: a key not among those held may be a new one
        // the transmitter just rotated to, so it is asked to retry rather than told "invalid".
        if tried.elapsed() < REFETCH_AFTER {
            return found.map(Some).ok_or_else(retry);
        }
    }
    let held_keys = held.map(|(_, keys)| keys).unwrap_or_default();
    let (keys, fetched) = match fetch_keys(state, &upstream.jwks_uri).await {
        Ok(keys) => (keys, true),
        Err(why) => {
            let url = upstream.jwks_uri.split(['?', '#']).next().unwrap_or_default();
            tracing::warn!(upstream = %upstream.id, jwks_uri = %url, why, "cannot fetch an upstream transmitter's keys");
            // The keys last fetched still verify what they verified; this attempt is counted.
            (held_keys, false)
        }
    };
    let found = lookup(&keys);
    if state.authority().signal_upstream(&upstream.id).await.ok().flatten().is_some() {
        cache
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(upstream.id.clone(), (Instant::now(), keys));
    }
    match (found, fetched) {
        (Some(key), _) => Ok(Some(key)),
        (None, true) => Ok(None),
        // Without keys to judge by, the transmitter is told to try again (a 400 would tell it
        // to give the event up).
        (None, false) => Err(retry()),
    }
}

/// An upstream's JWKS, under the callback URL rules (its addresses pinned, no redirects,
/// bounded in time and size).
async fn fetch_keys(state: &AppState, jwks_uri: &str) -> Result<Vec<(String, PublicKey)>, &'static str> {
    let (url, pinned) =
        callback::checked(jwks_uri, state.config().allow_private_callbacks).await.map_err(|_| "the URL is refused")?;
    let http = callback::pinned_client(&url, &pinned, Duration::from_secs(5)).ok_or("no HTTP client")?;
    let mut res = http.get(url).header("accept", "application/json").send().await.map_err(|_| "unreachable")?;
    if !res.status().is_success() {
        return Err("not a 2xx");
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|_| "the body broke off")? {
        if body.len() + chunk.len() > MAX_JWKS {
            return Err("too large");
        }
        body.extend_from_slice(&chunk);
    }
    let jwks: Value = serde_json::from_slice(&body).map_err(|_| "not JSON")?;
    Ok(public_keys_of_jwks(&jwks))
}
