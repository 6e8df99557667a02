//! Transactions: all or nothing.

use std::sync::Arc;

use crate::audit::{Actor, AuditEvent, AuditKind, ClientInfo};
use crate::store::Store;

use super::{live, session, t0, tx, user};

pub async fn an_uncommitted_transaction_leaves_nothing(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let s = session(&a.id, t0(), None);
    let mut t = tx(&store).await;
    t.insert_session(&s).await.expect("insert");
    t.append_audit(&AuditEvent::new(AuditKind::Login, Actor::User, t0(), &ClientInfo::default()).user(&a.id))
        .await
        .expect("audit");
    t.bump_token_version(&a.id).await.expect("bump");
    drop(t);
    assert!(!live(&store, &s.id).await);
    assert!(store.user_audit(&a.id, 10).await.expect("audit").is_empty());
    assert_eq!(store.user_by_id(&a.id).await.expect("read").expect("user").user.token_version, 0);
}
