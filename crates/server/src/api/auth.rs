//! Bearer API keys. A key is `tbk_` and 40 random characters, shown once; only its SHA-256
//! is stored (a key has far more entropy than a password, so a fast hash is the right one).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::AppState;

/// The account the request's API key belongs to.
#[derive(Debug, Clone, Copy)]
pub struct ApiAccount(pub i64);

pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new key: `tbk_` + 40 characters from 62.
pub fn new_key() -> String {
    format!("tbk_{}", textback_core::secret::random_token(40))
}

impl FromRequestParts<AppState> for ApiAccount {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized(
                "send the API key as Authorization: Bearer tbk_…",
            ))?;
        let key = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|k| k.starts_with("tbk_"))
            .ok_or(ApiError::Unauthorized(
                "the Authorization header must be Bearer tbk_…",
            ))?;
        match state
            .store
            .api_key_account(&key_hash(key), state.now_ms())
            .await?
        {
            Some(account) => Ok(ApiAccount(account)),
            None => Err(ApiError::Unauthorized("unknown or revoked API key")),
        }
    }
}
