//! The audit log: events appended with the change they record.

use async_trait::async_trait;

use super::StoreError;
use crate::audit::AuditEvent;
use crate::secret::UserId;

/// Audit reads, outside any transaction (part of [`Store`](super::Store)).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// A user's events, newest first.
    async fn user_audit(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;
}

/// Audit changes, inside one transaction (part of [`Tx`](super::Tx)). Events are kept with the
/// transaction's other changes, in the order appended: all of them if it commits, none if not.
/// Nothing in a transaction reads them back, so a store may write them as late as its commit
/// (PostgreSQL sends them with the revocation feed's statement).
#[async_trait]
pub trait AuditTx: Send {
    async fn append_audit(&mut self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Appends several events, in order, in a statement whose size does not depend on their
    /// number (a global logout of a user with thousands of sessions writes one event per
    /// session).
    async fn append_audits(&mut self, events: &[AuditEvent]) -> Result<(), StoreError>;
}
