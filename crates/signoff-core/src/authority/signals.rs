//! The authority's half of Shared Signals: receivers' streams configured (each change made over
//! the version it was read at), verification asked for, poll streams read and acknowledged, and
//! Security Event Tokens signed when they are sent.

use serde_json::Value;
use std::time::Duration;

use super::Authority;
use crate::clients::SigningAlg;
use crate::error::CoreError;
use crate::outbox::{Delivery, DeliveryStatus};
use crate::secret::random_id;
use crate::signals::emit::{poll_url, read_payload, set_for};
use crate::signals::{DeliveryMethod, SecurityEvent, SignalStream, StreamStatus};

/// Streams one receiver may have.
pub const MAX_STREAMS_PER_CLIENT: usize = 8;
/// Subjects one stream may have removed.
pub const MAX_REMOVED_SUBJECTS: usize = 1_000;
/// SETs one poll answers at most (and when the receiver does not say).
pub const MAX_POLLED: u32 = 100;
/// How long a long poll waits for an event before it answers with none.
pub const LONG_POLL: Duration = Duration::from_secs(20);
/// Attempts at a compare-and-swap update before giving up (another update kept winning).
const UPDATE_TRIES: usize = 5;

/// What a receiver configures: the rest of a stream is signoff's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    pub description: Option<String>,
    pub events_requested: Vec<String>,
    pub method: DeliveryMethod,
    pub endpoint_url: Option<String>,
    pub authorization_header: Option<String>,
}

/// A poll (RFC 8936 §2.4): what the receiver acknowledges and reports, and what it wants.
#[derive(Debug, Clone, Default)]
pub struct Poll {
    /// At most this many SETs (`maxEvents`; `0`: none, the poll only acknowledges).
    pub max_events: Option<u32>,
    pub return_immediately: bool,
    pub ack: Vec<String>,
    /// `(jti, err, description)` of SETs the receiver could not take.
    pub errs: Vec<(String, String, String)>,
}

/// A poll's answer: `(jti, SET)` oldest first, and whether more wait.
#[derive(Debug, Clone, Default)]
pub struct Polled {
    pub sets: Vec<(String, String)>,
    pub more_available: bool,
}

impl Authority {
    /// A receiver's streams.
    pub async fn signal_streams(&self, client: &str) -> Result<Vec<SignalStream>, CoreError> {
        Ok(self.store.signal_streams(client).await?)
    }

    /// One of a receiver's streams (`NotFound` for another's, or none).
    pub async fn signal_stream(&self, client: &str, id: &str) -> Result<SignalStream, CoreError> {
        self.store.signal_stream(client, id).await?.ok_or(CoreError::NotFound)
    }

    /// A new enabled stream for `client`; `Conflict` past [`MAX_STREAMS_PER_CLIENT`] (two
    /// made at once past the limit both fail: neither is kept).
    pub async fn create_signal_stream(&self, client: &str, config: StreamConfig) -> Result<SignalStream, CoreError> {
        let now = self.now();
        let stream = SignalStream {
            id: random_id(),
            client_id: client.to_owned(),
            description: config.description,
            events_requested: config.events_requested,
            method: config.method,
            endpoint_url: config.endpoint_url,
            authorization_header: config.authorization_header,
            status: StreamStatus::Enabled,
            reason: None,
            excluded_subjects: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let mut tx = self.store.begin().await?;
        tx.insert_signal_stream(&stream).await?;
        tx.commit().await?;
        if self.store.signal_streams(client).await?.len() > MAX_STREAMS_PER_CLIENT {
            self.delete_signal_stream(client, &stream.id).await?;
            return Err(CoreError::Conflict);
        }
        tracing::info!(target: "signoff::audit", client_id = %client, stream_id = %stream.id, method = stream.method.as_str(), "Shared Signals stream created");
        Ok(stream)
    }

    /// Changes a stream with `change`, made over the version it was read at (read again and
    /// made again when another change came first). `change` may refuse (its error is returned,
    /// nothing written).
    pub async fn update_signal_stream(
        &self,
        client: &str,
        id: &str,
        change: impl Fn(&mut SignalStream) -> Result<(), CoreError>,
    ) -> Result<SignalStream, CoreError> {
        for _ in 0..UPDATE_TRIES {
            let before = self.signal_stream(client, id).await?;
            let mut after = before.clone();
            change(&mut after)?;
            after.updated_at = self.now();
            let mut tx = self.store.begin().await?;
            if tx.update_signal_stream(&after).await? {
                tx.commit().await?;
                after.version += 1;
                let poll_left = before.method == DeliveryMethod::Poll && after.method != DeliveryMethod::Poll;
                if poll_left {
                    self.store
                        .settle_waiting(&poll_url(id), None, DeliveryStatus::Skipped, Some("delivery changed"))
                        .await?;
                }
                if before.status != StreamStatus::Disabled && after.status == StreamStatus::Disabled {
                    // Disabled: what waited is dropped (SSF §8.1.2), not sent when enabled again.
                    self.store
                        .settle_waiting(&poll_url(id), None, DeliveryStatus::Skipped, Some("stream disabled"))
                        .await?;
                }
                if before.status != after.status {
                    tracing::info!(target: "signoff::audit", client_id = %client, stream_id = %id, status = after.status.as_str(), "Shared Signals stream status changed");
                    self.outbox_ready.notify_one();
                    self.signals_ready.notify_waiters();
                }
                return Ok(after);
            }
        }
        // Others kept changing it first: the caller may try again.
        Err(CoreError::Busy(time::Duration::seconds(1)))
    }

    /// Deletes a stream; what it had waiting is dropped. `false` when there was none.
    pub async fn delete_signal_stream(&self, client: &str, id: &str) -> Result<bool, CoreError> {
        let mut tx = self.store.begin().await?;
        let deleted = tx.delete_signal_stream(client, id).await?;
        tx.commit().await?;
        if deleted {
            self.store.settle_waiting(&poll_url(id), None, DeliveryStatus::Skipped, Some("stream deleted")).await?;
            tracing::info!(target: "signoff::audit", client_id = %client, stream_id = %id, "Shared Signals stream deleted");
        }
        Ok(deleted)
    }

    /// Asks for a verification event on a stream, carrying `state` (SSF §8.1.4.2); a disabled
    /// stream is sent none. `Throttled` within [`crate::throttle::MIN_VERIFICATION_INTERVAL`] of
    /// the last.
    pub async fn verify_signal_stream(&self, client: &str, id: &str, state: Option<String>) -> Result<(), CoreError> {
        let stream = self.signal_stream(client, id).await?;
        // At most one per `min_verification_interval`, counted across nodes.
        let limit = &self.limits.ssf_verification;
        crate::throttle::take_all(&[(limit, &stream.id)], self.now()).map_err(CoreError::Throttled)?;
        self.take_shared(&[limit.counted("ssf-verify", &stream.id)]).await?;
        let event = SecurityEvent::Verification { stream_id: stream.id.clone(), state };
        self.enqueue_signal(&stream, &event).await
    }

    /// Writes one event for one stream to the outbox, and wakes whoever sends or polls it.
    async fn enqueue_signal(&self, stream: &SignalStream, event: &SecurityEvent) -> Result<(), CoreError> {
        let issuer = &self.tokens.policy.issuer;
        let Some(d) = set_for(stream, event, issuer, &random_id(), self.now()) else { return Ok(()) };
        let mut tx = self.store.begin().await?;
        tx.enqueue_deliveries(std::slice::from_ref(&d)).await?;
        tx.commit().await?;
        match d.status {
            DeliveryStatus::Waiting => self.signals_ready.notify_waiters(),
            _ => self.outbox_ready.notify_one(),
        }
        Ok(())
    }

    /// A poll of a poll stream (RFC 8936): acknowledgements and errors are recorded first
    /// (acknowledged SETs are never returned again), then waiting SETs are returned, oldest
    /// first, signed now; with none waiting the poll waits up to [`LONG_POLL`] unless asked to
    /// return at once. A paused stream returns none (they are held); a disabled one has none.
    pub async fn poll_signal_stream(&self, client: &str, id: &str, poll: Poll) -> Result<Polled, CoreError> {
        let stream = self.signal_stream(client, id).await?;
        if stream.method != DeliveryMethod::Poll {
            return Err(CoreError::NotFound);
        }
        let url = poll_url(id);
        if !poll.ack.is_empty() {
            self.store.settle_waiting(&url, Some(&poll.ack), DeliveryStatus::Delivered, None).await?;
        }
        for (jti, err, description) in &poll.errs {
            let why = format!("{err}: {description}");
            tracing::warn!(client_id = %client, stream_id = %id, jti, err, description, "a Shared Signals receiver reported an error for a SET");
            self.store
                .settle_waiting(&url, Some(std::slice::from_ref(jti)), DeliveryStatus::Failed, Some(&why))
                .await?;
        }
        let max = poll.max_events.unwrap_or(MAX_POLLED).min(MAX_POLLED);
        if max == 0 {
            return Ok(Polled::default());
        }
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            // Registered before the read, so a write between the read and the wait still wakes.
            let woken = self.signals_ready.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let status = self.signal_stream(client, id).await?.status;
            let mut waiting = if status == StreamStatus::Enabled {
                self.store.waiting_deliveries(&url, max + 1).await?
            } else {
                Vec::new()
            };
            if !waiting.is_empty() || poll.return_immediately || tokio::time::Instant::now() >= deadline {
                let more_available = waiting.len() > max as usize;
                waiting.truncate(max as usize);
                // A row that cannot be read is failed (else it would stand first in every poll);
                // one that cannot be signed is an error, not an empty answer a receiver would
                // poll again at once.
                let (readable, damaged): (Vec<&Delivery>, Vec<&Delivery>) =
                    waiting.iter().partition(|d| read_payload(&d.payload).is_some());
                if !damaged.is_empty() {
                    let ids: Vec<String> = damaged.iter().map(|d| d.id.clone()).collect();
                    tracing::error!(stream_id = %id, deliveries = ?ids, "security events with damaged rows failed");
                    self.store.settle_waiting(&url, Some(&ids), DeliveryStatus::Failed, Some("damaged row")).await?;
                }
                let mut sets = Vec::with_capacity(readable.len());
                for d in readable {
                    let set = self.signed_set(d).ok_or_else(|| {
                        CoreError::Internal("a waiting security event could not be signed (no RS256 key)".into())
                    })?;
                    sets.push((d.id.clone(), set));
                }
                return Ok(Polled { sets, more_available });
            }
            // Another node's writes wake nobody here: looked at again each second.
            let _ = tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + Duration::from_secs(1)), woken)
                .await;
        }
    }

    /// A security event delivery's SET, signed now (RS256, `typ: secevent+jwt`, the key in the
    /// JWKS), and the stream it is for; `None` when it cannot be (no RS256 key, a damaged row).
    pub fn security_event_token(&self, d: &Delivery) -> Option<(String, String)> {
        let (stream, _) = read_payload(&d.payload)?;
        Some((stream, self.signed_set(d)?))
    }

    fn signed_set(&self, d: &Delivery) -> Option<String> {
        let (_, claims): (String, Value) = read_payload(&d.payload)?;
        let keyring = self.tokens.keyring();
        keyring.signer_for(SigningAlg::Rs256)?.sign_as(&claims, "secevent+jwt")
    }
}
