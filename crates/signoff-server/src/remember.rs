//! Signing a browser back in from its remember-me cookie.
//!
//! Run by the edge middleware before the route, so every handler sees an ordinary session:
//! when a request carries a remember-me cookie but no live session, the authority resumes the
//! series, the request is handed on carrying the new session cookie, and the response sets the
//! new cookies. A reused (stolen) token clears the browser instead.

use axum::extract::Request;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use signoff_core::Resume;

use crate::app::AppState;
use crate::cookies;
use crate::error::ApiError;
use crate::extract::client_info;

/// Whether a request may sign its browser back in: only a safe method (a state-changing
/// request must pass its origin and CSRF checks before anything changes, and it could not pass
/// them with a session made on the spot anyway) on a route that can use a session. Everything
/// else never resumes: a path no route serves (a 404, `/authz/auth-request/` with its trailing
/// slash), sign-in and logout (they decide about sessions themselves), assets and probes, and
/// the forward-auth endpoints, whose proxies pass none of their `Set-Cookie` to the browser, so
/// a resume there would rotate the remember-me token behind the browser's back (and its next
/// use would look like theft).
fn resumes(req: &Request, route: &str) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD)
        && matches!(
            route,
            "/" | "/login"
                | "/register"
                | "/app"
                | "/app/sessions"
                | "/app/security"
                | "/api/me"
                | "/auth/session"
                | "/auth/sessions"
                | "/auth/audit"
                | "/auth/events"
                | "/auth/email/confirm"
                | "/auth/password-reset"
                | "/auth/password-reset/confirm"
                | "/dev/mail"
        )
}

/// Runs the rest of the request, first signing the browser back in if it should be (called by
/// the edge middleware: one layer, not two, around every route). Most requests carry no
/// remember-me cookie or cannot resume: they go straight on, and only a resume's larger state
/// is boxed, so the common request's future stays small.
/// `route` is the pattern the request matched, `next` the route's handler.
pub fn around<'a, F, Fut>(
    state: &'a AppState,
    req: Request,
    route: &str,
    next: F,
) -> impl Future<Output = Response> + Send + 'a
where
    F: FnOnce(Request) -> Fut + Send + 'a,
    Fut: Future<Output = Response> + Send + 'a,
{
    let remember = resumes(&req, route).then(|| cookies::remember_secret(req.headers(), state.config())).flatten();
    match remember {
        None => futures_util::future::Either::Left(next(req)),
        Some(remember) => futures_util::future::Either::Right(Box::pin(resume(state, remember, req, next))),
    }
}

/// Signs the browser back in from `remember` unless its session cookie is live.
async fn resume<F, Fut>(
    state: &AppState,
    remember: signoff_core::remember::RememberSecret,
    mut req: Request,
    next: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let config = state.config();
    if let Some(secret) = cookies::session_secret(req.headers(), config) {
        match state.authority().peek(&secret).await {
            Ok(Some(_)) => return next(req).await,
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
            let mut res = crate::edge::contained(state, next(req)).await;
            for c in cookies::set_signed_in(config, &signed_in) {
                res.headers_mut().append(header::SET_COOKIE, c);
            }
            res
        }
        Ok(Resume::LostRace) => next(req).await,
        Ok(Resume::Invalid) => {
            let mut res = next(req).await;
            res.headers_mut().append(header::SET_COOKIE, cookies::clear(config, &config.remember_cookie));
            res
        }
        Ok(Resume::Theft) => {
            req.headers_mut().remove(header::COOKIE);
            let mut res = next(req).await;
            cookies::clear_browser(res.headers_mut(), config);
            res
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
