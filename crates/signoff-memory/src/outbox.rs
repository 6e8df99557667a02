//! The outbox in memory: [`signoff_core::store::OutboxStore`] and [`signoff_core::store::OutboxTx`].

use crate::{MemoryStore, MemoryTx, State};
use async_trait::async_trait;
use signoff_core::outbox::{Delivery, DeliveryKind, DeliveryPage, DeliveryStatus};
use signoff_core::secret::random_id;
use signoff_core::store::{OutboxStore, OutboxTx, StoreError};
use std::collections::BTreeMap;
use time::OffsetDateTime;

impl State {
    /// Lets go of a delivery's claim.
    fn unclaim(&mut self, id: &str) {
        self.claimed_until.remove(id);
        if let Some(d) = self.deliveries.get_mut(id) {
            d.claim = None;
        }
    }
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
        per_endpoint: u32,
        skip: &[String],
    ) -> Result<Vec<Delivery>, StoreError> {
        let claimed = self
            .write(|state| {
                // Each URL's oldest due few, unclaimed (or whose claim ran out), URL by URL.
                let mut by_url: BTreeMap<&str, Vec<&Delivery>> = BTreeMap::new();
                for d in state.deliveries.values() {
                    let free = state.claimed_until.get(&d.id).is_none_or(|held| *held < now);
                    if d.status == DeliveryStatus::Pending && d.next_attempt_at <= now && free && !skip.contains(&d.url)
                    {
                        by_url.entry(d.url.as_str()).or_default().push(d);
                    }
                }
                // Ranked within their URL: every URL's first before any URL's second.
                let mut ranked: Vec<(usize, OffsetDateTime, String)> = Vec::new();
                for due in by_url.values_mut() {
                    due.sort_by(|a, b| a.next_attempt_at.cmp(&b.next_attempt_at).then(a.id.cmp(&b.id)));
                    let first = due.iter().take(per_endpoint as usize).enumerate();
                    ranked.extend(first.map(|(rank, d)| (rank, d.next_attempt_at, d.id.clone())));
                }
                ranked.sort();
                let claim = random_id();
                let mut claimed = Vec::new();
                for (_, _, id) in ranked.into_iter().take(limit as usize) {
                    state.claimed_until.insert(id.clone(), until);
                    if let Some(d) = state.deliveries.get_mut(&id) {
                        d.claim = Some(claim.clone());
                        claimed.push(d.clone());
                    }
                }
                claimed
            })
            .await;
        Ok(claimed)
    }
    async fn release_deliveries(&self, claim: &str, ids: &[String]) -> Result<(), StoreError> {
        self.write(|state| {
            for id in ids {
                if state.deliveries.get(id).is_some_and(|d| d.claim.as_deref() == Some(claim)) {
                    state.unclaim(id);
                }
            }
        })
        .await;
        Ok(())
    }
    async fn record_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        let recorded = self
            .write(|state| {
                let held = |d: &&mut Delivery| {
                    d.status == DeliveryStatus::Pending && d.claim.is_some() && d.claim == delivery.claim
                };
                let Some(d) = state.deliveries.get_mut(&delivery.id).filter(held) else { return false };
                d.status = delivery.status;
                d.attempts = delivery.attempts;
                d.last_status_code = delivery.last_status_code;
                d.last_error = delivery.last_error.clone();
                d.next_attempt_at = delivery.next_attempt_at;
                state.unclaim(&delivery.id);
                true
            })
            .await;
        Ok(recorded)
    }
    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let pruned = self
            .write(|state| {
                let count = state.deliveries.len();
                state.deliveries.retain(|_, d| d.status == DeliveryStatus::Pending || d.created_at >= before);
                let deliveries = &state.deliveries;
                state.claimed_until.retain(|id, _| deliveries.contains_key(id));
                count - state.deliveries.len()
            })
            .await;
        Ok(pruned as u64)
    }
    async fn pending_among(&self, ids: &[String]) -> Result<u64, StoreError> {
        let state = self.read();
        Ok(ids
            .iter()
            .filter(|id| state.deliveries.get(*id).is_some_and(|d| d.status == DeliveryStatus::Pending))
            .count() as u64)
    }
    async fn client_deliveries(&self, client: &str, page: &DeliveryPage) -> Result<Vec<Delivery>, StoreError> {
        let state = self.read();
        let before = |d: &Delivery| match &page.before {
            Some((at, id)) => d.created_at < *at || (d.created_at == *at && d.id < *id),
            None => true,
        };
        let mut theirs: Vec<Delivery> = state
            .deliveries
            .values()
            .filter(|d| d.client_id == client && page.status.is_none_or(|s| d.status == s) && before(d))
            .cloned()
            .collect();
        theirs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        theirs.truncate(page.limit as usize);
        Ok(theirs)
    }
    async fn waiting_deliveries(&self, url: &str, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let state = self.read();
        let mut waiting: Vec<Delivery> = state
            .deliveries
            .values()
            .filter(|d| d.status == DeliveryStatus::Waiting && d.url == url)
            .cloned()
            .collect();
        waiting.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
        waiting.truncate(limit as usize);
        Ok(waiting)
    }
    async fn settle_waiting(
        &self,
        url: &str,
        ids: Option<&[String]>,
        status: DeliveryStatus,
        error: Option<&str>,
    ) -> Result<u64, StoreError> {
        Ok(self
            .write(|state| {
                let mut settled = 0;
                for d in state.deliveries.values_mut() {
                    if d.status == DeliveryStatus::Waiting
                        && d.url == url
                        && ids.is_none_or(|ids| ids.iter().any(|id| id == &d.id))
                    {
                        d.status = status;
                        d.last_error = error.map(str::to_owned);
                        settled += 1;
                    }
                }
                settled
            })
            .await)
    }
    async fn retry_delivery(&self, client: &str, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let retried = self
            .write(|state| {
                let failed = |d: &&mut Delivery| d.client_id == client && d.status == DeliveryStatus::Failed;
                let Some(d) = state.deliveries.get_mut(id).filter(failed) else { return false };
                d.status = if d.url.starts_with("poll:") { DeliveryStatus::Waiting } else { DeliveryStatus::Pending };
                d.next_attempt_at = now;
                d.created_at = now;
                d.attempts = 0;
                state.unclaim(id);
                true
            })
            .await;
        Ok(retried)
    }
    async fn drop_callback(&self, client: &str, url: &str) -> Result<(), StoreError> {
        self.write(|state| {
            for c in state.clients.iter_mut().filter(|c| c.id == client) {
                c.endpoints.retain(|e| !(e.kind.is_callback() && e.url == url));
            }
            let gone = |d: &Delivery| d.client_id == client && d.url == url && d.status == DeliveryStatus::Pending;
            let ids: Vec<String> = state.deliveries.values().filter(|d| gone(d)).map(|d| d.id.clone()).collect();
            for id in ids {
                state.claimed_until.remove(&id);
                if let Some(d) = state.deliveries.get_mut(&id) {
                    d.status = DeliveryStatus::Failed;
                }
            }
        })
        .await;
        Ok(())
    }
    async fn delivery_counts(&self) -> Result<(i64, i64), StoreError> {
        let state = self.read();
        let to_clients = state.deliveries.values().filter(|d| d.kind != DeliveryKind::Mail);
        let (mut pending, mut failed) = (0, 0);
        for d in to_clients {
            match d.status {
                DeliveryStatus::Pending => pending += 1,
                DeliveryStatus::Failed => failed += 1,
                _ => {}
            }
        }
        Ok((pending, failed))
    }
}

#[async_trait]
impl OutboxTx for MemoryTx {
    async fn enqueue_deliveries(&mut self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        let ids: std::collections::BTreeSet<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
        if ids.len() < deliveries.len() || deliveries.iter().any(|d| self.state.deliveries.contains_key(&d.id)) {
            return Err(StoreError::Conflict);
        }
        for d in deliveries {
            let queued = Delivery { last_error: None, claim: None, ..d.clone() };
            self.state.deliveries.insert(d.id.clone(), queued);
        }
        Ok(())
    }
}
