//! `POST /auth/logout`: the one door out, for forms and API callers alike.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use signoff_core::{LogoutScope, Presented, Session};

use super::{bearer, csrf_guard, current_session, oidc};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Client, Input, Wants};
use crate::{cookies, csrf, html, redirect};

/// Carries secrets: deliberately not `Debug`, so it can never be logged by accident.
#[derive(Deserialize)]
pub struct LogoutBody {
    scope: Option<String>,
    return_to: Option<String>,
    csrf_token: Option<String>,
    /// Revoked (its whole family) along with the session.
    refresh_token: Option<String>,
}

/// The scopes a logout takes, as a sentence: "local, others or global".
fn scopes() -> String {
    let names: Vec<&str> = LogoutScope::ALL.iter().map(|s| s.as_str()).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Ends the caller's session(s). Order matters: input, then the cross-site checks, and only
/// then any change, so a refused request changes nothing and sets no cookie.
pub async fn logout(
    State(state): State<AppState>,
    wants: Wants,
    Client(client): Client,
    headers: HeaderMap,
    Input(body): Input<LogoutBody>,
) -> ApiResult<Response> {
    let config = state.config();
    let scope = match body.scope.as_deref() {
        None | Some("") => LogoutScope::Local,
        Some(s) => LogoutScope::parse(s).ok_or_else(|| ApiError::bad_request(format!("scope must be {}", scopes())))?,
    };
    let authority = state.authority();
    let remember = cookies::remember_secret(&headers, config);
    // Every session the request presents ends, or nothing does: the cookie's after its
    // cross-site checks (a failure refuses the whole request), the bearer token's as is.
    let cookie = current_session(&state, &headers, false).await?;
    let bearer = match bearer(&headers) {
        Some(token) => authority.bearer_for_logout(token).await?,
        None => None,
    };
    match &cookie {
        Some(ctx) => csrf_guard(&state, &headers, ctx, body.csrf_token.as_deref())?,
        None if bearer.is_none() => csrf::check_origin(&headers, config).inspect_err(|_| {
            state.metrics().csrf_refusals.inc();
        })?,
        None => {}
    }
    // This browser's sign-in (front-channel logout).
    let signin = cookie.as_ref().map(|c| c.session.signin.clone());
    let mut current: Vec<std::sync::Arc<Session>> = cookie.map(|c| c.session).into_iter().collect();
    let access = bearer.map(|(claims, session)| {
        current.extend(session.filter(|s| !current.iter().any(|c| c.id == s.id)));
        claims
    });
    let presented = Presented {
        remember: remember.as_ref(),
        access: access.as_ref(),
        refresh_token: body.refresh_token.as_deref(),
    };
    let done = authority.logout(&current, scope, &presented, &client).await?;
    let ended = done.ended;
    state.metrics().logouts.inc();
    state.metrics().sessions_ended.inc_by(ended);

    // Cookies go only with what this logout ended (the scope's rule, or there was no session),
    // and the answer says so: `signoff.js` follows `cleared`, it does not re-derive it. Signing
    // other devices out needs a session to speak for the account: without one the answer is
    // still a success (the browser is signed out), but says that nothing else ended, so no
    // page can claim that other devices were signed out.
    let (clears_browser, reached_nobody) = (done.cleared, done.no_session);
    // This browser's sign-in ended: its apps' front-channel logouts load on the page that follows.
    let frames = match &signin {
        Some(signin) if clears_browser => oidc::frontchannel::frames(&state, &done.signed_out, signin).await,
        _ => Vec::new(),
    };
    let mut res = if wants.json {
        let mut body = json!({ "revoked": ended, "cleared": clears_browser });
        if reached_nobody {
            body["no_session"] = json!(true);
        }
        // A script goes there next (with its own return_to as `next`).
        if let Some(url) = signin.as_ref().and_then(|s| oidc::frontchannel::page_url(&state, &frames, s)) {
            body["frontchannel_logout"] = json!(url);
        }
        axum::Json(body).into_response()
    } else {
        // Without a session, the page that says nothing else ended, whatever return_to asks.
        let to = match (clears_browser, reached_nobody) {
            (_, true) => "/login?no_session=1".to_owned(),
            (true, false) => redirect::validate(body.return_to.as_deref(), "/login?logged_out=1", config),
            (false, false) => {
                redirect::validate(body.return_to.as_deref(), &format!("/app/sessions?ended={ended}"), config)
            }
        };
        if frames.is_empty() { Redirect::to(&to).into_response() } else { oidc::frontchannel::page(&frames, Some(&to)) }
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    if clears_browser {
        cookies::clear_browser(h, config);
    }
    Ok(res)
}

/// `GET /auth/logout` changes nothing: `405` with `Allow: POST`, and for people a page with
/// the form that does log out.
pub async fn logout_page(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let ctx = current_session(&state, &headers, false).await?;
    let token = ctx.as_ref().map(|c| html::csrf_field(&c.csrf_token())).unwrap_or_default();
    let body = format!(
        "<h1>Sign out?</h1><form method=\"post\" action=\"/auth/logout\" class=\"card\">{token}\
         <p>Signing out needs a button press, so that no link or image can do it for you.</p>\
         <button type=\"submit\">Sign out</button></form>"
    );
    let mut res =
        html::page(StatusCode::METHOD_NOT_ALLOWED, "Sign out", ctx.as_ref().map(|c| c.user.email.as_str()), &body);
    res.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    Ok(res)
}
