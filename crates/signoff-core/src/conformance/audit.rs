//! The audit log.

use std::sync::Arc;
use time::Duration;

use crate::audit::{Actor, AuditEvent, AuditKind, ClientInfo};
use crate::secret::SessionId;
use crate::store::Store;

use super::{t0, tx, user};

pub async fn audit_events_in_one_statement_keep_order_and_fields(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let client = ClientInfo { ip: "2001:db8::1".into(), user_agent: Some("Mozilla/5.0 \"quoted\" \\ é 🙂".into()) };
    let full = AuditEvent::new(AuditKind::SessionRevoked, Actor::Admin, t0(), &client)
        .user(&a.id)
        .session(&SessionId::generate())
        .scope("global")
        .reason("12345")
        .detail("null");
    let bare = AuditEvent::new(AuditKind::Login, Actor::User, t0() + Duration::milliseconds(1), &ClientInfo::default())
        .user(&a.id);
    // Many, as a global logout writes them: a statement's size must not depend on the count.
    let mut events: Vec<AuditEvent> =
        (0..1500).map(|i| if i % 2 == 0 { full.clone().reason(&format!("r{i}")) } else { bare.clone() }).collect();
    events[0] = full.clone();
    let mut t = tx(&store).await;
    t.append_audits(&[]).await.expect("nothing to append");
    t.append_audits(&events).await.expect("append");
    t.commit().await.expect("commit");
    let mut read = store.user_audit(&a.id, 2000).await.expect("audit");
    read.reverse();
    assert_eq!(read.len(), events.len());
    assert!(read == events, "every field of every event, in the order written");
}
