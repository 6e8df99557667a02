//! Both SQL stores, migrated from nothing, have the same tables with the same columns (except
//! what only one dialect needs, listed here with the reason): the row mapping in
//! `signoff_sql::columns` is written once for both, so a migration added to one dialect and
//! forgotten in the other fails here, not in production. Needs the PostgreSQL server
//! `SIGNOFF_TEST_POSTGRES_URL` names (a missing one fails the test).

use signoff_postgres::{PgStore, PoolOptions};
use signoff_sqlite::SqliteStore;
use signoff_testdb::TestDatabase;
use std::collections::{BTreeMap, BTreeSet};

type Schema = BTreeMap<String, BTreeSet<String>>;

/// Tables only one dialect has, and why.
const ONLY_POSTGRES: &[(&str, &str)] = &[
    ("node_leases", "several nodes: the leases of the node protocol"),
    ("rate_counters", "several nodes: rate limits every node shares"),
    ("revocation_counter", "several nodes: the one-row counter whose lock orders the feed's commits"),
];
const ONLY_SQLITE: &[(&str, &str)] = &[("sqlite_sequence", "SQLite's own AUTOINCREMENT bookkeeping")];

async fn sqlite_schema() -> Schema {
    let dir = std::env::temp_dir().join(format!("signoff-parity-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}", dir.join("parity.db").display());
    SqliteStore::connect(&url).await.expect("migrated");
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&pool)
        .await
        .expect("tables");
    let mut schema = Schema::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
            .bind(&table)
            .fetch_all(&pool)
            .await
            .expect("columns");
        schema.insert(table, columns.into_iter().collect());
    }
    pool.close().await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
    schema
}

async fn postgres_schema() -> Schema {
    let db = TestDatabase::create("signoff_parity").await;
    PgStore::connect(&db.url, PoolOptions::default()).await.expect("migrated");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("open");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns WHERE table_schema = 'public'",
    )
    .fetch_all(&pool)
    .await
    .expect("columns");
    pool.close().await;
    let mut schema = Schema::new();
    for (table, column) in rows {
        schema.entry(table).or_default().insert(column);
    }
    schema
}

#[tokio::test]
async fn both_sql_stores_migrate_to_the_same_tables_and_columns() {
    let (mut sqlite, mut postgres) = (sqlite_schema().await, postgres_schema().await);
    for (only, schema, dialect) in [(ONLY_SQLITE, &mut sqlite, "SQLite"), (ONLY_POSTGRES, &mut postgres, "PostgreSQL")]
    {
        for (table, why) in only {
            assert!(schema.remove(*table).is_some(), "{dialect} no longer has {table} ({why}): update the list");
        }
    }
    assert!(sqlite.len() >= 10, "the shared schema was read: {:?}", sqlite.keys());
    let tables: BTreeSet<&String> = sqlite.keys().chain(postgres.keys()).collect();
    let mut differences = Vec::new();
    for table in tables {
        match (sqlite.get(table), postgres.get(table)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => differences.push(format!(
                "{table}: only on SQLite {:?}, only on PostgreSQL {:?}",
                a.difference(b).collect::<Vec<_>>(),
                b.difference(a).collect::<Vec<_>>()
            )),
            (Some(_), None) => differences.push(format!("{table}: only on SQLite")),
            (None, _) => differences.push(format!("{table}: only on PostgreSQL")),
        }
    }
    assert!(differences.is_empty(), "the two schemas differ:\n{}", differences.join("\n"));
}
