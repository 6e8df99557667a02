//! Global Token Revocation (draft-parecki-oauth-global-token-revocation): a registered client
//! allowed to (`"global_token_revocation": true` at registration) names a user by a subject
//! identifier (RFC 9493), and every session, refresh token, remember-me device and access token
//! of that user ends. `204` is answered once that holds on every node, not when it has begun.

use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use signoff_core::subject::SubjectId;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Client;
use crate::routes::client_auth;

pub fn routes() -> Router<AppState> {
    Router::new().route("/global-token-revocation", post(revoke))
}

async fn revoke(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Result<axum::Json<Value>, JsonRejection>,
) -> ApiResult<Response> {
    let caller = client_auth::basic_or_bearer(&state, &headers).await?;
    // Said before the body is read: a client that may not ask learns nothing of its request.
    if !caller.profile.global_token_revocation {
        return Err(signoff_core::CoreError::Forbidden.into());
    }
    let axum::Json(body) = body.map_err(|e| match e {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        _ => ApiError::bad_request("the body must be a JSON object: {\"sub_id\": {\"format\": ..., ...}}"),
    })?;
    let sub_id = body.get("sub_id").ok_or_else(|| ApiError::bad_request("sub_id is required"))?;
    let subject = SubjectId::from_json(sub_id).map_err(|e| ApiError::bad_request(format!("sub_id: {e}")))?;
    if !subject.resolvable() {
        return Err(ApiError::bad_request(
            "sub_id: signoff names users by email, account (acct:), iss_sub (its own issuer) or opaque (a user id)",
        ));
    }
    let ended = state.authority().global_token_revocation(&caller, &subject, &client).await?;
    tracing::info!(client_id = %caller.id, sessions_ended = ended, "global token revocation");
    Ok(StatusCode::NO_CONTENT.into_response())
}
