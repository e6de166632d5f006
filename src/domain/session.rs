//! Inputs of the session operations: refresh, password change, account deletion, and where
//! a login comes from.

use std::{fmt, net::IpAddr};

use super::{Checks, Password, presented_password};
use crate::error::AppError;

/// Longest user agent kept with a session (the column's size), in characters.
pub const MAX_USER_AGENT_CHARS: usize = 255;

/// Longest request id kept with an audit event (the column's size).
pub const MAX_REQUEST_ID_CHARS: usize = 64;

/// Where a request comes from: kept with the sessions it opens and the events it causes.
#[derive(Clone, Debug)]
pub struct Origin {
    pub ip: IpAddr,
    /// The `User-Agent` header, printable characters only, cut to 255 characters.
    pub user_agent: Option<String>,
    /// The request's `x-request-id`, printable ASCII only, cut to 64 characters.
    pub request_id: Option<String>,
}

impl Origin {
    pub fn new(ip: IpAddr, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_USER_AGENT_CHARS)
                    .collect::<String>()
                    .trim()
                    .to_owned()
            })
            .filter(|ua| !ua.is_empty());
        Self {
            ip,
            user_agent,
            request_id: None,
        }
    }

    /// The same origin, for the request with this id.
    pub fn with_request_id(mut self, request_id: Option<&str>) -> Self {
        self.request_id = request_id
            .map(|id| {
                id.chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(MAX_REQUEST_ID_CHARS)
                    .collect::<String>()
            })
            .filter(|id| !id.is_empty());
        self
    }
}

/// A refresh token as presented. Never printed.
pub struct RefreshToken(String);

impl RefreshToken {
    /// A token longer than any we issue is answered as an unknown one (401), before it is
    /// hashed or looked up.
    pub fn parse(raw: String) -> Result<Self, AppError> {
        if raw.trim().is_empty() {
            return Err(AppError::validation(
                "refresh_token",
                "Refresh token is required.",
            ));
        }
        let raw = raw.trim();
        if raw.len() > MAX_TOKEN_CHARS || raw.bytes().any(|b| b.is_ascii_control()) {
            return Err(AppError::Unauthenticated(INVALID_REFRESH_TOKEN));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

/// A verification or reset token as presented (from a link). Never printed.
pub struct AccountToken(String);

impl AccountToken {
    pub fn parse(raw: String) -> Result<Self, AppError> {
        required_token(raw, "token", "Token is required.").map(Self)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccountToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountToken([redacted])")
    }
}

/// The answer to a refresh token that matches no live session.
pub const INVALID_REFRESH_TOKEN: &str = "Invalid refresh token";

/// Longest token read from a client: ours are 43 characters; anything much longer is
/// refused before it is hashed or looked up.
pub const MAX_TOKEN_CHARS: usize = 256;

/// A token as presented, trimmed; 400 on `field` when there is none, or when it is longer
/// than any token we issue or holds control characters (it then matches nothing).
fn required_token(raw: String, field: &str, missing: &str) -> Result<String, AppError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(AppError::validation(field, missing));
    }
    if raw.len() > MAX_TOKEN_CHARS || raw.bytes().any(|b| b.is_ascii_control()) {
        return Err(AppError::validation(field, "Invalid or expired token."));
    }
    Ok(raw.to_owned())
}

/// A password reset: the token from the link and the new password.
pub struct PasswordReset {
    pub token: AccountToken,
    pub new: Password,
}

impl PasswordReset {
    pub fn parse(token: String, new: String) -> Result<Self, AppError> {
        let mut checks = Checks::default();
        let token = checks.check("token", AccountToken::parse(token).map_err(|e| e.message()));
        let new = checks.check("new_password", Password::parse(new));
        checks.finish(|| {
            Some(Self {
                token: token?,
                new: new?,
            })
        })
    }
}

impl fmt::Debug for PasswordReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordReset([redacted])")
    }
}

/// A password change: the current password (only checked against the hash, so only its
/// presence is validated) and a new one that follows the registration rules.
pub struct PasswordChange {
    pub current: String,
    pub new: Password,
}

impl PasswordChange {
    pub fn parse(current: String, new: String) -> Result<Self, AppError> {
        let mut checks = Checks::default();
        let current = checks.check(
            "current_password",
            presented_password(current).map_err(|e| e.replace("Password", "Current password")),
        );
        let new = checks.check("new_password", Password::parse(new));
        checks.finish(|| {
            Some(Self {
                current: current?,
                new: new?,
            })
        })
    }
}

impl fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordChange([redacted])")
    }
}

/// The password that confirms an account's deletion.
pub struct Confirmation(pub String);

impl Confirmation {
    pub fn parse(password: String) -> Result<Self, AppError> {
        let mut checks = Checks::default();
        let password = checks.check("password", presented_password(password));
        checks.finish(|| Some(Self(password?)))
    }
}

impl fmt::Debug for Confirmation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Confirmation([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_printable_and_bounded() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(Origin::new(ip, None).user_agent, None);
        assert_eq!(Origin::new(ip, Some("  \t")).user_agent, None);
        assert_eq!(
            Origin::new(ip, Some("curl/8\r\n\u{7}x"))
                .user_agent
                .as_deref(),
            Some("curl/8x")
        );
        let long = "é".repeat(1000);
        assert_eq!(
            Origin::new(ip, Some(&long))
                .user_agent
                .unwrap()
                .chars()
                .count(),
            MAX_USER_AGENT_CHARS
        );
    }

    #[test]
    fn a_new_password_follows_the_registration_rules() {
        let err = PasswordChange::parse(String::new(), "short".into()).unwrap_err();
        let AppError::Validation(errors) = err else {
            panic!("not a validation error")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["current_password", "new_password"]);
        assert!(PasswordChange::parse("old".into(), "NewPass1234".into()).is_ok());
        assert!(RefreshToken::parse("  ".into()).is_err());
        assert!(Confirmation::parse(String::new()).is_err());
    }
}
