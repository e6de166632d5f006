//! Validated input types. Both APIs convert what they receive into these, so a rule is
//! written once and a service can only ever be handed valid values.

mod account;
mod admin;
mod email;
mod mfa;
mod oidc;
mod passkey;
mod password;
mod profile;
mod session;
mod text;
mod webhook;

pub use account::{AccountPatch, Credentials, NewAccount, presented_password};
pub use admin::{
    AuditAction, Cursor, CursorKind, MAX_PAGE, PageRequest, Role, UserFilter, UserStatus,
};
pub use email::{Email, MAX_EMAIL_CHARS};
pub use mfa::{
    Amr, Factor, INVALID_CODE, INVALID_MFA_TOKEN, MfaCode, MfaDisable, MfaToken, MfaVerification,
};
pub use oidc::{
    ExchangeCode, INVALID_EXCHANGE_CODE, INVALID_REDIRECT, INVALID_SIGN_IN_ATTEMPT, OidcCallback,
    RedirectTarget,
};
pub use passkey::{PasskeyRegistrationInput, PasskeySignIn};
pub use password::{MAX_PASSWORD_BYTES, Password};
pub use profile::{ProfileFields, ProfilePatch};
pub use session::{
    AccountToken, Confirmation, INVALID_REFRESH_TOKEN, Origin, PasswordChange, PasswordReset,
    RefreshToken,
};
pub use text::{Given, Name, Patch};
pub use webhook::{NewWebhook, WEBHOOK_EVENT_TYPES};

use crate::error::{AppError, FieldError};

/// Collects every field's problem, so one response can list them all.
#[derive(Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    /// Keeps the value, or records the message against `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|message| self.0.push(FieldError::new(field, message)))
            .ok()
    }

    /// The built value when nothing was recorded, else a `Validation` error listing all.
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, AppError> {
        if !self.0.is_empty() {
            return Err(AppError::Validation(self.0));
        }
        build().ok_or_else(|| AppError::internal(anyhow::anyhow!("validated input is incomplete")))
    }
}

/// Fuzzing the validation: any input is either accepted as a valid value or refused with a
/// message, never a panic; and what is accepted respects the limits.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn field() -> impl Strategy<Value = Given<String>> {
        prop_oneof![
            Just(Given::Absent),
            Just(Given::Null),
            ".{0,1200}".prop_map(Given::Value),
            "\\+[0-9 ]{0,20}".prop_map(Given::Value),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn accounts_validate_without_panicking(email in ".{0,300}", password in ".{0,100}", name in proptest::option::of(".{0,150}")) {
            if let Ok(account) = NewAccount::parse(&email, password.clone(), name.as_deref()) {
                prop_assert!(account.email.as_str().chars().count() <= 254);
                prop_assert!(account.email.as_str().contains('@'));
                prop_assert!(password.len() <= 72 && password.chars().count() >= 8);
            }
            let _ = Credentials::parse(&email, password);
        }

        #[test]
        fn profiles_validate_without_panicking(name in field(), phone in field(), bio in field()) {
            let fields = ProfileFields { name, phone, bio, ..Default::default() };
            if let Ok(patch) = ProfilePatch::parse(fields) {
                if let Patch::Set(phone) = patch.phone {
                    prop_assert!(phone.starts_with('+'));
                    prop_assert!((8..=16).contains(&phone.len()));
                }
                if let Patch::Set(bio) = patch.bio {
                    prop_assert!(bio.chars().count() <= 1000);
                }
            }
        }
    }
}
