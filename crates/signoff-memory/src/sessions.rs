//! Sessions and remember-me series in memory: [`signoff_core::store::SessionStore`] and
//! [`signoff_core::store::SessionTx`].

use crate::{MemoryStore, MemoryTx, State};
use async_trait::async_trait;
use signoff_core::secret::SecretHash;
use signoff_core::store::{
    Ended, RememberFilter, RememberToken, Session, SessionFilter, SessionStore, SessionTx, StoreError, User,
};
use signoff_core::{SessionId, UserId};
use std::collections::BTreeSet;
use time::OffsetDateTime;

impl State {
    fn with_user(&self, session: &Session) -> Option<(Session, User)> {
        self.users.get(&session.user_id).map(|(user, _)| (session.clone(), user.clone()))
    }

    pub(crate) fn session_by_id(&self, id: &SessionId) -> Option<(Session, User)> {
        self.sessions.get(id).and_then(|s| self.with_user(s))
    }

    /// Deletes the sessions `doomed` says, and returns them.
    fn remove_sessions(&mut self, doomed: impl Fn(&Session) -> bool) -> Vec<Session> {
        let ids: Vec<SessionId> = self.sessions.values().filter(|s| doomed(s)).map(|s| s.id.clone()).collect();
        ids.iter().filter_map(|id| self.sessions.remove(id)).collect()
    }

    /// Deletes the series `doomed` says, and returns their selectors.
    fn remove_series(&mut self, doomed: impl Fn(&RememberToken) -> bool) -> Vec<String> {
        let selectors: Vec<String> = self.remember.values().filter(|t| doomed(t)).map(|t| t.selector.clone()).collect();
        for selector in &selectors {
            self.remember.remove(selector);
        }
        selectors
    }

    /// What follows every deletion of sessions or series: the sessions opened from the deleted
    /// series end too, and refresh tokens die with their sessions, whatever ended them.
    fn cascade(&mut self, selectors: Vec<String>, mut ended: Ended) -> Ended {
        ended.series += selectors.len() as u64;
        let selectors: BTreeSet<String> = selectors.into_iter().collect();
        ended.sessions.extend(self.remove_sessions(|s| s.series.as_ref().is_some_and(|x| selectors.contains(x))));
        if !ended.sessions.is_empty() {
            let sessions = &self.sessions;
            self.refresh.retain(|_, t| sessions.contains_key(&t.session_id));
        }
        ended
    }
}

/// `keep` of `items`, already sorted newest first, skipped; the rest returned.
fn beyond<T>(items: Vec<T>, keep: u32) -> Vec<T> {
    items.into_iter().skip(keep as usize).collect()
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<(Session, User)>, StoreError> {
        let state = self.read();
        Ok(state.sessions.values().find(|s| s.secret_hash == *hash).and_then(|s| state.with_user(s)))
    }
    async fn session_by_id(&self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError> {
        Ok(self.read().session_by_id(id))
    }
    async fn user_sessions(&self, user: &UserId) -> Result<Vec<Session>, StoreError> {
        let mut sessions: Vec<Session> =
            self.read().sessions.values().filter(|s| &s.user_id == user).cloned().collect();
        sessions.sort_by(|a, b| b.last_active_at.cmp(&a.last_active_at).then(b.created_at.cmp(&a.created_at)));
        Ok(sessions)
    }
    async fn remember_by_selector(&self, selector: &str) -> Result<Option<RememberToken>, StoreError> {
        Ok(self.read().remember.get(selector).cloned())
    }
    async fn user_remember(&self, user: &UserId) -> Result<Vec<RememberToken>, StoreError> {
        Ok(self.read().remember.values().filter(|t| &t.user_id == user).cloned().collect())
    }
    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), StoreError> {
        self.write(|state| {
            if let Some(s) = state.sessions.get_mut(id) {
                s.last_active_at = s.last_active_at.max(at);
            }
        })
        .await;
        Ok(())
    }
    async fn expired_owners(
        &self,
        now: OffsetDateTime,
        idle_cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        let state = self.read();
        let sessions = state.sessions.values().filter(|s| s.expires_at <= now || s.last_active_at <= idle_cutoff);
        let series = state.remember.values().filter(|t| t.expires_at <= now);
        let owners: BTreeSet<UserId> =
            sessions.map(|s| s.user_id.clone()).chain(series.map(|t| t.user_id.clone())).collect();
        Ok(owners.into_iter().take(limit as usize).collect())
    }
}

#[async_trait]
impl SessionTx for MemoryTx {
    async fn session_by_id(&mut self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError> {
        Ok(self.state.session_by_id(id))
    }
    async fn remember_by_selector(&mut self, selector: &str) -> Result<Option<RememberToken>, StoreError> {
        Ok(self.state.remember.get(selector).cloned())
    }
    async fn insert_session(&mut self, session: &Session) -> Result<(), StoreError> {
        self.state.owner(&session.user_id)?;
        let hash_taken = self.state.sessions.values().any(|s| s.secret_hash == session.secret_hash);
        if self.state.sessions.contains_key(&session.id) || hash_taken {
            return Err(StoreError::Conflict);
        }
        self.state.sessions.insert(session.id.clone(), session.clone());
        Ok(())
    }
    async fn unbind_series(&mut self, session: &SessionId) -> Result<(), StoreError> {
        if let Some(s) = self.state.sessions.get_mut(session) {
            s.series = None;
        }
        Ok(())
    }
    async fn rotate_session(
        &mut self,
        old: &SessionId,
        new: &SessionId,
        hash: &SecretHash,
    ) -> Result<bool, StoreError> {
        // The series follow the session's new id (whether or not the session is still there).
        for t in self.state.remember.values_mut().filter(|t| &t.session_id == old) {
            t.session_id = new.clone();
        }
        let Some(mut session) = self.state.sessions.remove(old) else { return Ok(false) };
        session.id = new.clone();
        session.secret_hash = *hash;
        self.state.sessions.insert(new.clone(), session);
        Ok(true)
    }
    async fn end_sessions(&mut self, filter: SessionFilter<'_>) -> Result<Ended, StoreError> {
        let state = &mut self.state;
        let (sessions, selectors) = match filter {
            SessionFilter::One { user, id } => (
                state.remove_sessions(|s| &s.id == id && &s.user_id == user),
                state.remove_series(|t| &t.session_id == id && &t.user_id == user),
            ),
            SessionFilter::AllOf { user, keep, keep_series } => {
                let ended = state.remove_sessions(|s| &s.user_id == user && !keep.contains(&s.id));
                // The kept sessions' own series survive (the kept sessions are not deleted).
                let kept: BTreeSet<String> =
                    keep.iter().filter_map(|id| state.sessions.get(id)).filter_map(|s| s.series.clone()).collect();
                let selectors = state.remove_series(|t| {
                    &t.user_id == user && !kept.contains(&t.selector) && Some(t.selector.as_str()) != keep_series
                });
                (ended, selectors)
            }
            SessionFilter::Lapsed { user, id } => {
                (state.remove_sessions(|s| &s.id == id && &s.user_id == user), Vec::new())
            }
            SessionFilter::Expired { user, now, idle_cutoff } => (
                state.remove_sessions(|s| {
                    &s.user_id == user && (s.expires_at <= now || s.last_active_at <= idle_cutoff)
                }),
                Vec::new(),
            ),
            SessionFilter::OldestBeyond { user, keep, spare } => {
                // The spared session counts as the newest: one place fewer for the others.
                let mut others: Vec<&Session> =
                    state.sessions.values().filter(|s| &s.user_id == user && &s.id != spare).collect();
                others.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
                let doomed: BTreeSet<SessionId> =
                    beyond(others, keep.saturating_sub(1)).into_iter().map(|s| s.id.clone()).collect();
                let ended = state.remove_sessions(|s| doomed.contains(&s.id));
                // Sessions ended by the cap take the series they back along.
                let selectors = state.remove_series(|t| doomed.contains(&t.session_id));
                (ended, selectors)
            }
        };
        Ok(state.cascade(selectors, Ended { sessions, series: 0 }))
    }
    async fn insert_remember(&mut self, token: &RememberToken) -> Result<(), StoreError> {
        self.state.owner(&token.user_id)?;
        if self.state.remember.contains_key(&token.selector) {
            return Err(StoreError::Conflict);
        }
        self.state.remember.insert(token.selector.clone(), token.clone());
        Ok(())
    }
    async fn rotate_remember(
        &mut self,
        selector: &str,
        expected: &SecretHash,
        validator_hash: &SecretHash,
        session: &Session,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let Some(t) = self.state.remember.get_mut(selector).filter(|t| t.validator_hash == *expected) else {
            return Ok(false);
        };
        t.previous_hash = Some(t.validator_hash);
        t.validator_hash = *validator_hash;
        t.rotated_at = Some(at);
        t.grace_used = false;
        t.session_id = session.id.clone();
        t.ip = session.ip.clone();
        t.user_agent = session.user_agent.clone();
        Ok(true)
    }
    async fn use_remember_grace(&mut self, selector: &str, previous: &SecretHash) -> Result<bool, StoreError> {
        let unused = |t: &&mut RememberToken| t.previous_hash == Some(*previous) && !t.grace_used;
        let Some(t) = self.state.remember.get_mut(selector).filter(unused) else { return Ok(false) };
        t.grace_used = true;
        Ok(true)
    }
    async fn delete_remember(&mut self, filter: RememberFilter<'_>) -> Result<Ended, StoreError> {
        let state = &mut self.state;
        let selectors = match filter {
            RememberFilter::Selector(selector) => state.remove_series(|t| t.selector == selector),
            RememberFilter::AllOfUser(user) => state.remove_series(|t| &t.user_id == user),
            RememberFilter::Expired { user, now } => state.remove_series(|t| &t.user_id == user && t.expires_at <= now),
            RememberFilter::OldestBeyond { user, keep, spare } => {
                // The spared series counts as the newest: one place fewer for the others.
                let mut others: Vec<&RememberToken> = state
                    .remember
                    .values()
                    .filter(|t| &t.user_id == user && Some(t.selector.as_str()) != spare)
                    .collect();
                let used = |t: &RememberToken| t.rotated_at.unwrap_or(t.created_at);
                others.sort_by(|a, b| used(b).cmp(&used(a)).then(a.selector.cmp(&b.selector)));
                let keep = if spare.is_some() { keep.saturating_sub(1) } else { keep };
                let doomed: BTreeSet<String> = beyond(others, keep).into_iter().map(|t| t.selector.clone()).collect();
                state.remove_series(|t| doomed.contains(&t.selector))
            }
        };
        Ok(state.cascade(selectors, Ended::default()))
    }
}
