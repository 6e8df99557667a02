//! `GET /auth/events`: a server-sent event stream that tells a page its session has ended.
//! The session is the one of the request's session cookie, or, for single-page apps in token
//! mode (which read the stream with `fetch`, as `EventSource` cannot send the header), the one
//! an `Authorization: Bearer` access token belongs to.
//!
//! The stream registers with the authority's revocation hub for its session. When anything
//! ends the session it sends one `event: revoked` with `{"reason", "at"}` and closes. Comments
//! keep idle connections alive through proxies; server shutdown ends the stream (browsers
//! reconnect on their own).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream;
use serde_json::json;
use std::convert::Infallible;

use super::{bearer, require_session};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Client;
use crate::views;

pub fn routes() -> Router<AppState> {
    Router::new().route("/auth/events", get(events))
}

async fn events(State(state): State<AppState>, Client(client): Client, headers: HeaderMap) -> ApiResult<Response> {
    let authority = state.authority();
    let (session_id, user_id, proof) = match bearer(&headers) {
        Some(token) => {
            let ctx = access(&state, token).await?.ok_or(ApiError::InvalidToken)?;
            (ctx.session.id.clone(), ctx.user.id.clone(), Proof::Token)
        }
        None => {
            let ctx = require_session(&state, &headers).await?;
            (ctx.session.id.clone(), ctx.user.id.clone(), Proof::Cookie(ctx.secret))
        }
    };
    let limits = state.config().streams;
    let Some(watch) = authority.hub().watch(&session_id, &user_id, &client.ip, limits) else {
        return Err(ApiError::TooManyStreams);
    };
    // The session may have ended between the check above and the registration (the session,
    // not the token: a token denied meanwhile does not end the session the stream speaks of).
    let gone_already = match proof {
        Proof::Cookie(secret) => authority.peek(&secret).await?.is_none(),
        Proof::Token => !authority.session_lives(&session_id).await?,
    };
    let shutdown = state.shutdown_signal();
    let now = views::rfc3339(authority.now());
    let revoked = async move {
        if gone_already {
            return Some(revoked_event("revoked", &now));
        }
        tokio::select! {
            r = watch => r.ok().map(|r| revoked_event(&r.reason, &views::rfc3339(r.at))),
            () = shutdown => None,
        }
    };
    let stream = stream::unfold(Some(revoked), |next| async move {
        let event = next?.await?;
        Some((Ok::<_, Infallible>(event), None))
    });
    let keep_alive = KeepAlive::new()
        .interval(std::time::Duration::from_secs(state.config().events_keepalive.whole_seconds().unsigned_abs()))
        .text("keep-alive");
    let mut res = Sse::new(stream).keep_alive(keep_alive).into_response();
    // It speaks of one signed-in session: never stored, never shared (the SSE default is no-cache).
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    Ok(res)
}

/// What the request showed for its session.
enum Proof {
    Cookie(signoff_core::SessionSecret),
    Token,
}

/// The access token's session and user, `None` when the token does not stand (whichever check
/// failed); a store that cannot answer is `503`, no verdict on the token.
async fn access(state: &AppState, token: &str) -> ApiResult<Option<signoff_core::AccessContext>> {
    match state.authority().verify_access(token).await {
        // An app's token from the OpenID provider is that app's: it does not watch (nor hold
        // the stream places of) the browser's session.
        Ok(ctx) if ctx.claims.client_id.is_some() => Ok(None),
        Ok(ctx) => Ok(Some(ctx)),
        Err(signoff_core::token::TokenError::Unavailable) => Err(ApiError::Busy { retry_after_secs: 1 }),
        Err(_) => Ok(None),
    }
}

fn revoked_event(reason: &str, at: &str) -> Event {
    Event::default().event("revoked").data(json!({ "reason": reason, "at": at }).to_string())
}
