//! Signing a browser back in from its remember-me cookie.
//!
//! Run by the edge middleware before the route, so every handler sees an ordinary session:
//! when a request carries a remember-me cookie but no live session, the authority resumes the
//! series, the request is handed on carrying the new session cookie, and the response sets the
//! new cookies. A reused (stolen) token clears the browser instead.

use axum::extract::Request;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use signoff_core::Resume;

use crate::app::AppState;
use crate::cookies;
use crate::error::ApiError;
use crate::extract::client_info;

/// Requests that never resume: only safe methods do (a state-changing request must pass its
/// origin and CSRF checks before anything changes, and it could not pass them with a session
/// made on the spot anyway); sign-in and logout decide about sessions themselves, and assets
/// and probes have no use for one. Nor do the forward-auth endpoints: proxies pass none of
/// their `Set-Cookie` to the browser, so a resume there would rotate the remember-me token
/// behind the browser's back (and its next use would look like theft).
fn skips(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
        || matches!(
            path,
            "/auth/logout"
                | "/auth/login"
                | "/demo.css"
                | "/demo.js"
                | "/signoff.js"
                | "/authz/auth-request"
                | "/authz/forward-auth"
                | "/revocations"
                | "/revocations/stream"
                | "/healthz"
                | "/readyz"
                | "/metrics"
        )
}

/// Runs the rest of the request, first signing the browser back in if it should be (called by
/// the edge middleware: one layer, not two, around every route).
pub async fn resume(state: &AppState, mut req: Request, next: Next) -> Response {
    let config = state.config();
    if skips(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let Some(remember) = cookies::remember_secret(req.headers(), config) else {
        return next.run(req).await;
    };
    if let Some(secret) = cookies::session_secret(req.headers(), config) {
        match state.authority().peek(&secret).await {
            Ok(Some(_)) => return next.run(req).await,
            Ok(None) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    let client = client_info(req.headers(), req.extensions(), state);
    match state.authority().resume(&remember, &client).await {
        Ok(Resume::Resumed(signed_in)) => {
            let cookie = cookies::with_session(req.headers(), config, &signed_in.ctx.secret);
            req.headers_mut().insert(header::COOKIE, cookie);
            // The rotation has committed: the new cookies go out even if the handler panics.
            let mut res = crate::edge::contained(state, next.run(req)).await;
            for c in cookies::set_signed_in(config, &signed_in) {
                res.headers_mut().append(header::SET_COOKIE, c);
            }
            res
        }
        Ok(Resume::LostRace) => next.run(req).await,
        Ok(Resume::Invalid) => {
            let mut res = next.run(req).await;
            res.headers_mut().append(header::SET_COOKIE, cookies::clear(config, &config.remember_cookie));
            res
        }
        Ok(Resume::Theft) => {
            req.headers_mut().remove(header::COOKIE);
            let mut res = next.run(req).await;
            cookies::clear_browser(res.headers_mut(), config);
            res
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
