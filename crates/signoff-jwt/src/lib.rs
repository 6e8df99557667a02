//! The compact JWS layer of signoff's access tokens, narrowly: one algorithm, pinned.
//!
//! [`verify`] refuses any header whose `alg` is not exactly `EdDSA` (so no `none`, no HMAC
//! keyed with the public key), any `crit`, a missing `kid` or one the caller does not know,
//! and never follows `jku`, `x5u` or an embedded `jwk`. Base64url must be canonical and
//! unpadded; signatures are checked with `verify_strict` (non-canonical and small-order
//! encodings refused). What the claims mean (issuer, audience, times, revocation) is the
//! caller's business: the signoff server and the `signoff-verify` library both build on this.
//!
//! With the `keys` feature, [`keys`] adds the algorithms of ID and logout tokens (`RS256`,
//! `ES256`, `EdDSA`), each key verifying only under its own algorithm.

#[cfg(feature = "keys")]
pub mod keys;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Longest token looked at; anything longer is refused unparsed.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Why a token's form or signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("malformed")]
    Malformed,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("unknown key")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) crit: Option<serde_json::Value>,
}

/// Signs `claims` as a compact JWS with header `{"alg":"EdDSA","typ":typ,"kid":kid}`.
pub fn sign<C: Serialize>(claims: &C, typ: &str, kid: &str, key: &SigningKey) -> Option<String> {
    let header = Header { alg: "EdDSA".into(), typ: Some(typ.into()), kid: Some(kid.into()), crit: None };
    let mut out = String::with_capacity(400);
    out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).ok()?));
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).ok()?));
    let signature = key.sign(out.as_bytes());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    Some(out)
}

/// The `kid` of a token's header, before anything is verified (to pick or fetch a key).
pub fn kid(token: &str) -> Result<String, JwsError> {
    let (header, _, _) = split(token)?;
    let header: Header = decode_json(header)?;
    header.kid.ok_or(JwsError::UnknownKey)
}

/// The `typ` of a token's header, before anything is verified (a Security Event Token must be
/// `secevent+jwt`).
pub fn typ(token: &str) -> Result<Option<String>, JwsError> {
    let (header, _, _) = split(token)?;
    let header: Header = decode_json(header)?;
    Ok(header.typ)
}

pub(crate) fn split(token: &str) -> Result<(&str, &str, &str), JwsError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwsError::Malformed);
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(c), Some(s), None) => Ok((h, c, s)),
        _ => Err(JwsError::Malformed),
    }
}

/// Checks form, algorithm and signature with the key `key_for` gives for the header's `kid`,
/// and returns the claims.
pub fn verify<C: for<'de> Deserialize<'de>>(
    token: &str,
    key_for: impl FnOnce(&str) -> Option<VerifyingKey>,
) -> Result<C, JwsError> {
    let (h, c, s) = split(token)?;
    let header: Header = decode_json(h)?;
    if header.alg != "EdDSA" {
        return Err(JwsError::Algorithm);
    }
    if header.crit.is_some() {
        return Err(JwsError::Malformed);
    }
    let kid = header.kid.as_deref().ok_or(JwsError::UnknownKey)?;
    let key = key_for(kid).ok_or(JwsError::UnknownKey)?;
    let sig: [u8; 64] = decode(s)?.try_into().map_err(|_| JwsError::Signature)?;
    let signed = &token[..h.len() + 1 + c.len()];
    key.verify_strict(signed.as_bytes(), &Signature::from_bytes(&sig)).map_err(|_| JwsError::Signature)?;
    decode_json(c)
}

/// An Ed25519 public key as a JWK.
pub fn jwk(kid: &str, key: &VerifyingKey) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.to_bytes()),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    })
}

/// The Ed25519 keys of a JWK Set (`{"keys": [...]}`), with their `kid`s; keys of any other
/// type, curve or algorithm are passed over.
pub fn keys_of_jwks(jwks: &serde_json::Value) -> Vec<(String, VerifyingKey)> {
    let Some(keys) = jwks.get("keys").and_then(|k| k.as_array()) else { return Vec::new() };
    keys.iter()
        .filter(|k| k["kty"] == "OKP" && k["crv"] == "Ed25519")
        .filter(|k| k.get("alg").is_none_or(|a| a == "EdDSA"))
        .filter(|k| k.get("use").is_none_or(|u| u == "sig"))
        .filter_map(|k| {
            let kid = k["kid"].as_str()?.to_owned();
            let x: [u8; 32] = URL_SAFE_NO_PAD.decode(k["x"].as_str()?).ok()?.try_into().ok()?;
            Some((kid, VerifyingKey::from_bytes(&x).ok()?))
        })
        .collect()
}

pub(crate) fn decode(part: &str) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| JwsError::Malformed)
}

pub(crate) fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, JwsError> {
    serde_json::from_slice(&decode(part)?).map_err(|_| JwsError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn round_trip_and_refusals() {
        let k = key(1);
        let claims = json!({"sub": "u", "n": 1});
        let token = sign(&claims, "JWT", "k1", &k).expect("sign");
        let known = |kid: &str| (kid == "k1").then(|| k.verifying_key());
        assert_eq!(verify::<Value>(&token, known), Ok(claims.clone()));
        assert_eq!(kid(&token), Ok("k1".into()));
        assert_eq!(verify::<Value>(&token, |_| None), Err(JwsError::UnknownKey));
        assert_eq!(verify::<Value>(&token, |_| Some(key(2).verifying_key())), Err(JwsError::Signature));
        assert_eq!(verify::<Value>(&format!("{token}="), known), Err(JwsError::Malformed));
        assert_eq!(verify::<Value>("a.b", known), Err(JwsError::Malformed));
        assert_eq!(verify::<Value>(&"a".repeat(MAX_TOKEN_LEN + 1), known), Err(JwsError::Malformed));
        let mut tampered = token.clone();
        tampered.insert(token.find('.').expect("dot") + 5, 'A');
        assert!(verify::<Value>(&tampered, known).is_err());
        // alg none, HS256 and crit are refused whatever the signature.
        let (_, rest) = token.split_once('.').expect("dot");
        for header in [
            json!({"alg": "none", "kid": "k1"}),
            json!({"alg": "HS256", "kid": "k1"}),
            json!({"alg": "EdDSA", "kid": "k1", "crit": ["exp"]}),
            json!({"alg": "EdDSA"}),
        ] {
            let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()));
            assert!(verify::<Value>(&forged, known).is_err(), "{header}");
        }
    }

    #[test]
    fn jwks_keys_are_read_back_and_foreign_ones_passed_over() {
        let k = key(3).verifying_key();
        let set = json!({"keys": [jwk("a", &k), {"kty": "RSA", "kid": "r", "n": "x", "e": "AQAB"},
            {"kty": "OKP", "crv": "X25519", "kid": "x", "x": "AAAA"}]});
        let keys = keys_of_jwks(&set);
        assert_eq!(keys.len(), 1);
        assert_eq!((keys[0].0.as_str(), keys[0].1), ("a", k));
        assert!(keys_of_jwks(&json!({"nope": 1})).is_empty());
    }
}
