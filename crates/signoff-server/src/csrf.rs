//! Cross-site request protection, as the contract defines it: an origin check on every
//! state-changing request, plus the session's CSRF token when the request is authenticated by
//! cookie.

use axum::http::HeaderMap;
use signoff_core::SessionContext;

use crate::config::Config;
use crate::error::ApiError;

pub const TOKEN_HEADER: &str = "x-csrf-token";

/// `Origin`, if present, must be our public origin (`null` is cross-site); `Sec-Fetch-Site`,
/// if present, must be `same-origin` or `none`. A request with neither (curl, servers) passes
/// this half and relies on the token.
pub fn check_origin(headers: &HeaderMap, config: &Config) -> Result<(), ApiError> {
    // Every value must pass: a second, forged header cannot hide behind a good first one.
    let all_pass =
        |name: &str, ok: &dyn Fn(&str) -> bool| headers.get_all(name).iter().all(|v| v.to_str().is_ok_and(ok));
    let origin_ok = all_pass("origin", &|o| o == config.public_origin);
    let site_ok = all_pass("sec-fetch-site", &|s| matches!(s, "same-origin" | "none"));
    if origin_ok && site_ok { Ok(()) } else { Err(ApiError::Csrf) }
}

/// The origin check plus the token, from the `X-CSRF-Token` header or the body's `csrf_token`.
pub fn check(
    headers: &HeaderMap,
    config: &Config,
    ctx: &SessionContext,
    body_token: Option<&str>,
) -> Result<(), ApiError> {
    check_origin(headers, config)?;
    let presented = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()).or(body_token).unwrap_or_default();
    if ctx.secret.csrf_token_matches(presented) { Ok(()) } else { Err(ApiError::Csrf) }
}
