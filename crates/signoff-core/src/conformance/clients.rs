//! Registered clients.

use std::sync::Arc;
use time::Duration;

use crate::clients::{Endpoint, EndpointKind, NewClient};
use crate::store::Store;

use super::{t0, tx};

pub async fn clients_are_kept_and_deleted(store: Arc<dyn Store>) {
    let a = NewClient::generate("a".into(), vec![Endpoint::backchannel_logout("https://a.example/bc")], t0()).client;
    let b =
        NewClient::generate("b".into(), vec![Endpoint::webhook("https://b.example/h")], t0() + Duration::seconds(1))
            .client;
    let mut t = tx(&store).await;
    t.insert_client(&a).await.expect("insert");
    t.insert_client(&b).await.expect("insert");
    t.commit().await.expect("commit");
    assert_eq!(store.client_by_id(&a.id).await.expect("read"), Some(a.clone()), "every field round-trips");
    assert_eq!(store.clients().await.expect("list"), vec![a.clone(), b.clone()], "oldest first");
    let mut t = tx(&store).await;
    assert!(t.delete_client(&a.id).await.expect("delete"));
    assert!(!t.delete_client(&a.id).await.expect("delete"), "gone is gone");
    t.commit().await.expect("commit");
    assert_eq!(store.client_by_id(&a.id).await.expect("read"), None);
    assert_eq!(store.clients().await.expect("list"), vec![b]);
}

/// Endpoints are rows: any number per client (two of one kind too), read back sorted with the
/// client by every read, the outbox's recipients being the clients with a callback among them,
/// and gone with the client.
pub async fn a_clients_endpoints_are_kept_with_it(store: Arc<dyn Store>) {
    let many = vec![
        Endpoint::webhook("https://m.example/h"),
        Endpoint::backchannel_logout("https://m.example/bc2"),
        Endpoint::backchannel_logout("https://m.example/bc1"),
    ];
    let m = NewClient::generate("m".into(), many, t0()).client;
    assert_eq!(m.endpoints.len(), 3);
    let none = NewClient::generate("n".into(), vec![], t0() + Duration::seconds(1)).client;
    let mut t = tx(&store).await;
    t.insert_client(&m).await.expect("insert");
    t.insert_client(&none).await.expect("insert");
    assert_eq!(t.callback_clients().await.expect("recipients"), vec![m.clone()], "in the transaction too");
    t.commit().await.expect("commit");
    assert_eq!(store.client_by_id(&m.id).await.expect("read"), Some(m.clone()));
    assert_eq!(store.client_by_id(&none.id).await.expect("read"), Some(none.clone()));
    assert_eq!(store.clients().await.expect("list"), vec![m.clone(), none.clone()]);
    assert_eq!(m.endpoint(EndpointKind::BackchannelLogout), Some("https://m.example/bc1"), "sorted by kind and URL");
    let mut t = tx(&store).await;
    assert_eq!(t.callback_clients().await.expect("recipients"), vec![m.clone()], "only clients with callbacks");
    assert!(t.delete_client(&m.id).await.expect("delete"));
    assert_eq!(t.callback_clients().await.expect("recipients"), vec![]);
    t.commit().await.expect("commit");
    // The same id again (as a restore would) starts with no endpoints of the deleted one.
    let mut again = NewClient::generate("m".into(), vec![], t0()).client;
    again.id = m.id.clone();
    let mut t = tx(&store).await;
    t.insert_client(&again).await.expect("insert");
    t.commit().await.expect("commit");
    assert_eq!(store.client_by_id(&m.id).await.expect("read").expect("client").endpoints, vec![]);
}
