//! Shared Signals streams: each registered client's configuration of the events it is sent.

use async_trait::async_trait;

use super::StoreError;
use time::OffsetDateTime;

use crate::signals::SignalStream;
use crate::signals::upstream::Upstream;

/// Stream reads, outside any transaction (part of [`Store`](super::Store)).
#[async_trait]
pub trait SignalStore: Send + Sync {
    /// A client's streams, oldest first.
    async fn signal_streams(&self, client: &str) -> Result<Vec<SignalStream>, StoreError>;
    /// One stream of a client (`None` for another client's, or none).
    async fn signal_stream(&self, client: &str, id: &str) -> Result<Option<SignalStream>, StoreError>;
    /// An upstream transmitter signoff receives from.
    async fn signal_upstream(&self, id: &str) -> Result<Option<Upstream>, StoreError>;
    /// Every upstream transmitter, oldest first.
    async fn signal_upstreams(&self) -> Result<Vec<Upstream>, StoreError>;
}

/// Stream changes and locked reads, inside one transaction (part of [`Tx`](super::Tx)).
#[async_trait]
pub trait SignalTx: Send {
    async fn insert_signal_stream(&mut self, stream: &SignalStream) -> Result<(), StoreError>;
    /// Writes a stream's configuration over the stored one of the same id and client if the
    /// stored one is still at `stream.version` (compare-and-swap: two updates made from one read
    /// never both apply), moving its version on; `false` otherwise, or when it is gone.
    async fn update_signal_stream(&mut self, stream: &SignalStream) -> Result<bool, StoreError>;
    /// Deletes a client's stream; `false` when there was none.
    async fn delete_signal_stream(&mut self, client: &str, id: &str) -> Result<bool, StoreError>;
    /// Every stream not disabled (the receivers of what a batch ends), as the batch's
    /// transaction sees them.
    async fn live_signal_streams(&mut self) -> Result<Vec<SignalStream>, StoreError>;
    async fn insert_signal_upstream(&mut self, upstream: &Upstream) -> Result<(), StoreError>;
    /// Deletes an upstream transmitter (and the SETs noted of it); `false` when there was none.
    async fn delete_signal_upstream(&mut self, id: &str) -> Result<bool, StoreError>;
    /// Notes that a SET `jti` of `upstream` was received, kept until `until` (past its
    /// freshness); `false` when it already was (a replay). What was kept until before `now` is
    /// forgotten first.
    async fn note_received_set(
        &mut self,
        upstream: &str,
        jti: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}
