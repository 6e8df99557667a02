//! The e-mail flows: a verified change of address (`/auth/email`, `/auth/email/confirm`) and
//! "forgot password" (`/auth/password-reset`, `/auth/password-reset/confirm`).
//!
//! A mailed link opens a page (`GET`) whose button posts its token, so a mail scanner that
//! follows links changes nothing. Requests answer the same whether or not an address has an
//! account; the mail itself goes out from the outbox (`letters`).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use signoff_core::SessionContext;
use signoff_core::mail::{MailPurpose, MailSecret};
use std::collections::HashMap;

use super::{csrf_guard, current_session, demo, require_session, required};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Client, Input, Wants};
use crate::html::{csrf_field, esc, notice, page};
use crate::{cookies, csrf, views};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/email", axum::routing::post(request_email_change))
        .route("/auth/email/confirm", get(email_link_page).post(confirm_email_change))
        .route("/auth/password-reset", get(reset_request_page).post(request_password_reset))
        .route("/auth/password-reset/confirm", get(reset_link_page).post(reset_password))
}

type Params = Query<HashMap<String, String>>;

/// Carries secrets: deliberately not `Debug`, so it can never be logged by accident.
#[derive(Deserialize)]
struct EmailBody {
    current_password: Option<String>,
    new_email: Option<String>,
    csrf_token: Option<String>,
}

/// Carries a secret: deliberately not `Debug`.
#[derive(Deserialize)]
struct ConfirmBody {
    token: Option<String>,
    /// This browser's session is kept (and rotated) only with its CSRF token.
    csrf_token: Option<String>,
}

#[derive(Deserialize)]
struct ResetBody {
    email: Option<String>,
}

/// Carries secrets: deliberately not `Debug`.
#[derive(Deserialize)]
struct NewPasswordBody {
    token: Option<String>,
    new_password: Option<String>,
}

/// The origin half of the cross-site checks, for requests a mailed token authorises.
fn origin_guard(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    csrf::check_origin(headers, state.config()).inspect_err(|_| {
        state.metrics().csrf_refusals.inc();
    })
}

// ---- e-mail change ----------------------------------------------------------------------

async fn request_email_change(
    State(state): State<AppState>,
    wants: Wants,
    Client(client): Client,
    headers: HeaderMap,
    Input(body): Input<EmailBody>,
) -> ApiResult<Response> {
    let ctx = require_session(&state, &headers).await?;
    csrf_guard(&state, &headers, &ctx, body.csrf_token.as_deref())?;
    let current = required(&body.current_password, "current_password")?;
    let new = required(&body.new_email, "new_email")?;
    if let Err(e) = state.authority().request_email_change(&ctx, current, new, &client).await {
        let e = ApiError::of_change(e);
        if wants.html && e.status().is_client_error() {
            let message = e.message();
            let error = Some((demo::SecurityForm::Email, message.as_str()));
            return Ok(demo::security_page(&state, &ctx, e.status(), error, None).await);
        }
        return Err(e);
    }
    Ok(if wants.json {
        (StatusCode::ACCEPTED, axum::Json(json!({ "status": "verification_sent" }))).into_response()
    } else {
        Redirect::to("/app/security?changed=email_pending").into_response()
    })
}

/// A page whose button posts a mailed token (the GET itself changes nothing). `signed_in`: the
/// address of the browser's session, for the header.
fn link_page(status: StatusCode, title: &str, error: Option<&str>, form: &str, signed_in: Option<&str>) -> Response {
    let body = format!("<h1>{}</h1>{}{form}", esc(title), notice("error", error));
    // The token is in this page's URL: the edge's `Referrer-Policy: same-origin` keeps it from
    // every other site (`no-referrer` would make the button's post `Origin: null`, refused).
    page(status, title, signed_in, &body)
}

/// Said when a link cannot be used any more (the page offers no button then).
const SPENT: &str = "This link cannot be used any more: it was used already, it has expired, or the account \
                     changed since it was sent.";

fn token_field(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"token\" value=\"{}\">", esc(token))
}

/// The confirmation form, naming the address; signed in, it carries the session's CSRF token,
/// so this browser stays signed in.
fn email_confirm_form(token: &str, new_email: &str, ctx: Option<&SessionContext>) -> String {
    format!(
        "<form method=\"post\" action=\"/auth/email/confirm\" class=\"card\">{}{}\
         <p>Make <strong>{}</strong> your account\u{2019}s e-mail address? Every other device signed in to \
         the account is signed out.</p><button type=\"submit\">Confirm new address</button></form>",
        token_field(token),
        ctx.map(|c| csrf_field(&c.csrf_token())).unwrap_or_default(),
        esc(new_email),
    )
}

/// The token of a link's URL, if it is one at all (a page never echoes anything else).
fn link_token(q: &HashMap<String, String>) -> Option<&str> {
    q.get("token").map(String::as_str).filter(|t| MailSecret::parse(t).is_some())
}

const INCOMPLETE: &str = "This link is incomplete. Open it from the mail again, or copy all of it.";

async fn email_link_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Params) -> ApiResult<Response> {
    let title = "Confirm your new e-mail address";
    let ctx = current_session(&state, &headers, false).await?;
    let who = ctx.as_ref().map(|c| c.user.email.as_str());
    let Some(token) = link_token(&q) else {
        return Ok(link_page(StatusCode::BAD_REQUEST, title, Some(INCOMPLETE), "", who));
    };
    Ok(match state.authority().peek_link(token, MailPurpose::EmailChange).await? {
        Some(link) => {
            let form = email_confirm_form(token, link.new_email.as_deref().unwrap_or_default(), ctx.as_ref());
            link_page(StatusCode::OK, title, None, &form, who)
        }
        None => link_page(StatusCode::BAD_REQUEST, title, Some(SPENT), ASK_AGAIN_EMAIL, who),
    })
}

const ASK_AGAIN_EMAIL: &str = "<p><a href=\"/app/security\">Ask for a new link</a> from your security page.</p>";
const ASK_AGAIN_RESET: &str = "<p><a href=\"/auth/password-reset\">Ask for a new link</a>.</p>";

async fn confirm_email_change(
    State(state): State<AppState>,
    wants: Wants,
    Client(client): Client,
    headers: HeaderMap,
    Input(body): Input<ConfirmBody>,
) -> ApiResult<Response> {
    origin_guard(&state, &headers)?;
    let token = required(&body.token, "token")?;
    // A session cookie alone does not keep this browser signed in: it takes the session's CSRF
    // token too (a cross-site post without it ends this session with the others).
    let presented = current_session(&state, &headers, false).await?;
    let current =
        presented.clone().filter(|ctx| csrf::check(&headers, state.config(), ctx, body.csrf_token.as_deref()).is_ok());
    let confirmed = match state.authority().confirm_email_change(token, current.as_ref(), &client).await {
        Ok(confirmed) => confirmed,
        Err(e) => {
            let e = ApiError::from(e);
            if wants.html && e.status() == StatusCode::BAD_REQUEST {
                let who = presented.as_ref().map(|c| c.user.email.as_str());
                let title = "Confirm your new e-mail address";
                return Ok(link_page(e.status(), title, Some(&e.message()), ASK_AGAIN_EMAIL, who));
            }
            return Err(e);
        }
    };
    state.metrics().sessions_ended.inc();
    let config = state.config();
    let mut res = if wants.json {
        let mut body = json!({ "status": "email_changed", "user": views::user(&confirmed.user) });
        if let Some(rotated) = &confirmed.rotated {
            body["session"] = views::session(state.authority(), &rotated.session);
            body["csrf_token"] = json!(rotated.csrf_token());
        }
        axum::Json(body).into_response()
    } else if confirmed.rotated.is_some() {
        Redirect::to("/app/security?changed=email").into_response()
    } else {
        Redirect::to("/login?email_changed=1").into_response()
    };
    if let Some(rotated) = &confirmed.rotated {
        let h = res.headers_mut();
        h.append(header::SET_COOKIE, cookies::set_session(config, &rotated.secret));
        h.append(header::SET_COOKIE, cookies::clear(config, &config.remember_cookie));
    } else if presented.is_some_and(|ctx| ctx.user.id == confirmed.user.id) {
        // The user's session came without its CSRF token: it ended with the others.
        cookies::clear_browser(res.headers_mut(), config);
    }
    Ok(res)
}

// ---- password reset ---------------------------------------------------------------------

/// "Forgot password?": the form that asks for a link.
fn reset_request_form(status: StatusCode, error: Option<&str>, info: Option<&str>, extra: &str) -> Response {
    let body = format!(
        "<h1>Reset your password</h1>{}{}\
         <form method=\"post\" action=\"/auth/password-reset\" class=\"card\">\
         <label>E-mail <input type=\"email\" name=\"email\" autocomplete=\"username\" required></label>\
         <p class=\"hint\">If an account has this address, a link to set a new password is mailed to it.</p>\
         <button type=\"submit\">Mail me a link</button></form>\
         {extra}<p><a href=\"/login\">Back to sign in</a></p>",
        notice("error", error),
        notice("info", info),
    );
    page(status, "Reset your password", None, &body)
}

async fn reset_request_page(State(state): State<AppState>, Query(q): Params) -> Response {
    let info = q
        .contains_key("sent")
        .then_some("If an account has that address, a link is on its way. It works once, for a limited time.");
    reset_request_form(StatusCode::OK, None, info, demo::dev_inbox_link(&state))
}

async fn request_password_reset(
    State(state): State<AppState>,
    wants: Wants,
    Client(client): Client,
    headers: HeaderMap,
    Input(body): Input<ResetBody>,
) -> ApiResult<Response> {
    origin_guard(&state, &headers)?;
    let raw = required(&body.email, "email")?;
    if let Err(e) = state.authority().request_password_reset(raw, &client).await {
        let e = ApiError::from(e);
        if wants.html && e.status() == StatusCode::TOO_MANY_REQUESTS {
            let mut res = reset_request_form(e.status(), Some(&e.message()), None, "");
            if let ApiError::Throttled { retry_after_secs } = e {
                res.headers_mut().insert(header::RETRY_AFTER, retry_after_secs.into());
            }
            return Ok(res);
        }
        return Err(e);
    }
    Ok(if wants.json {
        (StatusCode::ACCEPTED, axum::Json(json!({ "status": "reset_requested" }))).into_response()
    } else {
        Redirect::to("/auth/password-reset?sent=1").into_response()
    })
}

fn new_password_form(token: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/auth/password-reset/confirm\" class=\"card\">{}\
         <label>New password <input type=\"password\" name=\"new_password\" autocomplete=\"new-password\" \
         minlength=\"8\" required></label>\
         <p class=\"hint\">At least 8 characters; common passwords are refused. Every device signed in to the \
         account is signed out, this one included.</p><button type=\"submit\">Set new password</button></form>",
        token_field(token)
    )
}

async fn reset_link_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Params) -> ApiResult<Response> {
    let title = "Choose a new password";
    let ctx = current_session(&state, &headers, false).await?;
    let who = ctx.as_ref().map(|c| c.user.email.as_str());
    let Some(token) = link_token(&q) else {
        return Ok(link_page(StatusCode::BAD_REQUEST, title, Some(INCOMPLETE), "", who));
    };
    Ok(match state.authority().peek_link(token, MailPurpose::PasswordReset).await? {
        Some(_) => link_page(StatusCode::OK, title, None, &new_password_form(token), who),
        None => link_page(StatusCode::BAD_REQUEST, title, Some(SPENT), ASK_AGAIN_RESET, who),
    })
}

async fn reset_password(
    State(state): State<AppState>,
    wants: Wants,
    Client(client): Client,
    headers: HeaderMap,
    Input(body): Input<NewPasswordBody>,
) -> ApiResult<Response> {
    origin_guard(&state, &headers)?;
    let token = required(&body.token, "token")?;
    let new = required(&body.new_password, "new_password")?;
    let current = current_session(&state, &headers, false).await?;
    let (user, ended) = match state.authority().reset_password(token, new, &client).await {
        Ok(done) => done,
        Err(e) => {
            let e = ApiError::from(e);
            let who = current.as_ref().map(|c| c.user.email.as_str());
            if wants.html && e.status() == StatusCode::UNPROCESSABLE_ENTITY {
                // Only a well-formed token gets here (a weak password is judged after the link).
                let form = new_password_form(token);
                return Ok(link_page(e.status(), "Choose a new password", Some(&e.message()), &form, who));
            }
            if wants.html && e.status() == StatusCode::BAD_REQUEST {
                return Ok(link_page(e.status(), "Choose a new password", Some(&e.message()), ASK_AGAIN_RESET, who));
            }
            return Err(e);
        }
    };
    state.metrics().sessions_ended.inc_by(ended);
    let mut res = if wants.json {
        axum::Json(json!({ "status": "password_reset", "revoked": ended })).into_response()
    } else {
        Redirect::to("/login?reset=1").into_response()
    };
    // This browser's session ended with the others if it was the user's; a browser signed in
    // as someone else keeps that sign-in.
    if current.as_ref().is_none_or(|ctx| ctx.user.id == user.id) {
        cookies::clear_browser(res.headers_mut(), state.config());
    }
    Ok(res)
}
