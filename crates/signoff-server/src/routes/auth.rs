//! Accounts and sign-in: `POST /auth/register`, `POST /auth/login`, `GET /auth/session`,
//! `GET /api/me`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::{bearer, current_session, demo, require_session};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Client, Input, Wants, flex_bool};
use crate::{cookies, csrf, redirect, views};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/session", get(session))
}

/// Carries secrets: deliberately not `Debug`, so it can never be logged by accident.
#[derive(Deserialize)]
pub struct Credentials {
    email: Option<String>,
    password: Option<String>,
    #[serde(default, deserialize_with = "flex_bool")]
    remember_me: bool,
    return_to: Option<String>,
}

impl Credentials {
    fn required(&self) -> ApiResult<(&str, &str)> {
        match (&self.email, &self.password) {
            (Some(e), Some(p)) => Ok((e, p)),
            _ => Err(ApiError::bad_request("email and password are required")),
        }
    }
}

async fn register(
    State(state): State<AppState>,
    wants: Wants,
    Client(client): Client,
    headers: HeaderMap,
    Input(body): Input<Credentials>,
) -> ApiResult<Response> {
    csrf::check_origin(&headers, state.config())?;
    let (email, password) = body.required()?;
    match state.authority().register(email, password, &client).await {
        Ok(user) if wants.json => {
            Ok((StatusCode::CREATED, axum::Json(json!({ "user": views::user(&user) }))).into_response())
        }
        // A form gets the same answer whether or not the address was taken (so does the API):
        // the sign-in page then says both what happened and what to do.
        Ok(_) => Ok(Redirect::to("/login?registered=1").into_response()),
        Err(e) => {
            let e = ApiError::from(e);
            if wants.html && e.status() == StatusCode::UNPROCESSABLE_ENTITY {
                return Ok(demo::register_page(e.status(), Some(&e.message()), Some(email)));
            }
            Err(e)
        }
    }
}

async fn login(
    State(state): State<AppState>,
    wants: Wants,
    Client(client): Client,
    headers: HeaderMap,
    Input(body): Input<Credentials>,
) -> ApiResult<Response> {
    csrf::check_origin(&headers, state.config())?;
    let (email, password) = body.required()?;
    let previous = cookies::session_secret(&headers, state.config());
    let previous_remember = cookies::remember_secret(&headers, state.config());
    let previous = (previous.as_ref(), previous_remember.as_ref());
    let signed_in = match state.authority().login(email, password, body.remember_me, previous, &client).await {
        Ok(signed_in) => signed_in,
        Err(e) => {
            state.metrics().login_failures.inc();
            let e = ApiError::from(e);
            if wants.html {
                let mut page =
                    demo::login_page(e.status(), Some(&e.message()), None, body.return_to.as_deref(), Some(email));
                if let ApiError::Throttled { retry_after_secs } = e {
                    page.headers_mut().insert(header::RETRY_AFTER, retry_after_secs.into());
                }
                return Ok(page);
            }
            return Err(e);
        }
    };
    state.metrics().logins.inc();
    let to = redirect::validate(body.return_to.as_deref(), "/app", state.config());
    Ok(signed_in_answer(&state, &headers, wants, &signed_in, &to))
}

/// The answer to a sign-in: JSON, or a redirect to `to`; with the new session's cookies (and
/// the old remember-me cookie cleared when the sign-in revoked it).
fn signed_in_answer(
    state: &AppState,
    headers: &HeaderMap,
    wants: Wants,
    signed_in: &signoff_core::SignedIn,
    to: &str,
) -> Response {
    let mut res = if wants.json {
        axum::Json(views::signed_in(state.authority(), &signed_in.ctx)).into_response()
    } else {
        Redirect::to(to).into_response()
    };
    for cookie in cookies::set_signed_in(state.config(), signed_in) {
        res.headers_mut().append(header::SET_COOKIE, cookie);
    }
    if signed_in.remember.is_none() && previous_remember_sent(headers, state.config()) {
        res.headers_mut().append(header::SET_COOKIE, cookies::clear(state.config(), &state.config().remember_cookie));
    }
    res
}

/// Whether the request carried a remember-me cookie (which the sign-in just revoked).
fn previous_remember_sent(headers: &HeaderMap, config: &crate::config::Config) -> bool {
    cookies::values(headers, &config.remember_cookie).next().is_some()
}

async fn session(State(state): State<AppState>, req: axum::extract::Request) -> ApiResult<Response> {
    let ctx = require_session(&state, req.headers()).await?;
    Ok(views::json_ok(&views::signed_in(state.authority(), &ctx)))
}

/// The demo protected resource: a bearer access token, or else a session cookie. Any failure
/// is the same `401 invalid_token`, whichever check failed.
/// Takes the request itself: a `HeaderMap` extractor would copy every header.
pub async fn me(State(state): State<AppState>, req: axum::extract::Request) -> ApiResult<Response> {
    let headers = req.headers();
    let user = match bearer(headers) {
        Some(token) => match state.authority().verify_access(token).await {
            Ok(ctx) => Some(ctx.user),
            // Fail closed without calling a good token bad: the client retries, not re-logs in.
            Err(signoff_core::token::TokenError::Unavailable) => return Err(ApiError::Busy { retry_after_secs: 1 }),
            Err(_) => None,
        },
        None => current_session(&state, headers, true).await?.map(|ctx| ctx.user),
    };
    let user = user.ok_or(ApiError::InvalidToken)?;
    // The hottest answer: serialised straight from the record, no intermediate JSON value.
    #[derive(serde::Serialize)]
    struct Me<'a> {
        user: views::UserView<'a>,
    }
    Ok(views::json_ok(&Me { user: views::UserView::of(&user) }))
}
