//! Lookup: the live session behind a cookie, from the cache or read through to the store.

use std::sync::Arc;

use super::{Authority, BatchKind, ClientInfo};
use crate::audit::{Actor, AuditKind};
use crate::error::CoreError;
use crate::secret::{SessionId, SessionSecret};
use crate::session_cache::Entry;
use crate::store::{Session, SessionFilter, StoreError, User};

/// An authenticated session with its user and the secret that proved it.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub session: Arc<Session>,
    pub user: Arc<User>,
    pub secret: SessionSecret,
}

impl SessionContext {
    pub fn csrf_token(&self) -> String {
        self.secret.csrf_token()
    }
}

impl Authority {
    /// The live session behind a cookie secret, recording activity (at most once per
    /// `touch_interval()`). Expired sessions are ended on sight.
    pub async fn authenticate(&self, secret: &SessionSecret) -> Result<Option<SessionContext>, CoreError> {
        self.lookup(secret, true).await
    }

    /// Like [`authenticate`](Self::authenticate) but without recording activity.
    pub async fn peek(&self, secret: &SessionSecret) -> Result<Option<SessionContext>, CoreError> {
        self.lookup(secret, false).await
    }

    pub(super) async fn lookup(
        &self,
        secret: &SessionSecret,
        touch: bool,
    ) -> Result<Option<SessionContext>, CoreError> {
        self.vouch().await?;
        let (hash, cached) = self.sessions.find(secret, || secret.hash());
        let now = self.now();
        let found = match cached {
            // A cached entry may be stale about activity seen by another node: before calling a
            // cached session expired, ask the store.
            Some(hit) if self.is_live(&hit.0, now) => Some(hit),
            _ => self.read_through(self.store.session_by_hash(&hash)).await?,
        };
        let Some((mut session, user)) = found else {
            return Ok(None);
        };
        if !self.is_live(&session, now) {
            // Boxed: a batch's state is large, and every lookup's future would carry it.
            Box::pin(self.end_lapsed(&session, &user)).await?;
            return Ok(None);
        }
        if touch && now - session.last_active_at >= self.policy.touch_interval() {
            self.store.touch_session(&session.id, now).await?;
            self.sessions.touch(&session.id, now);
            Arc::make_mut(&mut session).last_active_at = now;
        }
        Ok(Some(SessionContext { session, user, secret: secret.clone() }))
    }

    /// Ends a session found lapsed (as expiry, with its audit event).
    async fn end_lapsed(&self, session: &Session, user: &User) -> Result<(), CoreError> {
        let event = self.event(AuditKind::SessionExpired, Actor::Policy, &ClientInfo::default()).reason("expired");
        let mut batch = self.batch_for(&[&user.id]).await?;
        batch.kind = BatchKind::Expiry;
        batch.end(SessionFilter::Lapsed { user: &user.id, id: &session.id }, &event).await?;
        batch.commit().await
    }

    /// Whether the session with this public id is live (for a stream that must say when it
    /// ends, whatever becomes of the credential that opened it).
    pub async fn session_lives(&self, id: &SessionId) -> Result<bool, CoreError> {
        let now = self.now();
        Ok(self.session_by_id(id).await?.is_some_and(|(s, _)| self.is_live(&s, now)))
    }

    /// A session and its user by the session's public id, from the cache when it can.
    pub(crate) async fn session_by_id(&self, id: &SessionId) -> Result<Option<Entry>, CoreError> {
        self.vouch().await?;
        self.vouched_session_by_id(id, self.now()).await
    }

    /// [`session_by_id`](Self::session_by_id) for a caller that has just vouched, live at `now`.
    pub(crate) async fn vouched_session_by_id(
        &self,
        id: &SessionId,
        now: time::OffsetDateTime,
    ) -> Result<Option<Entry>, CoreError> {
        if let Some(hit) = self.sessions.get_by_id(id).filter(|(s, _)| self.is_live(s, now)) {
            return Ok(Some(hit));
        }
        self.read_through(self.store.session_by_id(id)).await
    }

    /// Reads a session from the store and caches it, unless a removal raced the read (see
    /// [`SessionCache::insert`]). `read` must be a lazy future: the generation is taken before
    /// it is first polled, so before the store is asked.
    pub(super) async fn read_through(
        &self,
        read: impl std::future::Future<Output = Result<Option<(Session, User)>, StoreError>>,
    ) -> Result<Option<Entry>, CoreError> {
        let generation = self.sessions.generation();
        let found = read.await?.map(|(s, u)| (Arc::new(s), Arc::new(u)));
        if let Some((s, u)) = &found {
            self.sessions.insert(generation, s, u);
        }
        Ok(found)
    }
}
