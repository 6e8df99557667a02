//! Live sessions in memory, so validating a cookie or an access token's session needs no store
//! round trip. The cache is kept exact by the events that end sessions: the authority removes
//! an entry in the same step that announces the session's end (in this process at commit,
//! from other processes through the revocation feed).
//!
//! A look-up that misses reads the store and inserts what it read, but only if no removal
//! happened in between (a generation counter): otherwise a logout racing the read could be
//! undone by inserting the session it just ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use time::OffsetDateTime;

use crate::secret::{SecretHash, SessionId};
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
    /// Bumped by every removal.
    generation: u64,
}

#[derive(Debug, Default)]
pub struct SessionCache {
    inner: Mutex<Inner>,
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
            inner.by_hash.clear();
            inner.by_id.clear();
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
        inner.by_hash.clear();
        inner.by_id.clear();
    }

    /// Forgets sessions that ended (or changed id).
    pub fn remove<'a>(&self, ids: impl IntoIterator<Item = &'a SessionId>) {
        let mut inner = self.lock();
        inner.generation += 1;
        for id in ids {
            if let Some(hash) = inner.by_id.remove(id) {
                inner.by_hash.remove(&hash);
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
}
