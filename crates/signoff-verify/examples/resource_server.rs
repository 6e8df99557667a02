//! A resource server that trusts signoff's tokens only while signoff has not revoked them.
//!
//! ```sh
//! SIGNOFF_URL=http://127.0.0.1:8080 SIGNOFF_CLIENT_ID=... SIGNOFF_CLIENT_SECRET=... \
//!   LISTEN=127.0.0.1:4000 cargo run -p signoff-verify --example resource_server
//! curl -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:4000/whoami
//! ```
//!
//! `SIGNOFF_URL` may be an internal address: the issuer and audience to expect are read from
//! signoff. Optional: `SIGNOFF_ISSUER` and `SIGNOFF_AUDIENCE` (default: what signoff says), and
//! `SIGNOFF_STALE_AFTER_MS` (default 3000).

use axum::routing::get;
use axum::{Extension, Json, Router};
use signoff_verify::{Claims, Options, Verifier};
use std::time::Duration;

async fn whoami(Extension(claims): Extension<Claims>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "sub": claims.sub, "sid": claims.sid, "jti": claims.jti, "exp": claims.exp }))
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} must be set"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut options = Options::new(env("SIGNOFF_URL")?, env("SIGNOFF_CLIENT_ID")?, env("SIGNOFF_CLIENT_SECRET")?);
    if let Ok(issuer) = std::env::var("SIGNOFF_ISSUER") {
        options.issuer = Some(issuer);
    }
    if let Ok(audience) = std::env::var("SIGNOFF_AUDIENCE") {
        options.audience = Some(audience);
    }
    if let Ok(ms) = std::env::var("SIGNOFF_STALE_AFTER_MS") {
        options.stale_after = Duration::from_millis(ms.parse()?);
    }
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:4000".into());
    let verifier = Verifier::start(options).await;
    let app = Router::new().route("/whoami", get(whoami)).layer(verifier.layer());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("resource_server listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    verifier.close();
    Ok(())
}
