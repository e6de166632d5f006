//! The random tokens the services hand out (refresh, verification, reset, undo) and the form
//! they are stored in: a leaf.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// A new token (refresh, verification, reset): 32 random bytes, URL-safe base64 without
/// padding (43 characters).
pub(super) fn new_random_token() -> Result<String, AppError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token: lower-case hex SHA-256. The token is random and
/// long, so a fast hash is enough (nothing to brute-force).
pub(super) fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
