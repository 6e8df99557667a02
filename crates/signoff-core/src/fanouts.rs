//! Two fan-outs as one: Redis, with PostgreSQL's `LISTEN/NOTIFY` beside it, so that a Redis
//! outage costs nothing but Redis. Every hint goes out on both; a node listens on both and
//! counts as listening while either is live.
//!
//! A channel that goes away may have taken hints with it that the other one has not delivered
//! yet (its own outage may not be noticed yet), so the node is told [`Signal::Lost`] whenever
//! either channel is lost, and [`Signal::Connected`] again at once while the other still
//! listens: the node reads the feed once to catch up and goes on. A listener that ends counts
//! as lost. Hints are only hints: one missed costs a revoker a fence and a wait, never a
//! revoked credential accepted.

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
fn either(names: [&str; 2], sent: (Result<(), StoreError>, Result<(), StoreError>)) -> Result<(), StoreError> {
    let one_only = |failed: &str, e: &StoreError| {
        tracing::debug!(error = %e, fanout = failed, "a hint went out on one channel only");
    };
    match sent {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) => {
            one_only(names[0], &e);
            Ok(())
        }
        (Ok(()), Err(e)) => {
            one_only(names[1], &e);
            Ok(())
        }
        (Err(e), Err(_)) => Err(e),
    }
}

#[async_trait]
impl Fanout for BothFanouts {
    async fn publish(&self, seq: i64) -> Result<(), StoreError> {
        let [a, b] = &self.fanouts;
        either(self.names, tokio::join!(a.publish(seq), b.publish(seq)))
    }

    async fn publish_ack(&self) -> Result<(), StoreError> {
        let [a, b] = &self.fanouts;
        either(self.names, tokio::join!(a.publish_ack(), b.publish_ack()))
    }

    async fn listen(&self, signals: mpsc::Sender<Signal>) {
        // `None`: that channel's listener ended (counted as lost for good).
        let (tx, mut rx) = mpsc::channel::<(usize, Option<Signal>)>(64);
        let mut listeners = Vec::new();
        for (i, fanout) in self.fanouts.iter().enumerate() {
            let (own, mut heard) = mpsc::channel(64);
            let fanout = fanout.clone();
            listeners.push(tokio::spawn(async move { fanout.listen(own).await }));
            let tx = tx.clone();
            listeners.push(tokio::spawn(async move {
                while let Some(signal) = heard.recv().await {
                    if tx.send((i, Some(signal))).await.is_err() {
                        return;
                    }
                }
                let _ = tx.send((i, None)).await;
            }));
        }
        drop(tx);
        let mut live = [false, false];
        while let Some((i, signal)) = rx.recv().await {
            let mut forward = Vec::with_capacity(2);
            match signal {
                Some(Signal::Connected) => {
                    if !(live[0] || live[1]) {
                        forward.push(Signal::Connected);
                    }
                    live[i] = true;
                }
                Some(Signal::Lost) | None => {
                    let was = live[i];
                    live[i] = false;
                    if was || signal.is_some() {
                        // What this channel carried last may not have come through the other yet:
                        // catch up once, and go on with the other if it still listens.
                        forward.push(Signal::Lost);
                        if live[1 - i] {
                            tracing::warn!(
                                fanout = self.names[i],
                                other = self.names[1 - i],
                                "lost; listening on the other"
                            );
                            forward.push(Signal::Connected);
                        }
                    }
                }
                Some(other) => forward.push(other),
            }
            for signal in forward {
                if signals.send(signal).await.is_err() {
                    for task in &listeners {
                        task.abort();
                    }
                    return;
                }
            }
        }
        for task in listeners {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A fan-out whose listener plays back what a test sends it, and whose sends can fail.
    struct Scripted {
        script: Mutex<Option<mpsc::Receiver<Signal>>>,
        fails: bool,
    }

    #[async_trait]
    impl Fanout for Scripted {
        async fn publish(&self, _: i64) -> Result<(), StoreError> {
            if self.fails { Err(StoreError::Busy("down".into())) } else { Ok(()) }
        }
        async fn publish_ack(&self) -> Result<(), StoreError> {
            self.publish(0).await
        }
        async fn listen(&self, signals: mpsc::Sender<Signal>) {
            let script = self.script.lock().expect("lock").take();
            let Some(mut script) = script else { return };
            while let Some(s) = script.recv().await {
                if signals.send(s).await.is_err() {
                    return;
                }
            }
        }
    }

    fn scripted(fails: bool) -> (Arc<dyn Fanout>, mpsc::Sender<Signal>) {
        let (tx, rx) = mpsc::channel(16);
        (Arc::new(Scripted { script: Mutex::new(Some(rx)), fails }), tx)
    }

    async fn next(rx: &mut mpsc::Receiver<Signal>) -> Signal {
        tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv()).await.expect("a signal").expect("open")
    }

    #[tokio::test]
    async fn a_node_hears_either_channel_and_catches_up_whenever_one_is_lost() {
        let ((redis, to_redis), (pg, to_pg)) = (scripted(false), scripted(true));
        let both = Arc::new(BothFanouts::new((redis, "redis"), (pg, "postgres")));
        assert!(both.publish(7).await.is_ok(), "one channel is enough to send on");
        let (tx, mut rx) = mpsc::channel(16);
        let listening = tokio::spawn({
            let both = both.clone();
            async move { both.listen(tx).await }
        });
        to_redis.send(Signal::Connected).await.expect("send");
        assert_eq!(next(&mut rx).await, Signal::Connected);
        to_pg.send(Signal::Connected).await.expect("send");
        to_pg.send(Signal::Head(3)).await.expect("send");
        assert_eq!(next(&mut rx).await, Signal::Head(3), "a second Connected is not repeated");
        // Redis lost while PostgreSQL listens: catch up once, and go on.
        to_redis.send(Signal::Lost).await.expect("send");
        assert_eq!(next(&mut rx).await, Signal::Lost);
        assert_eq!(next(&mut rx).await, Signal::Connected);
        // PostgreSQL's listener ends altogether: lost, and nothing listens any more.
        drop(to_pg);
        assert_eq!(next(&mut rx).await, Signal::Lost);
        to_redis.send(Signal::Head(4)).await.expect("send");
        assert_eq!(next(&mut rx).await, Signal::Head(4));
        to_redis.send(Signal::Connected).await.expect("send");
        assert_eq!(next(&mut rx).await, Signal::Connected, "listening again");
        drop(rx);
        to_redis.send(Signal::Head(5)).await.expect("send");
        tokio::time::timeout(std::time::Duration::from_secs(2), listening).await.expect("ends").expect("join");
    }

    #[tokio::test]
    async fn sending_fails_only_when_both_channels_fail() {
        let ((a, _ka), (b, _kb)) = (scripted(true), scripted(true));
        assert!(BothFanouts::new((a, "redis"), (b, "postgres")).publish_ack().await.is_err());
    }
}
