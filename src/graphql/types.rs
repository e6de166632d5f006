//! Output and input types of the schema. Outputs wrap the services' structs; inputs are
//! converted into domain types by the resolvers.

use async_graphql::{InputObject, MaybeUndefined, Object, Scalar, ScalarType, SimpleObject, Value};
use chrono::{SecondsFormat, Utc};

use crate::services::{AccessToken, Account};

/// A point in time, in UTC, as an RFC 3339 string (`2025-01-01T00:00:00Z`).
#[derive(Clone, Copy, Debug)]
pub struct DateTime(pub chrono::DateTime<Utc>);

#[Scalar(
    name = "DateTime",
    specified_by_url = "https://www.rfc-editor.org/rfc/rfc3339"
)]
impl ScalarType for DateTime {
    fn parse(value: Value) -> async_graphql::InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Self(t.with_timezone(&Utc)))
                .map_err(|_| async_graphql::InputValueError::expected_type(value)),
            _ => Err(async_graphql::InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

/// An account. `name` is the display name kept on the account's profile.
pub struct User(pub Account);

#[Object]
impl User {
    /// The account's id.
    async fn id(&self) -> i32 {
        self.0.id
    }

    /// The login email, lower-cased.
    async fn email(&self) -> &str {
        &self.0.email
    }

    /// The display name from the profile; null when unset or when the profile is deleted.
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// When the account (email or name) last changed.
    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }
}

/// A bearer token: send it as `Authorization: Bearer <accessToken>`.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// The signed JWT.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

impl From<AccessToken> for AuthPayload {
    fn from(t: AccessToken) -> Self {
        Self {
            access_token: t.token,
            token_type: "bearer",
            expires_in: t.expires_in,
        }
    }
}

/// A new account.
#[derive(InputObject)]
pub struct RegisterInput {
    /// A valid email address, at most 254 characters; stored lower-cased.
    pub email: String,
    /// At least 8 characters and at most 72 bytes.
    pub password: String,
    /// An optional display name (at most 100 characters), stored on the profile.
    pub name: Option<String>,
}

/// Credentials to exchange for a token.
#[derive(InputObject)]
pub struct LoginInput {
    /// The account's email (any case).
    pub email: String,
    /// The account's password.
    pub password: String,
}

/// A change to the account. Omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateMeInput {
    /// A new email address; must not belong to another account.
    pub email: MaybeUndefined<String>,
    /// A new display name; `null` clears it.
    pub name: MaybeUndefined<String>,
}
