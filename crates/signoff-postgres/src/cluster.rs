//! The node protocol's PostgreSQL half (see `signoff_core::cluster`): leases in `node_leases`,
//! timed by the server's `clock_timestamp()`, and fan-out by `LISTEN/NOTIFY` (beside Redis when
//! it is configured), each hint sent by the statement that makes its change, so it is delivered
//! as that change commits. Both use a small pool of their own, so a saturated request pool never
//! delays a renewal or an acknowledgement.

use async_trait::async_trait;
use signoff_core::cluster::{Fanout, Leases, Signal};
use signoff_core::store::StoreError;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::rows::db_err;

/// The channel revocation hints are sent on. A hint goes out with the commit that writes the feed
/// (the store's feed statement, `feed.rs`) and an acknowledgement's with the statement that
/// records it (`acknowledge`), so PostgreSQL delivers each as its change commits: `publish` and
/// `publish_ack` have nothing left to send.
pub(crate) const CHANNEL: &str = "signoff_feed";

/// Leases (and, without Redis, fan-out) on one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgCluster {
    pool: PgPool,
}

impl PgCluster {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Leases for PgCluster {
    async fn register(&self, node: &str, incarnation: i64, applied: i64, lease: Duration) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO node_leases (node, incarnation, applied_seq, lease_until, fenced) \
             VALUES ($1, $2, $3, clock_timestamp() + $4 * interval '1 millisecond', false) \
             ON CONFLICT (node) DO UPDATE SET incarnation = excluded.incarnation, \
             applied_seq = excluded.applied_seq, lease_until = excluded.lease_until, fenced = false",
        )
        .bind(node)
        .bind(incarnation)
        .bind(applied)
        .bind(millis(lease))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        // Leases of nodes long gone (killed without releasing) are only clutter.
        sqlx::query("DELETE FROM node_leases WHERE lease_until < clock_timestamp() - interval '1 hour'")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn renew(&self, node: &str, incarnation: i64, applied: i64, lease: Duration) -> Result<bool, StoreError> {
        // A lease that ran out stays out: a revoker may have passed it by as dead.
        let done = sqlx::query(
            "UPDATE node_leases SET lease_until = clock_timestamp() + $4 * interval '1 millisecond', \
             applied_seq = GREATEST(applied_seq, $3) \
             WHERE node = $1 AND incarnation = $2 AND NOT fenced AND lease_until > clock_timestamp()",
        )
        .bind(node)
        .bind(incarnation)
        .bind(applied)
        .bind(millis(lease))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn acknowledge(&self, node: &str, incarnation: i64, applied: i64) -> Result<bool, StoreError> {
        // No wait for the disk: a lost acknowledgement only makes a revoker wait (or fence).
        // Announced in the same statement, only when recorded: revokers hear of it at its commit.
        let acked: i64 = sqlx::query_scalar(
            "WITH acked AS (UPDATE node_leases SET applied_seq = GREATEST(applied_seq, $3) \
             WHERE node = $1 AND incarnation = $2 AND NOT fenced AND lease_until > clock_timestamp() \
             AND set_config('synchronous_commit', 'off', true) IS NOT NULL RETURNING node) \
             SELECT count(*) FROM acked CROSS JOIN LATERAL (SELECT pg_notify($4, 'ack') WHERE acked.node IS NOT NULL) AS hint",
        )
        .bind(node)
        .bind(incarnation)
        .bind(applied)
        .bind(CHANNEL)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(acked == 1)
    }

    async fn behind(&self, node: &str, seq: i64) -> Result<u64, StoreError> {
        // Fenced leases count too: until they run out, their nodes may still trust their caches.
        // A read, on the path of every revocation (its proof): the connection's check is the
        // statement itself.
        let n: i64 = crate::liveness::first_is_check(&self.pool, || {
            sqlx::query_scalar(
                "SELECT count(*) FROM node_leases WHERE node <> $1 AND applied_seq < $2 \
                 AND lease_until > clock_timestamp()",
            )
            .bind(node)
            .bind(seq)
            .fetch_one(&self.pool)
        })
        .await
        .map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn fence_behind(&self, node: &str, seq: i64) -> Result<Duration, StoreError> {
        let left: Option<i64> = sqlx::query_scalar(
            "WITH fenced AS (UPDATE node_leases SET fenced = true \
             WHERE node <> $1 AND applied_seq < $2 AND lease_until > clock_timestamp() RETURNING lease_until) \
             SELECT ceil(extract(epoch FROM max(lease_until) - clock_timestamp()) * 1000)::BIGINT FROM fenced",
        )
        .bind(node)
        .bind(seq)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(Duration::from_millis(u64::try_from(left.unwrap_or(0)).unwrap_or(0)))
    }

    async fn release(&self, node: &str, incarnation: Option<i64>) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM node_leases WHERE node = $1 AND ($2::BIGINT IS NULL OR incarnation = $2)")
            .bind(node)
            .bind(incarnation)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl Fanout for PgCluster {
    /// Sent already: every position on the feed that a caller waits for was announced by the
    /// commit that wrote it (`Announce::Now`). A node that missed it (its read failed) reads the
    /// feed on its next poll; a revoker that cannot wait for it fences it.
    async fn publish(&self, _seq: i64) -> Result<(), StoreError> {
        Ok(())
    }

    /// Sent already, by the statement that recorded the acknowledgement.
    async fn publish_ack(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn listen(&self, signals: mpsc::Sender<Signal>) {
        while !signals.is_closed() {
            let mut listener = match PgListener::connect_with(&self.pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot connect the revocation listener; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "cannot LISTEN for revocations; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            if signals.send(Signal::Connected).await.is_err() {
                return;
            }
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        let signal = match n.payload() {
                            "ack" => Some(Signal::Acked),
                            seq => seq.parse().ok().map(Signal::Head),
                        };
                        if let Some(signal) = signal
                            && signals.send(signal).await.is_err()
                        {
                            return;
                        }
                    }
                    // Lost and (sqlx reconnects eagerly) listening again: what was sent in
                    // between is gone, so the node must read the feed.
                    Ok(None) => {
                        tracing::warn!("revocation listener lost its connection");
                        if signals.send(Signal::Lost).await.is_err() || signals.send(Signal::Connected).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "revocation listener failed; reconnecting");
                        if signals.send(Signal::Lost).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        break;
                    }
                }
            }
        }
    }
}
