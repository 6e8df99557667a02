//! Two fan-outs as one: Redis, with PostgreSQL's `LISTEN/NOTIFY` beside it, so that a Redis
//! outage costs nothing but Redis. Every hint goes out on both; a node listens on both and
//! counts as listening while either is live. Since every message is sent on both, a node that
//! hears one channel misses nothing, and it is told [`Signal::Lost`] only when neither is live.

use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::mpsc;

use crate::cluster::{Fanout, Signal};
use crate::store::StoreError;

pub struct BothFanouts {
    fanouts: [Arc<dyn Fanout>; 2],
    names: [&'static str; 2],
}

impl BothFanouts {
    /// `first` and `second` with the names the log uses for them.
    pub fn new(first: (Arc<dyn Fanout>, &'static str), second: (Arc<dyn Fanout>, &'static str)) -> Self {
        Self { fanouts: [first.0, second.0], names: [first.1, second.1] }
    }
}

/// Succeeds when either did (a lost hint costs a wait, never a revoked credential).
fn either(sent: (Result<(), StoreError>, Result<(), StoreError>)) -> Result<(), StoreError> {
    match sent {
        (Ok(()), _) | (_, Ok(())) => Ok(()),
        (Err(e), Err(_)) => Err(e),
    }
}

#[async_trait]
impl Fanout for BothFanouts {
    async fn publish(&self, seq: i64) -> Result<(), StoreError> {
        let [a, b] = &self.fanouts;
        either(tokio::join!(a.publish(seq), b.publish(seq)))
    }

    async fn publish_ack(&self) -> Result<(), StoreError> {
        let [a, b] = &self.fanouts;
        either(tokio::join!(a.publish_ack(), b.publish_ack()))
    }

    async fn listen(&self, signals: mpsc::Sender<Signal>) {
        let (tx, mut rx) = mpsc::channel::<(usize, Signal)>(64);
        let mut listeners = Vec::new();
        for (i, fanout) in self.fanouts.iter().enumerate() {
            let (own, mut heard) = mpsc::channel(64);
            let fanout = fanout.clone();
            listeners.push(tokio::spawn(async move { fanout.listen(own).await }));
            let tx = tx.clone();
            listeners.push(tokio::spawn(async move {
                while let Some(signal) = heard.recv().await {
                    if tx.send((i, signal)).await.is_err() {
                        return;
                    }
                }
            }));
        }
        drop(tx);
        let mut live = [false, false];
        while let Some((i, signal)) = rx.recv().await {
            let was = live[0] || live[1];
            let forward = match signal {
                Signal::Connected => {
                    live[i] = true;
                    if was {
                        tracing::info!(fanout = self.names[i], "listening again");
                    }
                    (!was).then_some(Signal::Connected)
                }
                Signal::Lost => {
                    live[i] = false;
                    let other = self.names[1 - i];
                    if live[1 - i] {
                        tracing::warn!(fanout = self.names[i], "lost; hints still arrive through {other}");
                        None
                    } else {
                        Some(Signal::Lost)
                    }
                }
                other => Some(other),
            };
            if let Some(signal) = forward
                && signals.send(signal).await.is_err()
            {
                break;
            }
        }
        for task in listeners {
            task.abort();
        }
    }
}
