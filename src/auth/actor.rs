use axum::http::{HeaderMap, header::AUTHORIZATION};
use uuid::Uuid;

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
    /// A valid token. Whether its user and session are still live is checked by the
    /// service that serves the request, in the query that loads the user.
    User(Bearer),
}

/// What a valid access token says: the user, and the session it was issued in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bearer {
    pub user_id: i32,
    pub session_id: Uuid,
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
            Some(bearer) => Self::User(bearer),
            None => Self::InvalidToken,
        }
    }

    /// What the caller's token says, or 401.
    pub fn bearer(&self) -> Result<Bearer, AppError> {
        match self {
            Self::User(bearer) => Ok(*bearer),
            Self::Anonymous | Self::InvalidToken => {
                Err(AppError::Unauthenticated(NOT_AUTHENTICATED))
            }
        }
    }
}
