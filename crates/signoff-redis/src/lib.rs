//! Redis fan-out for signoff nodes (`signoff_core::cluster::Fanout`): a revoker publishes the
//! revocation feed's new position on one channel; every node listens over RESP3 push on a
//! `ConnectionManager`, which reconnects and resubscribes by itself.
//!
//! Redis carries hints only. Nothing whose loss could revive a credential lives here: a lost
//! message costs a revoker a fence and a wait, and a node that loses its subscription says so
//! ([`Signal::Lost`]) and stops answering from memory until it has caught up from the database.

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, PushInfo, PushKind};
use signoff_core::cluster::{Fanout, Signal};
use signoff_core::store::StoreError;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a listener proves its connection alive (a missed answer means jeopardy).
const PING_EVERY: Duration = Duration::from_millis(250);
/// How long a command (a `PING`, a `PUBLISH`) may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Fan-out over one Redis server.
pub struct RedisFanout {
    client: Client,
    channel: String,
    publisher: ConnectionManager,
}

impl std::fmt::Debug for RedisFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the channel is shown.
        f.debug_struct("RedisFanout").field("channel", &self.channel).finish_non_exhaustive()
    }
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(200))
}

/// Asks for RESP3 (push messages, which the listener needs), whatever protocol the URL named.
fn resp3(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("protocol=")).collect();
    params.push("protocol=resp3");
    format!("{base}?{}", params.join("&"))
}

impl RedisFanout {
    /// Prepares the fan-out on `url` (connections are made on first use); hints go to the
    /// channel `{prefix}:revocations`. Errors never repeat the URL.
    pub fn new(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = Client::open(resp3(url)).map_err(|_| StoreError::Backend("invalid Redis URL".into()))?;
        let publisher = ConnectionManager::new_lazy_with_config(client.clone(), manager_config())
            .map_err(|e| StoreError::Backend(format!("redis: {e}")))?;
        Ok(Self { client, channel: format!("{prefix}:revocations"), publisher })
    }
}

#[async_trait]
impl Fanout for RedisFanout {
    async fn publish(&self, seq: i64) -> Result<(), StoreError> {
        let mut conn = self.publisher.clone();
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(seq)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| StoreError::Busy(format!("redis publish: {e}")))?;
        Ok(())
    }

    async fn publish_ack(&self) -> Result<(), StoreError> {
        let mut conn = self.publisher.clone();
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg("ack")
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| StoreError::Busy(format!("redis publish: {e}")))?;
        Ok(())
    }

    async fn listen(&self, signals: mpsc::Sender<Signal>) {
        let (pushes, mut incoming) = mpsc::unbounded_channel::<PushInfo>();
        let config = manager_config().set_push_sender(pushes).set_automatic_resubscription();
        let mut conn = match ConnectionManager::new_lazy_with_config(self.client.clone(), config) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the Redis listener; nodes follow the feed without it");
                return;
            }
        };
        // Whether the subscription is known to be live.
        let mut live = false;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let signal = tokio::select! {
                push = incoming.recv() => match push {
                    None => return,
                    Some(push) => match push.kind {
                        // Confirmed (again, after a reconnect): messages from now on arrive.
                        PushKind::Subscribe => {
                            live = true;
                            Some(Signal::Connected)
                        }
                        PushKind::Message if live => {
                            match push.data.get(1).and_then(|v| redis::from_redis_value_ref::<String>(v).ok()) {
                                Some(s) if s == "ack" => Some(Signal::Acked),
                                Some(s) => s.parse().ok().map(Signal::Head),
                                None => None,
                            }
                        }
                        PushKind::Disconnection => {
                            live = false;
                            tracing::warn!("Redis listener disconnected; reconnecting");
                            Some(Signal::Lost)
                        }
                        _ => None,
                    },
                },
                _ = ping.tick() => {
                    let alive = redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok();
                    match (alive, live) {
                        (true, true) => None,
                        (false, true) => {
                            live = false;
                            tracing::warn!("Redis listener missed a PING; treating the subscription as lost");
                            Some(Signal::Lost)
                        }
                        (true, false) => {
                            // (Re)subscribe; the confirmation push says `Connected`.
                            if let Err(e) = conn.subscribe(&self.channel).await {
                                tracing::warn!(error = %e, "cannot subscribe to Redis; retrying");
                            }
                            None
                        }
                        (false, false) => None,
                    }
                }
            };
            if let Some(signal) = signal
                && signals.send(signal).await.is_err()
            {
                return;
            }
        }
    }
}

/// Whether the Redis at `url` answers `PING` within a second (with the URL's credentials).
/// The error is for operators' logs and never repeats the URL.
pub async fn ping(url: &str) -> Result<(), String> {
    let client = Client::open(url).map_err(|_| "invalid Redis URL".to_owned())?;
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
        redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(1), ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("timed out".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::resp3;

    #[test]
    fn resp3_is_asked_for_unless_the_url_chose() {
        assert_eq!(resp3("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379?protocol=resp3");
        assert_eq!(resp3("redis://h/0?x=1"), "redis://h/0?x=1&protocol=resp3");
        assert_eq!(resp3("redis://h?protocol=resp2"), "redis://h?protocol=resp3");
        assert_eq!(resp3("redis://h?a=1&protocol=2&b=2"), "redis://h?a=1&b=2&protocol=resp3");
    }
}
