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

#[async_trait]
impl AuditTx for PgTx {
    async fn append_audit(&mut self, e: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (user_id, session_id, kind, scope, reason, detail, actor, ip, user_agent, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        // One statement for any number: a column per array, rows in order (WITH ORDINALITY).
        sqlx::query(
            "INSERT INTO audit_events (user_id, session_id, kind, scope, reason, detail, actor, ip, user_agent, at) \
             SELECT u, s, k, sc, r, d, a, i, ua, t FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[]) WITH ORDINALITY \
             AS x(u, s, k, sc, r, d, a, i, ua, t, n) ORDER BY n",
        )
        .bind(column(events, |e| e.user_id.as_ref().map(UserId::as_str)))
        .bind(column(events, |e| e.session_id.as_ref().map(SessionId::as_str)))
        .bind(column(events, |e| Some(e.kind.as_str())))
        .bind(column(events, |e| e.scope.as_deref()))
        .bind(column(events, |e| e.reason.as_deref()))
        .bind(column(events, |e| e.detail.as_deref()))
        .bind(column(events, |e| Some(e.actor.as_str())))
        .bind(column(events, |e| e.ip.as_deref()))
        .bind(column(events, |e| e.user_agent.as_deref()))
        .bind(events.iter().map(|e| ms(e.at)).collect::<Vec<i64>>())
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
}
