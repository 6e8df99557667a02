//! The reference: tower-sessions with its in-memory store. `/login` creates a session; `/api/me`
//! loads it and answers the user stored in it (401 without one).
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router, routing::get};
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9102".into());
    let layer = SessionManagerLayer::new(MemoryStore::default()).with_secure(false);
    let app = Router::new()
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
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
