//! Shared Signals streams in memory: [`signoff_core::store::SignalStore`] and
//! [`signoff_core::store::SignalTx`].

use crate::{MemoryStore, MemoryTx};
use async_trait::async_trait;
use signoff_core::signals::upstream::Upstream;
use signoff_core::signals::{SignalStream, StreamStatus};
use signoff_core::store::{SignalStore, SignalTx, StoreError};
use time::OffsetDateTime;

/// Oldest first (ties by id), as the SQL stores list them.
fn oldest_first(mut streams: Vec<SignalStream>) -> Vec<SignalStream> {
    streams.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    streams
}

#[async_trait]
impl SignalStore for MemoryStore {
    async fn signal_streams(&self, client: &str) -> Result<Vec<SignalStream>, StoreError> {
        Ok(oldest_first(self.read().signal_streams.iter().filter(|s| s.client_id == client).cloned().collect()))
    }
    async fn signal_stream(&self, client: &str, id: &str) -> Result<Option<SignalStream>, StoreError> {
        Ok(self.read().signal_streams.iter().find(|s| s.client_id == client && s.id == id).cloned())
    }
    async fn signal_upstreams(&self) -> Result<Vec<Upstream>, StoreError> {
        let mut all = self.read().signal_upstreams.clone();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(all)
    }
    async fn signal_upstream(&self, id: &str) -> Result<Option<Upstream>, StoreError> {
        Ok(self.read().signal_upstreams.iter().find(|u| u.id == id).cloned())
    }
}

#[async_trait]
impl SignalTx for MemoryTx {
    async fn insert_signal_stream(&mut self, stream: &SignalStream) -> Result<(), StoreError> {
        // As the SQL stores' foreign key and primary key.
        if !self.state.clients.iter().any(|c| c.id == stream.client_id) {
            return Err(StoreError::Backend(format!("no client {}", stream.client_id)));
        }
        if self.state.signal_streams.iter().any(|s| s.id == stream.id) {
            return Err(StoreError::Conflict);
        }
        self.state.signal_streams.push(stream.clone());
        Ok(())
    }
    async fn update_signal_stream(&mut self, stream: &SignalStream) -> Result<bool, StoreError> {
        let Some(kept) = self
            .state
            .signal_streams
            .iter_mut()
            .find(|s| s.id == stream.id && s.client_id == stream.client_id && s.version == stream.version)
        else {
            return Ok(false);
        };
        // Its id, client and creation are its own; its version moves on.
        *kept = SignalStream { created_at: kept.created_at, version: kept.version + 1, ..stream.clone() };
        Ok(true)
    }
    async fn delete_signal_stream(&mut self, client: &str, id: &str) -> Result<bool, StoreError> {
        let before = self.state.signal_streams.len();
        self.state.signal_streams.retain(|s| !(s.client_id == client && s.id == id));
        Ok(self.state.signal_streams.len() < before)
    }
    async fn live_signal_streams(&mut self) -> Result<Vec<SignalStream>, StoreError> {
        Ok(oldest_first(
            self.state.signal_streams.iter().filter(|s| s.status != StreamStatus::Disabled).cloned().collect(),
        ))
    }
    async fn delete_signal_upstream(&mut self, id: &str) -> Result<bool, StoreError> {
        self.state.signal_received.retain(|(u, _, _)| u != id);
        let before = self.state.signal_upstreams.len();
        self.state.signal_upstreams.retain(|u| u.id != id);
        Ok(self.state.signal_upstreams.len() < before)
    }
    async fn insert_signal_upstream(&mut self, upstream: &Upstream) -> Result<(), StoreError> {
        if self.state.signal_upstreams.iter().any(|u| u.id == upstream.id) {
            return Err(StoreError::Conflict);
        }
        self.state.signal_upstreams.push(upstream.clone());
        Ok(())
    }
    async fn note_received_set(
        &mut self,
        upstream: &str,
        jti: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let received = &mut self.state.signal_received;
        received.retain(|(u, _, kept)| u != upstream || *kept >= now);
        if received.iter().any(|(u, j, _)| u == upstream && j == jti) {
            return Ok(false);
        }
        received.push((upstream.to_owned(), jti.to_owned(), until));
        Ok(true)
    }
}
