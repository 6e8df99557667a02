//! The JWKS cache: keys by `kid`, refetched for an unknown `kid` at most once per cooldown
//! (so a stream of forged `kid`s cannot make this service hammer signoff), and at once when
//! the feed says the keys changed.

use ed25519_dalek::VerifyingKey;
use std::collections::{HashMap, HashSet};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::VerifyError;

pub(crate) struct Keys {
    url: String,
    cooldown: Duration,
    keys: RwLock<HashMap<String, VerifyingKey>>,
    /// Keys the feed said were withdrawn: never used again, whatever a JWKS fetched from a
    /// lagging node or a cache still lists.
    withdrawn: RwLock<HashSet<String>>,
    /// When the last fetch began; one fetch at a time.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Keys {
    pub(crate) fn new(url: String, cooldown: Duration) -> Self {
        Self {
            url,
            cooldown,
            keys: RwLock::default(),
            withdrawn: RwLock::default(),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) fn get(&self, kid: &str) -> Option<VerifyingKey> {
        if self.is_withdrawn(kid) {
            return None;
        }
        self.keys.read().unwrap_or_else(PoisonError::into_inner).get(kid).copied()
    }

    pub(crate) fn is_withdrawn(&self, kid: &str) -> bool {
        self.withdrawn.read().unwrap_or_else(PoisonError::into_inner).contains(kid)
    }

    /// Stops trusting `kid` at once (a withdrawal on the feed).
    pub(crate) fn withdraw(&self, kid: &str) {
        self.withdrawn.write().unwrap_or_else(PoisonError::into_inner).insert(kid.to_owned());
        self.keys.write().unwrap_or_else(PoisonError::into_inner).remove(kid);
    }

    /// Fetches the JWKS now and replaces the keys held (a withdrawn key is gone with it).
    pub(crate) async fn refresh(&self, http: &reqwest::Client) -> Result<(), VerifyError> {
        let mut last = self.last_fetch.lock().await;
        *last = Some(Instant::now());
        self.fetch(http).await
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<(), VerifyError> {
        // `no-cache`: a cache between here and signoff must ask signoff again.
        let request = http.get(&self.url).header("cache-control", "no-cache").timeout(Duration::from_secs(5));
        let res = request.send().await.map_err(|e| {
            tracing::warn!(url = %self.url, error = %e, "cannot fetch signoff's JWKS");
            VerifyError::Stale
        })?;
        if !res.status().is_success() {
            tracing::warn!(url = %self.url, status = %res.status(), "cannot fetch signoff's JWKS");
            return Err(VerifyError::Stale);
        }
        let jwks: serde_json::Value = res.json().await.map_err(|_| VerifyError::Stale)?;
        let keys: HashMap<_, _> =
            signoff_jwt::keys_of_jwks(&jwks).into_iter().filter(|(kid, _)| !self.is_withdrawn(kid)).collect();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(())
    }

    /// The key for `kid` after a refetch, unless one was made within the cooldown (then
    /// `None`: an unknown key). `Stale` when signoff cannot be asked.
    pub(crate) async fn fetch_for(
        &self,
        http: &reqwest::Client,
        kid: &str,
    ) -> Result<Option<VerifyingKey>, VerifyError> {
        let mut last = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.get(kid) {
            return Ok(Some(key));
        }
        if last.is_some_and(|at| at.elapsed() < self.cooldown) {
            return Ok(None);
        }
        *last = Some(Instant::now());
        self.fetch(http).await?;
        Ok(self.get(kid))
    }
}
