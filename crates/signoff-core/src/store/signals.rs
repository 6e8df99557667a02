//! Shared Signals streams: each registered client's configuration of the events it is sent.

use async_trait::async_trait;

use super::StoreError;
use crate::signals::SignalStream;

/// Stream reads, outside any transaction (part of [`Store`](super::Store)).
#[async_trait]
pub trait SignalStore: Send + Sync {
    /// A client's streams, oldest first.
    async fn signal_streams(&self, client: &str) -> Result<Vec<SignalStream>, StoreError>;
    /// One stream of a client (`None` for another client's, or none).
    async fn signal_stream(&self, client: &str, id: &str) -> Result<Option<SignalStream>, StoreError>;
}

/// Stream changes and locked reads, inside one transaction (part of [`Tx`](super::Tx)).
#[async_trait]
pub trait SignalTx: Send {
    async fn insert_signal_stream(&mut self, stream: &SignalStream) -> Result<(), StoreError>;
    /// Writes a stream's configuration over the stored one of the same id and client, if its
    /// `updated_at` is still `seen` (compare-and-swap: two receivers' updates never merge into
    /// one neither sent); `false` otherwise, or when it is gone.
    async fn update_signal_stream(
        &mut self,
        stream: &SignalStream,
        seen: time::OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Deletes a client's stream; `false` when there was none.
    async fn delete_signal_stream(&mut self, client: &str, id: &str) -> Result<bool, StoreError>;
    /// Every stream not disabled (the receivers of what a batch ends), locked until commit.
    async fn live_signal_streams(&mut self) -> Result<Vec<SignalStream>, StoreError>;
}
