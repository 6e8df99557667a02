//! Registered clients and the revocation feed they follow.

use std::time::{Duration, Instant};

use super::Authority;
use crate::clients::{ClientProfile, Endpoint, MAX_CLIENT_ID_LEN, NewClient, RegisteredClient, grant_sid, hash_secret};
use crate::error::CoreError;
use crate::feed::FeedEntry;
use crate::feed::window::{ClientFeed, Page};
use crate::secret::Secret;

/// Entries read per round trip when the window is filled at start.
const PAGE: u32 = 1_000;

/// How long a feed request waits for a read of the feed.
const READ_LIMIT: Duration = Duration::from_secs(2);

impl Authority {
    /// Registers a client; the caller has checked its endpoints' URLs and its profile.
    pub async fn register_client(
        &self,
        name: String,
        endpoints: Vec<Endpoint>,
        profile: ClientProfile,
    ) -> Result<NewClient, CoreError> {
        let mut new = NewClient::generate(name, endpoints, self.now());
        new.client.profile = profile;
        let mut tx = self.store.begin().await?;
        tx.insert_client(&new.client).await?;
        tx.commit().await?;
        tracing::info!(target: "signoff::audit", client_id = %new.client.id, name = %new.client.name, "client registered");
        Ok(new)
    }

    pub async fn clients(&self) -> Result<Vec<RegisteredClient>, CoreError> {
        Ok(self.store.clients().await?)
    }

    /// Deletes a client (`false` when there is none): once this returns, every node refuses its
    /// credentials and has ended its feed streams, and relying services hear that its machine
    /// tokens are dead.
    pub async fn delete_client(&self, id: &str) -> Result<bool, CoreError> {
        if id.len() > MAX_CLIENT_ID_LEN {
            return Ok(false);
        }
        let mut batch = self.batch().await?;
        let Some(secret_hash) = batch.tx.delete_client(id).await? else {
            return Ok(false);
        };
        batch.ended.push(FeedEntry::ClientRemoved { client_id: id.to_owned() });
        let sid = grant_sid(&secret_hash);
        batch.ended.push(FeedEntry::ClientGrantEnded {
            sid,
            client_id: id.to_owned(),
            reason: "client_removed".into(),
        });
        batch.commit().await?;
        self.client_feed.remove(id);
        tracing::info!(target: "signoff::audit", client_id = %id, "client deleted");
        Ok(true)
    }

    /// Gives a client a new secret (`None` when there is no such client): the old one is refused
    /// at once on every node, and the access tokens it got by `client_credentials` are dead
    /// (relying services hear it on the feed). Swapped only if the secret is still the one read,
    /// so two rotations at once end both grants they replace.
    pub async fn rotate_client_secret(&self, id: &str) -> Result<Option<Secret>, CoreError> {
        for _ in 0..3 {
            let Some(client) = self.client(id).await? else { return Ok(None) };
            let secret = Secret::generate();
            let hash = hash_secret(&secret);
            let mut batch = self.batch().await?;
            if !batch.tx.set_client_secret(id, &client.secret_hash, &hash).await? {
                continue;
            }
            let sid = grant_sid(&client.secret_hash);
            batch.ended.push(FeedEntry::ClientGrantEnded {
                sid,
                client_id: id.to_owned(),
                reason: "secret_rotated".into(),
            });
            if let Err(e) = batch.commit().await {
                // Committed, then not proven to every node in time? The new secret is the only
                // one that works now: it is answered, never lost (the feed carries the rest).
                if !self.store.client_by_id(id).await?.is_some_and(|c| c.secret_hash == hash) {
                    return Err(e);
                }
                tracing::warn!(client_id = %id, error = %e, "client secret rotated; other nodes learn it from the feed");
            }
            tracing::info!(target: "signoff::audit", client_id = %id, "client secret rotated");
            return Ok(Some(secret));
        }
        Err(CoreError::Busy(time::Duration::seconds(1)))
    }

    /// A registered client by id (`None` for an unknown or deleted one), read from the store.
    pub async fn client(&self, id: &str) -> Result<Option<RegisteredClient>, CoreError> {
        if id.is_empty() || id.len() > MAX_CLIENT_ID_LEN {
            return Ok(None);
        }
        let client = self.store.client_by_id(id).await?;
        Ok(client.filter(|c| !self.client_feed.removed(&c.id)))
    }

    /// The client these Basic credentials prove, if they do. Read from the store each time, so
    /// a deleted client is refused at once on every node.
    pub async fn authenticate_client(&self, id: &str, secret: &str) -> Result<Option<RegisteredClient>, CoreError> {
        Ok(self.client(id).await?.filter(|c| c.secret_matches(secret)))
    }

    /// The relying services' feed held by this process.
    pub fn client_feed(&self) -> &ClientFeed {
        &self.client_feed
    }

    /// A page of the feed for a client at `after`, answered only when this node vouches for
    /// its copy of the feed (`Busy` otherwise). A client ahead of this node (it read another
    /// node that had applied more) makes this node read the feed first, so it is never told
    /// to start over from a state older than the one it holds.
    pub async fn feed_page(&self, after: Option<i64>) -> Result<Page, CoreError> {
        let arrived = Instant::now();
        self.vouch().await?;
        if after.is_some_and(|a| a > self.client_feed.head()) {
            self.catch_up_since(arrived, READ_LIMIT).await?;
        }
        self.window_current(arrived).await?;
        Ok(self.client_feed.since(after, self.now()))
    }

    /// Whether this node may still say its feed is current (for open streams' heartbeats):
    /// vouches, reading the feed first when it must.
    pub async fn feed_current(&self) -> bool {
        let arrived = Instant::now();
        self.vouch().await.is_ok() && self.window_current(arrived).await.is_ok()
    }

    /// The window holds everything this process committed and the feed was read lately, or
    /// becomes so by one read; `Busy` otherwise (and always after a feed entry of a kind this
    /// version does not know, which relying services would never hear of).
    async fn window_current(&self, arrived: Instant) -> Result<(), CoreError> {
        let busy = || CoreError::Busy(time::Duration::seconds(1));
        if self.client_feed.poisoned() {
            return Err(busy());
        }
        if self.feed_health.current(self.client_feed.head()) {
            return Ok(());
        }
        self.catch_up_since(arrived, READ_LIMIT).await?;
        if self.feed_health.current(self.client_feed.head()) {
            Ok(())
        } else {
            tracing::warn!("the revocation feed's window is behind this process's commits; refusing relying services");
            Err(busy())
        }
    }

    /// Fills the window with what the store still holds up to `head` (at start).
    pub(super) async fn start_client_feed(&self, head: i64) -> Result<(), CoreError> {
        let history = self.feed_history(head).await?;
        self.client_feed.start(&history, head, self.now());
        Ok(())
    }

    /// What the store still holds of the feed up to `head`.
    pub(super) async fn feed_history(&self, head: i64) -> Result<Vec<(i64, FeedEntry)>, CoreError> {
        let mut history = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.revocations_since(after, PAGE).await?;
            let full = page.len() == PAGE as usize;
            let Some(&(last, _)) = page.last() else { break };
            history.extend(page.into_iter().filter(|(seq, _)| *seq <= head));
            if !full || last >= head {
                break;
            }
            after = last;
        }
        Ok(history)
    }
}
