//! The edge middleware every request passes: request id, panic containment, security and
//! cache headers, generic 5xx bodies, the access log and response counters.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use crate::app::AppState;
use crate::error::{ApiError, InternalDetail};
use crate::metrics::Metrics;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = hex(&signoff_core::secret::random_bytes::<8>());
    let method = req.method().clone();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());

    let mut res = match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(res) => res,
        Err(_) => {
            Metrics::inc(&state.metrics().panics);
            ApiError::Internal("handler panicked".into()).into_response()
        }
    };

    let status = res.status();
    if status.is_server_error() {
        let detail = res.extensions().get::<InternalDetail>().map(|d| d.0.clone()).unwrap_or_default();
        tracing::error!(request_id = %request_id, %method, route = %route, status = status.as_u16(), detail = %detail,
            "request failed");
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            let body = serde_json::json!({
                "error": "internal",
                "message": "internal error",
                "request_id": request_id,
            });
            res = (status, axum::Json(body)).into_response();
        }
    }
    secure_headers(res.headers_mut(), state.config().public_url.scheme() == "https");
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    state.metrics().response(status.as_u16());
    tracing::info!(target: "access", request_id = %request_id, %method, route = %route, status = status.as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0, "request");
    res
}

/// Headers every response carries. Responses are private and uncacheable unless a handler
/// said otherwise (static assets do).
fn secure_headers(h: &mut HeaderMap, https: bool) {
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: under it browsers send `Origin: null` on same-origin form posts, which
    // the cross-site check must refuse. `same-origin` keeps URLs from other sites all the same.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if https {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed(None)
}
