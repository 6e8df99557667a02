//! Secrets and identifiers.
//!
//! A session is known by two values: a public [`SessionId`] (shown in session lists, used to
//! revoke one session) and a [`SessionSecret`] that only the browser holds, in its cookie. The
//! store keeps the secret's SHA-256 [`SecretHash`], never the secret, so a leaked database does
//! not yield usable cookies. The CSRF token is derived from the secret, so it needs no storage
//! and dies with the session.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

const SECRET_LEN: usize = 32;
/// Length of a 32-byte secret in unpadded base64url.
pub const ENCODED_SECRET_LEN: usize = 43;

/// Fills `N` bytes from the operating system's CSPRNG.
///
/// Failing to obtain randomness is not recoverable for an auth service: better to stop than
/// to hand out guessable secrets.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// An opaque public identifier: 128 random bits in base64url.
pub fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                Self(random_id())
            }
            pub fn from_string(s: String) -> Self {
                Self(s)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(
    /// A user's public id.
    UserId
);
id_type!(
    /// A session's public id; it grants nothing by itself.
    SessionId
);
id_type!(
    /// A browser's sign-in: made when a password signs it in, kept when its session is rotated
    /// (a new [`SessionId`]) and by the sessions its remember-me series resumes. OpenID Connect
    /// calls it `sid`: what the relying parties' sessions are keyed on, so a password change
    /// that rotates the session logs the browser out of no app.
    SigninId
);

/// 256 random bits, shown to their holder once as base64url and stored only as a labelled hash
/// (refresh tokens use it as is).
#[derive(Clone)]
pub struct Secret([u8; SECRET_LEN]);

impl Secret {
    pub fn generate() -> Self {
        Self(random_bytes())
    }

    /// Parses the base64url form (text or its bytes); anything that is not exactly 32 bytes is
    /// `None`.
    pub fn parse(encoded: impl AsRef<[u8]>) -> Option<Self> {
        let encoded = encoded.as_ref();
        if encoded.len() != ENCODED_SECRET_LEN {
            return None;
        }
        // Decoded in place: 43 characters decode to 32 bytes, and the decoder asks room for 33.
        let mut bytes = [0u8; SECRET_LEN + 1];
        let n = URL_SAFE_NO_PAD.decode_slice(encoded, &mut bytes).ok()?;
        Some(Self(bytes.get(..n)?.try_into().ok()?))
    }

    /// The form given to the holder. Only the HTTP edge should call this.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn hash(&self, label: &[u8]) -> SecretHash {
        SecretHash::of(label, &self.0)
    }

    /// A secret made elsewhere (derived from other secrets); the caller vouches for its entropy.
    pub(crate) fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        Self(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The bearer secret of a session, as carried by the session cookie.
#[derive(Clone, Debug)]
pub struct SessionSecret(Secret);

impl SessionSecret {
    pub fn generate() -> Self {
        Self(Secret::generate())
    }

    /// Parses the cookie form; anything that is not exactly 32 bytes of base64url is `None`.
    pub fn parse(encoded: impl AsRef<[u8]>) -> Option<Self> {
        Secret::parse(encoded).map(Self)
    }

    /// The cookie form. Only the HTTP edge should call this, to set the cookie.
    pub fn expose(&self) -> String {
        self.0.expose()
    }

    /// What the store keeps.
    pub fn hash(&self) -> SecretHash {
        self.0.hash(b"signoff/session/v1")
    }

    /// The secret's tag under `key`, for the session cache's memo of hashes (`session_cache`).
    pub(crate) fn tag(&self, key: &TagKey) -> MemoTag {
        MemoTag::of(key, &(self.0).0)
    }

    /// The session's CSRF token: derived from the secret under another label, so it can be put
    /// in pages without revealing the secret and needs no storage of its own.
    pub fn csrf_token(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.hash(b"signoff/csrf/v1").0)
    }

    /// Compares a presented CSRF token with this session's, in constant time.
    pub fn csrf_token_matches(&self, presented: &str) -> bool {
        ct_eq_str(&self.csrf_token(), presented)
    }
}

/// A keyed one-way tag of a credential: BLAKE3's keyed hash under a key of this process
/// ([`TagKey`]). The in-memory memos (`session_cache`, `authority::signature_memo`) are keyed by
/// tags, not by the credentials, so what they hold cannot be presented by anyone who reads the
/// process's memory, and a tag costs one BLAKE3 compression per 64 bytes where SHA-256 (what the
/// store keeps) costs two for a secret and seven for an access token. Equality in constant time.
#[derive(Clone, Copy)]
pub(crate) struct MemoTag([u8; 32]);

impl MemoTag {
    pub(crate) fn of(key: &TagKey, credential: &[u8]) -> Self {
        Self(*blake3::keyed_hash(&key.0, credential).as_bytes())
    }
}

impl std::hash::Hash for MemoTag {
    /// Eight bytes of a keyed hash place it in a map as well as all 32.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(first_word(&self.0));
    }
}

impl PartialEq for MemoTag {
    fn eq(&self, other: &Self) -> bool {
        ct_eq_bytes(&self.0, &other.0)
    }
}

impl Eq for MemoTag {}

impl fmt::Debug for MemoTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoTag(<redacted>)")
    }
}

/// The random key of one memo's tags ([`MemoTag`]); it never leaves the process.
pub(crate) struct TagKey([u8; 32]);

impl Default for TagKey {
    fn default() -> Self {
        Self(random_bytes::<32>())
    }
}

impl fmt::Debug for TagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TagKey(<redacted>)")
    }
}

/// The first eight bytes as a word.
fn first_word(bytes: &[u8; 32]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

/// SHA-256 of a secret under a domain-separation label.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Lower-case hex (fingerprints in outbox rows).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads [`hex`](Self::hex)'s form back.
    pub fn from_hex(hex: &str) -> Option<Self> {
        // Exactly what `hex` writes: `from_str_radix` alone would also take a sign (`+f`).
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }

    pub fn of(label: &[u8], secret: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update((label.len() as u64).to_be_bytes());
        h.update(label);
        h.update(secret);
        Self(h.finalize().into())
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    /// Constant-time equality, for comparing a presented secret's hash with a stored one.
    pub fn ct_eq(&self, other: &Self) -> bool {
        ct_eq_bytes(&self.0, &other.0)
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

/// Constant-time string equality (length is not hidden; every token we compare has a fixed
/// public length).
pub fn ct_eq_str(a: &str, b: &str) -> bool {
    ct_eq_bytes(a.as_bytes(), b.as_bytes())
}

/// Constant-time equality of byte strings (length is not hidden), a word at a time: every
/// byte is looked at whatever the others hold, and only the result decides.
pub fn ct_eq_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (words_a, words_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut diff = 0u64;
    for (x, y) in words_a.remainder().iter().zip(words_b.remainder()) {
        diff |= std::hint::black_box(u64::from(x ^ y));
    }
    for (x, y) in words_a.zip(words_b) {
        let (mut wx, mut wy) = ([0u8; 8], [0u8; 8]);
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        diff |= std::hint::black_box(u64::from_le_bytes(wx) ^ u64::from_le_bytes(wy));
    }
    bool::from(std::hint::black_box(diff).ct_eq(&0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_a_word_at_a_time_sees_every_byte() {
        let a = random_bytes::<32>();
        assert!(SecretHash(a).ct_eq(&SecretHash(a)));
        assert!(MemoTag(a) == MemoTag(a));
        for i in 0..32 {
            for bit in [0x01, 0x80] {
                let mut b = a;
                b[i] ^= bit;
                assert!(!SecretHash(a).ct_eq(&SecretHash(b)), "byte {i}, bit {bit:#x}");
                assert!(MemoTag(a) != MemoTag(b), "byte {i}, bit {bit:#x}");
            }
        }
    }

    #[test]
    fn secrets_round_trip_and_reject_garbage() {
        let s = SessionSecret::generate();
        let enc = s.expose();
        assert_eq!(enc.len(), ENCODED_SECRET_LEN);
        let back = SessionSecret::parse(&enc).map(|b| b.hash());
        assert_eq!(back, Some(s.hash()));
        assert!(SessionSecret::parse("short").is_none());
        assert!(SessionSecret::parse("!".repeat(ENCODED_SECRET_LEN)).is_none());
        assert!(SessionSecret::parse(format!("{enc}A")).is_none());
    }

    #[test]
    fn csrf_token_differs_from_secret_and_hash() {
        let s = SessionSecret::generate();
        assert_ne!(s.csrf_token(), s.expose());
        assert!(s.csrf_token_matches(&s.csrf_token()));
        assert!(!s.csrf_token_matches(&SessionSecret::generate().csrf_token()));
        assert!(!s.csrf_token_matches(""));
    }
}
