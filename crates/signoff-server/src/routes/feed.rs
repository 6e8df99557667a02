//! The revocation feed for services that verify access tokens themselves: `GET /revocations`
//! (poll and long-poll) and `GET /revocations/stream` (server-sent events), both for registered
//! clients (HTTP Basic `client_id:client_secret`).
//!
//! Both serve this process's in-memory window of the commit-ordered feed (see
//! `signoff_core::feed::window`), and only while this node vouches for it: a node that cannot
//! read the feed answers 503, and its open streams stop their heartbeats and end, so a verifier
//! behind it goes stale and fails closed instead of trusting a silent feed.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream;
use serde::Deserialize;
use serde_json::json;
use signoff_core::feed::delivery::Delivery;
use signoff_core::feed::window::Page;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::listener::{Connection, Written};
use crate::routes::client_auth;

pub fn routes() -> Router<AppState> {
    Router::new().route("/revocations", get(poll)).route("/revocations/stream", get(stream_events))
}

/// The longest a long-poll waits.
const MAX_WAIT_SECS: u64 = 30;
/// A comment at least this often on an open stream (the contract says at most 5 s): every
/// second, so a verifier's staleness budget (3 s by default) spans a few beats, and a paused
/// node's verifiers fail closed within seconds.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Open streams and waiting long-polls, per client and in all: each holds a connection.
#[derive(Debug, Default)]
pub struct FeedWaits(Mutex<HashMap<String, usize>>);

/// One open stream or waiting long-poll; gives its slot back when dropped.
pub struct WaitSlot {
    waits: Arc<FeedWaits>,
    client: String,
}

impl FeedWaits {
    pub fn take(self: &Arc<Self>, client: &str, per_client: usize, total: usize) -> Option<WaitSlot> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let all: usize = open.values().sum();
        let mine = open.get(client).copied().unwrap_or(0);
        if mine >= per_client || all >= total {
            return None;
        }
        open.insert(client.to_owned(), mine + 1);
        Some(WaitSlot { waits: self.clone(), client: client.to_owned() })
    }
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        let mut open = self.waits.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

pub(crate) fn take_slot(state: &AppState, client: &str) -> ApiResult<WaitSlot> {
    let c = state.config();
    state.feed_waits().take(client, c.max_feed_waits_per_client, c.max_feed_waits).ok_or(ApiError::TooManyStreams)
}

#[derive(Debug, Deserialize)]
struct PollQuery {
    after: Option<String>,
    wait: Option<String>,
}

fn position(raw: Option<&str>, name: &str) -> ApiResult<Option<i64>> {
    signoff_wire::position::parse(raw)
        .map_err(|_| ApiError::bad_request(format!("{name} must be a whole number, 0 or more")))
}

fn page_json(page: &Page) -> serde_json::Value {
    let events: Vec<_> = page.events.iter().map(|(seq, e)| e.to_json(*seq)).collect();
    json!({ "events": events, "head": page.head, "reset": page.reset })
}

async fn poll(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PollQuery>, QueryRejection>,
) -> ApiResult<Response> {
    // Taken before the secret is checked: a rotation that lands after this ends the wait.
    let opened = state.authority().client_feed().head();
    let client = client_auth::basic(&state, &headers).await?;
    let Query(query) = query.map_err(|_| ApiError::bad_request("malformed query"))?;
    let after = position(query.after.as_deref(), "after")?;
    let wait = position(query.wait.as_deref(), "wait")?.unwrap_or(0).unsigned_abs().min(MAX_WAIT_SECS);
    let authority = state.authority();
    let feed = authority.client_feed();
    let mut changed = feed.subscribe();
    let mut page = authority.feed_page(after).await?;
    if page.events.is_empty() && !page.reset && wait > 0 {
        let _slot = take_slot(&state, &client.id)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
        let shutdown = state.shutdown_signal();
        tokio::pin!(shutdown);
        // `changed` was subscribed before the page was read: a change since then wakes at once.
        loop {
            if feed.head() > page.head {
                break;
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { break },
                () = tokio::time::sleep_until(deadline) => break,
                () = &mut shutdown => break,
            }
            if feed.removed(&client.id) || feed.grant_ended_after(&client.id, opened) {
                return Err(ApiError::InvalidClient);
            }
        }
        // Answered only as far as this node vouches, now.
        page = authority.feed_page(after).await?;
    }
    Ok(axum::Json(page_json(&page)).into_response())
}

async fn stream_events(
    State(state): State<AppState>,
    connection: Option<Extension<Connection>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // Taken before the secret is checked: a rotation that lands after this ends the stream.
    let opened = state.authority().client_feed().head();
    let client = client_auth::basic(&state, &headers).await?;
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::trim);
    let last = position(last, "Last-Event-ID")?;
    let slot = take_slot(&state, &client.id)?;
    // Marked before the first page is read, and waited for from then on: a revocation that
    // lands meanwhile is answered once this stream has sent it too.
    let delivery = state.authority().client_feed().deliveries().open();
    let first = state.authority().feed_page(last).await?;
    let feeder = Feeder {
        state: state.clone(),
        client: client.id,
        changed: None,
        at: first.head,
        // Below any position: the first page is marked sent (even an empty feed's 0).
        marked: -1,
        delivery,
        written: connection.map(|Extension(c)| c.written),
        opened,
        _slot: slot,
    };
    // A comment `reset <head>` when what follows is the whole state (it replaces what the
    // client held), then the backlog, then a comment saying the stream is current, then
    // whatever comes. Comments are invisible to EventSource; verifiers read them.
    let reset = first.reset.then(|| Event::default().comment(format!("reset {}", first.head)));
    let backlog = reset.into_iter().chain(events_of(&first)).chain([Event::default().comment("current")]);
    let head = stream::iter(backlog.map(Ok::<_, Infallible>));
    let tail = stream::unfold(feeder, |mut f| async move {
        let events = f.next().await?;
        Some((stream::iter(events.into_iter().map(Ok::<_, Infallible>)), f))
    });
    use futures_util::StreamExt;
    let body = head.chain(tail.flatten());
    let mut res = Sse::new(body).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

fn events_of(page: &Page) -> Vec<Event> {
    page.events
        .iter()
        .map(|(seq, e)| Event::default().id(seq.to_string()).event("revocation").data(e.to_json(*seq).to_string()))
        .collect()
}

/// Follows the window for one stream.
struct Feeder {
    state: AppState,
    client: String,
    changed: Option<tokio::sync::watch::Receiver<u64>>,
    /// The last position handed to the connection.
    at: i64,
    /// The last position marked sent (`delivery`).
    marked: i64,
    /// This stream's mark of what it has sent, which revocations wait for.
    delivery: Delivery,
    /// Its connection's flushes (served by `listener::serve`; otherwise a turn is taken as one).
    written: Option<Arc<Written>>,
    /// The feed's position when the stream's secret was checked.
    opened: i64,
    /// Held for as long as the stream is open.
    _slot: WaitSlot,
}

impl Feeder {
    /// The next events (or a heartbeat); `None` ends the stream.
    async fn next(&mut self) -> Option<Vec<Event>> {
        let authority = self.state.authority();
        let feed = authority.client_feed();
        let changed = self.changed.get_or_insert_with(|| feed.subscribe());
        if feed.head() == self.at {
            // One heartbeat's time in all, whatever part of it the flush takes.
            let beat = tokio::time::Instant::now() + HEARTBEAT;
            if self.marked < self.at {
                // What was handed over is written out once this stream has nothing more to
                // give, and is sent once the connection has flushed after that: a client that
                // reads too slowly leaves it unmarked (and lagging, for revocations).
                let sent = match &self.written {
                    Some(written) => {
                        let shutdown = self.state.shutdown_signal();
                        tokio::select! {
                            sent = written.next_flush(HEARTBEAT) => sent,
                            () = shutdown => return None,
                        }
                    }
                    None => {
                        tokio::task::yield_now().await;
                        true
                    }
                };
                if sent {
                    self.delivery.sent(self.at);
                    self.marked = self.at;
                }
            }
            let shutdown = self.state.shutdown_signal();
            tokio::select! {
                r = changed.changed() => r.ok()?,
                () = tokio::time::sleep_until(beat) => {}
                () = shutdown => return None,
            }
        }
        changed.borrow_and_update();
        // Its client deleted, or its secret rotated since it was checked: the stream ends.
        if feed.removed(&self.client) || feed.grant_ended_after(&self.client, self.opened) {
            return None;
        }
        // Nothing is said (not even a heartbeat) unless this node vouches for its feed now.
        if !authority.feed_current().await {
            tracing::warn!(client_id = %self.client, "ending a revocation-feed stream: this node cannot vouch for its feed");
            return None;
        }
        let page = feed.since(Some(self.at), authority.now());
        if page.reset {
            // This node's window no longer reaches back to the stream's position (it fell
            // behind and skipped entries): the client must start over, so the stream ends.
            return None;
        }
        self.at = page.head;
        let mut events = events_of(&page);
        if events.is_empty() {
            events.push(Event::default().comment("heartbeat"));
        }
        Some(events)
    }
}
