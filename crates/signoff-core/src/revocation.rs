//! Announcing ended sessions to whoever watches them (open `/auth/events` streams).
//!
//! [`Authority`](crate::Authority) publishes every ended session here right after the store
//! commits, whatever ended it. Watchers register per session id, so publishing costs one map
//! look-up per ended session, however many streams are open. This hub is in-process; a
//! cross-node bus relays remote revocations into the same `publish`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::secret::{SessionId, UserId};

/// One ended session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub session_id: SessionId,
    pub user_id: UserId,
    /// Why, in a stable word (`logout`, `revoked`, `password_changed`, `expired`, …).
    pub reason: String,
    pub at: OffsetDateTime,
}

/// One entry of the revocation feed: anything that stops a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEntry {
    /// A session ended.
    Session(Revocation),
    /// An access token was revoked; it stays denied until `exp` (Unix seconds).
    Token { issuer: String, jti: String, exp: i64 },
    /// A user's token version moved on; older access tokens are dead.
    TokenVersion { user_id: UserId, version: i64 },
    /// The signing keys changed (a rotation, or `kid` withdrawn): every process reloads them.
    Keys { kid: String },
}

#[derive(Debug, Default)]
pub struct RevocationHub {
    watchers: Mutex<HashMap<SessionId, Vec<oneshot::Sender<Revocation>>>>,
}

impl RevocationHub {
    /// Resolves when `session` ends (the sender is dropped unanswered only if the hub is).
    /// `None` when the session already has `max` open watchers.
    pub fn watch(&self, session: &SessionId, max: usize) -> Option<oneshot::Receiver<Revocation>> {
        let (tx, rx) = oneshot::channel();
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        let list = watchers.entry(session.clone()).or_default();
        list.retain(|w| !w.is_closed());
        if list.len() >= max {
            return None;
        }
        list.push(tx);
        Some(rx)
    }

    pub fn publish(&self, revoked: &[Revocation]) {
        if revoked.is_empty() {
            return;
        }
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        for r in revoked {
            for w in watchers.remove(&r.session_id).unwrap_or_default() {
                let _ = w.send(r.clone());
            }
        }
    }

    /// Moves the watchers of a session that was given a new id to that id.
    pub fn rekey(&self, old: &SessionId, new: &SessionId) {
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = watchers.remove(old) {
            watchers.entry(new.clone()).or_default().extend(list);
        }
    }

    /// How many sessions have open watchers (for metrics and tests).
    pub fn watched_sessions(&self) -> usize {
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        watchers.retain(|_, list| {
            list.retain(|w| !w.is_closed());
            !list.is_empty()
        });
        watchers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watchers_of_ended_sessions_are_told_and_others_are_not() {
        let hub = RevocationHub::default();
        let a = SessionId::generate();
        let b = SessionId::generate();
        let (wa1, wa2, mut wb) = (hub.watch(&a, 2).unwrap(), hub.watch(&a, 2).unwrap(), hub.watch(&b, 2).unwrap());
        assert!(hub.watch(&a, 2).is_none(), "at most two watchers per session");
        let r = Revocation {
            session_id: a.clone(),
            user_id: UserId::generate(),
            reason: "logout".into(),
            at: OffsetDateTime::UNIX_EPOCH,
        };
        hub.publish(std::slice::from_ref(&r));
        assert_eq!(wa1.await.unwrap(), r);
        assert_eq!(wa2.await.unwrap(), r);
        assert!(wb.try_recv().is_err());
        assert_eq!(hub.watched_sessions(), 1);
    }
}
