//! The audit log.

use std::sync::Arc;
use time::Duration;

use crate::audit::{Actor, AuditEvent, AuditKind, ClientInfo};
use crate::feed::{FeedEntry, Revocation};
use crate::secret::SessionId;
use crate::store::{Announce, Store};

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
    let head = store.revocation_head().await.expect("head");
    let mut t = tx(&store).await;
    t.append_audits(&[]).await.expect("nothing to append");
    t.append_audits(&events).await.expect("append");
    t.commit().await.expect("commit");
    assert_eq!(store.revocation_head().await.expect("head"), head, "events alone take no feed position");
    let mut read = store.user_audit(&a.id, 2000).await.expect("audit");
    read.reverse();
    assert_eq!(read.len(), events.len());
    assert!(read == events, "every field of every event, in the order written");

    // With revocations in the same transaction (a store may write both in one statement): both
    // land, in order, the feed gap-free; one at a time and many at once keep their order too.
    let b = user(&store, "b@example.com").await;
    let ended: Vec<FeedEntry> = (0..3)
        .map(|i| {
            FeedEntry::Session(Revocation {
                session_id: SessionId::generate(),
                user_id: b.id.clone(),
                reason: format!("logout{i}"),
                at: t0(),
            })
        })
        .collect();
    let first = bare.clone().user(&b.id).reason("first");
    let rest: Vec<AuditEvent> = (0..3).map(|i| full.clone().user(&b.id).reason(&format!("then{i}"))).collect();
    let mut t = tx(&store).await;
    t.append_audit(&first).await.expect("append one");
    t.append_audits(&rest).await.expect("append");
    let last = t.record_revocations(&ended, t0(), Announce::Now).await.expect("record");
    assert_eq!(last, head + 3, "the feed's positions follow on");
    let late = bare.clone().user(&b.id).reason("after the feed");
    t.append_audit(&late).await.expect("append after the feed");
    t.commit().await.expect("commit");
    let mut read = store.user_audit(&b.id, 10).await.expect("audit");
    read.reverse();
    let written: Vec<AuditEvent> = std::iter::once(first).chain(rest).chain(std::iter::once(late)).collect();
    assert!(read == written, "every event of the transaction, in order");
    let feed = store.revocations_since(head, 10).await.expect("feed");
    assert_eq!(feed.into_iter().map(|(_, e)| e).collect::<Vec<_>>(), ended, "and its revocations");

    // Rolled back: neither.
    let mut t = tx(&store).await;
    t.append_audits(&[bare.clone().user(&b.id)]).await.expect("append");
    t.record_revocations(&ended[..1], t0(), Announce::Now).await.expect("record");
    drop(t);
    assert_eq!(store.user_audit(&b.id, 10).await.expect("audit").len(), 5, "nothing of a rollback");
    assert_eq!(store.revocation_head().await.expect("head"), head + 3);
}
