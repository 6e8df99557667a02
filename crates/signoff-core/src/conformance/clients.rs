//! Registered clients.

use std::sync::Arc;
use time::Duration;

use crate::clients::{
    ClientProfile, Endpoint, EndpointKind, GrantType, NewClient, RegisteredClient, SigningAlg, TokenAuthMethod,
    hash_secret,
};
use crate::secret::Secret;
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
    assert_eq!(t.delete_client(&a.id).await.expect("delete"), Some(a.secret_hash), "the hash it had");
    assert_eq!(t.delete_client(&a.id).await.expect("delete"), None, "gone is gone");
    t.commit().await.expect("commit");
    assert_eq!(store.client_by_id(&a.id).await.expect("read"), None);
    assert_eq!(store.clients().await.expect("list"), vec![b]);
}

/// A client's secret changes by compare-and-swap: only from the hash it has now, never for a
/// client that is gone; deleting a client answers the hash it had.
pub async fn a_clients_secret_is_swapped_only_from_the_one_it_has(store: Arc<dyn Store>) {
    let c = NewClient::generate("c".into(), Vec::new(), t0()).client;
    let (next, other) = (hash_secret(&Secret::generate()), hash_secret(&Secret::generate()));
    let mut t = tx(&store).await;
    t.insert_client(&c).await.expect("insert");
    assert!(!t.set_client_secret(&c.id, &other, &next).await.expect("swap"), "not from a hash it does not have");
    assert!(t.set_client_secret(&c.id, &c.secret_hash, &next).await.expect("swap"));
    assert!(!t.set_client_secret(&c.id, &c.secret_hash, &other).await.expect("swap"), "the old hash is gone");
    assert!(!t.set_client_secret("nobody", &c.secret_hash, &other).await.expect("swap"));
    t.commit().await.expect("commit");
    let read = store.client_by_id(&c.id).await.expect("read").expect("client");
    assert_eq!(read.secret_hash, next);
    assert_eq!(read, RegisteredClient { secret_hash: next, ..c.clone() }, "nothing else changed");
    let mut t = tx(&store).await;
    assert_eq!(t.delete_client(&c.id).await.expect("delete"), Some(next));
    t.commit().await.expect("commit");
}

/// Endpoints are rows: any number per client (several redirect URIs), read back sorted with the
/// client by every read, the outbox's recipients being the clients with a callback among them
/// (browser URLs are not callbacks), and gone with the client; its profile is kept whole.
pub async fn a_clients_endpoints_are_kept_with_it(store: Arc<dyn Store>) {
    let callbacks =
        vec![Endpoint::webhook("https://m.example/h"), Endpoint::backchannel_logout("https://m.example/bc")];
    let mut m = NewClient::generate("m".into(), callbacks, t0()).client;
    m.profile.token_endpoint_auth_method = TokenAuthMethod::ClientSecretPost;
    m.profile.grant_types = vec![GrantType::ClientCredentials];
    // A relying party: its browser URLs are endpoints too, but nothing signoff calls.
    let rp_urls = vec![
        Endpoint::new(EndpointKind::Redirect, "https://rp.example/cb"),
        Endpoint::new(EndpointKind::Redirect, "http://localhost:3000/cb"),
        Endpoint::new(EndpointKind::PostLogoutRedirect, "https://rp.example/bye"),
        Endpoint::new(EndpointKind::FrontchannelLogout, "https://rp.example/fc?x=1"),
    ];
    let mut none = NewClient::generate("n".into(), rp_urls, t0() + Duration::seconds(1)).client;
    assert_eq!(none.profile, ClientProfile::relying_party(), "a redirect URI makes a relying party");
    none.profile.id_token_signed_response_alg = SigningAlg::Es256;
    let mut t = tx(&store).await;
    t.insert_client(&m).await.expect("insert");
    t.insert_client(&none).await.expect("insert");
    assert_eq!(t.callback_clients().await.expect("recipients"), vec![m.clone()], "in the transaction too");
    t.commit().await.expect("commit");
    assert_eq!(store.client_by_id(&m.id).await.expect("read"), Some(m.clone()));
    assert_eq!(store.client_by_id(&none.id).await.expect("read"), Some(none.clone()));
    assert_eq!(store.clients().await.expect("list"), vec![m.clone(), none.clone()]);
    let read = store.client_by_id(&none.id).await.expect("read").expect("client");
    let redirects: Vec<&str> = read.endpoints_of(EndpointKind::Redirect).collect();
    assert_eq!(redirects, ["http://localhost:3000/cb", "https://rp.example/cb"], "several of a kind, sorted");
    let mut t = tx(&store).await;
    assert_eq!(t.callback_clients().await.expect("recipients"), vec![m.clone()], "only clients with callbacks");
    assert!(t.delete_client(&m.id).await.expect("delete").is_some());
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
