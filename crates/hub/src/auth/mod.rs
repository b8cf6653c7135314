//! Accounts' secrets and the request principal.
//!
//! Passwords: argon2id (PHC strings). Session tokens and API keys: 32 random bytes,
//! stored only as SHA-256 (a high-entropy token needs no slow hash), looked up by hash
//! and compared again in constant time.

use crate::state::AppState;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use threshold_store::{Role, StoreError, UserRow};

pub mod checks;
pub mod limiter;
pub mod policy;
pub mod throttle;
pub use checks::{Busy, PasswordChecks};
pub use limiter::AttemptLimiter;

pub const SESSION_COOKIE: &str = "threshold_session";
const SESSION_PREFIX: &str = "thr_s_";
const API_KEY_PREFIX: &str = "thr_k_";

/// Why a secret could not be made or a request's principal not be established.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No valid session token or API key.
    #[error("sign in first")]
    Unauthenticated,
    /// Signed in, but in a role that may not do this.
    #[error("your role may not do this")]
    Forbidden,
    /// The operating system's random source failed.
    #[error("no randomness: {0}")]
    Random(#[from] getrandom::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A PHC hash of a random password: verifying against it costs the same as a real
/// check, so unknown usernames are not revealed by timing.
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3hT9qQv9o3m5t8m1E7sJm0cG0l8mQxX0b6l2m1W8k3A"
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_token(prefix: &str) -> Result<String, AuthError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b)?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    ))
}

pub fn new_session_token() -> Result<String, AuthError> {
    random_token(SESSION_PREFIX)
}

pub fn new_api_key() -> Result<String, AuthError> {
    random_token(API_KEY_PREFIX)
}

pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Who is making a request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: UserRow,
    /// Hash of the session token, when signed in by session (for logout).
    pub session_hash: Option<String>,
    /// Hash of the API key, when signed in by one.
    pub api_key_hash: Option<String>,
}

impl Principal {
    pub fn require(&self, role: Role) -> Result<&str, AuthError> {
        if self.user.role == role {
            Ok(&self.user.id)
        } else {
            Err(AuthError::Forbidden)
        }
    }
    pub fn actor(&self) -> String {
        format!("{}:{}", self.user.role.as_str(), self.user.id)
    }
}

pub async fn principal_from_token(state: &AppState, token: &str) -> Result<Principal, AuthError> {
    let hash = sha256_hex(token);
    let now = state.clock.now_ms();
    if token.starts_with(API_KEY_PREFIX) {
        let (stored, user) = state
            .store
            .api_key_user(&hash)
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        if !ct_eq(&stored, &hash) {
            return Err(AuthError::Unauthenticated);
        }
        return Ok(Principal {
            user,
            session_hash: None,
            api_key_hash: Some(hash),
        });
    }
    let (stored, user) = state
        .store
        .session_user(&hash, now)
        .await?
        .ok_or(AuthError::Unauthenticated)?;
    if !ct_eq(&stored, &hash) {
        return Err(AuthError::Unauthenticated);
    }
    Ok(Principal {
        user,
        session_hash: Some(hash),
        api_key_hash: None,
    })
}

/// Whether what signed `p` in still holds now: the session not ended nor expired, the
/// API key not removed. Long-lived connections (WebSockets) ask this every second, so
/// a logout or revocation closes them too. A database error counts as no.
pub async fn still_valid(state: &AppState, p: &Principal) -> bool {
    let now = state.clock.now_ms();
    if let Some(h) = &p.session_hash {
        return matches!(state.store.session_user(h, now).await, Ok(Some(_)));
    }
    if let Some(h) = &p.api_key_hash {
        return matches!(state.store.api_key_user(h).await, Ok(Some(_)));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_verifies_only_the_right_password() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn tokens_are_unique_and_prefixed() {
        let a = new_session_token().unwrap();
        let b = new_session_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(SESSION_PREFIX));
        assert!(new_api_key().unwrap().starts_with(API_KEY_PREFIX));
    }

    #[test]
    fn constant_time_eq_behaves_like_eq() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
    }
}
