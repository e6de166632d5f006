//! The random tokens the services hand out (refresh, verification, reset, undo, OpenID
//! exchange codes) and the form they are stored in: a leaf.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use sha2::{Digest, Sha256};

use super::time::{delta, now};
use crate::{entities::account_token, error::AppError};

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

/// A new token for `purpose`, stored as its hash, leaving the earlier ones as they are.
pub(super) async fn new_account_token(
    db: &impl ConnectionTrait,
    user_id: i32,
    purpose: &str,
    email: &str,
    ttl: Duration,
) -> Result<String, AppError> {
    let now = now();
    let token = new_random_token()?;
    account_token::ActiveModel {
        user_id: Set(user_id),
        purpose: Set(purpose.to_owned()),
        token_hash: Set(token_hash(&token)),
        email: Set(email.to_owned()),
        created_at: Set(now),
        expires_at: Set(now + delta(ttl)),
        used_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(token)
}
