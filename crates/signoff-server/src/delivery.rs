//! The outbox worker: sends logout notifications (OIDC back-channel logout, Standard Webhooks)
//! to registered clients, and mail to users (`letters`), away from every request.
//!
//! It claims due deliveries (each for `delivery_claim_seconds`, so on several nodes each is sent by one node,
//! and one a dead node had claimed is taken over) and hands them to one queue per endpoint:
//! endpoints are served in parallel, each endpoint's deliveries one at a time, each with a
//! timeout, so a slow receiver holds only its own queue. It records each outcome; the authority
//! decides what comes next (`signoff_core::outbox`). A delivery connects only to the addresses
//! its URL resolved to when it was checked again just now (SSRF), never follows a redirect.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use signoff_core::outbox::{Attempt, Delivery, DeliveryKind};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};

use crate::app::AppState;
use crate::callback;

/// Deliveries claimed per round.
const CLAIM: u32 = 64;
/// Endpoints sent to at once.
const PARALLEL: usize = 16;
/// How long a receiver has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries waiting for one endpoint, and the most claimed for one at a time (a backlog at
/// one endpoint never crowds out the others); what a full queue cannot take is given back.
const QUEUE_PER_ENDPOINT: usize = 4;
/// Time kept in hand at the end of a claim: a delivery is sent only while its claim has at least
/// the timeout and this left (past that it is left for the next claim rather than risk two
/// nodes sending it at once). The claim is `delivery_claim_seconds`, at least 20 s.
const CLAIM_MARGIN: Duration = Duration::from_secs(5);

/// One endpoint's queue, drained by its own task in order.
struct Lane {
    queue: mpsc::Sender<(Delivery, Instant)>,
    queued: Arc<AtomicUsize>,
}

/// Runs for as long as the server does.
pub async fn run(state: AppState) {
    let parallel = Arc::new(Semaphore::new(PARALLEL));
    let mut lanes: HashMap<String, Lane> = HashMap::new();
    let hold = state.config().delivery_claim;
    let send_within = hold.saturating_sub(TIMEOUT + CLAIM_MARGIN);
    let claim_for = time::Duration::try_from(hold).unwrap_or(time::Duration::MINUTE);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Idle endpoints' tasks end (their queue is dropped); busy ones are not claimed for.
        lanes.retain(|_, lane| lane.queued.load(Ordering::Relaxed) > 0);
        let busy: Vec<String> = lanes
            .iter()
            .filter(|(_, lane)| lane.queued.load(Ordering::Relaxed) >= QUEUE_PER_ENDPOINT)
            .map(|(url, _)| url.clone())
            .collect();
        // Read before the claim is asked for: its time to run out starts no later than this.
        let now = Instant::now();
        let claimed = match state.authority().claim_deliveries(CLAIM, QUEUE_PER_ENDPOINT as u32, claim_for, &busy).await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim deliveries; retrying");
                Vec::new()
            }
        };
        let mut full = claimed.len() == CLAIM as usize;
        let mut unsent: Vec<Delivery> = Vec::new();
        for d in claimed {
            let lane = lanes.entry(d.url.clone()).or_insert_with(|| lane(&state, &parallel, send_within));
            if lane.queued.load(Ordering::Relaxed) >= QUEUE_PER_ENDPOINT {
                unsent.push(d);
                continue;
            }
            lane.queued.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = lane.queue.try_send((d, now)) {
                lane.queued.fetch_sub(1, Ordering::Relaxed);
                unsent.push(e.into_inner().0);
            }
        }
        // What a full queue cannot take is given back at once (not held until the claim runs
        // out), and the next round waits for the tick rather than claiming it straight back.
        if !unsent.is_empty() {
            full = false;
            give_back(&state, unsent).await;
        }
        if !full {
            tokio::select! {
                () = state.authority().deliveries_enqueued() => {}
                _ = tick.tick() => {}
            }
        }
    }
}

/// Starts the task that sends one endpoint's deliveries one after the other.
fn lane(state: &AppState, parallel: &Arc<Semaphore>, send_within: Duration) -> Lane {
    let (queue, mut next) = mpsc::channel::<(Delivery, Instant)>(QUEUE_PER_ENDPOINT);
    let queued = Arc::new(AtomicUsize::new(0));
    let (state, parallel, count) = (state.clone(), parallel.clone(), queued.clone());
    tokio::spawn(async move {
        while let Some((d, claimed)) = next.recv().await {
            let send_by = claimed + send_within;
            let Ok(_slot) = parallel.clone().acquire_owned().await else { break };
            let attempt = if Instant::now() < send_by { send(&state, &d, send_by).await } else { None };
            match attempt {
                Some(attempt) => {
                    if let Err(e) = state.authority().finish_delivery(d, attempt).await {
                        tracing::warn!(error = %e, "cannot record a delivery attempt; it is claimed again later");
                    }
                }
                // Too late to send within its claim: given back for the next round.
                None => give_back(&state, vec![d]).await,
            }
            count.fetch_sub(1, Ordering::Relaxed);
        }
    });
    Lane { queue, queued }
}

/// Gives back claimed deliveries this worker will not send (due again at once, for any worker).
async fn give_back(state: &AppState, deliveries: Vec<Delivery>) {
    let Some(claim) = deliveries.first().and_then(|d| d.claim.clone()) else { return };
    let ids: Vec<String> = deliveries.into_iter().map(|d| d.id).collect();
    if let Err(e) = state.authority().release_deliveries(&claim, &ids).await {
        tracing::warn!(error = %e, "cannot give back deliveries; they are taken up once their claim runs out");
    }
}

/// One attempt; `None` when it was not made after all because the claim would run out before
/// the receiver's time to answer.
async fn send(state: &AppState, d: &Delivery, send_by: Instant) -> Option<Attempt> {
    let attempt = attempt(state, d, send_by).await;
    if attempt.is_none() {
        tracing::info!(delivery = %d.id, "claim too old to send within it; given back");
    }
    attempt
}

async fn attempt(state: &AppState, d: &Delivery, send_by: Instant) -> Option<Attempt> {
    if d.kind == DeliveryKind::Mail {
        // Started before `send_by`, so the whole conversation ends within the claim, like a
        // webhook's (lettre's own timeout is per command).
        return Some(
            tokio::time::timeout(TIMEOUT, crate::letters::deliver(state, d)).await.unwrap_or(Attempt::later(None)),
        );
    }
    let authority = state.authority();
    let client = match authority.delivery_client(d).await {
        Ok(Some(client)) => client,
        Ok(None) => return Some(Attempt::Abandoned),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a delivery's client");
            return Some(Attempt::later(None));
        }
    };
    let (url, pinned) = match callback::checked(&d.url, state.config().allow_private_callbacks).await {
        Ok(checked) => checked,
        Err(callback::CallbackError::Unresolvable) => {
            return Some(Attempt::later(Some("the callback's host name does not resolve")));
        }
        Err(e) => {
            tracing::warn!(delivery = %d.id, url = %redact(&d.url), error = %e, "callback URL refused at delivery");
            return Some(Attempt::Abandoned);
        }
    };
    // The URL may have been dropped (a 410) or changed since this delivery was written.
    let current = match d.kind {
        DeliveryKind::Webhook => client.webhook_url.as_deref(),
        DeliveryKind::BackchannelLogout => client.backchannel_logout_uri.as_deref(),
        DeliveryKind::Mail => None,
    };
    if current != Some(d.url.as_str()) {
        return Some(Attempt::Abandoned);
    }
    let mut http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(TIMEOUT);
    if let Some(host) = url.host_str()
        && !pinned.is_empty()
    {
        http = http.resolve_to_addrs(host, &pinned);
    }
    let Ok(http) = http.build() else { return Some(Attempt::later(None)) };
    let request = match d.kind {
        DeliveryKind::Webhook => {
            let now = authority.now();
            let timestamp = now.unix_timestamp();
            // During a rotation, signed with the new secret and the old one.
            let signatures: Option<Vec<String>> = client
                .webhook_secrets(now)
                .into_iter()
                .map(|secret| sign_webhook(secret, &d.id, timestamp, &d.payload))
                .collect();
            let Some(signature) = signatures.filter(|s| !s.is_empty()).map(|s| s.join(" ")) else {
                return Some(Attempt::Abandoned);
            };
            http.post(url)
                .header("content-type", "application/json")
                .header("webhook-id", &d.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(d.payload.clone())
        }
        DeliveryKind::Mail => return Some(Attempt::Abandoned),
        DeliveryKind::BackchannelLogout => {
            let ids: serde_json::Value = serde_json::from_str(&d.payload).unwrap_or_default();
            let (Some(sub), Some(sid)) = (ids["sub"].as_str(), ids["sid"].as_str()) else {
                return Some(Attempt::Abandoned);
            };
            let Some(token) = authority.logout_token(&client.id, sub, sid, &d.id) else {
                return Some(Attempt::later(None));
            };
            let body = format!("logout_token={token}");
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cache-control", "no-store")
                .body(body)
        }
    };
    // Checked again here: the lookups above may have taken a while.
    if Instant::now() >= send_by {
        return None;
    }
    let started = Instant::now();
    let sent = request.send().await;
    let outcome = match &sent {
        Ok(res) if res.status().is_success() => "delivered",
        Ok(_) => "refused",
        Err(_) => "unreachable",
    };
    state.metrics().delivery(outcome, started.elapsed());
    Some(match sent {
        Ok(res) => {
            let retry_after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, authority.now()));
            let status = res.status().as_u16();
            let mut attempt = Attempt::of_status(status, retry_after);
            if let Attempt::Refused { why, .. } = &mut attempt {
                *why = refusal_reason(res).await;
                // Most often a configuration fault (a receiver expecting another issuer or
                // client id): said plainly, with the receiver's own words.
                let what = match d.kind {
                    DeliveryKind::BackchannelLogout => "the back-channel logout receiver refused the logout token",
                    _ => "the webhook receiver refused the notification",
                };
                tracing::warn!(delivery = %d.id, client_id = %d.client_id, event = %d.event, status, why = why.as_deref().unwrap_or("(no reason given)"), "{what}: check the receiver's configuration");
            } else {
                tracing::info!(delivery = %d.id, client_id = %d.client_id, event = %d.event, status, "delivery attempted");
            }
            attempt
        }
        Err(e) => {
            let why = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "failed"
            };
            tracing::info!(delivery = %d.id, client_id = %d.client_id, why, "delivery not answered; retrying later");
            Attempt::later(Some(why))
        }
    })
}

/// Why a receiver refused a delivery, in its own words: the `error_description` (or `error`) of
/// an OAuth-style JSON error (OIDC Back-Channel Logout 2.8), else the start of its text; at most
/// 200 printable characters, read from at most 4 KiB of the body.
async fn refusal_reason(mut res: reqwest::Response) -> Option<String> {
    const READ: usize = 4096;
    let mut body = Vec::new();
    while body.len() < READ {
        match res.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(READ - body.len())]),
            _ => break,
        }
    }
    reason_in(&body)
}

/// The reason a refusal's body gives (see [`refusal_reason`]).
fn reason_in(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let said = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let field = |name: &str| v.get(name).and_then(|x| x.as_str()).map(str::to_owned);
            field("error_description").or_else(|| field("message")).or_else(|| field("error"))
        })
        .unwrap_or_else(|| text.into_owned());
    // Printable text only (no control, direction or zero-width characters), and nothing shaped
    // like a token a receiver might echo back.
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
    };
    let clean: String = said
        .chars()
        .map(|c| if invisible(c) { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .map(|word| if word.contains("eyJ") || word.contains("whsec_") { "[redacted]" } else { word })
        .collect::<Vec<_>>()
        .join(" ");
    let short: String = clean.chars().take(200).collect();
    (!short.is_empty()).then_some(short)
}

/// A `Retry-After` value (RFC 9110: seconds, or an HTTP date) as a wait from `now`.
fn retry_after(value: &str, now: time::OffsetDateTime) -> Option<time::Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u32>() {
        return Some(time::Duration::seconds(i64::from(seconds)));
    }
    let at = time::OffsetDateTime::from(httpdate::parse_http_date(value).ok()?);
    Some((at - now).max(time::Duration::ZERO))
}

/// A URL for the logs: its query (which may carry a token) left out.
fn redact(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` under a `whsec_` secret
/// (Standard Webhooks).
pub fn sign_webhook(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refusal_reason_is_the_receivers_own_words_printable_and_short() {
        let said = |body: &str| super::reason_in(body.as_bytes());
        assert_eq!(
            said(r#"{"error":"invalid_request","error_description":"wrong iss"}"#).as_deref(),
            Some("wrong iss")
        );
        assert_eq!(said(r#"{"error":"invalid_request"}"#).as_deref(), Some("invalid_request"));
        assert_eq!(said("Bad\r\nRequest\u{202e}txt.exe\u{200b}").as_deref(), Some("Bad Request txt.exe"));
        assert_eq!(said("token eyJhbGciOi.x.y refused").as_deref(), Some("token [redacted] refused"));
        assert_eq!(said(&"x".repeat(500)).map(|s| s.chars().count()), Some(200));
        assert_eq!(said("   "), None);
    }

    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        let now = time::OffsetDateTime::from_unix_timestamp(784_111_777).expect("time"); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after(" 120 ", now), Some(time::Duration::seconds(120)));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now), Some(time::Duration::seconds(120)));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(time::Duration::ZERO), "a past date: now");
        assert_eq!(retry_after("-5", now), None);
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn webhook_signatures_follow_the_standard() {
        // The Standard Webhooks specification's example secret, id, timestamp and payload.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign_webhook(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(sign_webhook("not_whsec", "id", 1, body), None);
    }
}
