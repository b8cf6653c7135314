//! Request extractors whose rejections are JSON API errors, and input validation.

use crate::auth::{principal_from_token, AuthError, Principal};
use crate::http::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The signed-in account making the request (bearer token, API key or session
/// cookie); a request without one is refused as `unauthenticated`.
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(AuthError::Unauthenticated)?;
        Ok(principal_from_token(state, &token).await?)
    }
}

/// The token a request carries: a bearer header, else the session cookie.
fn bearer(parts: &Parts) -> Option<String> {
    if let Some(h) = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = h.strip_prefix("Bearer ") {
            return Some(t.trim().to_owned());
        }
    }
    let cookies = parts.headers.get_all(axum::http::header::COOKIE);
    for c in cookies.iter().filter_map(|v| v.to_str().ok()) {
        for kv in c.split(';') {
            if let Some(v) = kv
                .trim()
                .strip_prefix(crate::auth::SESSION_COOKIE)
                .and_then(|r| r.strip_prefix('='))
            {
                return Some(v.to_owned());
            }
        }
    }
    None
}

/// Like `axum::Json`, but malformed, mistyped or oversized bodies become
/// `{"error":{"code":"invalid_request"|"payload_too_large",...}}`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::TooLarge)
            }
            Err(e) => Err(ApiError::BadRequest(
                e.body_text().chars().take(300).collect(),
            )),
        }
    }
}

/// Like `axum::extract::Query`, but a malformed or mistyped query string becomes a
/// JSON `invalid_request` error, like every other error.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::BadRequest(e.body_text().chars().take(300).collect()))
    }
}

/// A JSON body that may be left out: no body at all is `T::default()`. A body that
/// is there must parse, like [`ApiJson`].
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::TooLarge)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalJson)
            .map_err(|e| ApiError::BadRequest(e.to_string().chars().take(300).collect()))
    }
}

/// A user-supplied text field: non-empty, at most `max` characters, no control
/// characters. Returned trimmed.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("{field} must not be empty"),
        ));
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("{field} must be at most {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(v.to_owned())
}

pub fn username(value: &str) -> Result<String, ApiError> {
    let v = text("username", value, 64)?;
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(ApiError::invalid(
            "invalid_field",
            "username may contain only letters, digits and . _ - @",
        ));
    }
    Ok(v.to_ascii_lowercase())
}

/// A new password for `username` (`auth::policy`).
pub fn password<'a>(value: &'a str, username: &str) -> Result<&'a str, ApiError> {
    crate::auth::policy::check(value, username)
        .map_err(|e| ApiError::invalid("weak_password", e.to_string()))?;
    Ok(value)
}

/// An id in a path: our ids are lowercase hex; anything else cannot exist.
pub fn id(value: &str) -> Result<&str, ApiError> {
    if value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value)
    } else {
        Err(ApiError::NotFound("resource"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert!(text("name", "  Hall  ", 10).is_ok_and(|v| v == "Hall"));
        assert!(text("name", "", 10).is_err());
        assert!(text("name", &"x".repeat(11), 10).is_err());
        assert!(text("name", "a\u{0}b", 10).is_err());
        assert!(text("name", "<script>alert(1)</script>", 100).is_ok());
    }

    #[test]
    fn ids_must_look_like_ids() {
        assert!(id(&"a".repeat(32)).is_ok());
        assert!(id("../../etc/passwd").is_err());
        assert!(id("' OR 1=1 --").is_err());
    }
}
