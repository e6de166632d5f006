//! The two-factor types of the schema.

use async_graphql::{InputObject, SimpleObject};

use crate::services::{MfaStatus as MfaStatusView, TotpEnrollment as Enrollment};

/// What an account has of second factors.
#[derive(SimpleObject)]
pub struct MfaStatus {
    /// TOTP (an authenticator app) is on: a sign-in needs a code after the password.
    pub totp: bool,
    /// Recovery codes not yet used.
    pub recovery_codes_left: u64,
    /// Passkeys registered.
    pub passkeys: u64,
}

impl From<MfaStatusView> for MfaStatus {
    fn from(s: MfaStatusView) -> Self {
        Self {
            totp: s.totp,
            recovery_codes_left: s.recovery_codes_left,
            passkeys: s.passkeys,
        }
    }
}

/// A pending TOTP secret, shown this once: type `secret` into an authenticator app, or let
/// it read `otpauthUri` (as a QR code). `confirmTotpEnrollment` with a code turns it on.
#[derive(SimpleObject)]
pub struct TotpEnrollment {
    /// The secret, base32 (160 bits).
    pub secret: String,
    /// `otpauth://totp/…`, what authenticator apps scan.
    pub otpauth_uri: String,
}

impl From<Enrollment> for TotpEnrollment {
    fn from(e: Enrollment) -> Self {
        Self {
            secret: e.secret,
            otpauth_uri: e.otpauth_uri,
        }
    }
}

/// Recovery codes, shown this once: each signs in once in place of a TOTP code. Keep them
/// apart from the phone.
#[derive(SimpleObject)]
pub struct RecoveryCodes {
    /// Ten codes, `xxxx-xxxx-xxxx-xxxx` (case, spaces and hyphens do not matter).
    pub codes: Vec<String>,
}

/// Turning TOTP off.
#[derive(InputObject)]
pub struct DisableTotpInput {
    /// The account's password.
    pub password: String,
    /// A current TOTP code, or a recovery code.
    pub code: String,
}

/// The second step of a sign-in.
#[derive(InputObject)]
pub struct VerifyMfaInput {
    /// The `mfaToken` of the `MFA_REQUIRED` error.
    pub mfa_token: String,
    /// A TOTP code, or a recovery code.
    pub code: String,
}
