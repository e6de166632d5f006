//! Inputs of two-factor authentication: a code (TOTP or recovery), the `mfa_token` of a
//! sign-in's second step, and the factors a session was opened with (its `amr`).

use std::fmt;

use super::{Checks, presented_password};
use crate::error::AppError;

/// The answer to an `mfa_token` that is unknown, expired, spent or out of attempts.
pub const INVALID_MFA_TOKEN: &str = "Invalid MFA token";
/// The answer to a code that is wrong, used, or from a step too far away.
pub const INVALID_CODE: &str = "Invalid code.";

/// Longest code read from a client: a recovery code with generous spacing. Anything longer is
/// refused before it is normalised, hashed or checked.
pub const MAX_CODE_CHARS: usize = 64;
/// Digits of a TOTP code.
pub const TOTP_DIGITS: usize = 6;

/// A code as a person types it: six digits of their authenticator app, or one of their
/// recovery codes (compared ignoring case, spaces and hyphens). Never printed.
pub enum MfaCode {
    Totp(String),
    Recovery(String),
}

impl MfaCode {
    pub fn parse(raw: String) -> Result<Self, AppError> {
        Self::read(raw).map_err(|message| AppError::validation("code", message))
    }

    /// The code, or the message for the `code` field.
    fn read(raw: String) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Err("Code is required.".into());
        }
        if raw.chars().nth(MAX_CODE_CHARS).is_some() || raw.chars().any(|c| c.is_control()) {
            return Err(INVALID_CODE.into());
        }
        let code = Self::normalise(&raw);
        if code.len() == TOTP_DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self::Totp(code))
        } else {
            Ok(Self::Recovery(code))
        }
    }
}

impl MfaCode {
    /// A code as it is compared and stored: without spaces or hyphens, lower-case. Recovery
    /// codes are hashed in this form, so a code typed any way matches the one shown.
    pub fn normalise(code: &str) -> String {
        code.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    }
}

impl fmt::Debug for MfaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaCode([redacted])")
    }
}

/// The `mfa_token` of a sign-in's second step, as presented. Never printed.
pub struct MfaToken(String);

impl MfaToken {
    /// A token longer than any we issue is answered as an unknown one (401), before it is
    /// hashed or looked up.
    pub fn parse(raw: String) -> Result<Self, AppError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(AppError::validation("mfa_token", "MFA token is required."));
        }
        if raw.len() > super::session::MAX_TOKEN_CHARS || raw.bytes().any(|b| b.is_ascii_control())
        {
            return Err(AppError::Unauthenticated(INVALID_MFA_TOKEN));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MfaToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaToken([redacted])")
    }
}

/// The second step of a sign-in: the token and a code.
#[derive(Debug)]
pub struct MfaVerification {
    pub token: MfaToken,
    pub code: MfaCode,
}

impl MfaVerification {
    pub fn parse(token: String, code: String) -> Result<Self, AppError> {
        let token = MfaToken::parse(token)?;
        Ok(Self {
            token,
            code: MfaCode::parse(code)?,
        })
    }
}

/// Turning TOTP off: the password and a code (TOTP or recovery).
pub struct MfaDisable {
    pub password: String,
    pub code: MfaCode,
}

impl MfaDisable {
    pub fn parse(password: String, code: String) -> Result<Self, AppError> {
        let mut checks = Checks::default();
        let password = checks.check("password", presented_password(password));
        let code = checks.check("code", MfaCode::read(code));
        checks.finish(|| {
            Some(Self {
                password: password?,
                code: code?,
            })
        })
    }
}

impl fmt::Debug for MfaDisable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaDisable([redacted])")
    }
}

/// A way of proving who one is (RFC 8176 names), as a session's `amr` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Factor {
    Password,
    Otp,
    RecoveryCode,
    Passkey,
    Oidc,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::Otp => "otp",
            Self::RecoveryCode => "rc",
            Self::Passkey => "passkey",
            Self::Oidc => "oidc",
        }
    }

    pub fn from_stored(stored: &str) -> Option<Self> {
        [
            Self::Password,
            Self::Otp,
            Self::RecoveryCode,
            Self::Passkey,
            Self::Oidc,
        ]
        .into_iter()
        .find(|f| f.as_str() == stored)
    }
}

/// The factors of a sign-in, in the order they were given; stored space-separated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Amr(Vec<Factor>);

impl Amr {
    pub fn of(first: Factor) -> Self {
        Self(vec![first])
    }

    pub fn and(mut self, next: Factor) -> Self {
        self.0.push(next);
        self
    }

    /// As stored on a session (`pwd otp`); unknown words are dropped.
    pub fn from_stored(stored: &str) -> Self {
        Self(stored.split(' ').filter_map(Factor::from_stored).collect())
    }

    pub fn to_stored(&self) -> String {
        self.names().collect::<Vec<_>>().join(" ")
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|f| f.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recovery(raw: &str) -> String {
        match MfaCode::parse(raw.into()).unwrap() {
            MfaCode::Recovery(code) => code,
            MfaCode::Totp(_) => panic!("{raw} read as a TOTP code"),
        }
    }

    #[test]
    fn codes_are_read_as_a_person_types_them() {
        assert!(
            matches!(MfaCode::parse(" 123 456 ".into()), Ok(MfaCode::Totp(c)) if c == "123456")
        );
        assert_eq!(recovery("ABCD-efgh 2345-6789"), "abcdefgh23456789");
        assert_eq!(recovery("abcd efgh-2345 6789"), "abcdefgh23456789");
        // Seven digits are no TOTP code; they are checked (and refused) as a recovery code.
        assert_eq!(recovery("1234567"), "1234567");
        assert!(MfaCode::parse("  ".into()).is_err());
        assert!(MfaCode::parse("1".repeat(MAX_CODE_CHARS + 1)).is_err());
        assert!(MfaCode::parse("123\u{0}456".into()).is_err());
    }

    #[test]
    fn tokens_are_bounded_before_anything_else() {
        assert!(matches!(
            MfaToken::parse("x".repeat(300)),
            Err(AppError::Unauthenticated(INVALID_MFA_TOKEN))
        ));
        assert!(matches!(
            MfaToken::parse(" ".into()),
            Err(AppError::Validation(_))
        ));
    }

    #[test]
    fn amr_round_trips_through_its_stored_form() {
        let amr = Amr::of(Factor::Password).and(Factor::RecoveryCode);
        assert_eq!(amr.to_stored(), "pwd rc");
        assert_eq!(Amr::from_stored("pwd rc"), amr);
        assert_eq!(Amr::from_stored("pwd nope").to_stored(), "pwd");
    }
}
