//! A minimal forward-only migrator: numbered SQL files embedded in the binary, each applied
//! once inside its own transaction and recorded in `signoff_migrations`.

use signoff_core::store::StoreError;
use sqlx::SqlitePool;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_remember_me.sql")),
    (3, include_str!("../migrations/0003_revocation_feed.sql")),
    (4, include_str!("../migrations/0004_tokens.sql")),
    (5, include_str!("../migrations/0005_bound_credentials.sql")),
    (6, include_str!("../migrations/0006_clients.sql")),
    (7, include_str!("../migrations/0007_outbox.sql")),
    (8, include_str!("../migrations/0008_webhook_secret_rotation.sql")),
    (9, include_str!("../migrations/0009_mail_tokens.sql")),
    (10, include_str!("../migrations/0010_delivery_last_error.sql")),
    (11, include_str!("../migrations/0011_client_endpoints.sql")),
    (12, include_str!("../migrations/0012_client_profile.sql")),
    (13, include_str!("../migrations/0013_jws_keys.sql")),
    (14, include_str!("../migrations/0014_signins.sql")),
    (15, include_str!("../migrations/0015_authorization.sql")),
    (16, include_str!("../migrations/0016_signal_streams.sql")),
    (17, include_str!("../migrations/0017_signal_stream_version.sql")),
    (18, include_str!("../migrations/0018_signal_upstreams.sql")),
];

pub async fn run(pool: &SqlitePool) -> Result<(), StoreError> {
    let e = |e: sqlx::Error| StoreError::Backend(format!("migration: {e}"));
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS signoff_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await
    .map_err(e)?;
    for (version, sql) in MIGRATIONS {
        let mut tx = pool.begin().await.map_err(e)?;
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM signoff_migrations WHERE version = ?")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(e)?;
        if done.is_none() {
            sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(e)?;
            sqlx::query("INSERT INTO signoff_migrations (version, applied_at) VALUES (?, strftime('%s','now'))")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".sql"))
            .collect();
        files.sort();
        assert_eq!(files.len(), super::MIGRATIONS.len(), "{files:?}");
        for (i, (version, sql)) in super::MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i64 + 1);
            let text = std::fs::read_to_string(format!("{dir}/{}", files[i])).unwrap();
            assert_eq!(text, *sql, "{} is listed as version {version}", files[i]);
        }
    }
}
