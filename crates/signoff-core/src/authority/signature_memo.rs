//! Access tokens whose signature already verified, and their claims: a token used again skips
//! the Ed25519 check (everything else is still checked on every use).
//!
//! Kept by the token's own bytes, compared in constant time, so a look-up costs a keyed hash of
//! the token's length and last bytes (its signature's) and one comparison, where the SHA-256 of
//! the whole token it was kept by before cost seven compressions (24,000 instructions, half of a
//! bearer request). Only tokens whose signature verified are kept, so an anonymous client cannot
//! fill it; it is bounded, emptied whenever the keyring is replaced (a withdrawn key's tokens
//! must not live on in it), and `generation` stops a check that began before an emptying from
//! inserting after it. It holds live tokens in this process's memory, as the requests that
//! carry them do.

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use std::hash::{BuildHasher, Hasher, RandomState};

use crate::secret::ct_eq_bytes;
use crate::token::Claims;

/// Above this many remembered signatures the memo starts over.
const CAPACITY: usize = 50_000;

/// How many of a token's last bytes place it (with its length).
const PLACED_BY: usize = 16;

#[derive(Default)]
pub(super) struct SignatureMemo {
    pub(super) generation: u64,
    tokens: HashTable<(Box<str>, Claims)>,
    keys: RandomState,
}

impl std::fmt::Debug for SignatureMemo {
    /// The tokens are bearer credentials: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureMemo").field("generation", &self.generation).field("tokens", &self.len()).finish()
    }
}

/// Where a token goes: a keyed hash of its length and last bytes.
fn place(keys: &RandomState, token: &str) -> u64 {
    let bytes = token.as_bytes();
    let mut h = keys.build_hasher();
    h.write_usize(bytes.len());
    h.write(&bytes[bytes.len().saturating_sub(PLACED_BY)..]);
    h.finish()
}

impl SignatureMemo {
    /// The claims of `token`, if its signature verified before.
    pub(super) fn get(&self, token: &str) -> Option<Claims> {
        let found =
            self.tokens.find(place(&self.keys, token), |(kept, _)| ct_eq_bytes(kept.as_bytes(), token.as_bytes()));
        found.map(|(_, claims)| claims.clone())
    }

    /// Remembers a token whose signature verified, unless the memo was emptied since
    /// `generation` was read.
    pub(super) fn insert(&mut self, generation: u64, token: &str, claims: Claims) {
        if generation != self.generation {
            return;
        }
        if self.tokens.len() >= CAPACITY {
            self.tokens.clear();
        }
        let keys = &self.keys;
        let same = |(kept, _): &(Box<str>, Claims)| ct_eq_bytes(kept.as_bytes(), token.as_bytes());
        let rehash = |(kept, _): &(Box<str>, Claims)| place(keys, kept);
        if let Entry::Vacant(vacant) = self.tokens.entry(place(keys, token), same, rehash) {
            vacant.insert((token.into(), claims));
        }
    }

    /// Forgets everything (the keyring was replaced, or the caches are distrusted).
    pub(super) fn clear(&mut self) {
        self.generation += 1;
        self.tokens.clear();
    }

    /// Forgets the tokens that expired before `now` (Unix seconds) by more than a minute.
    pub(super) fn forget_expired(&mut self, now: i64) {
        self.tokens.retain(|(_, claims)| claims.exp + 60 > now);
    }

    pub(super) fn len(&self) -> usize {
        self.tokens.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{SessionId, UserId};

    fn claims(exp: i64) -> Claims {
        Claims {
            iss: "https://auth.example".into(),
            sub: UserId::generate(),
            aud: "https://auth.example".into(),
            iat: exp - 900,
            exp,
            nbf: None,
            jti: "j".into(),
            sid: SessionId::generate(),
            tv: 0,
            client_id: None,
        }
    }

    #[test]
    fn only_the_same_bytes_find_a_token_and_an_emptying_wins() {
        let mut memo = SignatureMemo::default();
        let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbi0wMTIzNDU2Nzg5";
        let kept = claims(1_000);
        memo.insert(memo.generation, token, kept.clone());
        assert_eq!(memo.get(token), Some(kept.clone()));
        assert_eq!(memo.len(), 1);
        memo.insert(memo.generation, token, kept.clone());
        assert_eq!(memo.len(), 1, "kept once");
        // Same length and the same last bytes (the same place): each other byte still counts.
        for i in 0..token.len() - PLACED_BY {
            let mut other = token.as_bytes().to_vec();
            other[i] = if other[i] == b'A' { b'B' } else { b'A' };
            let other = String::from_utf8(other).expect("ASCII");
            assert_eq!(memo.get(&other), None, "byte {i} differs");
        }
        assert_eq!(memo.get(&token[..token.len() - 1]), None, "a prefix");

        let before = memo.generation;
        memo.clear();
        assert_eq!(memo.get(token), None, "emptied");
        memo.insert(before, token, kept.clone());
        assert_eq!(memo.get(token), None, "a check that began before the emptying inserts nothing");
        memo.insert(memo.generation, token, kept);
        memo.insert(memo.generation, "a.b.c", claims(5_000));
        memo.forget_expired(1_061);
        assert_eq!(memo.get(token), None, "expired more than a minute ago");
        assert!(memo.get("a.b.c").is_some());
    }
}
