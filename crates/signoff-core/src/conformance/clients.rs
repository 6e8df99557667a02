//! Registered clients.

use std::sync::Arc;
use time::Duration;

use crate::clients::NewClient;
use crate::store::Store;

use super::{t0, tx};

pub async fn clients_are_kept_and_deleted(store: Arc<dyn Store>) {
    let a = NewClient::generate("a".into(), Some("https://a.example/bc".into()), None, t0()).client;
    let b =
        NewClient::generate("b".into(), None, Some("https://b.example/h".into()), t0() + Duration::seconds(1)).client;
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
