//! Registered clients in memory: [`signoff_core::store::ClientStore`] and
//! [`signoff_core::store::ClientTx`].

use crate::{MemoryStore, MemoryTx};
use async_trait::async_trait;
use signoff_core::clients::{EndpointKind, RegisteredClient};
use signoff_core::secret::SecretHash;
use signoff_core::store::{ClientStore, ClientTx, StoreError};
use time::OffsetDateTime;

/// Oldest first (ties by id), as every list of clients is.
fn oldest_first(mut clients: Vec<RegisteredClient>) -> Vec<RegisteredClient> {
    clients.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    clients
}

#[async_trait]
impl ClientStore for MemoryStore {
    async fn client_by_id(&self, id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        Ok(self.read().clients.iter().find(|c| c.id == id).cloned())
    }
    async fn clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        Ok(oldest_first(self.read().clients.clone()))
    }
    async fn rotate_webhook_secret(
        &self,
        client: &str,
        secret: &str,
        previous_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let rotated = self
            .write(|state| {
                let Some(c) =
                    state.clients.iter_mut().find(|c| c.id == client && c.endpoint(EndpointKind::Webhook).is_some())
                else {
                    return false;
                };
                let overlap = previous_until > now;
                c.previous_webhook_secret = if overlap { c.webhook_secret.take() } else { None };
                c.previous_webhook_secret_until = overlap.then_some(previous_until);
                c.webhook_secret = Some(secret.to_owned());
                true
            })
            .await;
        Ok(rotated)
    }
    async fn forget_replaced_webhook_secrets(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let forgotten = self
            .write(|state| {
                let mut forgotten = 0;
                for c in state.clients.iter_mut().filter(|c| c.previous_webhook_secret_until.is_some_and(|t| t <= now))
                {
                    c.previous_webhook_secret = None;
                    c.previous_webhook_secret_until = None;
                    forgotten += 1;
                }
                forgotten
            })
            .await;
        Ok(forgotten)
    }
}

#[async_trait]
impl ClientTx for MemoryTx {
    async fn insert_client(&mut self, client: &RegisteredClient) -> Result<(), StoreError> {
        if self.state.clients.iter().any(|c| c.id == client.id) {
            return Err(StoreError::Conflict);
        }
        // A new client has no replaced webhook secret (as the SQL stores insert it).
        let new =
            RegisteredClient { previous_webhook_secret: None, previous_webhook_secret_until: None, ..client.clone() };
        self.state.clients.push(new);
        Ok(())
    }
    async fn delete_client(&mut self, id: &str) -> Result<Option<SecretHash>, StoreError> {
        self.state.deliveries.retain(|_, d| d.client_id != id);
        self.state.codes.retain(|_, k| k.client() != id);
        self.state.links.retain(|(_, client), _| client != id);
        self.state.signal_streams.retain(|s| s.client_id != id);
        let Some(at) = self.state.clients.iter().position(|c| c.id == id) else { return Ok(None) };
        Ok(Some(self.state.clients.remove(at).secret_hash))
    }
    async fn set_client_secret(&mut self, id: &str, old: &SecretHash, new: &SecretHash) -> Result<bool, StoreError> {
        match self.state.clients.iter_mut().find(|c| c.id == id && c.secret_hash == *old) {
            Some(c) => {
                c.secret_hash = *new;
                Ok(true)
            }
            None => Ok(false),
        }
    }
    async fn callback_clients(&mut self) -> Result<Vec<RegisteredClient>, StoreError> {
        let with_callback = self.state.clients.iter().filter(|c| c.has_callbacks());
        Ok(oldest_first(with_callback.cloned().collect()))
    }
}
