//! A database the previous release wrote, read by this one, on both SQL stores: what the
//! endpoint rows of clients (`client_endpoints`) replaced. The migration moves every client's
//! callback URLs into rows; during a rolling upgrade a client a node of the previous release
//! registers (URLs in the old columns only) is still read, called and dropped by its URLs, and
//! a URL such a node drops (from the column only) is not called again; a profile a newer node
//! wrote that this release cannot read leaves the client signing nobody in, and every read of
//! clients (the outbox's, in every logout) working. A session written before the sign-ins
//! (`signin_id`, `authenticated_at`), or by a node of the previous release after them, reads
//! as a sign-in of its own, authenticated when it was created. Needs the PostgreSQL server `SIGNOFF_TEST_POSTGRES_URL` names (a missing one fails).

use std::sync::Arc;

use signoff_core::clients::{ClientProfile, Endpoint, EndpointKind, NewClient};
use signoff_core::store::Store;
use signoff_postgres::{PgStore, PoolOptions};
use signoff_sqlite::SqliteStore;
use signoff_testdb::TestDatabase;

/// The migration that made endpoints rows, by dialect.
const ENDPOINTS_SQLITE: u32 = 11;
const ENDPOINTS_POSTGRES: u32 = 10;

/// The migration files of a store crate numbered below `before`, in order.
fn migrations_before(store_crate: &str, before: u32) -> Vec<(i64, String)> {
    let dir = format!("{}/../{store_crate}/migrations", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(i64, String)> = std::fs::read_dir(&dir)
        .expect("migrations")
        .map(|e| e.expect("entry").path())
        .filter_map(|p| {
            let n: i64 = p.file_name()?.to_str()?.split('_').next()?.parse().ok()?;
            (n < i64::from(before)).then(|| (n, std::fs::read_to_string(&p).expect("read")))
        })
        .collect();
    files.sort();
    assert_eq!(files.len() as u32, before - 1, "every earlier migration of {store_crate}");
    files
}

/// A client as the previous release inserts it: URLs in the clients row, no endpoint rows
/// (`$1` its id; both dialects take `$n` parameters).
const OLD_CLIENT: &str = "INSERT INTO clients (id, name, secret_hash, backchannel_logout_uri, webhook_url, \
     webhook_secret, created_at) VALUES ($1, 'old', $2, $3, $4, 'whsec_AAAA', 1800000000000)";

fn old_client<'q, DB: sqlx::Database>(id: &'q str) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(OLD_CLIENT)
        .bind(id)
        .bind(vec![7u8; 32])
        .bind(format!("https://{id}.example/bc"))
        .bind(format!("https://{id}.example/h"))
}

/// How a node of the previous release drops a URL that answered `410 Gone`: the column only.
const OLD_DROP: &str = "UPDATE clients SET webhook_url = NULL WHERE id = $1 AND webhook_url = $2";

/// A profile a newer release might write (a grant this one does not know).
const NEWER_PROFILE: &str = "UPDATE clients SET profile = '{\"grant_types\":[\"device_code\"]}' WHERE id = $1";

/// Endpoint rows the migration made for a client (`$1`).
const ROWS_OF: &str = "SELECT COUNT(*) FROM client_endpoints WHERE client_id = $1";

/// The previous release's way of writing a user (`$1`, its id) and a session (`$2`).
const OLD_USER: &str =
    "INSERT INTO users (id, email, password_hash, token_version, created_at) VALUES ($1, $1, 'x', 0, 1000)";
const OLD_SESSION: &str = "INSERT INTO sessions (id, secret_hash, user_id, created_at, last_active_at, expires_at) \
     VALUES ($2, $3, $1, 7000, 7000, 99999999999999)";

/// Sessions of the previous release (`before`, migrated; `during`, written by an old node after
/// the migration) each read as a sign-in of their own, authenticated when they were created.
async fn the_previous_releases_sessions_are_read(store: &Arc<dyn Store>) {
    for id in ["s-before", "s-during"] {
        let (session, _) = store
            .session_by_id(&signoff_core::SessionId::from_string(id.into()))
            .await
            .expect("read")
            .expect("the session");
        assert_eq!(session.signin.as_str(), id, "{id}");
        assert_eq!(session.authenticated_at, session.created_at, "{id}");
        assert_eq!(session.created_at.unix_timestamp(), 7, "{id}");
    }
}

/// A client this release registers (`fresh`), with both callbacks.
async fn register_fresh(store: &Arc<dyn Store>) {
    let eps =
        vec![Endpoint::backchannel_logout("https://fresh.example/bc"), Endpoint::webhook("https://fresh.example/h")];
    let mut fresh = NewClient::generate("fresh".into(), eps, time::OffsetDateTime::now_utc()).client;
    fresh.id = "fresh".into();
    let mut tx = store.begin().await.expect("begin");
    tx.insert_client(&fresh).await.expect("insert");
    tx.commit().await.expect("commit");
}

/// What a store reads of the client migrated (`before`), of the one a previous-release node
/// registered after the migration (`during`), and of one this release registered whose webhook a
/// previous-release node then dropped (`fresh`); and that a gone URL is dropped.
async fn the_previous_releases_clients_are_read(store: Arc<dyn Store>) {
    let fresh = store.client_by_id("fresh").await.expect("read").expect("the client");
    assert_eq!(
        fresh.endpoints,
        vec![Endpoint::backchannel_logout("https://fresh.example/bc")],
        "a webhook an old node dropped stays dropped, though its row is still there"
    );
    assert_eq!(fresh.profile, ClientProfile::service(), "a profile this release cannot read signs nobody in");
    for id in ["before", "during"] {
        let c = store.client_by_id(id).await.expect("read").expect("the client");
        assert_eq!(
            c.endpoints,
            vec![
                Endpoint::backchannel_logout(format!("https://{id}.example/bc")),
                Endpoint::webhook(format!("https://{id}.example/h"))
            ],
            "{id} the upgrade"
        );
        assert_eq!(c.profile, ClientProfile::service(), "{id}: a client of before signs nobody in");
    }
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(tx.callback_clients().await.expect("recipients").len(), 3, "all three are told when sessions end");
    drop(tx);
    store.drop_callback("during", "https://during.example/h").await.expect("drop");
    let c = store.client_by_id("during").await.expect("read").expect("the client");
    assert_eq!(c.endpoint(EndpointKind::Webhook), None, "a gone webhook stays gone");
    assert_eq!(c.endpoint(EndpointKind::BackchannelLogout), Some("https://during.example/bc"));
    let now = time::OffsetDateTime::now_utc();
    assert!(store.rotate_webhook_secret("before", "whsec_new", now, now).await.expect("rotate"), "a webhook");
    assert!(!store.rotate_webhook_secret("during", "whsec_new", now, now).await.expect("rotate"), "none left");
    assert!(!store.rotate_webhook_secret("fresh", "whsec_new", now, now).await.expect("rotate"), "none left");
}

#[tokio::test]
async fn sqlite_reads_the_previous_releases_clients() {
    let dir = std::env::temp_dir().join(format!("signoff-upgrade-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.join("upgrade.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    sqlx::raw_sql("CREATE TABLE signoff_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        .execute(&pool)
        .await
        .expect("migrations table");
    for (version, sql) in migrations_before("signoff-sqlite", ENDPOINTS_SQLITE) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await.expect("an earlier migration");
        sqlx::query("INSERT INTO signoff_migrations VALUES ($1, 0)")
            .bind(version)
            .execute(&pool)
            .await
            .expect("record");
    }
    old_client::<sqlx::Sqlite>("before").execute(&pool).await.expect("a client of before");
    sqlx::query(OLD_USER).bind("u-old").execute(&pool).await.expect("a user of before");
    sqlx::query(OLD_SESSION)
        .bind("u-old")
        .bind("s-before")
        .bind(vec![1u8; 32])
        .execute(&pool)
        .await
        .expect("a session");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.expect("migrated by this release"));
    let rows: i64 = sqlx::query_scalar(ROWS_OF).bind("before").fetch_one(&pool).await.expect("rows");
    assert_eq!(rows, 2, "the migration moved both URLs into rows");
    old_client::<sqlx::Sqlite>("during").execute(&pool).await.expect("a client of a node before");
    sqlx::query(OLD_SESSION)
        .bind("u-old")
        .bind("s-during")
        .bind(vec![2u8; 32])
        .execute(&pool)
        .await
        .expect("a session");
    the_previous_releases_sessions_are_read(&store).await;
    register_fresh(&store).await;
    sqlx::query(OLD_DROP).bind("fresh").bind("https://fresh.example/h").execute(&pool).await.expect("an old drop");
    sqlx::query(NEWER_PROFILE).bind("fresh").execute(&pool).await.expect("a newer profile");
    the_previous_releases_clients_are_read(store).await;
    pool.close().await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test]
async fn postgres_reads_the_previous_releases_clients() {
    let db = TestDatabase::create("signoff_upgrade").await;
    let pool = sqlx::PgPool::connect(&db.url).await.expect("open");
    sqlx::raw_sql("CREATE TABLE signoff_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .expect("migrations table");
    for (version, sql) in migrations_before("signoff-postgres", ENDPOINTS_POSTGRES) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await.expect("an earlier migration");
        sqlx::query("INSERT INTO signoff_migrations VALUES ($1, 0)")
            .bind(version)
            .execute(&pool)
            .await
            .expect("record");
    }
    old_client::<sqlx::Postgres>("before").execute(&pool).await.expect("a client of before");
    sqlx::query(OLD_USER).bind("u-old").execute(&pool).await.expect("a user of before");
    sqlx::query(OLD_SESSION)
        .bind("u-old")
        .bind("s-before")
        .bind(vec![1u8; 32])
        .execute(&pool)
        .await
        .expect("a session");
    let store: Arc<dyn Store> =
        Arc::new(PgStore::connect(&db.url, PoolOptions::default()).await.expect("migrated by this release"));
    let rows: i64 = sqlx::query_scalar(ROWS_OF).bind("before").fetch_one(&pool).await.expect("rows");
    assert_eq!(rows, 2, "the migration moved both URLs into rows");
    old_client::<sqlx::Postgres>("during").execute(&pool).await.expect("a client of a node before");
    sqlx::query(OLD_SESSION)
        .bind("u-old")
        .bind("s-during")
        .bind(vec![2u8; 32])
        .execute(&pool)
        .await
        .expect("a session");
    the_previous_releases_sessions_are_read(&store).await;
    register_fresh(&store).await;
    sqlx::query(OLD_DROP).bind("fresh").bind("https://fresh.example/h").execute(&pool).await.expect("an old drop");
    sqlx::query(NEWER_PROFILE).bind("fresh").execute(&pool).await.expect("a newer profile");
    the_previous_releases_clients_are_read(store).await;
    pool.close().await;
}
