//! Access tokens: compact JWTs signed with Ed25519 (`alg: EdDSA`).
//!
//! The JWS layer (one algorithm, pinned; see `signoff_jwt`) is shared with the verifier
//! library; this module adds the claims signoff issues, the keyring, and the checks of time,
//! issuer and audience. Whether a signed token is still honoured (denylist, live session,
//! token version) is the authority's business, not this module's.

use serde::{Deserialize, Serialize};
use signoff_jwt::JwsError;
use signoff_jwt::keys::{KeyError, KeyPair, PublicKey};
use std::fmt;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::clients::SigningAlg;
use crate::secret::{SessionId, UserId, random_bytes, random_id};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::seconds(10);

/// The claims signoff puts in every access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: UserId,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    pub sid: SessionId,
    pub tv: i64,
    /// The relying party it was issued to at the OpenID token endpoint (RFC 9068 §2.2); absent
    /// from signoff's own tokens. Such a token is the app's: UserInfo and the app's own APIs
    /// take it, signoff's gateway and logout do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Claims {
    pub fn new(
        iss: &str,
        aud: &str,
        user: &UserId,
        session: &SessionId,
        tv: i64,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Self {
        let iat = now.unix_timestamp();
        Self {
            iss: iss.to_owned(),
            sub: user.clone(),
            aud: aud.to_owned(),
            iat,
            exp: iat + ttl.whole_seconds(),
            nbf: None,
            jti: random_id(),
            sid: session.clone(),
            tv,
            client_id: None,
        }
    }
}

/// Why a token was refused. Callers answer every one the same way; this is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed")]
    Malformed,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("unknown key")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("lifetime longer than the configured one")]
    Lifetime,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("wrong issuer or audience")]
    Audience,
    #[error("revoked")]
    Revoked,
    /// The checks could not be made (the store is unreachable or saturated): refuse with 503,
    /// never accept, and never call a good token invalid.
    #[error("cannot check now")]
    Unavailable,
}

/// One signing key with its `kid`: Ed25519 for access tokens (and the logout tokens of clients
/// that ask for it), RSA or P-256 for the ID and logout tokens of clients that ask for those.
#[derive(Clone)]
pub struct SigningKeyPair {
    pub kid: String,
    key: Arc<KeyPair>,
    pub created_at: OffsetDateTime,
    /// When it stopped signing; it still verifies until its last token expires.
    pub retired_at: Option<OffsetDateTime>,
}

impl SigningKeyPair {
    /// A new Ed25519 key (the access-token key).
    pub fn generate(now: OffsetDateTime) -> Self {
        Self { kid: random_id(), key: Arc::new(KeyPair::ed25519(&random_bytes())), created_at: now, retired_at: None }
    }

    /// A new key of `alg`.
    pub fn generate_for(alg: SigningAlg, now: OffsetDateTime) -> Result<Self, KeyError> {
        let key = match alg {
            SigningAlg::EdDsa => KeyPair::ed25519(&random_bytes()),
            _ => KeyPair::generate(alg)?,
        };
        Ok(Self { kid: random_id(), key: Arc::new(key), created_at: now, retired_at: None })
    }

    /// A key read back from the store.
    pub fn from_parts(
        kid: String,
        alg: SigningAlg,
        private: &[u8],
        created_at: OffsetDateTime,
        retired_at: Option<OffsetDateTime>,
    ) -> Result<Self, KeyError> {
        Ok(Self { kid, key: Arc::new(KeyPair::from_private_bytes(alg, private)?), created_at, retired_at })
    }

    pub fn alg(&self) -> SigningAlg {
        self.key.alg()
    }

    /// The private key, for the store only: the 32-byte seed of an Ed25519 key, PKCS#8 (DER)
    /// for the others.
    pub fn private_bytes(&self) -> Result<Vec<u8>, KeyError> {
        self.key.private_bytes()
    }

    /// Signs `claims` with this key as a compact JWS of type `typ` (e.g. `logout+jwt`).
    pub fn sign_as<C: Serialize>(&self, claims: &C, typ: &str) -> Option<String> {
        self.key.sign(claims, typ, &self.kid)
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        self.key.jwk(&self.kid)
    }

    pub fn public(&self) -> PublicKey {
        self.key.public()
    }
}

impl fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyPair")
            .field("kid", &self.kid)
            .field("alg", &self.alg())
            .field("private", &"<redacted>")
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// The keys a process signs and verifies with.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    /// Ed25519 first, by algorithm, newest first; the first unretired key of an algorithm signs.
    keys: Vec<SigningKeyPair>,
}

impl Keyring {
    pub fn new(mut keys: Vec<SigningKeyPair>) -> Self {
        // The access-token keys first (JWKS readers that take the first key find one of them),
        // then by algorithm, each newest first.
        keys.sort_by_key(|k| (k.alg() != SigningAlg::EdDsa, k.alg(), std::cmp::Reverse(k.created_at)));
        Self { keys }
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    /// When each key (in the order of [`kids`](Self::kids)) was retired.
    pub fn retirements(&self) -> impl Iterator<Item = Option<OffsetDateTime>> + '_ {
        self.keys.iter().map(|k| k.retired_at)
    }

    /// The access-token key: the newest unretired Ed25519 key.
    pub fn signer(&self) -> Option<&SigningKeyPair> {
        self.signer_for(SigningAlg::EdDsa)
    }

    /// The newest unretired key of `alg`.
    pub fn signer_for(&self, alg: SigningAlg) -> Option<&SigningKeyPair> {
        self.keys.iter().find(|k| k.retired_at.is_none() && k.alg() == alg)
    }

    /// Keys that may still have valid tokens out: unretired, or retired less than `ttl` (plus
    /// leeway) ago.
    pub fn verifiers(&self, now: OffsetDateTime, ttl: Duration) -> impl Iterator<Item = &SigningKeyPair> {
        self.keys.iter().filter(move |k| k.retired_at.is_none_or(|at| now < at + ttl + LEEWAY))
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Claims) -> Option<String> {
        self.signer()?.sign_as(claims, "JWT")
    }

    /// Checks form, algorithm, key, signature, time and audience; returns the claims.
    pub fn verify(
        &self,
        token: &str,
        iss: &str,
        aud: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<Claims, TokenError> {
        let claims = self.verify_ignoring_time(token, iss, aud, now, ttl)?;
        let t = now.unix_timestamp();
        let leeway = LEEWAY.whole_seconds();
        // Saturating: claims are only read from tokens that verified, but extreme values must
        // still be refused rather than wrap (or panic) in this arithmetic.
        if claims.exp.saturating_add(leeway) <= t {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > t + leeway) || claims.iat > t + leeway {
            return Err(TokenError::NotYetValid);
        }
        // We never sign a longer lifetime: a longer one was not issued under this policy.
        if claims.exp.saturating_sub(claims.iat) > ttl.whole_seconds() + leeway {
            return Err(TokenError::Lifetime);
        }
        Ok(claims)
    }

    /// Form, algorithm, key, signature, issuer and audience, but not time: for a logout that
    /// presents an expired token of ours (its session still ends).
    pub fn verify_ignoring_time(
        &self,
        token: &str,
        iss: &str,
        aud: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<Claims, TokenError> {
        let claims = self.verify_signature(token, now, ttl)?;
        if claims.iss != iss || claims.aud != aud {
            return Err(TokenError::Audience);
        }
        Ok(claims)
    }

    fn verify_signature(&self, token: &str, now: OffsetDateTime, ttl: Duration) -> Result<Claims, TokenError> {
        // Access tokens are Ed25519 only: the JWS layer pins the algorithm, and only Ed25519 keys
        // are offered to it.
        let ed25519 =
            |kid: &str| self.verifiers(now, ttl).find(|k| k.kid == kid)?.key.as_ed25519().map(|k| k.verifying_key());
        signoff_jwt::verify(token, ed25519).map_err(|e| match e {
            JwsError::Malformed => TokenError::Malformed,
            JwsError::Algorithm => TokenError::Algorithm,
            JwsError::UnknownKey => TokenError::UnknownKey,
            JwsError::Signature => TokenError::Signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Keyring, Claims, OffsetDateTime) {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let ring = Keyring::new(vec![SigningKeyPair::generate(now)]);
        let claims = Claims::new(
            "https://auth.example",
            "https://auth.example",
            &UserId::generate(),
            &SessionId::generate(),
            3,
            now,
            Duration::minutes(15),
        );
        (ring, claims, now)
    }

    #[test]
    fn round_trip_and_refusals() {
        let (ring, claims, now) = setup();
        let ttl = Duration::minutes(15);
        let token = ring.sign(&claims).unwrap();
        let iss = "https://auth.example";
        assert_eq!(ring.verify(&token, iss, iss, now, ttl), Ok(claims.clone()));
        assert_eq!(ring.verify(&token, iss, "other", now, ttl), Err(TokenError::Audience));
        assert_eq!(ring.verify(&token, iss, iss, now + Duration::minutes(16), ttl), Err(TokenError::Expired));
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 5, 'A');
        assert!(ring.verify(&tampered, iss, iss, now, ttl).is_err());
        let other = Keyring::new(vec![SigningKeyPair::generate(now)]);
        assert_eq!(other.verify(&token, iss, iss, now, ttl), Err(TokenError::UnknownKey));
        assert_eq!(ring.verify(&format!("{token}="), iss, iss, now, ttl), Err(TokenError::Malformed));
        assert_eq!(ring.verify("a.b", iss, iss, now, ttl), Err(TokenError::Malformed));
    }

    #[test]
    fn a_lifetime_beyond_the_configured_one_is_refused() {
        let (ring, claims, now) = setup();
        let iss = "https://auth.example";
        let token = ring.sign(&claims).unwrap();
        assert!(ring.verify(&token, iss, iss, now, Duration::minutes(15)).is_ok());
        assert_eq!(ring.verify(&token, iss, iss, now, Duration::minutes(5)), Err(TokenError::Lifetime));
        let mut long = claims.clone();
        long.exp = long.iat + Duration::days(365).whole_seconds();
        let token = ring.sign(&long).unwrap();
        assert_eq!(ring.verify(&token, iss, iss, now, Duration::minutes(15)), Err(TokenError::Lifetime));
    }

    /// Found while writing the `jwt` fuzz target (its corpus keeps such a token): extreme times overflowed the checks' arithmetic (a
    /// panic in debug builds, a wrap in release ones).
    #[test]
    fn extreme_times_are_refused_without_overflow() {
        let (ring, claims, now) = setup();
        let (iss, ttl) = ("https://auth.example", Duration::minutes(15));
        for (iat, exp) in [(i64::MIN, i64::MAX), (claims.iat, i64::MAX), (i64::MIN, claims.exp), (0, i64::MAX - 5)] {
            let token = ring.sign(&Claims { iat, exp, ..claims.clone() }).unwrap();
            assert!(ring.verify(&token, iss, iss, now, ttl).is_err(), "iat {iat}, exp {exp}");
        }
    }

    #[test]
    fn retired_keys_verify_until_their_tokens_expire_and_do_not_sign() {
        let (ring, claims, now) = setup();
        let ttl = Duration::minutes(15);
        let token = ring.sign(&claims).unwrap();
        let mut old = ring.keys[0].clone();
        old.retired_at = Some(now);
        let new = SigningKeyPair::generate(now + Duration::seconds(1));
        let ring = Keyring::new(vec![old, new.clone()]);
        assert_eq!(ring.signer().map(|k| &k.kid), Some(&new.kid));
        let iss = "https://auth.example";
        assert!(ring.verify(&token, iss, iss, now + Duration::minutes(5), ttl).is_ok());
        assert_eq!(ring.verifiers(now + Duration::minutes(16), ttl).count(), 1);
    }
}
