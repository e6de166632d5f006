//! Output and input types of the schema. Outputs wrap the services' structs; inputs are
//! converted into domain types by the resolvers.

use async_graphql::{
    Context, ID, InputObject, MaybeUndefined, Object, Result, Scalar, ScalarType, SimpleObject,
    Value, dataloader::DataLoader,
};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{admin::Role, loaders::ProfileLoader};
use crate::{
    domain::{Given, ProfileFields},
    services::{AccessToken, Account, ProfileView, SessionView},
};

/// A point in time, in UTC, as an RFC 3339 string (`2025-01-01T00:00:00Z`).
#[derive(Clone, Copy, Debug)]
pub struct DateTime(pub chrono::DateTime<Utc>);

/// A point in time, in UTC, as an RFC 3339 string (`2025-01-01T00:00:00Z`).
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

/// An account: its login email, and the display name kept on its profile.
pub struct User(pub Account);

/// An account: its login email, and the display name kept on its profile.
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

    /// True once a link sent to `email` was followed (a changed email is unverified again).
    async fn email_verified(&self) -> bool {
        self.0.email_verified
    }

    /// The display name from the profile; null when unset or when the profile is deleted.
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// What the account may do.
    async fn role(&self) -> Role {
        self.0.role.into()
    }

    /// True while an admin has the account disabled: it may not log in.
    async fn disabled(&self) -> bool {
        self.0.disabled
    }

    /// True while TOTP is on: a sign-in needs a code after the password.
    async fn mfa_enabled(&self) -> bool {
        self.0.mfa_enabled
    }

    /// The last successful login; null before the first.
    async fn last_login_at(&self) -> Option<DateTime> {
        self.0.last_login_at.map(DateTime)
    }

    /// The account's live sessions, most recently used first: your own, or any account's
    /// for an admin (`FORBIDDEN` otherwise).
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>> {
        let (services, actor) = super::context(ctx);
        let sessions = services.sessions_of(&actor, self.0.id).await?;
        Ok(sessions.into_iter().map(Session::from).collect())
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// When the account last changed: its email, or its name (on the profile).
    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }

    /// The account's profile; null after it was deleted. Batched: many users' profiles are
    /// one query.
    async fn profile(&self, ctx: &Context<'_>) -> Result<Option<Profile>> {
        let loader = ctx.data_unchecked::<DataLoader<ProfileLoader>>();
        Ok(loader.load_one(self.0.id).await?.map(Profile::from))
    }
}

/// A bearer token (send it as `Authorization: Bearer <accessToken>`), the refresh token that
/// renews it, and the account it is for, so a client has all three from one round trip.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// The signed JWT.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: `refresh` exchanges it for a new pair. Keep it secret, like a password.
    pub refresh_token: String,
    /// Seconds until the session ends unless it is refreshed.
    pub refresh_expires_in: u64,
    /// The account that logged in.
    pub user: User,
}

impl From<AccessToken> for AuthPayload {
    fn from(t: AccessToken) -> Self {
        Self {
            access_token: t.token,
            token_type: "bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
            refresh_expires_in: t.refresh_expires_in,
            user: User(t.account),
        }
    }
}

/// A signed-in session: one login, renewed by its refresh token until it ends.
#[derive(SimpleObject)]
pub struct Session {
    /// The session's id (`sid` in its access tokens).
    pub id: ID,
    /// When the login happened.
    pub created_at: DateTime,
    /// The login or the last refresh.
    pub last_used_at: DateTime,
    /// When it ends unless it is refreshed.
    pub expires_at: DateTime,
    /// The client's `User-Agent` at the last login or refresh.
    pub user_agent: Option<String>,
    /// The client's address at the last login or refresh.
    pub ip: Option<String>,
    /// True for the session of the token that asks.
    pub current: bool,
}

impl From<SessionView> for Session {
    fn from(s: SessionView) -> Self {
        Self {
            id: ID(s.id),
            created_at: DateTime(s.created_at),
            last_used_at: DateTime(s.last_used_at),
            expires_at: DateTime(s.expires_at),
            user_agent: s.user_agent,
            ip: s.ip,
            current: s.current,
        }
    }
}

/// A refresh token to exchange for a new pair.
#[derive(InputObject)]
pub struct RefreshInput {
    /// The `refreshToken` of the last login or refresh.
    pub refresh_token: String,
}

/// A password change.
#[derive(InputObject)]
pub struct ChangePasswordInput {
    /// The password in use now.
    pub current_password: String,
    /// At least 8 characters and at most 72 bytes.
    pub new_password: String,
}

/// A new password, with the token from a reset link.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The `token` of the link.
    pub token: String,
    /// At least 8 characters and at most 72 bytes.
    pub new_password: String,
}

/// The password that confirms the deletion of the account.
#[derive(InputObject)]
pub struct DeleteAccountInput {
    /// The account's password.
    pub password: String,
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

// Also the REST answer (OpenAPI `ProfileOut`, and `ProfilePublic` without `email`): its
// keys and their order are this struct's fields, so a field added here is added there.
/// A user's profile. Every field that returns a profile returns this one type, so a client
/// cache holds one copy of it. `email` and `user` are the owner's, and read as null for
/// anyone else.
#[derive(SimpleObject, ToSchema)]
#[graphql(complex)]
#[schema(as = ProfileOut, example = json!({
    "id": 2, "user_id": 42, "email": "alice@example.com", "name": "Alice",
    "phone": "+100200300", "bio": "Hello, I like hiking.", "hobby": "hiking",
    "occupation": "Engineer", "location": "San Francisco",
    "profile_photo_path": "uploads/42/123e4567-e89b-12d3-a456-426614174000.jpg",
    "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-02T12:00:00Z"
}))]
pub struct Profile {
    /// The profile's id.
    pub id: i32,
    /// The owner's account id.
    pub user_id: i32,
    /// The owner's email; null unless you are the owner.
    #[schema(value_type = String)]
    pub email: Option<String>,
    /// Display name, at most 100 characters (also the account's `name`).
    pub name: Option<String>,
    /// `+` then country code and number, 7 to 15 digits (`+100200300`).
    pub phone: Option<String>,
    /// Free text, at most 1000 characters.
    pub bio: Option<String>,
    /// At most 100 characters.
    pub hobby: Option<String>,
    /// At most 100 characters.
    pub occupation: Option<String>,
    /// At most 100 characters.
    pub location: Option<String>,
    /// Where the photo is served, relative to the service root: `uploads/{userId}/{uuid}.{ext}`.
    pub profile_photo_path: Option<String>,
    /// When the profile was created.
    #[schema(value_type = chrono::DateTime<Utc>)]
    pub created_at: DateTime,
    /// When the profile last changed.
    #[schema(value_type = chrono::DateTime<Utc>)]
    pub updated_at: DateTime,
    /// The owner's account; null unless you are the owner. Select it in a mutation that
    /// changes the name, and a cached `User` stays current.
    #[schema(ignore)]
    pub user: Option<User>,
}

#[async_graphql::ComplexObject]
impl Profile {
    /// The photo's address (`{PUBLIC_URL}/uploads/…`); with `size` (64 or 256), that of its
    /// square WebP variant, for avatars. Null without a photo.
    async fn photo_url(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "64 or 256: the side of the square variant; omit for the photo.")]
        size: Option<u32>,
    ) -> Result<Option<String>> {
        let Some(path) = &self.profile_photo_path else {
            return Ok(None);
        };
        let (services, _) = super::context(ctx);
        Ok(Some(services.photo_url(path, size)?))
    }
}

impl From<ProfileView> for Profile {
    fn from(ProfileView { profile: p, owner }: ProfileView) -> Self {
        Self {
            id: p.id,
            user_id: p.user_id,
            email: owner.as_ref().map(|owner| owner.email.clone()),
            name: p.name,
            phone: p.phone,
            bio: p.bio,
            hobby: p.hobby,
            occupation: p.occupation,
            location: p.location,
            profile_photo_path: p.profile_photo_path,
            created_at: DateTime(p.created_at),
            updated_at: DateTime(p.updated_at),
            user: owner.map(User),
        }
    }
}

// One declaration for both APIs: GraphQL's `ProfileInput`, and the REST body (OpenAPI
// `ProfileBody`, unknown fields refused by name).
/// Profile fields. On update an omitted field stays as it is and `null` clears it; on
/// creation both mean "no value". Blank text counts as no value.
#[derive(InputObject, Default, Deserialize, Serialize, ToSchema)]
#[schema(as = ProfileBody, example = json!({
    "name": "Alice", "phone": "+100200300", "bio": "Hello, I like hiking.",
    "hobby": "hiking", "occupation": "Engineer", "location": "San Francisco"
}))]
pub struct ProfileInput {
    /// At most 100 characters.
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub name: MaybeUndefined<String>,
    /// `+` then country code and number, 7 to 15 digits.
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    #[schema(value_type = Option<String>, pattern = r"^\s*(\+[0-9]{7,15})?\s*$")]
    pub phone: MaybeUndefined<String>,
    /// At most 1000 characters.
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub bio: MaybeUndefined<String>,
    /// At most 100 characters.
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub hobby: MaybeUndefined<String>,
    /// At most 100 characters.
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub occupation: MaybeUndefined<String>,
    /// At most 100 characters.
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub location: MaybeUndefined<String>,
    /// Whatever else a REST body held: refused by name (GraphQL refuses unknown fields
    /// itself).
    #[graphql(skip)]
    #[serde(default, flatten, skip_serializing)]
    #[schema(ignore)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl From<ProfileInput> for ProfileFields<Given<String>> {
    fn from(i: ProfileInput) -> Self {
        Self {
            name: i.name.into(),
            phone: i.phone.into(),
            bio: i.bio.into(),
            hobby: i.hobby.into(),
            occupation: i.occupation.into(),
            location: i.location.into(),
        }
    }
}

impl<T> From<MaybeUndefined<T>> for Given<T> {
    fn from(value: MaybeUndefined<T>) -> Self {
        match value {
            MaybeUndefined::Undefined => Self::Absent,
            MaybeUndefined::Null => Self::Null,
            MaybeUndefined::Value(v) => Self::Value(v),
        }
    }
}
