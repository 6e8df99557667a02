//! Maintenance the server runs on a timer: the sweep of expired sessions, the feed's trim (and
//! the prune of expired authorization codes).

use time::Duration;

use super::{Authority, BatchKind, ClientInfo, FEED_CLOCK_MARGIN};
use crate::audit::{Actor, AuditKind};
use crate::error::CoreError;
use crate::store::{RememberFilter, SessionFilter};

impl Authority {
    /// Deletes every session past its end, and every remember-me series past its end (it can
    /// sign nobody in); run periodically by the server. One transaction per user, under that
    /// user's lock like every other change to a user's credentials, so the sweep queues behind
    /// a sign-in or a refresh instead of deadlocking with it.
    pub async fn sweep_expired(&self) -> Result<u64, CoreError> {
        const USERS_PER_READ: u32 = 500;
        let now = self.now();
        let idle_cutoff = now - self.policy.idle_timeout;
        let event = self.event(AuditKind::SessionExpired, Actor::Policy, &ClientInfo::default()).reason("expired");
        let mut ended = 0;
        loop {
            let owners = self.store.expired_owners(now, idle_cutoff, USERS_PER_READ).await?;
            for user in &owners {
                let mut batch = self.batch_for(&[user]).await?;
                batch.kind = BatchKind::Expiry;
                ended += batch.end(SessionFilter::Expired { user, now, idle_cutoff }, &event).await?;
                ended += batch.drop_series(RememberFilter::Expired { user, now }, &event).await?;
                batch.commit().await?;
            }
            if owners.len() < USERS_PER_READ as usize {
                return Ok(ended);
            }
        }
    }

    /// Drops feed entries older than an hour (or than the access-token lifetime and a margin,
    /// when that is longer): every process has relayed them long since, and relying services
    /// starting over are given every one that can still matter. Prunes expired authorization
    /// codes too.
    pub async fn trim_revocation_feed(&self) -> Result<u64, CoreError> {
        let now = self.now();
        let keep = Duration::hours(1).max(self.tokens.policy.access_ttl + FEED_CLOCK_MARGIN + Duration::minutes(3));
        if let Some(counters) = &self.counters {
            counters.purge(now).await?;
        }
        self.tokens.forget_expired(now.unix_timestamp());
        // Authorization codes, spent or not, ten minutes after they expired: until then a spent
        // one that comes back still revokes what it issued.
        let mut tx = self.store.begin().await?;
        let pruned = tx.prune_codes(now - Duration::minutes(10)).await?;
        tx.commit().await?;
        if pruned > 0 {
            tracing::debug!(pruned, "pruned expired authorization codes");
        }
        // Denials are kept an hour past their tokens' expiry, so a node whose clock lags another's
        // (which trims) still finds every denial of a token it may consider unexpired.
        Ok(self.store.trim_revocations(now - keep, now - Duration::hours(1)).await?)
    }
}
