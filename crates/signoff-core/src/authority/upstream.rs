//! Signals received (SSF receiver, RFC 8935 push): upstream transmitters registered by an
//! administrator, and each verified Security Event Token carried out — the `jti` noted (a repeat
//! changes nothing) and the users it names ended, in one transaction, before the transmitter is
//! answered.

use serde_json::Value;

use super::{Authority, ClientInfo};
use crate::audit::AuditKind;
use crate::error::CoreError;
use crate::policy::Trigger;
use crate::secret::{Secret, SecretHash, UserId, random_id};
use crate::signals::upstream::{CLOCK_SKEW, FRESH_FOR, Received, SetRefusal, Upstream, judge};

/// The label a receiving endpoint's bearer secret is hashed under.
const SECRET_LABEL: &[u8] = b"signoff ssf receiver secret";

/// The hash an upstream's bearer secret is kept as.
pub fn upstream_secret_hash(secret: &str) -> SecretHash {
    SecretHash::of(SECRET_LABEL, secret.as_bytes())
}

impl Authority {
    /// Registers an upstream transmitter; returns it with its bearer secret (shown once).
    pub async fn register_signal_upstream(
        &self,
        issuer: String,
        jwks_uri: String,
        audience: String,
    ) -> Result<(Upstream, String), CoreError> {
        let secret = Secret::generate().expose();
        let upstream = Upstream {
            id: random_id(),
            issuer,
            jwks_uri,
            audience,
            secret_hash: upstream_secret_hash(&secret),
            created_at: self.now(),
        };
        let mut tx = self.store.begin().await?;
        tx.insert_signal_upstream(&upstream).await?;
        tx.commit().await?;
        tracing::info!(target: "signoff::audit", upstream = %upstream.id, issuer = %upstream.issuer, "Shared Signals upstream registered");
        Ok((upstream, secret))
    }

    /// Every upstream transmitter.
    pub async fn signal_upstreams(&self) -> Result<Vec<Upstream>, CoreError> {
        Ok(self.store.signal_upstreams().await?)
    }

    /// Deletes an upstream transmitter: its endpoint refuses everything from then on (a leaked
    /// secret is revoked so). `false` when there was none.
    pub async fn delete_signal_upstream(&self, id: &str) -> Result<bool, CoreError> {
        let mut tx = self.store.begin().await?;
        let deleted = tx.delete_signal_upstream(id).await?;
        tx.commit().await?;
        if deleted {
            tracing::info!(target: "signoff::audit", upstream = %id, "Shared Signals upstream deleted");
        }
        Ok(deleted)
    }

    pub async fn signal_upstream(&self, id: &str) -> Result<Option<Upstream>, CoreError> {
        if id.len() > 64 {
            return Ok(None);
        }
        Ok(self.store.signal_upstream(id).await?)
    }

    /// Carries out a SET whose signature was verified: its claims judged, its `jti` noted (a
    /// repeat changes nothing), and every session and token of each user it names here ended (as an
    /// admin's revoke, proven on every node) — all in one transaction. A user named by an
    /// address nobody has here is passed over: the answer does not tell.
    pub async fn receive_signal(
        &self,
        upstream: &Upstream,
        claims: &Value,
        client: &ClientInfo,
    ) -> Result<Result<Received, SetRefusal>, CoreError> {
        let now = self.now();
        let received = match judge(claims, upstream, now) {
            Ok(received) => received,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let mut users: Vec<(UserId, String)> = Vec::new();
        for address in &received.ends {
            if let Some(u) = self.store.user_by_email(address).await? {
                users.push((u.user.id, address.clone()));
            }
        }
        let ids: Vec<&UserId> = users.iter().map(|(id, _)| id).collect();
        let mut batch = self.batch_for(&ids).await?;
        if !batch.tx.note_received_set(&upstream.id, &received.jti, now, now + FRESH_FOR + CLOCK_SKEW).await? {
            // A repeat (a retry after a lost answer or a 503, or a replay): nothing is done
            // again; it is answered as the first was, once what that did holds on every node.
            batch.kind = super::batch::BatchKind::Revocation;
            batch.commit().await?;
            return Ok(Ok(Received { repeat: true, ends: Vec::new(), ..received }));
        }
        for (user, address) in &users {
            // The user's lock is held: the address still names them, else nothing is done.
            let still = batch.tx.user_by_id(user).await?.is_some_and(|u| &u.user.email == address);
            if !still {
                continue;
            }
            self.apply(&mut batch, Trigger::SharedSignal, user, None, client).await?;
            let event = self.event(AuditKind::SignalReceived, Trigger::SharedSignal.actor(), client);
            batch.audit(event.user(user).detail(&format!("{} {}", upstream.issuer, received.types.join(" "))));
        }
        batch.commit().await?;
        Ok(Ok(received))
    }
}
