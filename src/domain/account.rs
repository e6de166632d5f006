use std::fmt;

use super::{Checks, Email, Given, Name, Password, Patch};
use crate::error::AppError;

/// A registration: valid email and password, optional display name.
#[derive(Debug)]
pub struct NewAccount {
    pub email: Email,
    pub password: Password,
    pub name: Option<Name>,
}

impl NewAccount {
    pub fn parse(email: &str, password: String, name: Option<&str>) -> Result<Self, AppError> {
        let mut checks = Checks::default();
        let email = checks.check("email", Email::parse(email));
        let password = checks.check("password", Password::parse(password));
        let name = checks.check(
            "name",
            name.map(Name::parse).transpose().map(Option::flatten),
        );
        checks.finish(|| {
            Some(Self {
                email: email?,
                password: password?,
                name: name?,
            })
        })
    }
}

/// Longest password a login (or any check of a current password) reads; new passwords are
/// bounded tighter, by bcrypt's 72 bytes.
pub const MAX_PRESENTED_PASSWORD_CHARS: usize = 128;

/// What a login presents. The email is bounded and normalised, not judged: a malformed one
/// matches no account, and saying so would differ from the answer for a wrong password.
pub struct Credentials {
    pub email: String,
    pub password: String,
}

impl Credentials {
    pub fn parse(email: &str, password: String) -> Result<Self, AppError> {
        let mut checks = Checks::default();
        let email = checks.check("email", Email::lookup(email));
        let password = checks.check("password", presented_password(password));
        checks.finish(|| {
            Some(Self {
                email: email?,
                password: password?,
            })
        })
    }
}

/// A password as presented for a check: required, and at most
/// [`MAX_PRESENTED_PASSWORD_CHARS`] (counted before anything else is done with it).
pub fn presented_password(password: String) -> Result<String, String> {
    if password.is_empty() {
        return Err("Password is required.".into());
    }
    if password.chars().nth(MAX_PRESENTED_PASSWORD_CHARS).is_some() {
        return Err(format!(
            "Password must be at most {MAX_PRESENTED_PASSWORD_CHARS} characters."
        ));
    }
    Ok(password)
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A change to the account view: the email (never cleared) and the profile's name.
#[derive(Debug, Default)]
pub struct AccountPatch {
    pub email: Option<Email>,
    pub name: Patch<Name>,
}

impl AccountPatch {
    pub fn parse(email: Given<String>, name: Given<String>) -> Result<Self, AppError> {
        let mut checks = Checks::default();
        let email = match email {
            Given::Absent => Some(None),
            Given::Null => checks.check("email", Err("Email cannot be null.".into())),
            Given::Value(raw) => checks.check("email", Email::parse(&raw).map(Some)),
        };
        let name = checks.check("name", Patch::from_input(name, |raw| Name::parse(&raw)));
        checks.finish(|| {
            Some(Self {
                email: email?,
                name: name?,
            })
        })
    }

    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.name.is_keep()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn fields(err: AppError) -> Vec<(String, String)> {
        match err {
            AppError::Validation(list) => list.into_iter().map(|e| (e.field, e.message)).collect(),
            other => panic!("expected a validation error, got {:?}", other.code()),
        }
    }

    #[test]
    fn registration_lists_every_invalid_field() {
        let err = NewAccount::parse("nope", "short".into(), Some(&"n".repeat(101))).unwrap_err();
        let f = fields(err);
        assert_eq!(
            f.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["email", "password", "name"]
        );
        assert_eq!(f[1].1, "Password must be at least 8 characters long.");
    }

    #[test]
    fn a_valid_registration_is_normalised() {
        let a =
            NewAccount::parse(" Bob@Example.com", "StrongPass123".into(), Some(" Bob ")).unwrap();
        assert_eq!(a.email.as_str(), "bob@example.com");
        assert_eq!(a.name.unwrap().into_inner(), "Bob");
    }

    #[test]
    fn login_needs_both_fields_but_not_a_valid_format() {
        assert!(Credentials::parse("whatever", "x".into()).is_ok());
        let f = fields(Credentials::parse(" ", String::new()).unwrap_err());
        assert_eq!(f.len(), 2);
        let f = fields(Credentials::parse(&"a".repeat(300), "p".repeat(129)).unwrap_err());
        assert_eq!(f[0].1, "Email must be at most 254 characters.");
        assert_eq!(f[1].1, "Password must be at most 128 characters.");
    }

    #[test]
    fn account_patch_refuses_a_null_email() {
        let err = AccountPatch::parse(Given::Null, Given::Absent).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadUserInput);
        let patch = AccountPatch::parse(Given::Absent, Given::Null).unwrap();
        assert_eq!(patch.name, Patch::Clear);
        assert!(patch.email.is_none());
    }
}
