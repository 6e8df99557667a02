//! The one error type of the HTTP edge, mapping to the contract's stable error codes.
//!
//! Conversion only builds the response. Internal failures carry their detail in a response
//! extension; the edge middleware logs it with the request id and sends a generic body, so no
//! internals ever reach a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use signoff_core::CoreError;

#[derive(Debug)]
pub enum ApiError {
    /// 400 with a stable code.
    BadRequest(&'static str, String),
    Unauthenticated,
    InvalidCredentials,
    /// 401 `invalid_credentials` for a signed-in user's current password (a change of password
    /// or address): said as it is, since the account is known.
    WrongCurrentPassword,
    /// 401 for bearer-protected resources.
    InvalidToken,
    /// 401 for a registered client's Basic credentials (RFC 6749 `invalid_client`).
    InvalidClient,
    Throttled {
        retry_after_secs: u64,
    },
    /// 429: the session has as many event streams open as it may.
    TooManyStreams,
    Csrf,
    /// 403 with a stable code: the caller is known and may not do this.
    Forbidden(&'static str, String),
    NotFound,
    /// 405; `Some` sets `Allow` (otherwise the router adds the route's own).
    MethodNotAllowed(Option<&'static str>),
    Unprocessable(&'static str, String),
    /// 409 with a stable code.
    Conflict(&'static str, String),
    PayloadTooLarge,
    UnsupportedMediaType,
    /// 408: the request body did not arrive in time.
    RequestTimeout,
    /// 503 with `Retry-After`: scarce work (password hashing) is saturated.
    Busy {
        retry_after_secs: u64,
    },
    /// 500; the string goes to the log only.
    Internal(String),
}

/// Attached to 5xx responses so the edge can log what went wrong.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

/// Attached to every error response, so the edge can show a browser the same error as a page.
#[derive(Debug, Clone)]
pub struct ErrorText {
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest("invalid_request", message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(..) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated
            | Self::InvalidCredentials
            | Self::WrongCurrentPassword
            | Self::InvalidToken
            | Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::Throttled { .. } | Self::TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
            Self::Csrf | Self::Forbidden(..) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unprocessable(..) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(..) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(code, _)
            | Self::Unprocessable(code, _)
            | Self::Conflict(code, _)
            | Self::Forbidden(code, _) => code,
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials | Self::WrongCurrentPassword => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::InvalidClient => "invalid_client",
            Self::Throttled { .. } => "too_many_attempts",
            Self::TooManyStreams => "too_many_streams",
            Self::Csrf => "csrf",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Busy { .. } => "busy",
            Self::Internal(_) => "internal",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::BadRequest(_, m) | Self::Unprocessable(_, m) | Self::Conflict(_, m) | Self::Forbidden(_, m) => {
                m.clone()
            }
            Self::Unauthenticated => "not signed in".into(),
            Self::InvalidCredentials => "e-mail or password is wrong".into(),
            Self::WrongCurrentPassword => "the current password is wrong".into(),
            Self::InvalidToken => "the access token is not valid".into(),
            Self::InvalidClient => "client authentication failed".into(),
            Self::Throttled { .. } => "too many attempts; try again later".into(),
            Self::TooManyStreams => "too many open event streams".into(),
            Self::Csrf => "cross-site request refused".into(),
            Self::NotFound => "not found".into(),
            Self::MethodNotAllowed(_) => "method not allowed".into(),
            Self::PayloadTooLarge => "request body too large".into(),
            Self::RequestTimeout => "the request body did not arrive in time".into(),
            Self::UnsupportedMediaType => "send application/json or application/x-www-form-urlencoded".into(),
            Self::Busy { .. } => "the server is busy; try again in a moment".into(),
            Self::Internal(_) => "internal error".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.message();
        let body = json!({ "error": self.code(), "message": message });
        let mut res = (self.status(), axum::Json(body)).into_response();
        res.extensions_mut().insert(ErrorText { code: self.code(), message });
        let headers = res.headers_mut();
        match &self {
            Self::Throttled { retry_after_secs } | Self::Busy { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::InvalidToken => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            }
            Self::InvalidClient => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"signoff\""));
            }
            Self::MethodNotAllowed(Some(allow)) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Internal(detail) => {
                res.extensions_mut().insert(InternalDetail(detail.clone()));
            }
            _ => {}
        }
        res
    }
}

impl ApiError {
    /// The error of a change that a signed-in user confirmed with the current password.
    pub fn of_change(e: CoreError) -> Self {
        match e {
            CoreError::InvalidCredentials => Self::WrongCurrentPassword,
            e => Self::from(e),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::InvalidCredentials => Self::InvalidCredentials,
            CoreError::Throttled(wait) => {
                Self::Throttled { retry_after_secs: u64::try_from(wait.whole_seconds()).unwrap_or(0).max(1) }
            }
            CoreError::WeakPassword(w) => Self::Unprocessable("weak_password", w.message().into()),
            CoreError::InvalidEmail => Self::Unprocessable("invalid_email", "not a valid e-mail address".into()),
            CoreError::InvalidToken => Self::BadRequest("invalid_token", "the link is invalid, used or expired".into()),
            CoreError::InvalidGrant => {
                Self::BadRequest("invalid_grant", "the grant is invalid, expired or revoked".into())
            }
            CoreError::Busy(wait) => {
                Self::Busy { retry_after_secs: u64::try_from(wait.whole_seconds()).unwrap_or(0).max(1) }
            }
            CoreError::Unauthenticated => Self::Unauthenticated,
            CoreError::NotFound => Self::NotFound,
            CoreError::Forbidden => Self::Forbidden("access_denied", "this client may not do this".into()),
            CoreError::Conflict => {
                Self::BadRequest("invalid_request", "the subject's identifiers name different users".into())
            }
            // A saturated store is load to shed, not a fault: 503 with Retry-After (the edge logs it).
            CoreError::Store(signoff_core::StoreError::Busy(_)) => Self::Busy { retry_after_secs: 1 },
            CoreError::Store(e) => Self::Internal(format!("store: {e}")),
            CoreError::Internal(e) => Self::Internal(e),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
