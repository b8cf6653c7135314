//! API errors: one enum, one place that maps each to an HTTP status and a stable,
//! searchable code. Bodies are always `{"error":{"code":"...","message":"..."}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use threshold_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{code}: {message}")]
    Invalid { code: &'static str, message: String },
    #[error("sign in first")]
    Unauthenticated,
    #[error("wrong username or password")]
    BadCredentials,
    #[error("your role may not do this")]
    Forbidden,
    #[error("{1}")]
    ForbiddenCode(&'static str, String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{1}")]
    NotFoundCode(&'static str, String),
    #[error("{0}")]
    Conflict(String),
    #[error("{1}")]
    ConflictCode(&'static str, String),
    #[error("request body is larger than allowed")]
    TooLarge,
    #[error("too many failed sign-ins for this account; wait a few minutes")]
    TooManyAttempts,
    /// Too many recent failures: try again after this many milliseconds.
    #[error("too many failed sign-ins; try again in {} s", (.0 + 999) / 1000)]
    SlowDown(i64),
    /// Too many requests of one kind for one key (`auth::limiter`).
    #[error("{0}")]
    RateLimited(String),
    #[error("{1}")]
    Unavailable(&'static str, String),
    #[error("requests from another site's page are refused")]
    CrossOrigin,
    #[error("this route does not take that method")]
    MethodNotAllowed,
    /// A request this listener must not answer (the redirect port, reached through a
    /// proxy that already speaks HTTPS).
    #[error("{0}")]
    Misdirected(String),
    #[error("internal error; the hub's log has details")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::Invalid { code, .. } => code,
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::BadCredentials => "bad_credentials",
            ApiError::Forbidden => "forbidden",
            ApiError::ForbiddenCode(c, _) => c,
            ApiError::NotFound(_) => "not_found",
            ApiError::NotFoundCode(c, _) => c,
            ApiError::Conflict(_) => "conflict",
            ApiError::ConflictCode(c, _) => c,
            ApiError::TooLarge => "payload_too_large",
            ApiError::TooManyAttempts | ApiError::SlowDown(_) | ApiError::RateLimited(_) => {
                "too_many_attempts"
            }
            ApiError::Unavailable(c, _) => c,
            ApiError::CrossOrigin => "cross_origin",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Misdirected(_) => "misdirected",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::ForbiddenCode(..) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NotFoundCode(..) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::ConflictCode(..) => StatusCode::CONFLICT,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyAttempts | ApiError::SlowDown(_) | ApiError::RateLimited(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::CrossOrigin => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Misdirected(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("resource"),
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match e {
            AuthError::Unauthenticated => ApiError::Unauthenticated,
            AuthError::Forbidden => ApiError::Forbidden,
            AuthError::Store(s) => s.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::access::AccessError> for ApiError {
    fn from(e: crate::access::AccessError) -> Self {
        match e {
            crate::access::AccessError::Store(s) => s.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            // Never echo internals to the client.
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                self.to_string()
            }
            ApiError::Invalid { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let mut resp = (
            self.status(),
            Json(json!({"error": {"code": self.code(), "message": message}})),
        )
            .into_response();
        if let ApiError::SlowDown(ms) = self {
            if let Ok(v) = axum::http::HeaderValue::from_str(&((ms + 999) / 1000).to_string()) {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
