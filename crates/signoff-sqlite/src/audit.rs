//! The audit log on SQLite: [`signoff_core::store::AuditStore`] and [`signoff_core::store::AuditTx`].

use crate::rows::{audit_from, db_err, ms};
use crate::{SqliteStore, SqliteTx};
use async_trait::async_trait;
use signoff_core::audit::AuditEvent;
use signoff_core::store::StoreError;
use signoff_core::store::{AuditStore, AuditTx};
use signoff_core::{SessionId, UserId};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn user_audit(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, session_id, kind, scope, reason, detail, actor, ip, user_agent, at FROM audit_events \
             WHERE user_id = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(user.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(audit_from).collect()
    }
}

#[async_trait]
impl AuditTx for SqliteTx {
    async fn append_audit(&mut self, e: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (user_id, session_id, kind, scope, reason, detail, actor, ip, user_agent, at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.user_id.as_ref().map(UserId::as_str))
        .bind(e.session_id.as_ref().map(SessionId::as_str))
        .bind(e.kind.as_str())
        .bind(e.scope.as_deref())
        .bind(e.reason.as_deref())
        .bind(e.detail.as_deref())
        .bind(e.actor.as_str())
        .bind(e.ip.as_deref())
        .bind(e.user_agent.as_deref())
        .bind(ms(e.at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn append_audits(&mut self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        // One statement for any number: the rows travel as one JSON array.
        let rows: Vec<serde_json::Value> = events
            .iter()
            .map(|e| {
                serde_json::json!([
                    e.user_id.as_ref().map(UserId::as_str),
                    e.session_id.as_ref().map(SessionId::as_str),
                    e.kind.as_str(),
                    e.scope,
                    e.reason,
                    e.detail,
                    e.actor.as_str(),
                    e.ip,
                    e.user_agent,
                    ms(e.at),
                ])
            })
            .collect();
        sqlx::query(
            "INSERT INTO audit_events (user_id, session_id, kind, scope, reason, detail, actor, ip, user_agent, at) \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, \
             value->>8, value->>9 FROM json_each(?) ORDER BY key",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
}
