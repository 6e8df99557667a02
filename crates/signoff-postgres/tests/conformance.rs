//! The store conformance suite (`signoff_core::conformance`) against PostgreSQL: each store in
//! a database of its own, created on the server `SIGNOFF_TEST_POSTGRES_URL` names (`.ci/run`
//! and `scripts/test` set it) and dropped afterwards. A missing server fails the test.

use signoff_core::Store;
use signoff_postgres::{PgStore, PoolOptions};
use sqlx::Connection;
use std::sync::{Arc, Mutex};

fn server_url() -> String {
    std::env::var("SIGNOFF_TEST_POSTGRES_URL").expect(
        "SIGNOFF_TEST_POSTGRES_URL must name a PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432/postgres)",
    )
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).expect("a postgres:// URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

#[tokio::test]
async fn the_postgres_store_conforms() {
    let server = server_url();
    let created = Arc::new(Mutex::new(Vec::<String>::new()));
    let fresh = {
        let (server, created) = (server.clone(), created.clone());
        move || {
            let (server, created) = (server.clone(), created.clone());
            async move {
                let db = format!("signoff_conformance_{}", hex(&signoff_core::secret::random_bytes::<8>()));
                let mut admin = sqlx::PgConnection::connect(&server).await.expect("the PostgreSQL server answers");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                    .execute(&mut admin)
                    .await
                    .expect("create database");
                created.lock().expect("lock").push(db.clone());
                let store =
                    PgStore::connect(&with_database(&server, &db), PoolOptions::default()).await.expect("store");
                Arc::new(store) as Arc<dyn Store>
            }
        }
    };
    signoff_core::conformance::run(fresh).await;
    let mut admin = sqlx::PgConnection::connect(&server).await.expect("server");
    let created: Vec<String> = created.lock().expect("lock").drain(..).collect();
    for db in created {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)")))
            .execute(&mut admin)
            .await
            .expect("drop");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
