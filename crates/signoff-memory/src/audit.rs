//! The audit log in memory: [`signoff_core::store::AuditStore`] and [`signoff_core::store::AuditTx`].

use crate::{MemoryStore, MemoryTx};
use async_trait::async_trait;
use signoff_core::UserId;
use signoff_core::audit::AuditEvent;
use signoff_core::store::{AuditStore, AuditTx, StoreError};

#[async_trait]
impl AuditStore for MemoryStore {
    async fn user_audit(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let state = self.read();
        let theirs = state.audit.iter().rev().filter(|e| e.user_id.as_ref() == Some(user));
        Ok(theirs.take(limit as usize).cloned().collect())
    }
}

#[async_trait]
impl AuditTx for MemoryTx {
    async fn append_audit(&mut self, event: &AuditEvent) -> Result<(), StoreError> {
        self.state.audit.push(event.clone());
        Ok(())
    }
    async fn append_audits(&mut self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.state.audit.extend_from_slice(events);
        Ok(())
    }
}
