//! Request extractors of the edge: the body (JSON or form, strictly decoded), the client's
//! address and agent, and what kind of answer the caller wants.

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use signoff_core::ClientInfo;
use signoff_wire::body::{self, BodyError};

use crate::app::AppState;
use crate::error::ApiError;

/// Longest user agent we keep; the rest is cut.
const MAX_USER_AGENT: usize = 512;

/// A POST body decoded from `application/json` or `application/x-www-form-urlencoded`.
/// An empty body without a content type reads as an empty object. Anything else is a 4xx:
/// other media types 415, too large 413, bad syntax or invalid UTF-8 400, not sent within the
/// header-read timeout 408.
#[derive(Debug)]
pub struct Input<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Input<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let media = media_type(req.headers());
        let limit = state.config().max_body_bytes;
        // A body must arrive as promptly as the headers did: one that never comes would hold
        // its connection (and its slot under the connection cap) for good.
        let deadline = state.config().header_read_timeout;
        let bytes = tokio::time::timeout(deadline, axum::body::to_bytes(req.into_body(), limit))
            .await
            .map_err(|_| ApiError::RequestTimeout)?
            .map_err(|_| ApiError::PayloadTooLarge)?;
        let object = signoff_wire::body::decode(media.as_deref(), &bytes).map_err(|e| match e {
            BodyError::UnsupportedMediaType => ApiError::UnsupportedMediaType,
            BodyError::Malformed(msg) => ApiError::bad_request(msg),
        })?;
        serde_json::from_value(serde_json::Value::Object(object))
            .map(Input)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {}", body::without_position(&e.to_string()))))
    }
}

/// The media type of the request body without parameters, lower-cased.
fn media_type(headers: &HeaderMap) -> Option<String> {
    Some(body::media_type(headers.get(header::CONTENT_TYPE)?.to_str().ok()?))
}

pub use signoff_wire::body::{flex_bool, flex_u64};

/// The caller's address and user agent.
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client
where
    AppState: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        Ok(Client(client_info(&parts.headers, &parts.extensions, &state)))
    }
}

/// The client's address (the peer, or with `trust_proxy` the last `X-Forwarded-For` entry of
/// the last such header)
/// and its user agent, cut to a sane length.
pub fn client_info(headers: &HeaderMap, extensions: &axum::http::Extensions, state: &AppState) -> ClientInfo {
    let peer = extensions.get::<crate::listener::Connection>().map(|c| c.peer.ip().to_string());
    let forwarded = state
        .config()
        .trust_proxy
        // The last entry of the last header: a proxy that adds a header line of its own rather
        // than appending to the client's must still be the one believed.
        .then(|| {
            signoff_wire::forwarded::client_ip(headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?)
        })
        .flatten()
        .map(|ip| ip.to_string());
    let ip = forwarded.or(peer).unwrap_or_else(|| "unknown".to_owned());
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| {
        let mut end = ua.len().min(MAX_USER_AGENT);
        while !ua.is_char_boundary(end) {
            end -= 1;
        }
        ua[..end].to_owned()
    });
    ClientInfo { ip, user_agent }
}

/// What kind of answer the caller wants.
#[derive(Debug, Clone, Copy)]
pub struct Wants {
    /// A JSON answer (API caller) rather than redirects (browser form).
    pub json: bool,
    /// Errors as HTML pages (a browser navigating).
    pub html: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Wants {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.headers))
    }
}

impl Wants {
    pub fn of(headers: &HeaderMap) -> Self {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let json = accept.contains("application/json") || media_type(headers).as_deref() == Some("application/json");
        Self { json, html: !json && accept.contains("text/html") }
    }
}
