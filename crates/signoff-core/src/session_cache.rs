//! Live sessions in memory, so validating a cookie or an access token's session needs no store
//! round trip. The cache is kept exact by the events that end sessions: the authority removes
//! an entry in the same step that announces the session's end (in this process at commit,
//! from other processes through the revocation feed).
//!
//! A look-up that misses reads the store and inserts what it read, but only if no removal
//! happened in between (a generation counter): otherwise a logout racing the read could be
//! undone by inserting the session it just ended.
//!
//! Beside the sessions, a memo of hashes by the secret's tag (BLAKE3 keyed by a random key of
//! this cache, `MemoTag`): a request that presents a cookie which found a cached session before
//! is looked up without the SHA-256 the store's hash takes (two compressions, a fifth of a
//! cookie request's instructions, against one for the tag). It is the memo of a pure function,
//! so an entry never says more than hashing would, whatever became of the session; the session
//! itself is found by the hash as always. Only secrets that found a cached session are kept (an
//! anonymous client cannot fill it), they leave with their session, and the memo is bounded with
//! the cache. It holds tags, not secrets: nothing in it can be presented as a cookie.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use time::OffsetDateTime;

use crate::secret::{MemoTag, SecretHash, SessionId, SessionSecret, TagKey};
use crate::store::{Session, User};

/// Above this many entries the cache starts over (a crude bound; entries reload on demand).
const CAPACITY: usize = 100_000;

/// A cached session and its user, shared with the requests that use them (a hit clones two
/// pointers, not the records).
pub type Entry = (Arc<Session>, Arc<User>);

#[derive(Debug, Default)]
struct Inner {
    by_hash: HashMap<SecretHash, Entry>,
    by_id: HashMap<SessionId, SecretHash>,
    /// The hash of each secret that found a cached session, by the secret's tag, and the way
    /// back.
    memo: HashMap<MemoTag, SecretHash>,
    memo_tags: HashMap<SecretHash, MemoTag>,
    /// Bumped by every removal.
    generation: u64,
}

impl Inner {
    fn forget(&mut self, hash: &SecretHash) {
        self.by_hash.remove(hash);
        if let Some(tag) = self.memo_tags.remove(hash) {
            self.memo.remove(&tag);
        }
    }

    fn clear(&mut self) {
        self.by_hash.clear();
        self.by_id.clear();
        self.memo.clear();
        self.memo_tags.clear();
    }
}

#[derive(Debug, Default)]
pub struct SessionCache {
    inner: Mutex<Inner>,
    /// The key of the memo's tags.
    tags: TagKey,
}

impl SessionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where removals stand; pass it back to [`insert`](Self::insert) after reading the store.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub fn get(&self, hash: &SecretHash) -> Option<Entry> {
        self.lock().by_hash.get(hash).cloned()
    }

    /// The cached session of a presented secret, by its hash: the memo's, or `hash_of`'s (the
    /// secret's hash, called outside the lock). Returns the hash too, for a look-up in the store
    /// on a miss.
    pub(crate) fn find(
        &self,
        secret: &SessionSecret,
        hash_of: impl FnOnce() -> SecretHash,
    ) -> (SecretHash, Option<Entry>) {
        let tag = secret.tag(&self.tags);
        {
            let inner = self.lock();
            if let Some(hash) = inner.memo.get(&tag).copied() {
                return (hash, inner.by_hash.get(&hash).cloned());
            }
        }
        let hash = hash_of();
        let mut inner = self.lock();
        let hit = inner.by_hash.get(&hash).cloned();
        if hit.is_some() {
            inner.memo.insert(tag, hash);
            inner.memo_tags.insert(hash, tag);
        }
        (hash, hit)
    }

    pub fn get_by_id(&self, id: &SessionId) -> Option<Entry> {
        let inner = self.lock();
        let hash = inner.by_id.get(id)?;
        inner.by_hash.get(hash).cloned()
    }

    /// Caches what the store said, unless something was removed since `generation`.
    pub fn insert(&self, generation: u64, session: &Arc<Session>, user: &Arc<User>) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.by_hash.len() >= CAPACITY {
            inner.clear();
        }
        inner.by_id.insert(session.id.clone(), session.secret_hash);
        inner.by_hash.insert(session.secret_hash, (Arc::clone(session), Arc::clone(user)));
    }

    pub fn touch(&self, id: &SessionId, at: OffsetDateTime) {
        let mut inner = self.lock();
        let Some(hash) = inner.by_id.get(id).copied() else { return };
        if let Some((s, _)) = inner.by_hash.get_mut(&hash) {
            // Copies the record only if a request still holds it (once per touch interval).
            let s = Arc::make_mut(s);
            s.last_active_at = s.last_active_at.max(at);
        }
    }

    /// How many sessions are cached.
    pub fn len(&self) -> usize {
        self.lock().by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything (a change this process cannot interpret came by): validation reads the
    /// store again until the cache refills.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.clear();
    }

    /// Forgets sessions that ended (or changed id).
    pub fn remove<'a>(&self, ids: impl IntoIterator<Item = &'a SessionId>) {
        let mut inner = self.lock();
        inner.generation += 1;
        for id in ids {
            if let Some(hash) = inner.by_id.remove(id) {
                inner.forget(&hash);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::UserId;

    fn session() -> (Arc<Session>, Arc<User>) {
        let now = OffsetDateTime::UNIX_EPOCH;
        let user = User { id: UserId::generate(), email: "a@b.c".into(), token_version: 0, created_at: now };
        let session = Session {
            id: SessionId::generate(),
            user_id: user.id.clone(),
            secret_hash: SecretHash::of(b"t", &crate::secret::random_bytes::<32>()),
            created_at: now,
            last_active_at: now,
            expires_at: now,
            ip: None,
            user_agent: None,
            series: None,
            signin: crate::secret::SigninId::generate(),
            authenticated_at: now,
        };
        (Arc::new(session), Arc::new(user))
    }

    #[test]
    fn a_removal_between_read_and_insert_wins() {
        let cache = SessionCache::default();
        let (s, u) = session();
        let seen = cache.generation();
        cache.remove([&s.id]);
        cache.insert(seen, &s, &u);
        assert!(cache.get(&s.secret_hash).is_none(), "a stale read must not resurrect an ended session");
        cache.insert(cache.generation(), &s, &u);
        assert!(cache.get_by_id(&s.id).is_some());
        cache.remove([&s.id]);
        assert!(cache.get(&s.secret_hash).is_none());
    }

    #[test]
    fn the_memo_hashes_a_secret_once_while_its_session_is_cached() {
        use crate::secret::SessionSecret;
        use std::cell::Cell;
        let cache = SessionCache::default();
        let (s, u) = session();
        let secret = SessionSecret::generate();
        let s = Arc::new(Session { secret_hash: secret.hash(), ..Session::clone(&s) });
        let hashed = Cell::new(0);
        let find = |secret: &SessionSecret| {
            cache.find(secret, || {
                hashed.set(hashed.get() + 1);
                secret.hash()
            })
        };

        let (hash, hit) = find(&secret);
        assert_eq!((hash, hit.is_none(), hashed.get()), (secret.hash(), true, 1), "not cached: hashed");
        let (_, hit) = find(&secret);
        assert!(hit.is_none());
        assert_eq!(hashed.get(), 2, "a secret that found nothing is not kept");

        cache.insert(cache.generation(), &s, &u);
        let (hash, hit) = find(&secret);
        assert_eq!(
            (hash, hit.map(|(found, _)| found.id.clone()), hashed.get()),
            (secret.hash(), Some(s.id.clone()), 3)
        );
        let (hash, hit) = find(&secret);
        assert_eq!((hash, hit.is_some(), hashed.get()), (secret.hash(), true, 3), "found again without hashing");
        let other = SessionSecret::generate();
        let (_, hit) = find(&other);
        assert!(hit.is_none(), "another secret finds nothing");
        assert_eq!(hashed.get(), 4);

        cache.remove([&s.id]);
        let (_, hit) = find(&secret);
        assert!(hit.is_none(), "the session ended");
        assert_eq!(hashed.get(), 5, "its secret left the memo with it");
        cache.insert(cache.generation(), &s, &u);
        find(&secret);
        cache.clear();
        let (_, hit) = find(&secret);
        assert!(hit.is_none());
        assert_eq!(hashed.get(), 7, "cleared with the cache");
    }
}
