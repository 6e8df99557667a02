//! The references: tower-sessions with its in-memory store, or with its SQLite store
//! (`tower_sessions ADDR sqlite:PATH`). `/login` creates a session; `/api/me` loads it and
//! answers the user stored in it (401 without one). Neither checks anything against revocation.
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router, routing::get};
use tower_sessions::{MemoryStore, Session, SessionManagerLayer, SessionStore};
use tower_sessions_sqlx_store::SqliteStore;
use tower_sessions_sqlx_store::sqlx::SqlitePool;

fn app<S: SessionStore + Clone>(store: S) -> Router {
    Router::new()
        .route(
            "/login",
            get(|session: Session| async move {
                session.insert("user", "bench@example.com").await.expect("insert");
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/api/me",
            get(|session: Session| async move {
                match session.get::<String>("user").await {
                    Ok(Some(email)) => Json(serde_json::json!({ "user": { "email": email } })).into_response(),
                    _ => StatusCode::UNAUTHORIZED.into_response(),
                }
            }),
        )
        .layer(SessionManagerLayer::new(store).with_secure(false))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9102".into());
    let app = match args.next() {
        Some(url) if url.starts_with("sqlite:") => {
            let pool = SqlitePool::connect(&format!("{url}?mode=rwc")).await.expect("sqlite");
            let store = SqliteStore::new(pool);
            store.migrate().await.expect("migrate");
            app(store)
        }
        _ => app(MemoryStore::default()),
    };
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
