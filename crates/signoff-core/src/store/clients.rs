//! Registered clients and their webhook secrets.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::clients::RegisteredClient;
use crate::secret::SecretHash;

/// Client reads, outside any transaction (part of [`Store`](super::Store)).
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// A registered client by id.
    async fn client_by_id(&self, id: &str) -> Result<Option<RegisteredClient>, StoreError>;
    /// Every registered client, oldest first.
    async fn clients(&self) -> Result<Vec<RegisteredClient>, StoreError>;
    /// Makes `secret` the client's webhook secret; the one it replaces is still signed with
    /// until `previous_until` (dropped at once when that is not after `now`). `false` when the
    /// client is unknown or has no webhook URL.
    async fn rotate_webhook_secret(
        &self,
        client: &str,
        secret: &str,
        previous_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Forgets webhook secrets replaced by a rotation whose overlap ended before `now`.
    async fn forget_replaced_webhook_secrets(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

/// Client changes and locked reads, inside one transaction (part of [`Tx`](super::Tx)).
#[async_trait]
pub trait ClientTx: Send {
    async fn insert_client(&mut self, client: &RegisteredClient) -> Result<(), StoreError>;
    /// Deletes a client; the secret hash it had at that moment, or `None` when there was none
    /// with this id.
    async fn delete_client(&mut self, id: &str) -> Result<Option<SecretHash>, StoreError>;
    /// Replaces the client's secret hash if it is still `old` (compare-and-swap); `false` when
    /// the client is gone or its secret changed meanwhile.
    async fn set_client_secret(&mut self, id: &str, old: &SecretHash, new: &SecretHash) -> Result<bool, StoreError>;
    /// Clients with a back-channel logout or webhook URL (the outbox's recipients).
    async fn callback_clients(&mut self) -> Result<Vec<RegisteredClient>, StoreError>;
}
