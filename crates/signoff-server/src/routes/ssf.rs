//! Shared Signals (OpenID SSF 1.0) transmitter endpoints: the metadata
//! (`/.well-known/ssf-configuration`), stream configuration, status, subjects and verification
//! for registered clients as receivers, and the poll endpoint of each poll stream (RFC 8936).
//! Receivers authenticate with a `client_credentials` access token or HTTP Basic; a stream is
//! its receiver's alone (another client's stream is `404`).

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use signoff_core::clients::RegisteredClient;
use signoff_core::signals::event::SUPPORTED;
use signoff_core::signals::{DeliveryMethod, SignalStream, StreamStatus};
use signoff_core::subject::SubjectId;
use signoff_core::{CoreError, MAX_REMOVED_SUBJECTS, Poll, StreamConfig};

use crate::app::AppState;
use crate::callback;
use crate::error::{ApiError, ApiResult};
use crate::routes::client_auth::{self, Permission};

/// The longest description, state, event type or `Authorization` header taken.
const MAX_TEXT: usize = 256;
const MAX_AUTHORIZATION: usize = 1024;
/// Event types one stream may ask for.
const MAX_EVENTS_REQUESTED: usize = 32;
/// Acknowledgements and errors one poll may carry.
const MAX_ACKS: usize = 1_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/ssf-configuration", get(configuration))
        .route("/ssf/streams", post(create).get(read).patch(update).put(replace).delete(remove))
        .route("/ssf/status", get(status).post(set_status))
        .route("/ssf/subjects/add", post(add_subject))
        .route("/ssf/subjects/remove", post(remove_subject))
        .route("/ssf/verify", post(verify))
        .route("/ssf/poll/{stream_id}", post(poll))
}

/// SSF 1.0 §7.1: the transmitter's metadata.
async fn configuration(State(state): State<AppState>) -> Response {
    let c = state.config();
    let origin = &c.public_origin;
    let body = json!({
        "spec_version": "1_0",
        "issuer": c.tokens.issuer,
        "jwks_uri": format!("{origin}/.well-known/jwks.json"),
        "delivery_methods_supported": [DeliveryMethod::PUSH_URN, DeliveryMethod::POLL_URN],
        "configuration_endpoint": format!("{origin}/ssf/streams"),
        "status_endpoint": format!("{origin}/ssf/status"),
        "add_subject_endpoint": format!("{origin}/ssf/subjects/add"),
        "remove_subject_endpoint": format!("{origin}/ssf/subjects/remove"),
        "verification_endpoint": format!("{origin}/ssf/verify"),
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
        "default_subjects": "ALL",
    });
    ([(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"))], axum::Json(body)).into_response()
}

/// The caller, a client registered with `"shared_signals": true` (checked before its body is
/// read), then the body.
async fn caller_and<T: DeserializeOwned>(state: &AppState, request: Request) -> ApiResult<(RegisteredClient, T)> {
    client_auth::permitted_with_body(state, request, Permission::SharedSignals).await
}

/// The caller, a client registered with `"shared_signals": true` (it is told of every user's
/// security events); else `401` or `403`.
async fn caller(state: &AppState, headers: &HeaderMap) -> ApiResult<RegisteredClient> {
    client_auth::permitted(state, headers, Permission::SharedSignals).await
}

/// A stream as receivers see it (SSF §8.1.1). The `Authorization` header it is sent is not
/// shown again.
fn shown(state: &AppState, s: &SignalStream) -> Value {
    let c = state.config();
    let mut delivery = Map::new();
    delivery.insert("method".into(), s.method.urn().into());
    let endpoint = match s.method {
        DeliveryMethod::Push => s.endpoint_url.clone(),
        DeliveryMethod::Poll => Some(format!("{}/ssf/poll/{}", c.public_origin, s.id)),
    };
    if let Some(url) = endpoint {
        delivery.insert("endpoint_url".into(), url.into());
    }
    let delivered: Vec<&str> =
        SUPPORTED.iter().copied().filter(|t| s.events_requested.iter().any(|r| r == t)).collect();
    let mut body = json!({
        "stream_id": s.id,
        "iss": c.tokens.issuer,
        "aud": s.client_id,
        "delivery": delivery,
        "events_supported": SUPPORTED,
        "events_requested": s.events_requested,
        "events_delivered": delivered,
        "min_verification_interval": signoff_core::throttle::MIN_VERIFICATION_INTERVAL,
    });
    if let Some(d) = &s.description {
        body["description"] = d.clone().into();
    }
    body
}

#[derive(Deserialize, Default)]
struct DeliveryIn {
    method: Option<String>,
    endpoint_url: Option<String>,
    authorization_header: Option<String>,
}

/// What a receiver sends to create, update or replace a stream (transmitter-supplied members
/// it repeats are ignored).
#[derive(Deserialize)]
struct StreamIn {
    stream_id: Option<String>,
    delivery: Option<DeliveryIn>,
    events_requested: Option<Vec<String>>,
    description: Option<String>,
}

fn text(field: &str, value: Option<String>, max: usize) -> ApiResult<Option<String>> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(ApiError::bad_request(format!("{field} is longer than {max} characters")))
        }
        Some(v) if v.chars().any(char::is_control) => {
            Err(ApiError::bad_request(format!("{field} holds control characters")))
        }
        other => Ok(other),
    }
}

fn events(requested: Vec<String>) -> ApiResult<Vec<String>> {
    if requested.len() > MAX_EVENTS_REQUESTED {
        return Err(ApiError::bad_request(format!(
            "events_requested holds more than {MAX_EVENTS_REQUESTED} event types"
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for e in requested {
        let e = text("an event type", Some(e), MAX_TEXT)?.unwrap_or_default();
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

/// The delivery a receiver asked for, checked: a known method; for push, an endpoint that passes
/// the callback check (no private addresses unless allowed) and a header value that can be sent.
async fn delivery(state: &AppState, given: DeliveryIn) -> ApiResult<(DeliveryMethod, Option<String>, Option<String>)> {
    let method = match given.method.as_deref() {
        None => DeliveryMethod::Poll,
        Some(urn) => DeliveryMethod::from_urn(urn).ok_or_else(|| {
            ApiError::bad_request(format!(
                "delivery.method must be {} (push) or {} (poll)",
                DeliveryMethod::PUSH_URN,
                DeliveryMethod::POLL_URN
            ))
        })?,
    };
    if method == DeliveryMethod::Poll {
        // The transmitter names the poll URL; a header is only sent with pushes.
        return Ok((method, None, None));
    }
    let raw = given.endpoint_url.ok_or_else(|| ApiError::bad_request("delivery.endpoint_url is required for push"))?;
    // SETs name users and carry the receiver's header: TLS (RFC 8935 §5), unless private
    // callbacks are allowed (development). Checked before the host is looked up.
    if !state.config().allow_private_callbacks && !raw.trim().to_ascii_lowercase().starts_with("https://") {
        return Err(ApiError::bad_request("delivery.endpoint_url must be https"));
    }
    let url = callback::check(raw.trim(), state.config().allow_private_callbacks)
        .await
        .map_err(|e| ApiError::bad_request(format!("delivery.endpoint_url: {e}")))?;
    let authorization = match given.authorization_header {
        Some(h)
            if h.len() > MAX_AUTHORIZATION
                || HeaderValue::from_str(&h).is_err()
                || h.bytes().any(|b| !(0x20..0x7f).contains(&b)) =>
        {
            return Err(ApiError::bad_request(format!(
                "delivery.authorization_header must be printable ASCII of at most {MAX_AUTHORIZATION} characters"
            )));
        }
        other => other,
    };
    Ok((method, Some(url.to_string()), authorization))
}

async fn config_of(state: &AppState, body: StreamIn) -> ApiResult<StreamConfig> {
    let (method, endpoint_url, authorization_header) = delivery(state, body.delivery.unwrap_or_default()).await?;
    Ok(StreamConfig {
        description: text("description", body.description, MAX_TEXT)?,
        events_requested: events(body.events_requested.unwrap_or_default())?,
        method,
        endpoint_url,
        authorization_header,
    })
}

fn stream_id(given: Option<String>) -> ApiResult<String> {
    given.filter(|s| !s.is_empty() && s.len() <= 64).ok_or_else(|| ApiError::bad_request("stream_id is required"))
}

/// SSF §8.1.1.1: `201` with the new stream.
async fn create(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (caller, body) = caller_and::<StreamIn>(&state, request).await?;
    let config = config_of(&state, body).await?;
    let stream = match state.authority().create_signal_stream(&caller.id, config).await {
        Err(CoreError::Conflict) => {
            return Err(ApiError::Conflict(
                "too_many_streams",
                format!("a receiver may have {} streams; delete one first", signoff_core::MAX_STREAMS_PER_CLIENT),
            ));
        }
        other => other?,
    };
    Ok((StatusCode::CREATED, axum::Json(shown(&state, &stream))).into_response())
}

#[derive(Deserialize)]
struct Which {
    stream_id: Option<String>,
}

/// SSF §8.1.1.2: one stream (`?stream_id=`), or all of the receiver's.
async fn read(State(state): State<AppState>, headers: HeaderMap, Query(which): Query<Which>) -> ApiResult<Response> {
    let caller = caller(&state, &headers).await?;
    Ok(match which.stream_id {
        Some(id) => axum::Json(shown(&state, &state.authority().signal_stream(&caller.id, &id).await?)).into_response(),
        None => {
            let all = state.authority().signal_streams(&caller.id).await?;
            axum::Json(all.iter().map(|s| shown(&state, s)).collect::<Vec<_>>()).into_response()
        }
    })
}

/// SSF §8.1.1.3: the members given replace the stream's.
async fn update(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (caller, body) = caller_and::<StreamIn>(&state, request).await?;
    let id = stream_id(body.stream_id.clone())?;
    // A partial delivery is merged over the stored one (a new header alone keeps the method and
    // the endpoint; the same method keeps what is not given).
    let delivery = match body.delivery {
        Some(mut d) => {
            let stored = state.authority().signal_stream(&caller.id, &id).await?;
            let same = d.method.as_deref().is_none_or(|m| m == stored.method.urn());
            d.method = d.method.or_else(|| Some(stored.method.urn().to_owned()));
            if same {
                // The stored header goes only to the endpoint it was given for.
                let endpoint_kept = d.endpoint_url.as_ref().is_none_or(|u| Some(u) == stored.endpoint_url.as_ref());
                d.endpoint_url = d.endpoint_url.or(stored.endpoint_url);
                if endpoint_kept {
                    d.authorization_header = d.authorization_header.or(stored.authorization_header);
                }
            }
            Some(delivery(&state, d).await?)
        }
        None => None,
    };
    let description = text("description", body.description, MAX_TEXT)?;
    let requested = body.events_requested.map(events).transpose()?;
    let stream = state
        .authority()
        .update_signal_stream(&caller.id, &id, |s| {
            if let Some((method, url, auth)) = &delivery {
                (s.method, s.endpoint_url, s.authorization_header) = (*method, url.clone(), auth.clone());
            }
            if let Some(d) = &description {
                s.description = Some(d.clone());
            }
            if let Some(r) = &requested {
                s.events_requested = r.clone();
            }
            Ok(())
        })
        .await?;
    Ok(axum::Json(shown(&state, &stream)).into_response())
}

/// SSF §8.1.1.4: the stream's receiver-supplied members all replaced (those left out are
/// emptied).
async fn replace(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (caller, body) = caller_and::<StreamIn>(&state, request).await?;
    let id = stream_id(body.stream_id.clone())?;
    let config = config_of(&state, body).await?;
    let stream = state
        .authority()
        .update_signal_stream(&caller.id, &id, |s| {
            (s.method, s.endpoint_url, s.authorization_header) =
                (config.method, config.endpoint_url.clone(), config.authorization_header.clone());
            s.description = config.description.clone();
            s.events_requested = config.events_requested.clone();
            Ok(())
        })
        .await?;
    Ok(axum::Json(shown(&state, &stream)).into_response())
}

/// SSF §8.1.1.5: `204`; what the stream had waiting is dropped.
async fn remove(State(state): State<AppState>, headers: HeaderMap, Query(which): Query<Which>) -> ApiResult<Response> {
    let caller = caller(&state, &headers).await?;
    let id = stream_id(which.stream_id)?;
    if !state.authority().delete_signal_stream(&caller.id, &id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn status_of(s: &SignalStream) -> Value {
    let mut body = json!({"stream_id": s.id, "status": s.status.as_str()});
    if let Some(r) = &s.reason {
        body["reason"] = r.clone().into();
    }
    body
}

/// SSF §8.1.2.1.
async fn status(State(state): State<AppState>, headers: HeaderMap, Query(which): Query<Which>) -> ApiResult<Response> {
    let caller = caller(&state, &headers).await?;
    let id = stream_id(which.stream_id)?;
    Ok(axum::Json(status_of(&state.authority().signal_stream(&caller.id, &id).await?)).into_response())
}

#[derive(Deserialize)]
struct StatusIn {
    stream_id: Option<String>,
    status: Option<String>,
    reason: Option<String>,
}

/// SSF §8.1.2.2: enabled, paused (events held) or disabled (events dropped).
async fn set_status(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (caller, body) = caller_and::<StatusIn>(&state, request).await?;
    let id = stream_id(body.stream_id)?;
    let status = body
        .status
        .as_deref()
        .and_then(StreamStatus::parse)
        .ok_or_else(|| ApiError::bad_request("status must be enabled, paused or disabled"))?;
    let reason = text("reason", body.reason, MAX_TEXT)?;
    let stream = state
        .authority()
        .update_signal_stream(&caller.id, &id, |s| {
            s.status = status;
            s.reason = reason.clone();
            Ok(())
        })
        .await?;
    Ok(axum::Json(status_of(&stream)).into_response())
}

#[derive(Deserialize)]
struct SubjectIn {
    stream_id: Option<String>,
    subject: Option<Value>,
}

fn subject(given: Option<Value>) -> ApiResult<SubjectId> {
    let raw = given.ok_or_else(|| ApiError::bad_request("subject is required"))?;
    SubjectId::from_json(&raw).map_err(|e| ApiError::bad_request(format!("subject: {e}")))
}

/// SSF §8.1.3.2: events about the subject flow again (every subject does unless removed).
async fn add_subject(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (caller, body) = caller_and::<SubjectIn>(&state, request).await?;
    let id = stream_id(body.stream_id)?;
    let keys = subject(body.subject)?.keys();
    state
        .authority()
        .update_signal_stream(&caller.id, &id, |s| {
            s.excluded_subjects.retain(|k| !keys.contains(k));
            Ok(())
        })
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// SSF §8.1.3.3: no more events about the subject on this stream.
async fn remove_subject(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (caller, body) = caller_and::<SubjectIn>(&state, request).await?;
    let id = stream_id(body.stream_id)?;
    let keys = subject(body.subject)?.keys();
    let result = state
        .authority()
        .update_signal_stream(&caller.id, &id, |s| {
            for k in &keys {
                if !s.excluded_subjects.contains(k) {
                    s.excluded_subjects.push(k.clone());
                }
            }
            if s.excluded_subjects.len() > MAX_REMOVED_SUBJECTS {
                return Err(CoreError::Conflict);
            }
            Ok(())
        })
        .await;
    match result {
        Err(CoreError::Conflict) => {
            Err(ApiError::bad_request(format!("a stream may have at most {MAX_REMOVED_SUBJECTS} subjects removed")))
        }
        other => other.map(|_| StatusCode::NO_CONTENT.into_response()).map_err(ApiError::from),
    }
}

#[derive(Deserialize)]
struct VerifyIn {
    stream_id: Option<String>,
    state: Option<String>,
}

/// SSF §8.1.4.2: `204`, then a verification SET carrying `state` on the stream.
async fn verify(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (caller, body) = caller_and::<VerifyIn>(&state, request).await?;
    let id = stream_id(body.stream_id)?;
    let echo = text("state", body.state, MAX_TEXT)?;
    state.authority().verify_signal_stream(&caller.id, &id, echo).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct SetErr {
    err: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PollIn {
    max_events: Option<u32>,
    return_immediately: Option<bool>,
    ack: Option<Vec<String>>,
    set_errs: Option<std::collections::BTreeMap<String, SetErr>>,
}

/// RFC 8936 §2.4: acknowledge, report errors, and take what waits (long poll unless
/// `returnImmediately`).
async fn poll(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> ApiResult<Response> {
    let (caller, body) = caller_and::<PollIn>(&state, request).await?;
    let ack = body.ack.unwrap_or_default();
    let errs = body.set_errs.unwrap_or_default();
    if ack.len() + errs.len() > MAX_ACKS {
        return Err(ApiError::bad_request(format!("at most {MAX_ACKS} acknowledgements and errors in one poll")));
    }
    let errs = errs
        .into_iter()
        .map(|(jti, e)| {
            let err = text("setErrs err", e.err, MAX_TEXT)?.unwrap_or_default();
            let description = text("setErrs description", e.description, MAX_TEXT)?.unwrap_or_default();
            Ok((jti, err, description))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    // A poll that may wait holds a slot of those a client's long polls and feed streams share;
    // past them it answers at once (its acknowledgements recorded all the same). It ends at
    // shutdown with what it has.
    let mut return_immediately = body.return_immediately.unwrap_or(false);
    let _slot = if return_immediately || body.max_events == Some(0) {
        None
    } else {
        let slot = crate::routes::feed::take_slot(&state, &caller.id).ok();
        return_immediately = slot.is_none();
        slot
    };
    let request = Poll { max_events: body.max_events, return_immediately, ack, errs };
    let shutdown = state.shutdown_signal();
    let polled = tokio::select! {
        biased;
        polled = state.authority().poll_signal_stream(&caller.id, &id, request) => polled?,
        () = shutdown => signoff_core::Polled::default(),
    };
    let sets: Map<String, Value> = polled.sets.into_iter().map(|(jti, set)| (jti, Value::String(set))).collect();
    let body = json!({"sets": sets, "moreAvailable": polled.more_available});
    Ok(([(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], axum::Json(body)).into_response())
}
