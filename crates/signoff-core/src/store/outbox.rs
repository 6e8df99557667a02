//! The outbox: notifications to clients and mail to users, claimed, sent, recorded.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::outbox::{Delivery, DeliveryPage, DeliveryStatus};

/// Outbox reads, outside any transaction (part of [`Store`](super::Store)).
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Claims up to `limit` pending deliveries due by `now` that no worker holds, for this
    /// worker until `until` (rows another transaction holds are skipped): at most
    /// `per_endpoint` to one URL and none to the URLs in `skip` (those this worker is still
    /// busy with), each URL's oldest first before any URL's second (so a backlog at some
    /// endpoints never crowds out the others). Every delivery of one claim carries the same
    /// claim token.
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
        per_endpoint: u32,
        skip: &[String],
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Gives back deliveries of claim `claim` this worker will not send after all (they are due
    /// again at once, for any worker).
    async fn release_deliveries(&self, claim: &str, ids: &[String]) -> Result<(), StoreError>;
    /// Records an attempt's outcome and releases the claim, if the delivery is still pending
    /// under the claim it was read with (`false` otherwise: another worker took it over, or an
    /// admin or a `410` changed it meanwhile).
    async fn record_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError>;
    /// Deletes finished (delivered, failed, skipped) deliveries created before `before`.
    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
    /// How many of the deliveries `ids` are still pending (not delivered, failed or skipped).
    async fn pending_among(&self, ids: &[String]) -> Result<u64, StoreError>;
    /// A page of a client's deliveries, newest first.
    async fn client_deliveries(&self, client: &str, page: &DeliveryPage) -> Result<Vec<Delivery>, StoreError>;
    /// Makes a failed delivery of `client` pending again (waiting again, for a poll stream's),
    /// due at `now`; `false` when there is no such failed delivery.
    async fn retry_delivery(&self, client: &str, id: &str, now: OffsetDateTime) -> Result<bool, StoreError>;
    /// A URL answered `410 Gone`: the client's callbacks at it are removed and its pending
    /// deliveries to it fail.
    async fn drop_callback(&self, client: &str, url: &str) -> Result<(), StoreError>;
    /// Up to `limit` deliveries [`Waiting`](crate::outbox::DeliveryStatus::Waiting) at `url` (a
    /// poll stream's), oldest first.
    async fn waiting_deliveries(&self, url: &str, limit: u32) -> Result<Vec<Delivery>, StoreError>;
    /// Settles deliveries waiting at `url`: those of `ids` (all of them with `None`) take
    /// `status`, with `error` as their last error. Returns how many did (others were settled
    /// already, or are not there).
    async fn settle_waiting(
        &self,
        url: &str,
        ids: Option<&[String]>,
        status: DeliveryStatus,
        error: Option<&str>,
    ) -> Result<u64, StoreError>;
    /// Logout notifications (deliveries to registered clients, not mail to users: only mail to
    /// an address with an account could be pending or failed) pending and failed, for metrics.
    async fn delivery_counts(&self) -> Result<(i64, i64), StoreError>;
}

/// Outbox changes and locked reads, inside one transaction (part of [`Tx`](super::Tx)).
#[async_trait]
pub trait OutboxTx: Send {
    async fn enqueue_deliveries(&mut self, deliveries: &[Delivery]) -> Result<(), StoreError>;
}
