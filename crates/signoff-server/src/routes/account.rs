//! Security changes of a signed-in user: `POST /auth/password`, `POST /auth/security-report`.
//! Each runs its trigger's policy (`signoff_core::policy`); the change of address, which waits
//! for a mailed link, is in `email_flows`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use signoff_core::SessionContext;

use super::{csrf_guard, demo, require_session, required};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Client, Input, Wants};
use crate::{cookies, views};

pub fn routes() -> Router<AppState> {
    Router::new().route("/auth/password", post(password)).route("/auth/security-report", post(security_report))
}

/// Carries secrets: deliberately not `Debug`, so it can never be logged by accident.
#[derive(Deserialize)]
struct PasswordBody {
    current_password: Option<String>,
    new_password: Option<String>,
    csrf_token: Option<String>,
}

/// Carries secrets: deliberately not `Debug`, so it can never be logged by accident.
#[derive(Deserialize)]
struct ReportBody {
    details: Option<String>,
    csrf_token: Option<String>,
}

async fn password(
    State(state): State<AppState>,
    wants: Wants,
    Client(client): Client,
    headers: HeaderMap,
    Input(body): Input<PasswordBody>,
) -> ApiResult<Response> {
    let ctx = require_session(&state, &headers).await?;
    csrf_guard(&state, &headers, &ctx, body.csrf_token.as_deref())?;
    let current = required(&body.current_password, "current_password")?;
    let new = required(&body.new_password, "new_password")?;
    let result = state.authority().change_password(&ctx, current, new, &client).await;
    changed(&state, wants, &ctx, result, "password").await
}

/// The answer to a password change: the rotated session's cookie (remember-me tokens were all
/// revoked, so that cookie goes), and JSON or a redirect back to the page.
async fn changed(
    state: &AppState,
    wants: Wants,
    ctx: &SessionContext,
    result: Result<SessionContext, signoff_core::CoreError>,
    what: &str,
) -> ApiResult<Response> {
    let config = state.config();
    let rotated = match result {
        Ok(rotated) => rotated,
        Err(e) => {
            let e = ApiError::of_change(e);
            if wants.html && e.status().is_client_error() {
                let error = Some((demo::SecurityForm::Password, e.message()));
                let error = error.as_ref().map(|(f, m)| (*f, m.as_str()));
                return Ok(demo::security_page(state, ctx, e.status(), error, None).await);
            }
            return Err(e);
        }
    };
    state.metrics().sessions_ended.inc();
    let mut res = if wants.json {
        axum::Json(views::signed_in(state.authority(), &rotated)).into_response()
    } else {
        Redirect::to(&format!("/app/security?changed={what}")).into_response()
    };
    let h = res.headers_mut();
    h.append(header::SET_COOKIE, cookies::set_session(config, &rotated.secret));
    h.append(header::SET_COOKIE, cookies::clear(config, &config.remember_cookie));
    Ok(res)
}

async fn security_report(
    State(state): State<AppState>,
    wants: Wants,
    Client(client): Client,
    headers: HeaderMap,
    Input(body): Input<ReportBody>,
) -> ApiResult<Response> {
    let ctx = require_session(&state, &headers).await?;
    csrf_guard(&state, &headers, &ctx, body.csrf_token.as_deref())?;
    let ended = state.authority().report_concern(&ctx, body.details.as_deref().unwrap_or_default(), &client).await?;
    state.metrics().sessions_ended.inc_by(ended);
    let mut res = if wants.json {
        axum::Json(json!({ "revoked": ended })).into_response()
    } else {
        Redirect::to("/login?reported=1").into_response()
    };
    cookies::clear_browser(res.headers_mut(), state.config());
    Ok(res)
}
