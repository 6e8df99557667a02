//! The audit log on PostgreSQL: [`signoff_core::store::AuditStore`] and [`signoff_core::store::AuditTx`].

use crate::rows::{audit_from, db_err, ms};
use crate::{PgStore, PgTx, column};
use async_trait::async_trait;
use signoff_core::audit::AuditEvent;
use signoff_core::store::StoreError;
use signoff_core::store::{AuditStore, AuditTx};
use signoff_core::{SessionId, UserId};

#[async_trait]
impl AuditStore for PgStore {
    async fn user_audit(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, session_id, kind, scope, reason, detail, actor, ip, user_agent, at FROM audit_events \
             WHERE user_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(user.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(audit_from).collect()
    }
}

/// The events' columns as the feed statement (`RECORD` in `feed.rs`) takes them: bound after its
/// nine feed parameters, they are its `$10` to `$19`.
pub(crate) fn bind_audits<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    events: &'q [AuditEvent],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(column(events, |e| e.user_id.as_ref().map(UserId::as_str)))
        .bind(column(events, |e| e.session_id.as_ref().map(SessionId::as_str)))
        .bind(column(events, |e| Some(e.kind.as_str())))
        .bind(column(events, |e| e.scope.as_deref()))
        .bind(column(events, |e| e.reason.as_deref()))
        .bind(column(events, |e| e.detail.as_deref()))
        .bind(column(events, |e| Some(e.actor.as_str())))
        .bind(column(events, |e| e.ip.as_deref()))
        .bind(column(events, |e| e.user_agent.as_deref()))
        .bind(events.iter().map(|e| ms(e.at)).collect::<Vec<i64>>())
}

/// Audit events are written behind: they wait in the transaction and go to the store in the
/// statement that appends to the revocation feed, or just before the commit (`PgTx::commit`),
/// a round trip fewer for every batch that does both. Nothing in a transaction reads the audit
/// log, and a failed write fails the commit, so the events are still written with their change
/// or not at all.
#[async_trait]
impl AuditTx for PgTx {
    async fn append_audit(&mut self, e: &AuditEvent) -> Result<(), StoreError> {
        self.audits.push(e.clone());
        Ok(())
    }
    async fn append_audits(&mut self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.audits.extend_from_slice(events);
        Ok(())
    }
}
