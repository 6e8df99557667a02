//! Request extractors of the edge: the body (JSON or form, strictly decoded), the client's
//! address and agent, and what kind of answer the caller wants.

use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use signoff_core::ClientInfo;
use std::net::SocketAddr;

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
        let value = match media.as_deref() {
            Some("application/json") => serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|_| ApiError::bad_request("malformed JSON body"))?,
            Some("application/x-www-form-urlencoded") => parse_form(&bytes)?,
            None if bytes.is_empty() => serde_json::Value::Object(Default::default()),
            _ => return Err(ApiError::UnsupportedMediaType),
        };
        if !value.is_object() {
            return Err(ApiError::bad_request("the body must be an object"));
        }
        serde_json::from_value(value)
            .map(Input)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {}", strip_serde_position(&e.to_string()))))
    }
}

/// The media type of the request body without parameters, lower-cased.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

fn strip_serde_position(msg: &str) -> &str {
    msg.split(" at line ").next().unwrap_or(msg)
}

/// Decodes a form body into a JSON object of strings, refusing invalid UTF-8 rather than
/// replacing it. A key given twice keeps its first value.
fn parse_form(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let decode = |raw: &[u8]| -> Result<String, ApiError> {
        let spaced: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
        percent_encoding::percent_decode(&spaced)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| ApiError::bad_request("form body is not valid UTF-8"))
    };
    let mut map = serde_json::Map::new();
    for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut kv = pair.splitn(2, |b| *b == b'=');
        let key = decode(kv.next().unwrap_or_default())?;
        let value = decode(kv.next().unwrap_or_default())?;
        map.entry(key).or_insert(serde_json::Value::String(value));
    }
    Ok(serde_json::Value::Object(map))
}

/// Accepts `true`/`false` and the strings forms send (`on`, `1`, `true`, `yes`, empty).
pub fn flex_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    match B::deserialize(d)? {
        B::Bool(b) => Ok(b),
        B::Str(s) => match s.to_ascii_lowercase().as_str() {
            "on" | "1" | "true" | "yes" => Ok(true),
            "off" | "0" | "false" | "no" | "" => Ok(false),
            _ => Err(serde::de::Error::custom("expected a boolean")),
        },
    }
}

/// Accepts a whole number, or the string of one that forms send; absent or empty is `None`.
pub fn flex_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Str(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Num(n)) => Ok(Some(n)),
        Some(N::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(N::Str(s)) => s.trim().parse().map(Some).map_err(|_| serde::de::Error::custom("expected a whole number")),
    }
}

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

/// The client's address (the peer, or with `trust_proxy` the last `X-Forwarded-For` entry)
/// and its user agent, cut to a sane length.
pub fn client_info(headers: &HeaderMap, extensions: &axum::http::Extensions, state: &AppState) -> ClientInfo {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    let forwarded = state
        .config()
        .trust_proxy
        .then(|| headers.get("x-forwarded-for")?.to_str().ok()?.rsplit(',').next().map(|s| s.trim().to_owned()))
        .flatten()
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_is_strict() {
        let v = parse_form(b"email=a%40b.c&password=x+y&email=ignored&flag").unwrap();
        assert_eq!(v["email"], "a@b.c");
        assert_eq!(v["password"], "x y");
        assert_eq!(v["flag"], "");
        assert!(parse_form(b"email=%FF%FE").is_err());
    }
}
