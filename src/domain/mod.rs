//! Validated input types. Both APIs convert what they receive into these (SPEC §4), so a rule
//! is written once and a service can only ever be handed valid values.

mod account;
mod email;
mod password;
mod profile;
mod text;

pub use account::{AccountPatch, Credentials, NewAccount};
pub use email::Email;
pub use password::{MAX_PASSWORD_BYTES, Password};
pub use profile::{ProfileFields, ProfilePatch};
pub use text::{Name, Patch};

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
