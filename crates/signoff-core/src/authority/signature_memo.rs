//! Access tokens whose signature already verified, and their claims: a token used again skips
//! the Ed25519 check (everything else is still checked on every use).
//!
//! Kept by the token's tag (BLAKE3 keyed by a random key of this memo, `MemoTag`): seven BLAKE3
//! compressions for a token where the SHA-256 it was kept by before took seven SHA-256 ones
//! (24,000 instructions, half of a bearer request). Only tokens whose signature verified are
//! kept, so an anonymous client cannot fill it; it is bounded, emptied whenever the keyring is
//! replaced (a withdrawn key's tokens must not live on in it), and `generation` stops a check
//! that began before an emptying from inserting after it. It holds tags, not tokens: nothing in
//! it can be presented.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::secret::{MemoTag, TagKey};
use crate::token::Claims;

/// Above this many remembered signatures the memo starts over.
const CAPACITY: usize = 50_000;

#[derive(Default)]
pub(super) struct SignatureMemo {
    /// The key of the tags (outside the lock: a tag is computed before it is taken).
    tags: TagKey,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    claims: HashMap<MemoTag, Claims>,
}

impl std::fmt::Debug for SignatureMemo {
    /// The claims name users and sessions: a count is enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("SignatureMemo")
            .field("generation", &inner.generation)
            .field("tokens", &inner.claims.len())
            .finish()
    }
}

/// A look-up: the token's tag and the memo's generation when it was made, to
/// [`insert`](SignatureMemo::insert) by once the signature has verified.
pub(super) struct Looked {
    tag: MemoTag,
    generation: u64,
}

impl SignatureMemo {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The claims of `token` if its signature verified before, and the look-up to insert by.
    pub(super) fn get(&self, token: &str) -> (Looked, Option<Claims>) {
        let tag = MemoTag::of(&self.tags, token.as_bytes());
        let inner = self.lock();
        (Looked { tag, generation: inner.generation }, inner.claims.get(&tag).cloned())
    }

    /// Remembers a token whose signature verified, unless the memo was emptied since it was
    /// looked up.
    pub(super) fn insert(&self, looked: Looked, claims: Claims) {
        let mut inner = self.lock();
        if looked.generation != inner.generation {
            return;
        }
        if inner.claims.len() >= CAPACITY {
            inner.claims.clear();
        }
        inner.claims.insert(looked.tag, claims);
    }

    /// Forgets everything (the caches are distrusted).
    pub(super) fn clear(&self) {
        self.clear_after(|| {});
    }

    /// Runs `replace` (the keyring's replacement) and forgets everything, holding the memo
    /// meanwhile: a check that looked up before cannot insert after.
    pub(super) fn clear_after(&self, replace: impl FnOnce()) {
        let mut inner = self.lock();
        replace();
        inner.generation += 1;
        inner.claims.clear();
    }

    /// Forgets the tokens that expired before `now` (Unix seconds) by more than a minute.
    pub(super) fn forget_expired(&self, now: i64) {
        self.lock().claims.retain(|_, claims| claims.exp + 60 > now);
    }

    pub(super) fn len(&self) -> usize {
        self.lock().claims.len()
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
        let memo = SignatureMemo::default();
        let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbi0wMTIzNDU2Nzg5";
        let kept = claims(1_000);
        let keep = |token: &str, claims: Claims| memo.insert(memo.get(token).0, claims);
        keep(token, kept.clone());
        assert_eq!(memo.get(token).1, Some(kept.clone()));
        keep(token, kept.clone());
        assert_eq!(memo.len(), 1, "kept once");
        for i in 0..token.len() {
            let mut other = token.as_bytes().to_vec();
            other[i] = if other[i] == b'A' { b'B' } else { b'A' };
            let other = String::from_utf8(other).expect("ASCII");
            assert_eq!(memo.get(&other).1, None, "byte {i} differs");
        }
        assert_eq!(memo.get(&token[..token.len() - 1]).1, None, "a prefix");
        let (other, _) = SignatureMemo::default().get(token);
        assert!(other.tag != memo.get(token).0.tag, "each memo tags under a key of its own");

        let (before, _) = memo.get(token);
        memo.clear_after(|| {});
        assert_eq!(memo.get(token).1, None, "emptied");
        memo.insert(before, kept.clone());
        assert_eq!(memo.get(token).1, None, "a check that looked up before the emptying inserts nothing");
        keep(token, kept);
        keep("a.b.c", claims(5_000));
        memo.forget_expired(1_061);
        assert_eq!(memo.get(token).1, None, "expired more than a minute ago");
        assert!(memo.get("a.b.c").1.is_some());
    }
}
