//! Signing keys of every algorithm signoff signs ID and logout tokens with: `EdDSA` (Ed25519),
//! `RS256` (RSA 2048, PKCS#1 v1.5 with SHA-256) and `ES256` (ECDSA P-256, SHA-256).
//!
//! RSA and ECDSA come from `aws-lc-rs` (AWS-LC, the library rustls already builds on): its RSA
//! signer is constant-time, unlike the `rsa` crate's (RUSTSEC-2023-0071, unpatched). Ed25519
//! stays on `ed25519-dalek`, as for access tokens.
//!
//! [`verify_with`] checks a token against one known key and refuses any header whose `alg` is not
//! that key's own, so a public key can never be used under another algorithm.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self as lc, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::{Header, JwsError, decode, decode_json, split};

/// A JWS algorithm signoff signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256: the one OpenID Connect Core §15.1 requires every relying
    /// party to accept, and so the default of a client that signs users in.
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519, what signoff's own access tokens use: the default of a client without redirect
    /// URIs (a resource server, a feed reader).
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl Alg {
    pub const ALL: [Alg; 3] = [Alg::Rs256, Alg::Es256, Alg::EdDsa];

    /// The name in a JWS header, a JWK and client metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::EdDsa => "EdDSA",
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }

    pub fn parse(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a stored key could not be made or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key could not be generated")]
    Generate,
    #[error("the stored private key is not a valid {0} key")]
    Rejected(Alg),
}

/// A private key of one algorithm.
pub struct KeyPair(Private);

enum Private {
    Ed(SigningKey),
    Rsa(lc::RsaKeyPair),
    Ec(lc::EcdsaKeyPair),
}

impl KeyPair {
    /// A new random key (RSA keys are 2048 bits).
    pub fn generate(alg: Alg) -> Result<Self, KeyError> {
        Ok(Self(match alg {
            Alg::EdDsa => {
                let mut seed = [0u8; 32];
                aws_lc_rs::rand::fill(&mut seed).map_err(|_| KeyError::Generate)?;
                Private::Ed(SigningKey::from_bytes(&seed))
            }
            Alg::Rs256 => Private::Rsa(lc::RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?),
            Alg::Es256 => Private::Ec(
                lc::EcdsaKeyPair::generate(&lc::ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| KeyError::Generate)?,
            ),
        }))
    }

    /// An Ed25519 key from its 32-byte seed.
    pub fn ed25519(seed: &[u8; 32]) -> Self {
        Self(Private::Ed(SigningKey::from_bytes(seed)))
    }

    /// Reads a key stored with [`private_bytes`](Self::private_bytes).
    pub fn from_private_bytes(alg: Alg, bytes: &[u8]) -> Result<Self, KeyError> {
        let rejected = KeyError::Rejected(alg);
        Ok(Self(match alg {
            Alg::EdDsa => Private::Ed(SigningKey::from_bytes(bytes.try_into().map_err(|_| rejected)?)),
            Alg::Rs256 => {
                let key = lc::RsaKeyPair::from_pkcs8(bytes).map_err(|_| rejected)?;
                if key.public_modulus_len() < 256 {
                    return Err(rejected);
                }
                Private::Rsa(key)
            }
            Alg::Es256 => Private::Ec(
                lc::EcdsaKeyPair::from_pkcs8(&lc::ECDSA_P256_SHA256_FIXED_SIGNING, bytes).map_err(|_| rejected)?,
            ),
        }))
    }

    /// The private key as stored: the 32-byte seed for Ed25519, PKCS#8 (DER) for the others.
    pub fn private_bytes(&self) -> Result<Vec<u8>, KeyError> {
        match &self.0 {
            Private::Ed(k) => Ok(k.to_bytes().to_vec()),
            Private::Rsa(k) => {
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = k.as_der().map_err(|_| KeyError::Generate)?;
                Ok(der.as_ref().to_vec())
            }
            Private::Ec(k) => Ok(k.to_pkcs8v1().map_err(|_| KeyError::Generate)?.as_ref().to_vec()),
        }
    }

    pub fn alg(&self) -> Alg {
        match self.0 {
            Private::Ed(_) => Alg::EdDsa,
            Private::Rsa(_) => Alg::Rs256,
            Private::Ec(_) => Alg::Es256,
        }
    }

    /// The Ed25519 key, for the access-token layer (which is pinned to it).
    pub fn as_ed25519(&self) -> Option<&SigningKey> {
        match &self.0 {
            Private::Ed(k) => Some(k),
            _ => None,
        }
    }

    /// The public half, to verify with.
    pub fn public(&self) -> PublicKey {
        match &self.0 {
            Private::Ed(k) => PublicKey::Ed(k.verifying_key()),
            Private::Rsa(k) => {
                let public = k.public_key();
                PublicKey::Rsa {
                    n: public.modulus().big_endian_without_leading_zero().to_vec(),
                    e: public.exponent().big_endian_without_leading_zero().to_vec(),
                }
            }
            Private::Ec(k) => PublicKey::Ec(k.public_key().as_ref().to_vec()),
        }
    }

    /// Signs `claims` as a compact JWS with header `{"alg":…,"typ":typ,"kid":kid}`.
    pub fn sign<C: Serialize>(&self, claims: &C, typ: &str, kid: &str) -> Option<String> {
        let header =
            Header { alg: self.alg().as_str().into(), typ: Some(typ.into()), kid: Some(kid.into()), crit: None };
        let mut out = String::with_capacity(600);
        out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).ok()?));
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).ok()?));
        let signature = match &self.0 {
            Private::Ed(k) => k.sign(out.as_bytes()).to_bytes().to_vec(),
            Private::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&lc::RSA_PKCS1_SHA256, &SystemRandom::new(), out.as_bytes(), &mut sig).ok()?;
                sig
            }
            Private::Ec(k) => k.sign(&SystemRandom::new(), out.as_bytes()).ok()?.as_ref().to_vec(),
        };
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Some(out)
    }

    /// The public key as a JWK with `kid`, `alg` and `use: sig`.
    pub fn jwk(&self, kid: &str) -> serde_json::Value {
        self.public().jwk(kid)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({}, <private>)", self.alg())
    }
}

/// A public key of one algorithm.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    Ed(ed25519_dalek::VerifyingKey),
    /// Modulus and public exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed P-256 point (`04 ‖ x ‖ y`).
    Ec(Vec<u8>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.alg())
    }
}

impl PublicKey {
    pub fn alg(&self) -> Alg {
        match self {
            PublicKey::Ed(_) => Alg::EdDsa,
            PublicKey::Rsa { .. } => Alg::Rs256,
            PublicKey::Ec(_) => Alg::Es256,
        }
    }

    /// A key of a JWK (RFC 7517) whose type, curve and algorithm are one of ours; `None` for
    /// any other (and for an RSA key under 2048 bits, which no verifier should trust).
    pub fn from_jwk(jwk: &serde_json::Value) -> Option<PublicKey> {
        let field = |name: &str| URL_SAFE_NO_PAD.decode(jwk.get(name)?.as_str()?).ok();
        if jwk.get("use").is_some_and(|u| u != "sig") {
            return None;
        }
        let key = match (jwk["kty"].as_str()?, jwk["crv"].as_str()) {
            ("OKP", Some("Ed25519")) => {
                let x: [u8; 32] = field("x")?.try_into().ok()?;
                PublicKey::Ed(ed25519_dalek::VerifyingKey::from_bytes(&x).ok()?)
            }
            ("RSA", None) => {
                let (n, e) = (field("n")?, field("e")?);
                if n.len() < 256 || n.first() == Some(&0) || e.is_empty() || e.first() == Some(&0) {
                    return None;
                }
                PublicKey::Rsa { n, e }
            }
            ("EC", Some("P-256")) => {
                let (x, y) = (field("x")?, field("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                PublicKey::Ec([&[4u8][..], &x, &y].concat())
            }
            _ => return None,
        };
        jwk.get("alg").is_none_or(|a| a == key.alg().as_str()).then_some(key)
    }

    /// The key as a JWK (RFC 7517, 7518 §6, 8037).
    pub fn jwk(&self, kid: &str) -> serde_json::Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match self {
            PublicKey::Ed(k) => crate::jwk(kid, k),
            PublicKey::Rsa { n, e } => {
                serde_json::json!({ "kty": "RSA", "n": b64(n), "e": b64(e), "kid": kid, "alg": "RS256", "use": "sig" })
            }
            PublicKey::Ec(point) => {
                let (x, y) = point.get(1..).map(|xy| xy.split_at(xy.len() / 2)).unwrap_or_default();
                serde_json::json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y), "kid": kid, "alg": "ES256", "use": "sig" })
            }
        }
    }

    fn verify(&self, signed: &[u8], signature: &[u8]) -> Result<(), JwsError> {
        match self {
            PublicKey::Ed(k) => {
                let sig: [u8; 64] = signature.try_into().map_err(|_| JwsError::Signature)?;
                k.verify_strict(signed, &ed25519_dalek::Signature::from_bytes(&sig)).map_err(|_| JwsError::Signature)
            }
            PublicKey::Rsa { n, e } => lc::RsaPublicKeyComponents { n, e }
                .verify(&lc::RSA_PKCS1_2048_8192_SHA256, signed, signature)
                .map_err(|_| JwsError::Signature),
            PublicKey::Ec(point) => lc::UnparsedPublicKey::new(&lc::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, signature)
                .map_err(|_| JwsError::Signature),
        }
    }
}

/// The keys of a JWK Set (`{"keys": [...]}`) that [`PublicKey::from_jwk`] reads, with their
/// `kid`s; the others are passed over.
pub fn public_keys_of_jwks(jwks: &serde_json::Value) -> Vec<(String, PublicKey)> {
    let Some(keys) = jwks.get("keys").and_then(|k| k.as_array()) else { return Vec::new() };
    keys.iter().filter_map(|k| Some((k.get("kid")?.as_str()?.to_owned(), PublicKey::from_jwk(k)?))).collect()
}

/// Checks form and signature of a token with the key `key_for` gives for the header's `kid`;
/// the header's `alg` must be that key's algorithm. Returns the claims.
pub fn verify_with<C: for<'de> Deserialize<'de>>(
    token: &str,
    key_for: impl FnOnce(&str) -> Option<PublicKey>,
) -> Result<C, JwsError> {
    let (h, c, s) = split(token)?;
    let header: Header = decode_json(h)?;
    if header.crit.is_some() {
        return Err(JwsError::Malformed);
    }
    let alg = Alg::parse(&header.alg).ok_or(JwsError::Algorithm)?;
    let kid = header.kid.as_deref().ok_or(JwsError::UnknownKey)?;
    let key = key_for(kid).ok_or(JwsError::UnknownKey)?;
    if key.alg() != alg {
        return Err(JwsError::Algorithm);
    }
    key.verify(&token.as_bytes()[..h.len() + 1 + c.len()], &decode(s)?)?;
    decode_json(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn every_algorithm_signs_round_trips_through_storage_and_verifies() {
        for alg in Alg::ALL {
            let key = KeyPair::generate(alg).expect("generate");
            let stored = KeyPair::from_private_bytes(alg, &key.private_bytes().expect("bytes")).expect("read back");
            assert_eq!(stored.public(), key.public(), "{alg}");
            let claims = json!({"sub": "u", "alg": alg.as_str()});
            let token = stored.sign(&claims, "JWT", "k1").expect("sign");
            let known = |kid: &str| (kid == "k1").then(|| key.public());
            assert_eq!(verify_with::<Value>(&token, known), Ok(claims.clone()), "{alg}");
            // Another key of the same algorithm, an unknown kid and a tampered body are refused.
            let other = KeyPair::generate(alg).expect("generate").public();
            assert_eq!(verify_with::<Value>(&token, |_| Some(other.clone())), Err(JwsError::Signature), "{alg}");
            assert_eq!(verify_with::<Value>(&token, |_| None), Err(JwsError::UnknownKey));
            let (head, rest) = token.split_once('.').expect("dot");
            let body = URL_SAFE_NO_PAD.encode(json!({"sub": "admin"}).to_string());
            let forged = format!("{head}.{body}.{}", rest.rsplit_once('.').expect("dot").1);
            assert_eq!(verify_with::<Value>(&forged, known), Err(JwsError::Signature), "{alg}");
            // The same signature under another algorithm's name is refused before any check.
            for other in Alg::ALL.into_iter().filter(|a| *a != alg) {
                let header = URL_SAFE_NO_PAD.encode(json!({"alg": other.as_str(), "kid": "k1"}).to_string());
                let renamed = format!("{header}.{rest}");
                assert_eq!(verify_with::<Value>(&renamed, known), Err(JwsError::Algorithm), "{alg} as {other}");
            }
        }
    }

    #[test]
    fn a_stored_key_of_another_algorithm_or_garbage_is_refused() {
        let rsa = KeyPair::generate(Alg::Rs256).expect("generate").private_bytes().expect("bytes");
        assert_eq!(KeyPair::from_private_bytes(Alg::Es256, &rsa).err(), Some(KeyError::Rejected(Alg::Es256)));
        assert_eq!(KeyPair::from_private_bytes(Alg::EdDsa, &rsa).err(), Some(KeyError::Rejected(Alg::EdDsa)));
        assert_eq!(KeyPair::from_private_bytes(Alg::Rs256, b"nope").err(), Some(KeyError::Rejected(Alg::Rs256)));
    }

    #[test]
    fn jwks_carry_what_a_verifier_needs() {
        let rsa = KeyPair::generate(Alg::Rs256).expect("generate");
        let jwk = rsa.jwk("r");
        assert_eq!(
            (jwk["kty"].as_str(), jwk["alg"].as_str(), jwk["e"].as_str()),
            (Some("RSA"), Some("RS256"), Some("AQAB"))
        );
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().expect("n")).expect("b64");
        assert_eq!((n.len(), n[0] & 0x80), (256, 0x80), "2048 bits, no sign byte");
        let ec = KeyPair::generate(Alg::Es256).expect("generate").jwk("e");
        for c in ["x", "y"] {
            assert_eq!(URL_SAFE_NO_PAD.decode(ec[c].as_str().expect("coord")).expect("b64").len(), 32);
        }
        assert_eq!((ec["crv"].as_str(), ec["alg"].as_str()), (Some("P-256"), Some("ES256")));
        assert_eq!(KeyPair::generate(Alg::EdDsa).expect("generate").jwk("d")["crv"], "Ed25519");
    }

    #[test]
    fn a_jwks_reads_back_into_the_keys_it_was_made_of() {
        let keys: Vec<_> = Alg::ALL.into_iter().map(|a| KeyPair::generate(a).expect("generate")).collect();
        let mut set: Vec<Value> = keys.iter().enumerate().map(|(i, k)| k.jwk(&format!("k{i}"))).collect();
        // Passed over: a foreign curve, an encryption key, a key under another algorithm's name,
        // a short RSA modulus.
        set.push(json!({"kty": "OKP", "crv": "X25519", "kid": "x", "x": "AAAA"}));
        let mut enc = keys[1].jwk("enc");
        enc["use"] = json!("enc");
        let mut renamed = keys[0].jwk("renamed");
        renamed["alg"] = json!("PS256");
        let mut short = keys[0].jwk("short");
        short["n"] = json!(URL_SAFE_NO_PAD.encode([0xc5u8; 128]));
        set.extend([enc, renamed, short]);
        let read = public_keys_of_jwks(&json!({ "keys": set }));
        let expected: Vec<_> = keys.iter().enumerate().map(|(i, k)| (format!("k{i}"), k.public())).collect();
        assert_eq!(read, expected);
        assert!(public_keys_of_jwks(&json!({"nope": 1})).is_empty());
    }

    #[test]
    fn algorithm_names_parse_back() {
        for alg in Alg::ALL {
            assert_eq!(Alg::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(Alg::parse("none"), None);
        assert_eq!(Alg::parse("HS256"), None);
        assert_eq!(Alg::parse("rs256"), None);
    }
}
