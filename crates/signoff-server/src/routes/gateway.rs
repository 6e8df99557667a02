//! Forward authentication for reverse proxies: the proxy asks about every request before it
//! passes it to an application, and signoff answers with the same checks as `/api/me`.
//!
//! - `GET /authz/auth-request` (nginx `auth_request`, which turns anything but 2xx/401/403 into
//!   a 500): only `200`, `401` (with `Location: /login?return_to=…` from `X-Original-URL`) or
//!   `403` (the check itself could not be made: fail closed, without sending people to sign in).
//! - `GET /authz/forward-auth` (Caddy `forward_auth`, Traefik ForwardAuth): `200`; `302` to the
//!   sign-in page for an unauthenticated HTML navigation (`/login?…`, or on the public origin
//!   for Traefik, which would resolve a relative one against signoff's own address); `401`
//!   otherwise; `503` when the check could not be made.
//!
//! Every `200` carries all three identity headers (empty rather than missing: Caddy passes a
//! literal placeholder to the app for a missing one). `X-Forwarded-*`/`X-Original-*` are
//! believed only from `trusted_proxies`; nothing is read from the query string (Caddy appends
//! the application's own).

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;

use crate::app::AppState;
use crate::error::ApiError;
use crate::redirect;
use crate::routes::{bearer, current_session};

pub fn routes() -> Router<AppState> {
    Router::new().route("/authz/auth-request", get(auth_request)).route("/authz/forward-auth", get(forward_auth))
}

/// Who the forwarded request is, by the same checks as `/api/me`.
struct Identity {
    user: String,
    email: String,
    session: String,
}

/// `Ok(None)`: nobody (or a dead credential); `Err`: the check could not be made.
async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Option<Identity>, ApiError> {
    if let Some(token) = bearer(headers) {
        return match state.authority().verify_access(token).await {
            // An app's token from the OpenID provider is that app's, not a pass to the others.
            Ok(ctx) if ctx.claims.client_id.is_some() => Ok(None),
            Ok(ctx) => Ok(Some(Identity {
                user: ctx.user.id.as_str().to_owned(),
                email: ctx.user.email.clone(),
                session: ctx.session.id.as_str().to_owned(),
            })),
            Err(signoff_core::token::TokenError::Unavailable) => Err(ApiError::Busy { retry_after_secs: 1 }),
            Err(_) => Ok(None),
        };
    }
    Ok(current_session(state, headers, true).await?.map(|ctx| Identity {
        user: ctx.user.id.as_str().to_owned(),
        email: ctx.user.email.clone(),
        session: ctx.session.id.as_str().to_owned(),
    }))
}

/// A header's value, but only when the request comes from a trusted proxy.
fn forwarded<'a>(state: &AppState, peer: Option<SocketAddr>, headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let trusted = peer.is_some_and(|p| state.config().trusted_proxies.iter().any(|net| net.contains(p.ip())));
    if !trusted {
        return None;
    }
    headers.get(name)?.to_str().ok().map(str::trim).filter(|v| !v.is_empty())
}

/// `/login?return_to=…` for the original URL, when it passes the same validation as a login's
/// `return_to` (else the default target).
fn sign_in_location(state: &AppState, original: Option<&str>) -> String {
    let target = redirect::validate(original, "/", state.config());
    let encoded = percent_encoding::utf8_percent_encode(&target, percent_encoding::NON_ALPHANUMERIC);
    format!("/login?return_to={encoded}")
}

/// The identity headers, every one present.
fn allowed(id: &Identity) -> Response {
    let mut res = StatusCode::OK.into_response();
    let headers = res.headers_mut();
    for (name, value) in
        [("x-signoff-user", &id.user), ("x-signoff-email", &id.email), ("x-signoff-session", &id.session)]
    {
        headers.insert(name, HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("")));
    }
    res
}

fn no_store(mut res: Response) -> Response {
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    res
}

pub(crate) async fn auth_request(State(state): State<AppState>, request: Request) -> Response {
    // The request itself, not `Parts` (that extractor copies every header).
    let (request, _) = request.into_parts();
    let (headers, peer) = (&request.headers, request.extensions.get::<crate::listener::Connection>().map(|c| c.peer));
    let res = match identify(&state, headers).await {
        Ok(Some(id)) => allowed(&id),
        Ok(None) => {
            let original = forwarded(&state, peer, headers, "x-original-url");
            let location = sign_in_location(&state, original);
            let mut res = (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")]).into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res
        }
        // nginx would turn a 5xx into a 500 for the user: refuse without a sign-in detour.
        Err(e) => {
            tracing::warn!(error = ?e, "forward authentication could not check a credential; refusing");
            StatusCode::FORBIDDEN.into_response()
        }
    };
    no_store(res)
}

async fn forward_auth(State(state): State<AppState>, request: Request) -> Response {
    // The request itself, not `Parts` (that extractor copies every header).
    let (request, _) = request.into_parts();
    let (headers, peer) = (&request.headers, request.extensions.get::<crate::listener::Connection>().map(|c| c.peer));
    let res = match identify(&state, headers).await {
        Ok(Some(id)) => allowed(&id),
        Ok(None) => {
            let method = forwarded(&state, peer, headers, "x-forwarded-method").unwrap_or("GET");
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let navigation =
                matches!(method.to_ascii_uppercase().as_str(), "GET" | "HEAD") && accept.contains("text/html");
            if navigation {
                let original = signoff_wire::forwarded::original_url(
                    forwarded(&state, peer, headers, "x-forwarded-proto"),
                    forwarded(&state, peer, headers, "x-forwarded-host"),
                    forwarded(&state, peer, headers, "x-forwarded-uri"),
                );
                let mut location = sign_in_location(&state, original.as_deref());
                // Traefik (which marks what it forwards with X-Forwarded-Server) resolves a
                // relative Location against the auth server's own address, sending browsers to
                // signoff's internal port: it gets the sign-in URL on the public origin.
                if forwarded(&state, peer, headers, "x-forwarded-server").is_some() {
                    location.insert_str(0, &state.config().public_origin);
                }
                let mut res = StatusCode::FOUND.into_response();
                if let Ok(v) = HeaderValue::from_str(&location) {
                    res.headers_mut().insert(header::LOCATION, v);
                }
                res
            } else {
                (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")]).into_response()
            }
        }
        Err(e) => e.into_response(),
    };
    no_store(res)
}
