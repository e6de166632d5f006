//! One error type for the whole service and one code table that renders it twice: as a GraphQL
//! error with `extensions.code` (and `extensions.errors` / `extensions.retryAfter`), and, in the
//! REST layer, as an HTTP status with a `{"detail": …}` body.
//!
//! `AppError` deliberately does not implement `Display`: async-graphql converts any `Display`
//! error with `?` and silently drops its extensions. Our explicit `From<AppError>` is the only
//! road into a GraphQL error, so `?` in a resolver keeps the code. The GraphQL error also
//! carries the `AppError` itself as its source, so the REST layer renders the very value the
//! service returned (`ServerError::source::<AppError>()`), never a string parsed back.
//!
//! Server-side failures are logged once, by whichever renderer answers the client:
//! [`AppError::log`] is called by the REST problem renderer and by `/graphql`'s.

use std::sync::Arc;

use axum::http::StatusCode;
use sea_orm::{DbErr, RuntimeErr};
use serde::{Deserialize, Serialize};

pub const NOT_AUTHENTICATED: &str = "Not authenticated";
pub const BAD_CREDENTIALS: &str = "Incorrect email or password";
pub const INTERNAL: &str = "Internal server error";
pub const UNAVAILABLE: &str = "Service unavailable";
pub const RATE_LIMITED: &str = "Too many attempts; try again later";
pub const BUSY: &str = "Server busy";
/// Registration or an email change to an address another account has (or holds for its
/// owner's undo link).
pub const EMAIL_TAKEN: &str = "Email already registered.";
/// A password that confirms a sensitive change (deletion, two-factor settings) is wrong.
pub const PASSWORD_WRONG: &str = "Password is incorrect.";

pub const MFA_REQUIRED: &str = "Two-factor authentication required";

/// The second step a right password still needs: a short-lived, single-use token to send
/// with a code, and the kinds of code that work.
#[derive(Clone)]
pub struct MfaChallenge {
    pub token: String,
    pub methods: Vec<&'static str>,
    pub expires_in: u64,
}

impl std::fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallenge")
            .field("methods", &self.methods)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Why an authenticated caller (or the right password) is still refused: typed, so a caller
/// can tell the reasons apart without comparing messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not an admin.
    NotAllowed,
    /// An admin disabled the account.
    AccountDisabled,
    /// `REQUIRE_VERIFIED_EMAIL` and the address is not verified.
    EmailNotVerified,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Self::NotAllowed => "Forbidden",
            Self::AccountDisabled => "Account disabled",
            Self::EmailNotVerified => "Email not verified",
        }
    }
}

/// One invalid input field, reported in `errors` on REST and `extensions.errors` on GraphQL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What went wrong, as the client may learn it. `Internal` keeps its cause for the log only.
#[derive(Clone, Debug)]
pub enum AppError {
    /// Input failed validation; never empty, the first entry becomes `detail`.
    Validation(Vec<FieldError>),
    Unauthenticated(&'static str),
    /// Authenticated (or the right password) but not allowed.
    Forbidden(Refusal),
    NotFound(&'static str),
    Conflict(&'static str),
    /// The right password (or another first factor); a second factor is still due.
    MfaRequired(Box<MfaChallenge>),
    PayloadTooLarge(String),
    RateLimited {
        retry_after_secs: u64,
    },
    /// The database (or another required backend) cannot be reached.
    Unavailable(Arc<anyhow::Error>),
    /// The work would wait longer than its queue allows (password hashing): refused at once,
    /// to be tried again after `retry_after_secs`.
    Busy {
        retry_after_secs: u64,
    },
    Internal(Arc<anyhow::Error>),
}

/// The code table: each code's GraphQL name and HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    BadUserInput,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    MfaRequired,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    InternalServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::MfaRequired => "MFA_REQUIRED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::RateLimited => "RATE_LIMITED",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::BadUserInput => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::MfaRequired => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl AppError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The 413 for an uploaded file over `max_bytes` (`MAX_UPLOAD_BYTES`).
    pub fn file_too_large(max_bytes: usize) -> Self {
        Self::PayloadTooLarge(format!("File too large; the limit is {max_bytes} bytes."))
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(Arc::new(cause.into()))
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) => ErrorCode::BadUserInput,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::MfaRequired(_) => ErrorCode::MfaRequired,
            Self::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable(_) | Self::Busy { .. } => ErrorCode::ServiceUnavailable,
            Self::Internal(_) => ErrorCode::InternalServerError,
        }
    }

    /// The message the client sees (`detail` on REST, `message` on GraphQL).
    pub fn message(&self) -> String {
        match self {
            Self::Validation(errors) => errors
                .first()
                .map_or_else(|| "Invalid input".to_owned(), |e| e.message.clone()),
            Self::Unauthenticated(m) | Self::NotFound(m) | Self::Conflict(m) => (*m).to_owned(),
            Self::Forbidden(refusal) => refusal.message().to_owned(),
            Self::MfaRequired(_) => MFA_REQUIRED.to_owned(),
            Self::PayloadTooLarge(m) => m.clone(),
            Self::RateLimited { .. } => RATE_LIMITED.to_owned(),
            Self::Unavailable(_) => UNAVAILABLE.to_owned(),
            Self::Busy { .. } => BUSY.to_owned(),
            Self::Internal(_) => INTERNAL.to_owned(),
        }
    }

    /// Writes the hidden cause of a server-side failure to the log (with the request's span).
    pub fn log(&self) {
        match self {
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error")
            }
            Self::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "backend unavailable")
            }
            _ => {}
        }
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        if is_unavailable(&err) {
            Self::Unavailable(Arc::new(err.into()))
        } else {
            Self::internal(err)
        }
    }
}

/// Is this a failure to reach the database (rather than a bug in a query)?
fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        // Failing to get or open a connection is, by definition, not reaching the database.
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                Sqlx::Io(_)
                | Sqlx::Tls(_)
                | Sqlx::Protocol(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed => true,
                // PostgreSQL: connection exceptions (08…), the server shutting down (57P0…),
                // too many connections (53300).
                Sqlx::Database(db) => db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0") || c == "53300"),
                _ => false,
            }
        }
        _ => false,
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let mut gql = async_graphql::Error::new(err.message());
        let mut ext = async_graphql::ErrorExtensionValues::default();
        ext.set("code", err.code().as_str());
        match &err {
            AppError::Validation(errors) => {
                let list = errors
                    .iter()
                    .map(|e| {
                        let mut m = async_graphql::indexmap::IndexMap::new();
                        m.insert(
                            async_graphql::Name::new("field"),
                            async_graphql::Value::from(e.field.as_str()),
                        );
                        m.insert(
                            async_graphql::Name::new("message"),
                            async_graphql::Value::from(e.message.as_str()),
                        );
                        async_graphql::Value::Object(m)
                    })
                    .collect::<Vec<_>>();
                ext.set("errors", async_graphql::Value::List(list));
            }
            AppError::RateLimited { retry_after_secs } | AppError::Busy { retry_after_secs } => {
                ext.set("retryAfter", *retry_after_secs)
            }
            AppError::MfaRequired(challenge) => {
                ext.set("mfaToken", challenge.token.as_str());
                ext.set("mfaMethods", challenge.methods.clone());
                ext.set("mfaExpiresIn", challenge.expires_in);
            }
            _ => {}
        }
        gql.extensions = Some(ext);
        gql.source = Some(Arc::new(err));
        gql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_errors_carry_the_app_error_itself() {
        let gql: async_graphql::Error = AppError::Conflict("Email already registered.").into();
        let server = gql.into_server_error(async_graphql::Pos::default());
        let source = server
            .source::<AppError>()
            .expect("the AppError travels along");
        assert_eq!(source.code(), ErrorCode::Conflict);
        assert_eq!(source.message(), "Email already registered.");
    }

    #[test]
    fn graphql_errors_carry_the_code_and_field_list() {
        let err: async_graphql::Error = AppError::Validation(vec![
            FieldError::new("email", "Invalid email format."),
            FieldError::new("password", "Password must be at least 8 characters long."),
        ])
        .into();
        assert_eq!(err.message, "Invalid email format.");
        let ext = err.extensions.expect("extensions");
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("BAD_USER_INPUT"))
        );
        let errors = ext
            .get("errors")
            .expect("errors")
            .clone()
            .into_json()
            .unwrap();
        assert_eq!(errors[1]["field"], "password");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = AppError::internal(anyhow::anyhow!("SELECT secret FROM somewhere failed"));
        assert_eq!(err.message(), INTERNAL);
        let gql: async_graphql::Error = err.into();
        assert_eq!(gql.message, INTERNAL);
    }

    #[test]
    fn pool_timeouts_are_unavailable_not_internal() {
        let err: AppError =
            DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout).into();
        assert_eq!(err.code(), ErrorCode::ServiceUnavailable);
        assert_eq!(err.code().status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
