//! Reading: a user's sessions, devices, audit log and account.

use time::OffsetDateTime;

use super::{Authority, batch::store_event};
use crate::audit::AuditEvent;
use crate::email;
use crate::error::CoreError;
use crate::secret::{SessionId, UserId};
use crate::store::{Session, User};

/// A device the user is signed in on: a live session, or a remember-me series that can sign
/// the device back in although its session has ended. Its id is the session's (for a series,
/// the session it last backed), so `DELETE /auth/sessions/{id}` revokes either.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: SessionId,
    pub created_at: OffsetDateTime,
    pub last_active_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Whether a live session stands behind it (otherwise only a remember-me series).
    pub signed_in: bool,
    /// Whether a remember-me series can sign it back in.
    pub remembered: bool,
    /// The apps (relying parties) this device's sign-in signed in to, as `(client_id, name)`,
    /// in the order it signed in to them: ending the device logs it out of these.
    pub apps: Vec<(String, String)>,
}

impl Authority {
    /// A user's live sessions, most recently active first.
    pub async fn sessions_of(&self, user: &UserId) -> Result<Vec<Session>, CoreError> {
        let now = self.now();
        let mut sessions = self.store.user_sessions(user).await?;
        sessions.retain(|s| self.is_live(s, now));
        Ok(sessions)
    }

    /// Every device a user is signed in on, most recently active first: live sessions, and
    /// remember-me series whose session has ended (they can still sign the device back in).
    pub async fn devices_of(&self, user: &UserId) -> Result<Vec<Device>, CoreError> {
        let now = self.now();
        let sessions = self.sessions_of(user).await?;
        let series = self.store.user_remember(user).await?;
        let mut devices: Vec<Device> = sessions
            .iter()
            .map(|s| Device {
                id: s.id.clone(),
                created_at: s.created_at,
                last_active_at: s.last_active_at,
                expires_at: self.effective_expiry(s),
                ip: s.ip.clone(),
                user_agent: s.user_agent.clone(),
                signed_in: true,
                remembered: series.iter().any(|t| t.session_id == s.id && now < t.expires_at),
                apps: Vec::new(),
            })
            .collect();
        let mut signins: Vec<_> = sessions.iter().map(|s| s.signin.clone()).collect();
        for t in series.iter().filter(|t| now < t.expires_at && !sessions.iter().any(|s| s.id == t.session_id)) {
            devices.push(Device {
                id: t.session_id.clone(),
                created_at: t.created_at,
                last_active_at: t.rotated_at.unwrap_or(t.created_at),
                expires_at: t.expires_at,
                ip: t.ip.clone(),
                user_agent: t.user_agent.clone(),
                signed_in: false,
                remembered: true,
                apps: Vec::new(),
            });
            signins.push(t.signin.clone());
        }
        // Each device's apps, named as registered (one read of the clients, one per device).
        let mut clients = None;
        for (device, signin) in devices.iter_mut().zip(&signins) {
            let ids = self.store.signin_clients(signin).await?;
            if ids.is_empty() {
                continue;
            }
            if clients.is_none() {
                clients = Some(self.store.clients().await?);
            }
            let known = clients.as_deref().unwrap_or_default();
            device.apps = ids
                .into_iter()
                .filter_map(|id| known.iter().find(|c| c.id == id).map(|c| (id.clone(), c.name.clone())))
                .collect();
        }
        devices.sort_by(|a, b| b.last_active_at.cmp(&a.last_active_at).then(b.created_at.cmp(&a.created_at)));
        Ok(devices)
    }

    pub async fn audit_of(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, CoreError> {
        Ok(self.store.user_audit(user, limit).await?)
    }

    /// Stores and logs an event that goes with no other change.
    pub(super) async fn record(&self, event: AuditEvent) -> Result<(), CoreError> {
        store_event(&*self.store, event).await
    }

    /// A user by e-mail address, normalised first (for the CLI).
    pub async fn user_by_email(&self, raw_email: &str) -> Result<Option<User>, CoreError> {
        let Some(email) = email::normalize(raw_email) else { return Ok(None) };
        Ok(self.store.user_by_email(&email).await?.map(|c| c.user))
    }

    /// A user by id (for the admin API).
    pub async fn user(&self, id: &UserId) -> Result<Option<User>, CoreError> {
        Ok(self.store.user_by_id(id).await?.map(|c| c.user))
    }
}
