//! Accounts: creating one, and self-service registration that tells nobody who has one.

use time::Duration;

use super::{Authority, ClientInfo};
use crate::audit::{Actor, AuditKind};
use crate::email;
use crate::error::CoreError;
use crate::mail::Letter;
use crate::mail::MailRequest;
use crate::password;
use crate::secret::UserId;
use crate::store::{StoreError, User};
use crate::throttle::{Counted, SharedRefusal, address_key, take_all};

impl Authority {
    /// Creates an account, failing with `StoreError::Conflict` when the address is taken.
    pub async fn create_user(&self, raw_email: &str, password: &str, client: &ClientInfo) -> Result<User, CoreError> {
        let email = email::normalize(raw_email).ok_or(CoreError::InvalidEmail)?;
        password::check_policy(password, &email).map_err(CoreError::WeakPassword)?;
        let hash = self.passwords.hash(password).await?;
        let user = User { id: UserId::generate(), email, token_version: 0, created_at: self.now() };
        let mut batch = self.batch().await?;
        batch.tx.create_user(&user, &hash).await?;
        batch.audit(self.event(AuditKind::Register, Actor::User, client).user(&user.id));
        batch.commit().await?;
        Ok(user)
    }

    /// Self-service registration. An address that already has an account gets the same
    /// answer as a new one (a user with a fresh id, never stored), so registration cannot be
    /// used to find out who has an account; the owner's audit log records the attempt.
    /// Valid attempts are limited per client address and per target address, whatever their outcome,
    /// and repeated attempts on one account leave one audit event per hour.
    pub async fn register(&self, raw_email: &str, password: &str, client: &ClientInfo) -> Result<User, CoreError> {
        let target = email::normalize(raw_email).ok_or(CoreError::InvalidEmail)?;
        // Input is judged first (cheap, and tells nothing about accounts): a person trying a few
        // passwords against the policy is not throttled for it.
        password::check_policy(password, &target).map_err(CoreError::WeakPassword)?;
        let l = &self.limits;
        let ip = address_key(&client.ip);
        take_all(&[(&l.register_ip, &ip), (&l.register_email, &target)], self.now()).map_err(CoreError::Throttled)?;
        self.take_shared(&[
            l.register_ip.counted("register-ip", &ip),
            l.register_email.counted("register-email", &target),
        ])
        .await?;
        let (user, request) = match self.create_user(raw_email, password, client).await {
            Err(CoreError::Store(StoreError::Conflict)) => {
                let email = target;
                let existing = self.store.user_by_email(&email).await?;
                if let Some(existing) = &existing
                    && l.register_existing.take(existing.user.id.as_str(), self.now()).is_ok()
                {
                    self.record(self.event(AuditKind::RegisterExisting, Actor::User, client).user(&existing.user.id))
                        .await?;
                }
                let request = MailRequest {
                    to: email.clone(),
                    user_id: existing.map(|e| e.user.id.to_string()),
                    ..MailRequest::default()
                };
                (User { id: UserId::generate(), email, token_version: 0, created_at: self.now() }, request)
            }
            Ok(user) => {
                let request = MailRequest {
                    to: user.email.clone(),
                    user_id: Some(user.id.to_string()),
                    created: true,
                    ..MailRequest::default()
                };
                (user, request)
            }
            Err(e) => return Err(e),
        };
        // Every registration queues the same letter (sent only to a taken address).
        let mut batch = self.batch().await?;
        batch.letters.push(Letter::Registration.delivery(&request, self.now()));
        batch.commit().await?;
        Ok(user)
    }

    /// Counts an attempt on the shared counters, in one atomic step that refuses it (counting
    /// nothing) when any of them is full, so the limit holds across every node.
    pub(super) async fn take_shared(&self, counted: &[Counted]) -> Result<(), CoreError> {
        let Some(counters) = &self.counters else { return Ok(()) };
        match counters.take(counted, self.now(), false).await? {
            Ok(_) => Ok(()),
            Err(SharedRefusal::Throttled { wait, .. }) => Err(CoreError::Throttled(wait)),
            Err(SharedRefusal::Busy) => Err(CoreError::Busy(Duration::seconds(1))),
        }
    }
}
