//! The ceiling: an axum handler that reads the cookie header and answers a fixed user, with no
//! session check at all.
use axum::http::HeaderMap;
use axum::{Json, Router, routing::get};

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9101".into());
    let app = Router::new().route(
        "/api/me",
        get(|headers: HeaderMap| async move {
            let signed_in = headers.get("cookie").is_some();
            Json(serde_json::json!({ "user": { "id": "u1", "email": "bench@example.com", "signed_in": signed_in } }))
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
