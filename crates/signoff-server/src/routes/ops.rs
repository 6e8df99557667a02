//! Operations: liveness, readiness, metrics and the OpenAPI document.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::app::AppState;

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
    if let Some(url) = &state.config().redis_url
        && let Err(e) = redis_ping(url.expose()).await
    {
        return not_ready("redis", e);
    }
    if let Some(since) = state.authority().cluster().and_then(|c| c.jeopardy_since()) {
        // Requests are still answered (after reading the feed), but a load balancer should
        // prefer the nodes that can vouch for their caches.
        let ms = since.elapsed().as_millis() as u64;
        tracing::debug!(jeopardy_ms = ms, "not ready: caches not vouched for");
        let body = json!({ "error": "not_ready", "message": "catching up with the other nodes" });
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    axum::Json(json!({ "status": "ready" })).into_response()
}

/// `PING` over a plain connection to the configured Redis, answered `+PONG` within a second.
async fn redis_ping(url: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = url.host_str().ok_or("no host")?.to_owned();
    let port = url.port().unwrap_or(6379);
    let ping = async {
        let mut conn = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
        conn.write_all(b"PING\r\n").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 7];
        conn.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        if &buf == b"+PONG\r\n" {
            Ok(())
        } else {
            Err(format!("unexpected answer {:?}", String::from_utf8_lossy(&buf)))
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(1), ping).await.map_err(|_| "timed out".to_owned())?
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(state.authority().hub().watched_sessions()),
    )
        .into_response()
}

async fn openapi() -> Response {
    let mut res = ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}
