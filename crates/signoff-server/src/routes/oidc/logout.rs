//! RP-Initiated Logout 1.0 (`end_session_endpoint`), `GET` or a form `POST`.
//!
//! With a valid `id_token_hint` (expired is fine) for this browser's sign-in, the browser's
//! session ends at once; without one (or for another sign-in), a confirmation page whose `POST`
//! carries the session's CSRF token guards against logout CSRF. When the session ends, the
//! browser's sign-in ends and each app it signed in to gets its back-channel logout; the redirect
//! waits for those deliveries (at most `oidc_logout_wait_millis`; those left keep retrying), so
//! the app the user lands on next is already logged out. `post_logout_redirect_uri` must be one
//! the client registered, exactly (else a page, never a redirect); `state` is returned.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use signoff_core::clients::{EndpointKind, RegisteredClient};
use signoff_core::{LogoutScope, Presented, SessionContext};

use super::authorize::{found, with_query};
use super::frontchannel;
use crate::app::AppState;
use crate::cookies;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Client, Input};
use crate::html::{self, esc};
use crate::routes::{csrf_guard, current_session};

pub(super) async fn end_session(
    State(state): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    // A parameter given twice keeps its first value, as in a form body.
    let mut params = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes()).into_owned() {
        params.entry(k).or_insert(v);
    }
    respond(&state, &info, &headers, &params, false).await
}

pub(super) async fn end_session_form(
    State(state): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    Input(form): Input<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    respond(&state, &info, &headers, &form, true).await
}

async fn respond(
    state: &AppState,
    info: &signoff_core::ClientInfo,
    headers: &HeaderMap,
    params: &BTreeMap<String, String>,
    posted: bool,
) -> ApiResult<Response> {
    let authority = state.authority();
    let get = |name: &str| params.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let refused = |what: &str| ApiError::BadRequest("invalid_request", what.to_owned());
    let hint = get("id_token_hint").and_then(|t| authority.id_token_hint(t));
    // The client: named, or the hint's audience; both must agree.
    let client_id = match (get("client_id"), &hint) {
        (Some(named), Some(h)) if named != h.client_id => {
            return Err(refused("client_id is not the audience of id_token_hint"));
        }
        (Some(named), _) => Some(named.to_owned()),
        (None, Some(h)) => Some(h.client_id.clone()),
        (None, None) => None,
    };
    let client: Option<RegisteredClient> = match &client_id {
        Some(id) => {
            Some(authority.client(id).await?.ok_or_else(|| refused("no client is registered with this client_id"))?)
        }
        None => None,
    };
    let back = match get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client = client.as_ref().ok_or_else(|| {
                refused("post_logout_redirect_uri needs client_id or id_token_hint, to know whose it is")
            })?;
            if !client.endpoints_of(EndpointKind::PostLogoutRedirect).any(|u| u == uri) {
                return Err(refused("post_logout_redirect_uri is not one this client registered"));
            }
            Some(uri)
        }
    };
    let state_param = get("state");
    if state_param.is_some_and(|s| s.len() > 512) {
        return Err(refused("state is at most 512 characters"));
    }
    // Where the browser goes once signed out: the app's page with its state, or signoff's.
    let pairs: Vec<(&str, &str)> = state_param.map(|s| vec![("state", s)]).unwrap_or_default();
    let next = back.map(|uri| with_query(uri, &pairs)).transpose()?;
    let done = |state: &AppState, cleared: bool, frames: &[frontchannel::Frame]| {
        let mut res = match (&next, frames.is_empty()) {
            (Some(to), true) => found(to, &[]),
            (None, true) => html::page(
                StatusCode::OK,
                "Signed out",
                None,
                "<h1>You are signed out</h1><p>You are signed out of signoff and of the applications you \
                 signed in to with it.</p><p><a href=\"/login\">Sign in again</a></p>",
            ),
            // The front-channel frames load on the signed-out page, which then goes on.
            (next, false) => frontchannel::page(frames, next.as_deref()),
        };
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if cleared {
            cookies::clear_browser(h, state.config());
        }
        res
    };

    let remember = cookies::remember_secret(headers, state.config());
    let ctx = current_session(state, headers, false).await?;
    // Whose sign-in this browser holds: its session's, or (its session gone) its remember-me
    // series', which would sign it back in.
    let held = match (&ctx, &remember) {
        (Some(ctx), _) => Some((ctx.session.signin.clone(), ctx.user.id.clone())),
        (None, Some(r)) => authority.remembered_signin(r).await?,
        (None, None) => None,
    };
    let Some((signin, user)) = held else {
        // Nothing to end here (the sign-in is over, or was never in this browser).
        return Ok(done(state, false, &[]));
    };
    let hinted = hint.as_ref().is_some_and(|h| h.sid == signin.as_str() && h.sub == user.as_str());
    let confirmed = posted && get("confirm") == Some("1");
    if confirmed {
        match &ctx {
            Some(ctx) => csrf_guard(state, headers, ctx, get("csrf_token"))?,
            // No session, so no CSRF token: the form must come from signoff's own page (and a
            // cross-site post carries no remember-me cookie).
            None => crate::csrf::check_origin(headers, state.config())?,
        }
    }
    if !(hinted || confirmed) {
        return Ok(confirmation(ctx.as_ref(), client.as_ref(), params));
    }
    let presented = Presented { remember: remember.as_ref(), access: None, refresh_token: None };
    let current: Vec<_> = ctx.iter().map(|c| c.session.clone()).collect();
    let out = authority.logout(&current, LogoutScope::Local, &presented, info).await?;
    state.metrics().logouts.inc();
    state.metrics().sessions_ended.inc_by(out.ended);
    if !out.app_logouts.is_empty() {
        // The logout has committed: whatever happens while waiting, the browser is sent on.
        let all = authority.await_deliveries(&out.app_logouts, state.config().oidc_logout_wait).await.unwrap_or(false);
        if !all {
            tracing::info!(
                pending = out.app_logouts.len(),
                "RP-initiated logout: redirecting before every app's back-channel logout was done; they keep retrying"
            );
        }
    }
    let frames = frontchannel::frames(state, &out.signed_out, &signin).await;
    Ok(done(state, true, &frames))
}

/// The page that asks the user to confirm, with a form that posts the request back with the
/// session's CSRF token.
fn confirmation(
    ctx: Option<&SessionContext>,
    client: Option<&RegisteredClient>,
    params: &BTreeMap<String, String>,
) -> Response {
    let mut fields = ctx.map(|c| html::csrf_field(&c.csrf_token())).unwrap_or_default();
    fields.push_str("<input type=\"hidden\" name=\"confirm\" value=\"1\">");
    for name in ["post_logout_redirect_uri", "state", "client_id"] {
        if let Some(v) = params.get(name).filter(|v| !v.is_empty()) {
            fields.push_str(&format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", esc(v)));
        }
    }
    if let (None, Some(c)) = (params.get("client_id"), client) {
        fields.push_str(&format!("<input type=\"hidden\" name=\"client_id\" value=\"{}\">", esc(&c.id)));
    }
    let asking = client.map_or_else(|| "An application".to_owned(), |c| format!("<strong>{}</strong>", esc(&c.name)));
    let who = ctx.map(|c| format!(" (<strong>{}</strong>)", esc(&c.user.email))).unwrap_or_default();
    let body = format!(
        "<h1>Sign out?</h1><form method=\"post\" action=\"/oidc/logout\" class=\"card\">{fields}\
         <p>{asking} asks to sign you out of signoff{who}, and so of every application you signed in to with it.</p>\
         <button type=\"submit\">Sign out</button></form>"
    );
    // Rendered as a page of nobody's: a signed-in page watches its session and, when this very
    // form ends it, would leave for the sign-in page before the app's redirect arrives.
    let mut res = html::page(StatusCode::OK, "Sign out", None, &body);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The confirmed form ends, through a redirect, at the app's registered post-logout URI.
    match params.get("post_logout_redirect_uri").filter(|u| !u.is_empty()) {
        Some(target) => html::with_form_target(res, target),
        None => res,
    }
}
