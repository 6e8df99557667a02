//! The edge middleware every request passes: request id, panic containment, signing back in
//! from a remember-me cookie (`remember::around`), security and cache headers, generic 5xx
//! bodies, the access log, response counters and latency histograms.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::app::AppState;
use crate::error::{ApiError, InternalDetail};
use crate::metrics::Operation;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Not among `http`'s named headers; parsed once, not per response.
const CROSS_ORIGIN_OPENER_POLICY: HeaderName = HeaderName::from_static("cross-origin-opener-policy");

/// Pages may load their own scripts, styles and images, and nothing else; nobody may frame them.
pub(crate) const CSP_HTML: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// Everything else (JSON, scripts, styles) renders nothing: the strictest policy, and short.
const CSP_OTHER: &str = "default-src 'none'; frame-ancestors 'none'";

/// The edge as axum middleware, around every route the router matched (and its fallbacks).
pub async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    around(&state, req, route, |req| next.run(req)).await
}

/// The edge's work around `inner`, the route's handler, for a request to `route` (the route's
/// pattern, `unmatched` for none): what [`edge`] does for the router, and what
/// [`Surface`](crate::app::Surface) does for the routes it calls directly.
pub(crate) async fn around<F, Fut>(state: &AppState, req: Request, route: &str, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut + Send,
    Fut: std::future::Future<Output = Response> + Send,
{
    let started = Instant::now();
    let id = RequestId::next();
    let request_id = id.as_str();
    let method = req.method().clone();
    let operation = Operation::of(&method, route);
    let browser = crate::error_page::Browser::of(&method, req.uri(), req.headers());

    let mut res = match browser.as_ref().and_then(|b| b.elsewhere(state.config())) {
        Some(to_public_url) => to_public_url,
        None => contained(state, crate::remember::around(state, req, route, inner)).await,
    };

    let status = res.status();
    let detail = |res: &Response| res.extensions().get::<InternalDetail>().map(|d| d.0.clone()).unwrap_or_default();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Shed load (password hashing saturated) or not ready: worth a look, not an alarm.
        tracing::warn!(request_id = %request_id, %method, route = %route, detail = %detail(&res), "request refused: unavailable");
    } else if status.is_server_error() {
        let detail = detail(&res);
        tracing::error!(request_id = %request_id, %method, route = %route, status = status.as_u16(), detail = %detail,
            "request failed");
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            let body = serde_json::json!({
                "error": "internal",
                "message": "internal error",
                "request_id": request_id,
            });
            // The cookies stay: a remember-me rotation committed before the handler failed, and
            // a browser that never got its new token would look like a thief on its next visit.
            let cookies: Vec<HeaderValue> = res.headers().get_all(header::SET_COOKIE).iter().cloned().collect();
            res = (status, axum::Json(body)).into_response();
            // For a browser's page: the request id, which the log line above carries too.
            res.extensions_mut().insert(crate::error::ErrorText { code: "internal", message: request_id.to_owned() });
            for c in cookies {
                res.headers_mut().append(header::SET_COOKIE, c);
            }
        }
    }
    if let Some(browser) = &browser
        && (status.is_client_error() || status.is_server_error())
    {
        // Boxed: a page may look its session up, state no other request should carry.
        res = Box::pin(browser.page(state, res)).await;
    }
    secure_headers(res.headers_mut(), state.config().public_url.scheme() == "https");
    if let Ok(v) = HeaderValue::from_bytes(&id.0) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    // A refusal that asks to come back (Retry-After) is shed load; `/readyz` saying "not yet"
    // is not.
    let metrics = state.metrics();
    metrics.response(status.as_u16(), res.headers().contains_key(axum::http::header::RETRY_AFTER));
    let took = started.elapsed();
    if let Some(op) = operation {
        metrics.observe(op, took);
    }
    crate::logging::access(&crate::logging::Access {
        request_id,
        method: method.as_str(),
        route,
        status: status.as_u16(),
        took,
    });
    res
}

/// Runs `work`, turning a panic into a generic 500 (counted).
pub(crate) async fn contained(state: &AppState, work: impl std::future::Future<Output = Response>) -> Response {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(res) => res,
        Err(_) => {
            state.metrics().panics.inc();
            ApiError::Internal("handler panicked".into()).into_response()
        }
    }
}

/// Headers every response carries. Responses are private and uncacheable unless a handler
/// said otherwise (static assets do).
fn secure_headers(h: &mut HeaderMap, https: bool) {
    // Room for all of them at once, rather than growing the map twice.
    h.reserve(10);
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: under it browsers send `Origin: null` on same-origin form posts, which
    // the cross-site check must refuse. `same-origin` keeps URLs from other sites all the same.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let html = h.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    // A page may have set its own (one whose form leads on to an app: see
    // `html::with_form_target`); every other response gets the policy of its kind.
    if !(html && h.contains_key(header::CONTENT_SECURITY_POLICY)) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(if html { CSP_HTML } else { CSP_OTHER }));
    }
    h.insert(CROSS_ORIGIN_OPENER_POLICY, HeaderValue::from_static("same-origin"));
    if https {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    }
}

/// A request id: a random 24-bit per-process prefix and a 40-bit counter (a trillion requests
/// before it repeats), as 16 hex digits. Unique and cheap (no system call, no allocation, no
/// formatter per request); it identifies a request in the logs and need not be unguessable.
struct RequestId([u8; 16]);

impl RequestId {
    fn next() -> Self {
        static PREFIX: OnceLock<u32> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(|| u32::from_le_bytes(signoff_core::secret::random_bytes::<4>()));
        let n = (u64::from(prefix & 0xff_ffff) << 40) | (COUNTER.fetch_add(1, Ordering::Relaxed) & 0xff_ffff_ffff);
        let mut out = [0u8; 16];
        for (i, digit) in out.iter_mut().enumerate() {
            *digit = b"0123456789abcdef"[((n >> (60 - 4 * i)) & 0xf) as usize];
        }
        Self(out)
    }

    fn as_str(&self) -> &str {
        // Hex digits only: always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed(None)
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn request_ids_are_sixteen_hex_digits_and_distinct() {
        let (a, b) = (RequestId::next(), RequestId::next());
        assert_eq!(a.as_str().len(), 16);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str()[..6], b.as_str()[..6], "one process, one prefix");
    }
}
