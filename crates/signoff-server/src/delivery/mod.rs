//! The outbox worker: sends logout notifications (OIDC back-channel logout, Standard Webhooks)
//! to registered clients, and mail to users (`letters`), away from every request.
//!
//! One module per channel behind one dispatch ([`attempt`]): `webhook.rs` (Standard
//! Webhooks), `backchannel.rs` (OIDC back-channel logout), `security_event.rs` (Shared Signals
//! pushed, RFC 8935), `mail.rs` (letters to users);
//! `http.rs` is what the two callback channels share (the client's current URL, the SSRF check,
//! pinned addresses, the answer classified).
//!
//! It claims due deliveries (each for `delivery_claim_seconds`, so on several nodes each is sent by one node,
//! and one a dead node had claimed is taken over) and hands them to one queue per endpoint:
//! endpoints are served in parallel, each endpoint's deliveries one at a time, each with a
//! timeout, so a slow receiver holds only its own queue. It records each outcome; the authority
//! decides what comes next (`signoff_core::outbox`). A delivery connects only to the addresses
//! its URL resolved to when it was checked again just now (SSRF), never follows a redirect.

use signoff_core::outbox::{Attempt, Delivery, DeliveryKind};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};

use crate::app::AppState;

mod backchannel;
mod http;
mod mail;
mod security_event;
mod webhook;

pub use webhook::sign_webhook;

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

/// The one dispatch: each kind of delivery to its channel.
async fn attempt(state: &AppState, d: &Delivery, send_by: Instant) -> Option<Attempt> {
    match d.kind {
        DeliveryKind::Mail => Some(mail::send(state, d).await),
        DeliveryKind::Webhook => http::send(state, d, send_by, &webhook::Webhook).await,
        DeliveryKind::BackchannelLogout => http::send(state, d, send_by, &backchannel::BackchannelLogout).await,
        DeliveryKind::SecurityEvent => security_event::send(state, d, send_by).await,
    }
}
