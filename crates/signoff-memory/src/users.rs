//! Accounts in memory: [`signoff_core::store::UserStore`] and [`signoff_core::store::UserTx`].

use crate::{MemoryStore, MemoryTx, State};
use async_trait::async_trait;
use signoff_core::UserId;
use signoff_core::store::{StoreError, User, UserCredentials, UserStore, UserTx};

impl State {
    pub(crate) fn user(&self, id: &UserId) -> Option<UserCredentials> {
        self.users.get(id).map(|(user, hash)| UserCredentials { user: user.clone(), password_hash: hash.clone() })
    }

    /// A row that names a user needs the user (a foreign key, in the SQL stores).
    pub(crate) fn owner(&self, id: &UserId) -> Result<(), StoreError> {
        match self.users.contains_key(id) {
            true => Ok(()),
            false => Err(StoreError::Backend(format!("no user {id}"))),
        }
    }

    fn email_taken(&self, email: &str, by_other_than: Option<&UserId>) -> bool {
        self.users.values().any(|(u, _)| u.email == email && Some(&u.id) != by_other_than)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        let state = self.read();
        let id = state.users.values().find(|(u, _)| u.email == email).map(|(u, _)| u.id.clone());
        Ok(id.and_then(|id| state.user(&id)))
    }
    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserCredentials>, StoreError> {
        Ok(self.read().user(id))
    }
}

#[async_trait]
impl UserTx for MemoryTx {
    async fn lock_user(&mut self, _user: &UserId) -> Result<(), StoreError> {
        // The transaction is the only writer already.
        Ok(())
    }
    async fn user_by_id(&mut self, id: &UserId) -> Result<Option<UserCredentials>, StoreError> {
        Ok(self.state.user(id))
    }
    async fn create_user(&mut self, user: &User, password_hash: &str) -> Result<(), StoreError> {
        if self.state.email_taken(&user.email, None) || self.state.users.contains_key(&user.id) {
            return Err(StoreError::Conflict);
        }
        self.state.users.insert(user.id.clone(), (user.clone(), password_hash.to_owned()));
        Ok(())
    }
    async fn set_password(&mut self, user: &UserId, password_hash: &str) -> Result<(), StoreError> {
        if let Some((_, hash)) = self.state.users.get_mut(user) {
            *hash = password_hash.to_owned();
        }
        Ok(())
    }
    async fn set_email(&mut self, user: &UserId, email: &str) -> Result<(), StoreError> {
        if self.state.users.contains_key(user) && self.state.email_taken(email, Some(user)) {
            return Err(StoreError::Conflict);
        }
        if let Some((u, _)) = self.state.users.get_mut(user) {
            u.email = email.to_owned();
        }
        Ok(())
    }
    async fn bump_token_version(&mut self, user: &UserId) -> Result<i64, StoreError> {
        let (u, _) = self.state.users.get_mut(user).ok_or_else(|| StoreError::Backend("no such user".into()))?;
        u.token_version += 1;
        Ok(u.token_version)
    }
}
