use axum::http::{HeaderMap, header::AUTHORIZATION};

use super::JwtKeys;
use crate::error::{AppError, NOT_AUTHENTICATED};

/// Who is making the request, as far as the token says. Built once per request by the HTTP
/// layer (GraphQL and REST alike) and handed to every service call.
///
/// A bad token does not fail the request by itself: operations that need no account
/// (register, login) still work, and those that need one answer 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    Anonymous,
    /// A token was sent but is malformed, forged or expired.
    InvalidToken,
    /// A valid token for this user id. Whether the user still exists is checked by the
    /// service that loads it.
    User(i32),
}

impl Actor {
    pub fn from_headers(headers: &HeaderMap, keys: &JwtKeys) -> Self {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Self::Anonymous;
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match token.and_then(|t| keys.verify(t)) {
            Some(user_id) => Self::User(user_id),
            None => Self::InvalidToken,
        }
    }

    /// The caller's user id, or 401.
    pub fn user_id(&self) -> Result<i32, AppError> {
        match self {
            Self::User(id) => Ok(*id),
            Self::Anonymous | Self::InvalidToken => {
                Err(AppError::Unauthenticated(NOT_AUTHENTICATED))
            }
        }
    }
}
