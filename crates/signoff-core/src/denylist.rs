//! Denied access tokens, in memory until they expire: every validation asks it, so it must
//! answer fast, and a deployment that revokes a million tokens an hour must not pay for it
//! in memory.
//!
//! An entry is a 64-bit keyed hash of the token's `(iss, jti)` and its `exp`: 16 bytes, about
//! 36 bytes a token with the hash table's slack (`bench/run.sh` measures it, scenario 5), where
//! owned strings cost over 100. The key is random per process (SipHash-1-3, the standard
//! library's), so nobody can pick a `jti` that lands on another token's entry; ids are ours and
//! random anyway. Two different tokens share an entry with probability about n / 2^64 (one in
//! 18 trillion checks with a million entries), and then the innocent one is refused: a
//! collision can only ever deny, never admit.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{PoisonError, RwLock};

/// A hasher for keys that are already hashes: it passes the `u64` through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; fold anything else in all the same.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, Default)]
pub struct Denylist {
    key: RandomState,
    /// Keyed hash of `(iss, jti)` → `exp` (Unix seconds).
    entries: RwLock<HashMap<u64, i64, BuildHasherDefault<PassThrough>>>,
}

impl Denylist {
    fn id(&self, issuer: &str, jti: &str) -> u64 {
        self.key.hash_one((issuer, jti))
    }

    /// Denies the token `(issuer, jti)` until `exp`.
    pub fn deny(&self, issuer: &str, jti: &str, exp: i64) {
        let id = self.id(issuer, jti);
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let e = entries.entry(id).or_insert(exp);
        *e = (*e).max(exp);
    }

    pub fn is_denied(&self, issuer: &str, jti: &str) -> bool {
        let id = self.id(issuer, jti);
        self.entries.read().unwrap_or_else(PoisonError::into_inner).contains_key(&id)
    }

    /// Forgets the tokens that expired over a minute before `now` (they fail on `exp` anyway).
    pub fn forget_expired(&self, now: i64) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, exp| *exp + 60 > now);
        // Give the memory back after a wave of revocations has expired.
        if entries.capacity() > 1024 && entries.len() < entries.capacity() / 4 {
            entries.shrink_to_fit();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_by_issuer_and_id_until_expiry() {
        let d = Denylist::default();
        d.deny("https://a.example", "jti-1", 1_000);
        assert!(d.is_denied("https://a.example", "jti-1"));
        assert!(!d.is_denied("https://b.example", "jti-1"), "another issuer's token of the same id");
        assert!(!d.is_denied("https://a.example", "jti-2"));
        // The pair is hashed as a pair: moving characters between its parts is another token.
        assert!(!d.is_denied("https://a.example", "jti-"));
        d.deny("https://a.examplej", "ti-1", 1_000);
        assert_eq!(d.len(), 2);
        d.forget_expired(1_059);
        assert!(d.is_denied("https://a.example", "jti-1"), "kept a minute past exp");
        d.forget_expired(1_060);
        assert!(d.is_empty());
    }

    #[test]
    fn a_later_expiry_wins() {
        let d = Denylist::default();
        d.deny("i", "j", 2_000);
        d.deny("i", "j", 1_000);
        d.forget_expired(1_500);
        assert!(d.is_denied("i", "j"));
    }
}
