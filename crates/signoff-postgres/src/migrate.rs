//! Forward-only migrations embedded in the binary, each applied once in its own transaction
//! and recorded in `signoff_migrations`. An advisory lock makes nodes that start together
//! take turns.

use signoff_core::store::StoreError;
use sqlx::PgPool;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_schema.sql")),
    (2, include_str!("../migrations/0002_node_leases.sql")),
    (3, include_str!("../migrations/0003_rate_counters.sql")),
    (4, include_str!("../migrations/0004_clients.sql")),
    (5, include_str!("../migrations/0005_outbox.sql")),
    (6, include_str!("../migrations/0006_webhook_secret_rotation.sql")),
    (7, include_str!("../migrations/0007_mail_tokens.sql")),
    (8, include_str!("../migrations/0008_rate_counters_pending.sql")),
    (9, include_str!("../migrations/0009_delivery_last_error.sql")),
    (10, include_str!("../migrations/0010_client_endpoints.sql")),
    (11, include_str!("../migrations/0011_client_profile.sql")),
    (12, include_str!("../migrations/0012_jws_keys.sql")),
    (13, include_str!("../migrations/0013_signins.sql")),
    (14, include_str!("../migrations/0014_authorization.sql")),
    (15, include_str!("../migrations/0015_signal_streams.sql")),
    (16, include_str!("../migrations/0016_signal_stream_version.sql")),
    (17, include_str!("../migrations/0017_signal_upstreams.sql")),
];

/// Any fixed number, the same for every node: the key of the migration lock.
const LOCK: i64 = 0x5167_6e6f_6666;

pub async fn run(pool: &PgPool) -> Result<(), StoreError> {
    let e = |e: sqlx::Error| StoreError::Backend(format!("migration: {e}"));
    for (version, sql) in MIGRATIONS {
        let mut tx = pool.begin().await.map_err(e)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(LOCK).execute(&mut *tx).await.map_err(e)?;
        // No "already exists, skipping" notices in the log on every start.
        sqlx::raw_sql("SET LOCAL client_min_messages = warning").execute(&mut *tx).await.map_err(e)?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS signoff_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM signoff_migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(e)?;
        if done.is_none() {
            sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(e)?;
            sqlx::query(
                "INSERT INTO signoff_migrations (version, applied_at) \
                 VALUES ($1, (extract(epoch FROM now()) * 1000)::BIGINT)",
            )
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
    }
    Ok(())
}
