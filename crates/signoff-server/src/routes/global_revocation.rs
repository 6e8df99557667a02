//! Global Token Revocation (draft-parecki-oauth-global-token-revocation): a registered client
//! allowed to (`"global_token_revocation": true` at registration) names a user by a subject
//! identifier (RFC 9493), and every session, refresh token, remember-me device and access token
//! of that user ends. `204` is answered once that holds on every node, not when it has begun.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::Value;
use signoff_core::subject::SubjectId;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Client;
use crate::routes::client_auth;

pub fn routes() -> Router<AppState> {
    Router::new().route("/global-token-revocation", post(revoke))
}

#[derive(Deserialize)]
struct Body {
    sub_id: Option<Value>,
}

async fn revoke(State(state): State<AppState>, Client(client): Client, request: Request) -> ApiResult<Response> {
    // The caller first: one that is not a client allowed to ask learns nothing of its body.
    let (caller, body) =
        client_auth::permitted_with_body::<Body>(&state, request, client_auth::Permission::GlobalTokenRevocation)
            .await?;
    let sub_id = body.sub_id.ok_or_else(|| ApiError::bad_request("sub_id is required"))?;
    let subject = SubjectId::from_json(&sub_id).map_err(|e| ApiError::bad_request(format!("sub_id: {e}")))?;
    if !subject.resolvable() {
        return Err(ApiError::bad_request(
            "sub_id: signoff names users by email, account (acct:), iss_sub (its own issuer) or opaque (a user id)",
        ));
    }
    let ended = state.authority().global_token_revocation(&caller, &subject, &client).await?;
    tracing::info!(client_id = %caller.id, sessions_ended = ended, "global token revocation");
    Ok(StatusCode::NO_CONTENT.into_response())
}
