//! Shared Signals streams.

use std::sync::Arc;
use time::Duration;

use crate::clients::NewClient;
use crate::secret::random_id;
use crate::signals::{DeliveryMethod, SignalStream, StreamStatus};
use crate::store::Store;

use super::{t0, tx};

pub(super) fn stream(client: &str, at: time::OffsetDateTime, method: DeliveryMethod) -> SignalStream {
    SignalStream {
        id: random_id(),
        client_id: client.to_owned(),
        description: Some("a receiver".into()),
        events_requested: vec![
            "https://schemas.openid.net/secevent/caep/event-type/session-revoked".into(),
            "https://example.com/unknown".into(),
        ],
        method,
        endpoint_url: (method == DeliveryMethod::Push).then(|| "https://receiver.example/events".into()),
        authorization_header: (method == DeliveryMethod::Push).then(|| "Bearer receiver-secret".into()),
        status: StreamStatus::Enabled,
        reason: None,
        excluded_subjects: vec!["email:gone@example.com".into()],
        created_at: at,
        updated_at: at,
        version: 0,
    }
}

/// A client's streams are kept field for field and listed oldest first, never shown to another
/// client; an update applies only over the version it was read at (compare-and-swap, whatever
/// the clock says); a delete answers whether there was one; disabled streams are not live; and
/// a client's streams go with it.
pub async fn a_clients_streams_are_kept_updated_by_compare_and_swap_and_go_with_it(store: Arc<dyn Store>) {
    let a = NewClient::generate("a".into(), Vec::new(), t0()).client;
    let b = NewClient::generate("b".into(), Vec::new(), t0()).client;
    let (push, poll) =
        (stream(&a.id, t0(), DeliveryMethod::Push), stream(&a.id, t0() + Duration::seconds(1), DeliveryMethod::Poll));
    let theirs = stream(&b.id, t0(), DeliveryMethod::Poll);
    let mut t = tx(&store).await;
    t.insert_client(&a).await.expect("insert");
    t.insert_client(&b).await.expect("insert");
    for s in [&poll, &push, &theirs] {
        t.insert_signal_stream(s).await.expect("insert stream");
    }
    t.commit().await.expect("commit");
    assert_eq!(store.signal_streams(&a.id).await.expect("list"), vec![push.clone(), poll.clone()], "oldest first");
    assert_eq!(store.signal_stream(&a.id, &push.id).await.expect("read"), Some(push.clone()), "every field");
    assert_eq!(store.signal_stream(&b.id, &push.id).await.expect("read"), None, "not another client's");

    let paused = SignalStream {
        status: StreamStatus::Paused,
        reason: Some("maintenance".into()),
        events_requested: Vec::new(),
        excluded_subjects: Vec::new(),
        description: None,
        updated_at: t0() + Duration::seconds(5),
        ..push.clone()
    };
    // Two updates read at the same version, at the same instant: only the first applies.
    let stale = SignalStream { status: StreamStatus::Disabled, ..paused.clone() };
    let mut t = tx(&store).await;
    assert!(t.update_signal_stream(&paused).await.expect("update"));
    assert!(!t.update_signal_stream(&stale).await.expect("update"), "read at a version that is no more");
    let foreign = SignalStream { client_id: b.id.clone(), version: 1, ..paused.clone() };
    assert!(!t.update_signal_stream(&foreign).await.expect("update"), "not another client's");
    t.commit().await.expect("commit");
    let paused = SignalStream { version: 1, ..paused };
    assert_eq!(store.signal_stream(&a.id, &push.id).await.expect("read"), Some(paused.clone()));

    let disabled =
        SignalStream { status: StreamStatus::Disabled, updated_at: t0() + Duration::seconds(7), ..poll.clone() };
    let mut t = tx(&store).await;
    assert!(t.update_signal_stream(&disabled).await.expect("update"));
    let disabled = SignalStream { version: 1, ..disabled };
    let mut live: Vec<String> = t.live_signal_streams().await.expect("live").into_iter().map(|s| s.id).collect();
    live.sort();
    let mut expected = vec![push.id.clone(), theirs.id.clone()];
    expected.sort();
    assert_eq!(live, expected, "paused and enabled are live, disabled is not");
    assert!(!t.delete_signal_stream(&b.id, &push.id).await.expect("delete"), "not another client's");
    assert!(t.delete_signal_stream(&a.id, &push.id).await.expect("delete"));
    assert!(!t.delete_signal_stream(&a.id, &push.id).await.expect("delete"), "gone is gone");
    t.commit().await.expect("commit");
    assert_eq!(store.signal_streams(&a.id).await.expect("list"), vec![disabled]);

    let mut t = tx(&store).await;
    t.delete_client(&a.id).await.expect("delete client");
    t.commit().await.expect("commit");
    assert!(store.signal_streams(&a.id).await.expect("list").is_empty(), "a client's streams go with it");
    assert_eq!(store.signal_streams(&b.id).await.expect("list"), vec![theirs]);
}

/// An upstream transmitter is kept as registered; each SET `jti` it sends is noted once (a
/// replay is told apart, per upstream), forgotten once past its time, and an uncommitted note
/// leaves nothing.
pub async fn received_sets_are_noted_once_per_upstream(store: Arc<dyn Store>) {
    use crate::signals::upstream::Upstream;
    let upstream = |id: &str| Upstream {
        id: id.to_owned(),
        issuer: "https://idp.example".into(),
        jwks_uri: "https://idp.example/jwks".into(),
        audience: "https://signoff.example".into(),
        secret_hash: crate::secret::SecretHash::of(b"label", id.as_bytes()),
        created_at: t0(),
    };
    let mut t = tx(&store).await;
    t.insert_signal_upstream(&upstream("up-a")).await.expect("insert");
    t.insert_signal_upstream(&upstream("up-b")).await.expect("insert");
    t.commit().await.expect("commit");
    assert_eq!(store.signal_upstream("up-a").await.expect("read"), Some(upstream("up-a")));
    assert_eq!(store.signal_upstream("up-none").await.expect("read"), None);
    let until = t0() + Duration::minutes(6);
    let note = |up: &'static str, jti: &'static str, now: time::OffsetDateTime| {
        let store = store.clone();
        async move {
            let mut t = tx(&store).await;
            let fresh = t.note_received_set(up, jti, now, now + Duration::minutes(6)).await.expect("note");
            t.commit().await.expect("commit");
            fresh
        }
    };
    assert!(note("up-a", "j1", t0()).await);
    assert!(!note("up-a", "j1", t0()).await, "a replay");
    assert!(note("up-b", "j1", t0()).await, "another upstream's jti is its own");
    // Rolled back: not noted.
    let mut t = tx(&store).await;
    assert!(t.note_received_set("up-a", "j2", t0(), until).await.expect("note"));
    drop(t);
    assert!(note("up-a", "j2", t0()).await, "a rolled-back note leaves nothing");
    // Past its time, forgotten (a SET that old is refused as stale before it is noted).
    assert!(note("up-a", "j1", until + Duration::seconds(1)).await);
    let ids: Vec<String> = store.signal_upstreams().await.expect("list").into_iter().map(|u| u.id).collect();
    assert_eq!(ids, ["up-a", "up-b"]);
    let mut t = tx(&store).await;
    assert!(t.delete_signal_upstream("up-a").await.expect("delete"));
    assert!(!t.delete_signal_upstream("up-a").await.expect("delete"));
    t.commit().await.expect("commit");
    assert_eq!(store.signal_upstream("up-a").await.expect("read"), None);
    assert_eq!(store.signal_upstreams().await.expect("list").len(), 1);
}
