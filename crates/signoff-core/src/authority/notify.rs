//! The authority's half of logout notifications: the outbox worker claims deliveries, asks
//! for logout tokens, and records what each attempt did.

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::Authority;
use crate::clients::{MAX_CLIENT_ID_LEN, RegisteredClient, webhook_secret};
use crate::error::CoreError;
use crate::outbox::{
    Attempt, Delivery, DeliveryPage, DeliveryStatus, Destination, GIVE_UP_AFTER, HELD_RECHECK, retry_delay,
};

/// A `Retry-After` longer than this is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::hours(6);

/// The claims of an OIDC Back-Channel Logout token.
#[derive(Debug, Serialize)]
struct LogoutClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    sid: &'a str,
    events: serde_json::Value,
}

impl Authority {
    /// Resolves when deliveries were enqueued (or at once, if they were since the last wait).
    pub async fn deliveries_enqueued(&self) {
        self.outbox_ready.notified().await;
    }

    /// Claims up to `limit` due deliveries for this worker, for `hold` (another node's worker
    /// takes them over after that: a node that died mid-delivery leaves them to the others).
    pub async fn claim_deliveries(
        &self,
        limit: u32,
        per_endpoint: u32,
        hold: Duration,
        skip: &[String],
    ) -> Result<Vec<Delivery>, CoreError> {
        let now = self.now();
        Ok(self.store.claim_deliveries(now, now + hold, limit, per_endpoint, skip).await?)
    }

    /// Waits until none of the deliveries `ids` is pending any more, for at most `max`; whether
    /// they all were done by then (delivered or failed for good). Those left keep retrying.
    pub async fn await_deliveries(&self, ids: &[String], max: std::time::Duration) -> Result<bool, CoreError> {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            if self.store.pending_among(ids).await? == 0 {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + std::time::Duration::from_millis(25)))
                .await;
        }
    }

    /// Gives back claimed deliveries this worker will not send (its queue for them is full).
    pub async fn release_deliveries(&self, claim: &str, ids: &[String]) -> Result<(), CoreError> {
        Ok(self.store.release_deliveries(claim, ids).await?)
    }

    /// The client a delivery is for, if it is still registered.
    pub async fn delivery_client(&self, delivery: &Delivery) -> Result<Option<RegisteredClient>, CoreError> {
        match delivery.destination() {
            Destination::Client { client_id, .. } => Ok(self.store.client_by_id(&client_id).await?),
            Destination::Mail { .. } => Ok(None),
        }
    }

    /// An OIDC Back-Channel Logout token for `client` (`typ: logout+jwt`, valid two minutes,
    /// never a `nonce`), signed with the algorithm of the client's ID tokens
    /// (`id_token_signed_response_alg`: relying parties verify both with one algorithm). `jti`
    /// is the delivery's id, so a repeated delivery carries the same token id.
    ///
    /// An app that signs users in is told only the `sid` its ID token carried (Back-Channel
    /// Logout 1.0 §2.4 allows either claim): with `sub` too, a relying party that ends every
    /// session of a `sub` it is told of (express-openid-connect does) would log the user out on
    /// every device when one device signs out, and a replayed token would do the same. Services
    /// that sign nobody in key on users and keep both.
    pub fn logout_token(&self, client: &RegisteredClient, sub: &str, sid: &str, jti: &str) -> Option<String> {
        let keyring = self.tokens.keyring();
        let key = keyring.signer_for(client.profile.id_token_signed_response_alg)?;
        let iat = self.now().unix_timestamp();
        let claims = LogoutClaims {
            iss: &self.tokens.policy.issuer,
            aud: &client.id,
            iat,
            exp: iat + 120,
            jti,
            sub: (!client.signs_in()).then_some(sub),
            sid,
            events: serde_json::json!({ "http://schemas.openid.net/event/backchannel-logout": {} }),
        };
        key.sign_as(&claims, "logout+jwt")
    }

    /// Records what an attempt did: delivered, failed for good, or due again later (growing
    /// delays, `Retry-After` honoured, given up a day and more after it was created).
    pub async fn finish_delivery(&self, mut d: Delivery, attempt: Attempt) -> Result<(), CoreError> {
        let now = self.now();
        if attempt != Attempt::Held {
            d.attempts += 1;
        }
        match attempt {
            Attempt::Held => {
                d.next_attempt_at = (now + HELD_RECHECK).min(d.created_at + GIVE_UP_AFTER);
                if now >= d.created_at + GIVE_UP_AFTER {
                    d.status = DeliveryStatus::Failed;
                    d.last_error = Some("held past the outbox's retry limit: the stream stayed paused".into());
                }
            }
            Attempt::Delivered(status) => {
                d.status = DeliveryStatus::Delivered;
                d.last_status_code = Some(i64::from(status));
                d.last_error = None;
            }
            Attempt::Refused { status, why } => {
                d.status = DeliveryStatus::Failed;
                d.last_status_code = Some(i64::from(status));
                d.last_error = why;
                if status == 410 {
                    let url = d.url.split(['?', '#']).next().unwrap_or_default();
                    tracing::warn!(client_id = %d.client_id, url, "a callback URL answered 410 Gone: no more deliveries to it");
                    self.store.drop_callback(&d.client_id, &d.url).await?;
                }
            }
            Attempt::Abandoned => {
                d.status = DeliveryStatus::Failed;
            }
            Attempt::Skipped => {
                d.status = DeliveryStatus::Skipped;
            }
            Attempt::Retry { status, retry_after, why } => {
                d.last_status_code = status.map(i64::from);
                d.last_error = why;
                let wait = retry_delay(d.attempts).max(retry_after.unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER));
                let deadline = d.created_at + GIVE_UP_AFTER;
                if now >= deadline {
                    d.status = DeliveryStatus::Failed;
                } else {
                    // The last wait ends at the deadline: one more try then, not a give-up early.
                    d.next_attempt_at = (now + wait).min(deadline);
                }
            }
        }
        if d.status == DeliveryStatus::Failed {
            tracing::warn!(delivery = %d.id, client_id = %d.client_id, event = %d.event, status = ?d.last_status_code, why = d.last_error.as_deref().unwrap_or("-"), attempts = d.attempts, "delivery failed");
        }
        if !self.store.record_delivery(&d).await? {
            tracing::info!(delivery = %d.id, "attempt not recorded: the delivery changed meanwhile (taken over, retried or its URL gone)");
        }
        Ok(())
    }

    /// Deletes finished (delivered, failed or skipped) deliveries older than a week, webhook secrets whose overlap after a
    /// rotation has ended (they sign nothing any more) and mailed links that expired.
    pub async fn prune_deliveries(&self) -> Result<u64, CoreError> {
        let forgotten = self.store.forget_replaced_webhook_secrets(self.now()).await?;
        if forgotten > 0 {
            tracing::info!(clients = forgotten, "replaced webhook secrets forgotten after their overlap");
        }
        self.store.prune_mail_tokens(self.now()).await?;
        Ok(self.store.prune_deliveries(self.now() - Duration::days(7)).await?)
    }

    /// A page of a client's deliveries, newest first (`None` for an unknown client).
    pub async fn client_deliveries(
        &self,
        client: &str,
        page: &DeliveryPage,
    ) -> Result<Option<Vec<Delivery>>, CoreError> {
        if client.len() > MAX_CLIENT_ID_LEN || self.store.client_by_id(client).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.store.client_deliveries(client, page).await?))
    }

    /// Gives a client a new webhook secret; the old one is still signed with for `overlap`
    /// (receivers accept either while they switch). `None` for an unknown client, `Some(None)`
    /// for one without a webhook URL.
    pub async fn rotate_webhook_secret(
        &self,
        client: &str,
        overlap: Duration,
    ) -> Result<Option<Option<(String, OffsetDateTime)>>, CoreError> {
        if client.len() > MAX_CLIENT_ID_LEN || self.store.client_by_id(client).await?.is_none() {
            return Ok(None);
        }
        let (secret, now) = (webhook_secret(), self.now());
        let until = now + overlap;
        if !self.store.rotate_webhook_secret(client, &secret, until, now).await? {
            return Ok(Some(None));
        }
        tracing::info!(target: "signoff::audit", client_id = %client, overlap_seconds = overlap.whole_seconds(), "webhook secret rotated");
        Ok(Some(Some((secret, until))))
    }

    /// Makes a failed delivery pending again; `false` when there is no such failed delivery.
    pub async fn retry_delivery(&self, client: &str, id: &str) -> Result<bool, CoreError> {
        let retried = self.store.retry_delivery(client, id, self.now()).await?;
        if retried {
            self.outbox_ready.notify_one();
        }
        Ok(retried)
    }

    /// Deliveries pending and failed (for metrics).
    pub async fn delivery_counts(&self) -> Result<(i64, i64), CoreError> {
        Ok(self.store.delivery_counts().await?)
    }
}
