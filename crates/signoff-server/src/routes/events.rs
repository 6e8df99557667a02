//! `GET /auth/events`: a server-sent event stream that tells a page its session has ended.
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

use super::require_session;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Client;
use crate::views;

pub fn routes() -> Router<AppState> {
    Router::new().route("/auth/events", get(events))
}

async fn events(State(state): State<AppState>, Client(client): Client, headers: HeaderMap) -> ApiResult<Response> {
    let ctx = require_session(&state, &headers).await?;
    let authority = state.authority();
    let limits = state.config().streams;
    let Some(watch) = authority.hub().watch(&ctx.session.id, &ctx.user.id, &client.ip, limits) else {
        return Err(ApiError::TooManyStreams);
    };
    // The session may have ended between the check above and the registration.
    let gone_already = authority.peek(&ctx.secret).await?.is_none();
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

fn revoked_event(reason: &str, at: &str) -> Event {
    Event::default().event("revoked").data(json!({ "reason": reason, "at": at }).to_string())
}
