//! Signing keys and denied access tokens.

use std::sync::Arc;
use time::Duration;

use crate::clients::SigningAlg;
use crate::store::Store;
use crate::token::SigningKeyPair;

use super::{t0, tx};

pub async fn keys_and_denials(store: Arc<dyn Store>) {
    let (k1, k2) = (SigningKeyPair::generate(t0()), SigningKeyPair::generate(t0() + Duration::seconds(1)));
    let mut t = tx(&store).await;
    assert!(!t.has_signer(SigningAlg::EdDsa).await.expect("signer"));
    t.insert_signing_key(&k1).await.expect("insert");
    t.insert_signing_key(&k2).await.expect("insert");
    assert_eq!(t.retire_signing_keys(SigningAlg::EdDsa, &k2.kid, t0()).await.expect("retire"), 1);
    assert!(t.has_signer(SigningAlg::EdDsa).await.expect("signer"));
    assert_eq!(t.delete_signing_key(&k2.kid).await.expect("delete"), Some(SigningAlg::EdDsa));
    assert_eq!(t.delete_signing_key(&k2.kid).await.expect("delete"), None, "gone is gone");
    assert!(!t.has_signer(SigningAlg::EdDsa).await.expect("signer"), "only a retired key is left");
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

/// Keys of every algorithm are kept whole and apart: each algorithm has its own signer, a
/// rotation of one retires none of another's, and a withdrawal names what it withdrew.
pub async fn keys_of_every_algorithm(store: Arc<dyn Store>) {
    let at = |s: i64| t0() + Duration::seconds(s);
    let key = |alg, s| SigningKeyPair::generate_for(alg, at(s)).expect("generate");
    let (rsa1, rsa2, ec, ed) =
        (key(SigningAlg::Rs256, 0), key(SigningAlg::Rs256, 1), key(SigningAlg::Es256, 2), key(SigningAlg::EdDsa, 3));
    let mut t = tx(&store).await;
    for k in [&rsa1, &rsa2, &ec, &ed] {
        t.insert_signing_key(k).await.expect("insert");
    }
    for alg in SigningAlg::ALL {
        assert!(t.has_signer(alg).await.expect("signer"), "{alg}");
    }
    assert_eq!(t.retire_signing_keys(SigningAlg::Rs256, &rsa2.kid, at(5)).await.expect("retire"), 1, "rsa1 only");
    assert_eq!(t.retire_signing_keys(SigningAlg::Es256, &ec.kid, at(5)).await.expect("retire"), 0);
    t.commit().await.expect("commit");
    let mut t = tx(&store).await;
    assert!(t.insert_signing_key(&rsa1).await.is_err(), "a kid is unique");
    drop(t);

    let keys = store.signing_keys().await.expect("keys");
    let find = |kid: &str| keys.iter().find(|k| k.kid == kid).expect("kept");
    assert_eq!(keys.len(), 4);
    for (k, retired) in [(&rsa1, Some(at(5))), (&rsa2, None), (&ec, None), (&ed, None)] {
        let read = find(&k.kid);
        assert_eq!((read.alg(), read.retired_at, read.created_at), (k.alg(), retired, k.created_at), "{}", k.alg());
        assert_eq!(read.public(), k.public(), "the private key reads back whole: {}", k.alg());
    }

    let mut t = tx(&store).await;
    assert_eq!(t.delete_signing_key(&rsa2.kid).await.expect("delete"), Some(SigningAlg::Rs256));
    assert!(!t.has_signer(SigningAlg::Rs256).await.expect("signer"), "the retired RSA key does not sign");
    assert!(t.has_signer(SigningAlg::Es256).await.expect("signer"));
    assert_eq!(t.delete_signing_key(&ec.kid).await.expect("delete"), Some(SigningAlg::Es256));
    assert!(t.has_signer(SigningAlg::EdDsa).await.expect("signer"));
    t.commit().await.expect("commit");
    let mut left: Vec<_> = store.signing_keys().await.expect("keys").into_iter().map(|k| k.kid).collect();
    left.sort();
    let mut expected = vec![rsa1.kid.clone(), ed.kid.clone()];
    expected.sort();
    assert_eq!(left, expected);
}
