//! Tests only: a database of its own on the PostgreSQL server that `SIGNOFF_TEST_POSTGRES_URL`
//! names (`.ci/run` and `scripts/test` set it), dropped when the value is, however the test
//! ends. A missing server fails the test: nothing is skipped. And a real SMTP server on
//! loopback ([`SmtpServer`]).

use sqlx::Connection;

mod smtp;
pub use smtp::SmtpServer;

/// The server the tests use; panics with a clear message when the variable is missing.
pub fn server_url() -> String {
    std::env::var("SIGNOFF_TEST_POSTGRES_URL").expect(
        "SIGNOFF_TEST_POSTGRES_URL must name a PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432/postgres)",
    )
}

/// A fresh database, dropped (with `FORCE`, cutting whatever still holds a connection) on drop.
#[derive(Debug)]
pub struct TestDatabase {
    server: String,
    /// The database's name (lower-case letters, digits and `_`).
    pub name: String,
    /// A URL for the database, with the server's credentials.
    pub url: String,
}

impl TestDatabase {
    /// Creates `{prefix}_{random}`.
    pub async fn create(prefix: &str) -> Self {
        let server = server_url();
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("randomness");
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("{prefix}_{suffix}");
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "a plain name");
        let mut admin = sqlx::PgConnection::connect(&server).await.expect("the PostgreSQL server must answer");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        let mut url = url::Url::parse(&server).expect("SIGNOFF_TEST_POSTGRES_URL must be a postgres:// URL");
        url.set_path(&format!("/{name}"));
        Self { server, name, url: url.to_string() }
    }

    /// Cuts every connection to this database (a fault to inject); returns how many.
    pub async fn terminate_connections(&self) -> u64 {
        let mut admin = sqlx::PgConnection::connect(&self.server).await.expect("admin connection");
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .fetch_all(&mut admin)
        .await
        .expect("terminate");
        killed.into_iter().filter(|k| *k).count() as u64
    }
}

impl Drop for TestDatabase {
    /// Runs on a thread and runtime of its own: drops happen inside tests' runtimes.
    fn drop(&mut self) {
        // The secrets-hygiene run (SIGNOFF_TEST_SECRET_SCAN, see the HTTP suite's support.rs)
        // searches every row a test left for the secrets it handled.
        if let Some(dir) = std::env::var_os("SIGNOFF_TEST_SECRET_SCAN") {
            let artifacts = std::path::Path::new(&dir).join("artifacts");
            let _ = std::fs::create_dir_all(&artifacts);
            let dump = std::process::Command::new("pg_dump").args(["--data-only", "--dbname", &self.url]).output();
            let (name, bytes) = match dump {
                Ok(out) if out.status.success() => (format!("pgdump-{}.sql", self.name), out.stdout),
                // The scan fails on this file: a dump that was not taken is not a clean one.
                Ok(out) => (format!("pgdump-FAILED-{}.txt", self.name), out.stderr),
                Err(e) => (format!("pgdump-FAILED-{}.txt", self.name), e.to_string().into_bytes()),
            };
            let _ = std::fs::write(artifacts.join(name), bytes);
        }
        let (server, name) = (self.server.clone(), self.name.clone());
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&server).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                }
            });
        });
        let _ = done.join();
    }
}
