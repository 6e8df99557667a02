//! Announcing ended sessions to whoever watches them (open `/auth/events` streams).
//!
//! [`Authority`](crate::Authority) publishes every ended session here right after the store
//! commits, whatever ended it. Watchers register per session id, so publishing costs one map
//! look-up per ended session, however many streams are open. This hub is in-process; a
//! cross-node bus relays remote revocations into the same `publish`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use tokio::sync::oneshot;

use crate::feed::Revocation;
use crate::secret::{SessionId, UserId};

/// How many event streams may be open: per session, per user, per client address (IPv6: its
/// /64, as `throttle::address_key` counts it), in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    pub per_session: usize,
    pub per_user: usize,
    pub per_address: usize,
    pub total: usize,
}

/// One open watcher: whose it is, from where, and where to send the news.
#[derive(Debug)]
struct Watcher {
    user: UserId,
    address: String,
    tx: oneshot::Sender<Revocation>,
}

#[derive(Debug, Default)]
pub struct RevocationHub {
    watchers: Mutex<HashMap<SessionId, Vec<Watcher>>>,
}

impl RevocationHub {
    /// Resolves when `session` (of `user`, watched from the client address `address`) ends
    /// (the sender is dropped unanswered only if the hub is). `None` when a limit is reached:
    /// open streams hold connections, so neither one user nor one client (with as many
    /// accounts as it likes) may take them all.
    pub fn watch(
        &self,
        session: &SessionId,
        user: &UserId,
        address: &str,
        limits: StreamLimits,
    ) -> Option<oneshot::Receiver<Revocation>> {
        let address = crate::throttle::address_key(address);
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut total, mut of_user, mut of_address) = (0, 0, 0);
        watchers.retain(|_, list| {
            list.retain(|w| !w.tx.is_closed());
            total += list.len();
            of_user += list.iter().filter(|w| w.user == *user).count();
            of_address += list.iter().filter(|w| w.address == address).count();
            !list.is_empty()
        });
        let of_session = watchers.get(session).map_or(0, Vec::len);
        if of_session >= limits.per_session
            || of_user >= limits.per_user
            || of_address >= limits.per_address
            || total >= limits.total
        {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        watchers.entry(session.clone()).or_default().push(Watcher { user: user.clone(), address, tx });
        Some(rx)
    }

    pub fn publish(&self, revoked: &[Revocation]) {
        if revoked.is_empty() {
            return;
        }
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        for r in revoked {
            for w in watchers.remove(&r.session_id).unwrap_or_default() {
                let _ = w.tx.send(r.clone());
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
            list.retain(|w| !w.tx.is_closed());
            !list.is_empty()
        });
        watchers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    #[test]
    fn an_ipv6_client_counts_by_its_slash_64() {
        let hub = RevocationHub::default();
        let limits = StreamLimits { per_session: 10, per_user: 10, per_address: 2, total: 100 };
        let watch = |ip: &str| hub.watch(&SessionId::generate(), &UserId::generate(), ip, limits);
        let _a = watch("2001:db8:1:2::1").unwrap();
        let _b = watch("2001:db8:1:2:ffff::2").unwrap();
        assert!(watch("2001:db8:1:2:abcd::9").is_none(), "a third from the same /64, whatever the accounts");
        assert!(watch("2001:db8:1:3::1").is_some(), "another /64 is another client");
    }

    #[tokio::test]
    async fn watchers_of_ended_sessions_are_told_and_others_are_not() {
        let hub = RevocationHub::default();
        let a = SessionId::generate();
        let b = SessionId::generate();
        let u = UserId::generate();
        let limits = StreamLimits { per_session: 2, per_user: 3, per_address: 4, total: 5 };
        let ip = "192.0.2.1";
        let (wa1, wa2, mut wb) = (
            hub.watch(&a, &u, ip, limits).unwrap(),
            hub.watch(&a, &u, ip, limits).unwrap(),
            hub.watch(&b, &u, ip, limits).unwrap(),
        );
        assert!(hub.watch(&a, &u, ip, limits).is_none(), "at most two watchers per session");
        assert!(hub.watch(&SessionId::generate(), &u, ip, limits).is_none(), "at most three per user");
        let other = UserId::generate();
        let _wc = hub.watch(&SessionId::generate(), &other, ip, limits).unwrap();
        let fifth = hub.watch(&SessionId::generate(), &UserId::generate(), ip, limits);
        assert!(fifth.is_none(), "at most four from one address, whatever the accounts");
        let _wd = hub.watch(&SessionId::generate(), &UserId::generate(), "198.51.100.1", limits).unwrap();
        let sixth = hub.watch(&SessionId::generate(), &UserId::generate(), "198.51.100.2", limits);
        assert!(sixth.is_none(), "at most five in all");
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
        assert_eq!(hub.watched_sessions(), 3, "b, the other user's session and the other client's");
    }
}
