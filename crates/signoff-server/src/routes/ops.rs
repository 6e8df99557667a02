//! Operations: liveness, readiness, metrics and the OpenAPI document.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::app::AppState;
use crate::metrics::Snapshot;

/// The contract as OpenAPI 3.1, kept beside the code and checked against the router in tests.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let not_ready = |what: &str, detail: String| {
        tracing::warn!(error = %detail, "not ready: {what} unreachable");
        let body = json!({ "error": "not_ready", "message": format!("{what} unreachable") });
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    };
    if let Err(e) = state.authority().ready().await {
        return not_ready("store", e.to_string());
    }
    // Redis only speeds hints up; LISTEN/NOTIFY carries them meanwhile, so a node is ready
    // without it (and says so).
    // (The fan-out's listener logs the outage itself: a probe every few seconds adds nothing.)
    let mut redis = None;
    if let Some(url) = &state.config().redis_url
        && state.authority().cluster().is_some()
        && let Err(e) = signoff_redis::ping(url.expose()).await
    {
        tracing::debug!(error = %e, "Redis unreachable: hints between nodes go through PostgreSQL LISTEN/NOTIFY");
        redis = Some("unreachable: hints between nodes go through PostgreSQL LISTEN/NOTIFY");
    }
    if let Some(since) = state.authority().cluster().and_then(|c| c.jeopardy_since()) {
        // Requests are still answered (after reading the feed), but a load balancer should
        // prefer the nodes that can vouch for their caches.
        let ms = since.elapsed().as_millis() as u64;
        tracing::debug!(jeopardy_ms = ms, "not ready: caches not vouched for");
        let body = json!({ "error": "not_ready", "message": "catching up with the other nodes" });
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    match redis {
        Some(redis) => axum::Json(json!({ "status": "ready", "redis": redis })).into_response(),
        None => axum::Json(json!({ "status": "ready" })).into_response(),
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(key) = &state.config().metrics_token
        && let Err(refused) = super::admin::require_bearer(key.expose(), &headers)
    {
        return refused.into_response();
    }
    let authority = state.authority();
    // The outbox, counted at most once a second however often this is asked.
    let deliveries =
        state.metrics().deliveries.get_or_refresh(|| async { authority.delivery_counts().await.ok() }).await;
    let cluster = authority.cluster();
    let snapshot = Snapshot {
        event_stream_sessions: authority.hub().watched_sessions(),
        caches: authority.cache_sizes(),
        node_vouches: cluster.map(|c| c.vouches()),
        jeopardy: cluster.and_then(|c| c.jeopardy_since()).map(|since| since.elapsed()),
        feed_head: authority.client_feed().head(),
    };
    let text = state.metrics().render(snapshot, deliveries);
    // OpenMetrics for a scraper that asks for it, the classic text type otherwise (the body
    // parses as both).
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

async fn openapi() -> Response {
    let mut res = ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}
