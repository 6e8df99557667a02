//! Authorization codes and sign-in links in memory: [`signoff_core::store::SigninStore`] and
//! [`signoff_core::store::SigninTx`].

use crate::{MemoryStore, MemoryTx, State};
use async_trait::async_trait;
use signoff_core::secret::{SecretHash, SigninId, UserId};
use signoff_core::store::{AuthorizationCode, CodeIssue, CodeUse, SigninStore, SigninTx, StoreError};
use time::OffsetDateTime;

/// A code as kept: the code, when it was spent, and what its first use issued.
#[derive(Clone)]
pub(crate) struct KeptCode {
    code: AuthorizationCode,
    used_at: Option<OffsetDateTime>,
    issued: Option<CodeIssue>,
}

impl KeptCode {
    pub(crate) fn client(&self) -> &str {
        &self.code.client_id
    }
}

/// A link from a sign-in to a client: `(signin, client)` → `(user, linked at)`.
pub(crate) type Links = std::collections::BTreeMap<(SigninId, String), (UserId, OffsetDateTime)>;

impl State {
    fn clients_of(&self, signin: &SigninId) -> Vec<String> {
        let mut of: Vec<_> = self.links.iter().filter(|((s, _), _)| s == signin).collect();
        of.sort_by(|((_, a), (_, at_a)), ((_, b), (_, at_b))| (at_a, a).cmp(&(at_b, b)));
        of.into_iter().map(|((_, client), _)| client.clone()).collect()
    }
}

#[async_trait]
impl SigninStore for MemoryStore {
    async fn code_user(&self, hash: &SecretHash) -> Result<Option<UserId>, StoreError> {
        Ok(self.read().codes.get(&hash.0).map(|k| k.code.user_id.clone()))
    }
    async fn signin_clients(&self, signin: &SigninId) -> Result<Vec<String>, StoreError> {
        Ok(self.read().clients_of(signin))
    }
}

#[async_trait]
impl SigninTx for MemoryTx {
    async fn hold_client(&mut self, client_id: &str) -> Result<bool, StoreError> {
        // One transaction at a time: nothing can delete it before this one commits.
        Ok(self.state.clients.iter().any(|c| c.id == client_id))
    }
    async fn insert_code(&mut self, code: &AuthorizationCode) -> Result<(), StoreError> {
        self.state.owner(&code.user_id)?;
        if !self.state.clients.iter().any(|c| c.id == code.client_id) {
            return Err(StoreError::Backend(format!("no client {}", code.client_id)));
        }
        if self.state.codes.contains_key(&code.code_hash.0) {
            return Err(StoreError::Conflict);
        }
        self.state.codes.insert(code.code_hash.0, KeptCode { code: code.clone(), used_at: None, issued: None });
        Ok(())
    }
    async fn use_code(&mut self, hash: &SecretHash, now: OffsetDateTime) -> Result<CodeUse, StoreError> {
        let Some(kept) = self.state.codes.get_mut(&hash.0) else { return Ok(CodeUse::Unknown) };
        if kept.used_at.is_some() {
            return Ok(CodeUse::Again { user_id: kept.code.user_id.clone(), issued: kept.issued.clone() });
        }
        if now >= kept.code.expires_at {
            return Ok(CodeUse::Unknown);
        }
        kept.used_at = Some(now);
        Ok(CodeUse::First(kept.code.clone()))
    }
    async fn record_code_issue(&mut self, hash: &SecretHash, issue: &CodeIssue) -> Result<(), StoreError> {
        if let Some(kept) = self.state.codes.get_mut(&hash.0) {
            kept.issued = Some(issue.clone());
        }
        Ok(())
    }
    async fn prune_codes(&mut self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let count = self.state.codes.len();
        self.state.codes.retain(|_, k| k.code.expires_at >= before);
        Ok((count - self.state.codes.len()) as u64)
    }
    async fn link_signin(
        &mut self,
        signin: &SigninId,
        client_id: &str,
        user: &UserId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.state.owner(user)?;
        if !self.state.clients.iter().any(|c| c.id == client_id) {
            return Err(StoreError::Backend(format!("no client {client_id}")));
        }
        self.state.links.entry((signin.clone(), client_id.to_owned())).or_insert((user.clone(), at));
        Ok(())
    }
    async fn signin_clients(&mut self, signin: &SigninId) -> Result<Vec<String>, StoreError> {
        Ok(self.state.clients_of(signin))
    }
    async fn end_signins(&mut self, users: &[UserId]) -> Result<Vec<(SigninId, UserId, String)>, StoreError> {
        let state = &mut self.state;
        let carried = |signin: &SigninId| {
            state.sessions.values().any(|s| &s.signin == signin) || state.remember.values().any(|r| &r.signin == signin)
        };
        let over: Vec<SigninId> = state
            .links
            .iter()
            .filter(|((signin, _), (user, _))| users.contains(user) && !carried(signin))
            .map(|((signin, _), _)| signin.clone())
            .collect();
        let mut ended = Vec::new();
        state.links.retain(|(signin, client), (user, _)| {
            let end = over.contains(signin);
            if end {
                ended.push((signin.clone(), user.clone(), client.clone()));
            }
            !end
        });
        Ok(ended)
    }
}
