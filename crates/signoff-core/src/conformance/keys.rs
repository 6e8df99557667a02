//! Signing keys and denied access tokens.

use std::sync::Arc;
use time::Duration;

use crate::store::Store;
use crate::token::SigningKeyPair;

use super::{t0, tx};

pub async fn keys_and_denials(store: Arc<dyn Store>) {
    let (k1, k2) = (SigningKeyPair::generate(t0()), SigningKeyPair::generate(t0() + Duration::seconds(1)));
    let mut t = tx(&store).await;
    assert!(!t.has_signer().await.expect("signer"));
    t.insert_signing_key(&k1).await.expect("insert");
    t.insert_signing_key(&k2).await.expect("insert");
    assert_eq!(t.retire_signing_keys(&k2.kid, t0()).await.expect("retire"), 1);
    assert!(t.has_signer().await.expect("signer"));
    assert!(t.delete_signing_key(&k2.kid).await.expect("delete"));
    assert!(!t.delete_signing_key(&k2.kid).await.expect("delete"), "gone is gone");
    assert!(!t.has_signer().await.expect("signer"), "only a retired key is left");
    t.deny_token("https://a.example", "j1", 100).await.expect("deny");
    t.deny_token("https://a.example", "j1", 100).await.expect("denying twice is harmless");
    t.deny_token("https://a.example", "j2", 1_000).await.expect("deny");
    t.deny_token("https://a.example", "j3", 470).await.expect("deny");
    t.commit().await.expect("commit");
    let keys = store.signing_keys().await.expect("keys");
    assert_eq!((keys.len(), keys[0].kid.as_str(), keys[0].retired_at), (1, k1.kid.as_str(), Some(t0())));
    let mut denied = store.denied_tokens(500).await.expect("denied");
    denied.sort();
    let expected = [("j2", 1_000), ("j3", 470)].map(|(jti, exp)| ("https://a.example".to_owned(), jti.to_owned(), exp));
    assert_eq!(denied, expected, "denials expired over a minute ago are left out, not those within the minute");
}
