//! The demo site: plain server-rendered pages that exercise the whole contract without
//! JavaScript. Protected pages are `no-store` (the edge's default) and leave for `/login` when
//! there is no session.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use std::collections::HashMap;

use super::current_session;
use crate::app::AppState;
use crate::error::ApiResult;
use crate::html::{csrf_field, esc, notice, page, page_at};
use crate::{redirect, views};
use signoff_core::SessionContext;

const CSS: &str = include_str!("../../assets/demo.css");
/// The browser half: the npm package `signoff-browser` ships this very file (one source).
const SCRIPT: &str = include_str!("../../../../clients/browser/src/signoff.js");
const DEMO_SCRIPT: &str = include_str!("../../assets/demo.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/app") }))
        .route("/login", get(login))
        .route("/register", get(register))
        .route("/app", get(app))
        .route("/app/sessions", get(sessions))
        .route("/app/security", get(security))
        .route("/demo.css", get(css))
        .route("/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
        .route("/signoff.js", get(|| async { script(SCRIPT) }))
        .route("/demo.js", get(|| async { script(DEMO_SCRIPT) }))
}

type Params = Query<HashMap<String, String>>;

fn script(source: &'static str) -> Response {
    let mut res = ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], source).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}

/// The site's icon (browsers ask for `/favicon.ico` on a first visit whatever the page says).
async fn favicon() -> Response {
    const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">\
        <rect width=\"32\" height=\"32\" rx=\"7\" fill=\"#2f5bea\"/>\
        <path d=\"M11 9h7a5 5 0 0 1 0 10h-4v4h-3z M14 12v4h4a2 2 0 0 0 0-4z\" fill=\"#fff\"/></svg>";
    let mut res = ([(header::CONTENT_TYPE, "image/svg+xml")], ICON).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    res
}

async fn css() -> Response {
    let mut res = ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    res
}

/// The sign-in form, with an optional error and notice.
pub fn login_page(
    status: StatusCode,
    error: Option<&str>,
    info: Option<&str>,
    return_to: Option<&str>,
    email: Option<&str>,
) -> Response {
    let return_field = return_to
        .map(|r| format!("<input type=\"hidden\" name=\"return_to\" value=\"{}\">", esc(r)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1>{}{}\
         <form method=\"post\" action=\"/auth/login\" class=\"card\">{return_field}\
         <label>E-mail <input type=\"email\" name=\"email\" autocomplete=\"username\" required value=\"{}\"></label>\
         <label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label>\
         <label class=\"check\"><input type=\"checkbox\" name=\"remember_me\" value=\"true\"> Keep me signed in on this device</label>\
         <button type=\"submit\">Sign in</button></form>\
         <p><a href=\"/auth/password-reset\">Forgot password?</a></p>\
         <p>No account yet? <a href=\"/register\">Create one</a>.</p>",
        notice("error", error),
        notice("info", info),
        esc(email.unwrap_or_default()),
    );
    let page = page_at(status, "Sign in", None, &body, Some("/login"));
    // Signing in on the way to an app ends, through redirects, at the app's redirect URI.
    match return_to.and_then(app_redirect_uri) {
        Some(target) => crate::html::with_form_target(page, &target),
        None => page,
    }
}

/// The `redirect_uri` of an authorization request that `return_to` leads back to (checked
/// there, against the client's registration, before anything is sent to it).
fn app_redirect_uri(return_to: &str) -> Option<String> {
    let query = return_to.strip_prefix("/oidc/authorize?")?;
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "redirect_uri").map(|(_, v)| v.into_owned())
}

/// In development, a pointer to the inbox mail goes to.
pub fn dev_inbox_link(state: &AppState) -> &'static str {
    if state.config().dev_inbox() {
        "<p class=\"hint dev\">Development: mail is written to <a href=\"/dev/mail\">the inbox</a>.</p>"
    } else {
        ""
    }
}

/// The registration form, with an optional error.
pub fn register_page(status: StatusCode, error: Option<&str>, email: Option<&str>) -> Response {
    let body = format!(
        "<h1>Create an account</h1>{}\
         <form method=\"post\" action=\"/auth/register\" class=\"card\">\
         <label>E-mail <input type=\"email\" name=\"email\" autocomplete=\"username\" required value=\"{}\"></label>\
         <label>Password <input type=\"password\" name=\"password\" autocomplete=\"new-password\" minlength=\"8\" required></label>\
         <p class=\"hint\">At least 8 characters; common passwords are refused.</p>\
         <button type=\"submit\">Create account</button></form>\
         <p>Already registered? <a href=\"/login\">Sign in</a>.</p>",
        notice("error", error),
        esc(email.unwrap_or_default()),
    );
    page_at(status, "Create an account", None, &body, Some("/register"))
}

async fn login(State(state): State<AppState>, headers: HeaderMap, Query(q): Params) -> ApiResult<Response> {
    let info = if q.contains_key("no_session") {
        Some(
            "Your session had already ended, so no other device was signed out. \
             Sign in, then sign your other devices out again.",
        )
    } else if q.contains_key("logged_out") {
        Some("You have been signed out.")
    } else if q.contains_key("revoked") {
        Some("You were signed out because this session was ended elsewhere.")
    } else if q.contains_key("reported") {
        Some("Thank you. Every session of your account has been ended; sign in again to continue.")
    } else if q.contains_key("registered") {
        Some(
            "If the address is new, your account is ready: sign in below. If it already had an account, \
             nothing was created and a message went to it saying so.",
        )
    } else if q.contains_key("reset") {
        Some("Password changed, and every device signed out. Sign in with your new password.")
    } else if q.contains_key("email_changed") {
        Some("E-mail address changed, and every other device signed out. Sign in with the new address.")
    } else {
        None
    };
    let return_to = q.get("return_to").map(|r| redirect::validate(Some(r), "/app", state.config()));
    let ctx = current_session(&state, &headers, false).await?;
    // An app asked for the password again (OpenID `prompt=login` or `max_age`): the form, for
    // the account signed in here; signing in to it carries this browser's sign-in on.
    if let (Some(ctx), true) = (&ctx, q.contains_key("reauth")) {
        let info = Some("An application asks you to enter your password again to continue.");
        return Ok(login_page(StatusCode::OK, None, info, return_to.as_deref(), Some(&ctx.user.email)));
    }
    if let Some(ctx) = ctx {
        let body = format!(
            "<h1>Sign in</h1><p>You are signed in as <strong>{}</strong>. <a href=\"/app\">Continue to the app</a>.</p>",
            esc(&ctx.user.email)
        );
        return Ok(page(StatusCode::OK, "Sign in", Some(&ctx.user.email), &body));
    }
    Ok(login_page(StatusCode::OK, None, info, return_to.as_deref(), None))
}

async fn register() -> Response {
    register_page(StatusCode::OK, None, None)
}

fn to_login(from: &str) -> Response {
    Redirect::to(&format!(
        "/login?return_to={}",
        percent_encoding::utf8_percent_encode(from, percent_encoding::NON_ALPHANUMERIC)
    ))
    .into_response()
}

fn logout_forms(csrf: &str) -> String {
    let field = csrf_field(csrf);
    format!(
        "<div class=\"actions\">\
         <form method=\"post\" action=\"/auth/logout\">{field}<input type=\"hidden\" name=\"scope\" value=\"local\">\
         <button type=\"submit\">Sign out</button></form>\
         <form method=\"post\" action=\"/auth/logout\">{field}<input type=\"hidden\" name=\"scope\" value=\"global\">\
         <button type=\"submit\" class=\"danger\">Sign out everywhere</button></form></div>"
    )
}

async fn app(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let Some(ctx) = current_session(&state, &headers, true).await? else {
        return Ok(to_login("/app"));
    };
    let s = &ctx.session;
    let now = state.authority().now();
    // A remembered device signs back in by itself when its session ends: the session's end is
    // then not the end of being signed in.
    let ends = if s.series.is_some() {
        "<dt>Stays signed in</dt><dd>on this device, until you sign out (you chose \u{201c}Keep me signed in\u{201d})</dd>"
            .to_owned()
    } else {
        format!(
            "<dt>Signed out</dt><dd>{} if unused, or when you sign out</dd>",
            views::when(state.authority().effective_expiry(s), now)
        )
    };
    let body = format!(
        "<h1>Welcome</h1><section class=\"card protected\" data-protected>\
         <p>You are signed in as <strong>{email}</strong>.</p>\
         <dl><dt>Signed in</dt><dd>{created}</dd>{ends}</dl>\
         </section><p><a href=\"/app/sessions\">See your devices</a> · <a href=\"/app/security\">Security</a></p>{forms}\
         <details class=\"dev\"><summary>For developers</summary>\
         <dl><dt>Session id</dt><dd><code>{id}</code></dd></dl>\
         <p>This page is sent with <code>Cache-Control: no-store</code>: after you sign out, Back cannot show it.</p>\
         </details>",
        email = esc(&ctx.user.email),
        id = esc(s.id.as_str()),
        created = views::when(s.created_at, now),
        forms = logout_forms(&ctx.csrf_token()),
    );
    Ok(page(StatusCode::OK, "App", Some(&ctx.user.email), &body))
}

async fn sessions(State(state): State<AppState>, headers: HeaderMap, Query(q): Params) -> ApiResult<Response> {
    let Some(ctx) = current_session(&state, &headers, true).await? else {
        return Ok(to_login("/app/sessions"));
    };
    let authority = state.authority();
    let field = csrf_field(&ctx.csrf_token());
    let now = authority.now();
    let mut rows = String::new();
    for s in authority.devices_of(&ctx.user.id).await? {
        let d = views::device(s.user_agent.as_deref());
        let current = s.id == ctx.session.id;
        rows.push_str(&format!(
            "<li class=\"device{cls}\"><div><strong>{browser} on {os}</strong> ({kind}){this}<br>\
             <small>IP {ip} · last active {last} · signed in {created}{remembered}</small>{apps}</div>\
             <form method=\"post\" action=\"/auth/sessions/{id}/revoke\">{field}<button type=\"submit\">{label}</button></form></li>",
            cls = if current { " current" } else { "" },
            browser = esc(&d.browser),
            os = esc(&d.os),
            kind = d.kind,
            this = if current { " <span class=\"badge\">this device</span>" } else { "" },
            ip = esc(s.ip.as_deref().unwrap_or("unknown")),
            last = views::when(s.last_active_at, now),
            created = views::when(s.created_at, now),
            remembered = if s.signed_in { "" } else { " · remembered, signs back in on its next visit" },
            apps = if s.apps.is_empty() {
                String::new()
            } else {
                let names: Vec<String> = s.apps.iter().map(|(_, name)| esc(name)).collect();
                format!("<br><small class=\"apps\">Signed in to {} (signing this device out signs it out of them too)</small>", names.join(", "))
            },
            id = esc(s.id.as_str()),
            label = if current { "Sign out" } else { "Revoke" },
        ));
    }
    let ended = q.get("ended").and_then(|n| n.parse::<u64>().ok()).map(|n| match n {
        0 => "No other device is signed in now.".to_owned(),
        1 => "Signed out 1 other device.".to_owned(),
        n => format!("Signed out {n} other devices."),
    });
    let info = if q.contains_key("revoked") { Some("Session revoked.") } else { ended.as_deref() };
    let body = format!(
        "<h1>Your devices</h1>{}<ul class=\"devices\" data-protected>{rows}</ul>\
         <div class=\"actions\">\
         <form method=\"post\" action=\"/auth/logout\">{field}<input type=\"hidden\" name=\"scope\" value=\"others\">\
         <button type=\"submit\">Sign out all other devices</button></form>\
         <form method=\"post\" action=\"/auth/logout\">{field}<input type=\"hidden\" name=\"scope\" value=\"global\">\
         <button type=\"submit\" class=\"danger\">Sign out everywhere</button></form></div>",
        notice("info", info),
    );
    Ok(page(StatusCode::OK, "Devices", Some(&ctx.user.email), &body))
}

/// The forms of the security page, so that an error is shown on the one that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityForm {
    Password,
    Email,
}

/// The security page: change password, change e-mail (with the change waiting for its link,
/// if any), report a concern. `error` is shown on the form it concerns.
pub async fn security_page(
    state: &AppState,
    ctx: &SessionContext,
    status: StatusCode,
    error: Option<(SecurityForm, &str)>,
    info: Option<&str>,
) -> Response {
    let error_on = |form| notice("error", error.filter(|(f, _)| *f == form).map(|(_, e)| e));
    let field = csrf_field(&ctx.csrf_token());
    let now = state.authority().now();
    let pending = match state.authority().pending_email_change(&ctx.user.id).await {
        Ok(Some(p)) => format!(
            "<p class=\"notice info pending\" role=\"status\">Waiting for confirmation: <strong>{}</strong>. \
             The link mailed there stops working {}.</p>",
            esc(&p.new_email),
            views::when(p.expires_at, now)
        ),
        Ok(None) => String::new(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a pending e-mail change");
            String::new()
        }
    };
    let body = format!(
        "<h1>Security</h1>{}\
         <form method=\"post\" action=\"/auth/password\" class=\"card\" data-protected>{field}<h2>Change password</h2>{password_error}\
         <label>Current password <input type=\"password\" name=\"current_password\" autocomplete=\"current-password\" required></label>\
         <label>New password <input type=\"password\" name=\"new_password\" autocomplete=\"new-password\" minlength=\"8\" required></label>\
         <p class=\"hint\">Every other device is signed out.</p><button type=\"submit\">Change password</button></form>\
         <form method=\"post\" action=\"/auth/email\" class=\"card\">{field}<h2>Change e-mail</h2>{email_error}{pending}\
         <p>Your address now: <strong>{email}</strong></p>\
         <label>New e-mail <input type=\"email\" name=\"new_email\" autocomplete=\"email\" required></label>\
         <label>Current password <input type=\"password\" name=\"current_password\" autocomplete=\"current-password\" required></label>\
         <p class=\"hint\">A link is mailed to the new address; using it changes the address and signs out every \
         other device.</p><button type=\"submit\">Change e-mail</button></form>{inbox}\
         <form method=\"post\" action=\"/auth/security-report\" class=\"card\">{field}<h2>Report a concern</h2>\
         <label>What happened? (optional) <textarea name=\"details\" rows=\"3\" maxlength=\"1000\"></textarea></label>\
         <p class=\"hint\">Signs out every device, this one included, and revokes every token.</p>\
         <button type=\"submit\" class=\"danger\">Report and sign out everywhere</button></form>",
        notice("info", info),
        password_error = error_on(SecurityForm::Password),
        email_error = error_on(SecurityForm::Email),
        email = esc(&ctx.user.email),
        inbox = dev_inbox_link(state),
    );
    page_at(status, "Security", Some(&ctx.user.email), &body, Some("/app/security"))
}

async fn security(State(state): State<AppState>, headers: HeaderMap, Query(q): Params) -> ApiResult<Response> {
    let Some(ctx) = current_session(&state, &headers, true).await? else {
        return Ok(to_login("/app/security"));
    };
    let info = match q.get("changed").map(String::as_str) {
        Some("password") => Some("Password changed. Every other device has been signed out."),
        Some("email") => Some("E-mail changed. Every other device has been signed out."),
        Some("email_pending") => {
            Some("A confirmation link was mailed to the new address. Your address changes when it is used.")
        }
        _ => None,
    };
    Ok(security_page(&state, &ctx, StatusCode::OK, None, info).await)
}
