//! The REST responses, as OpenAPI schemas. The bodies themselves come from the GraphQL
//! operations (see `operations`); these types only describe them, and a test checks that
//! real responses have exactly these keys.

#![expect(
    dead_code,
    reason = "schema-only types: utoipa reads them, nothing builds them"
)]

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// The new account (no password, no hash).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": 1, "email": "user@example.com", "created_at": "2025-01-01T00:00:00Z"}))]
pub struct UserCreated {
    pub id: i32,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

/// An access token (OAuth2 token response).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "<JWT_TOKEN_HERE>", "token_type": "bearer", "expires_in": 86400,
    "refresh_token": "<REFRESH_TOKEN_HERE>", "refresh_expires_in": 2592000
}))]
pub struct Token {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: `POST /api/auth/refresh` exchanges it for a new pair. Keep it secret.
    pub refresh_token: String,
    /// Seconds until the session ends unless it is refreshed.
    pub refresh_expires_in: u64,
}

/// A signed-in session.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "6f1c3a4e-2b7d-4c1e-9a8f-0d2e4b6c8a10", "created_at": "2025-01-01T00:00:00Z",
    "last_used_at": "2025-01-02T08:00:00Z", "expires_at": "2025-02-01T08:00:00Z",
    "user_agent": "Mozilla/5.0", "ip": "203.0.113.7", "current": true
}))]
pub struct SessionOut {
    /// The session's id (`sid` in its access tokens).
    pub id: String,
    /// When the login happened.
    pub created_at: DateTime<Utc>,
    /// The login or the last refresh.
    pub last_used_at: DateTime<Utc>,
    /// When it ends unless it is refreshed.
    pub expires_at: DateTime<Utc>,
    /// The client's `User-Agent` at the last login or refresh.
    pub user_agent: Option<String>,
    /// The client's address at the last login or refresh.
    pub ip: Option<String>,
    /// True for the session of the token that asks.
    pub current: bool,
}

/// The account view: the user and the name kept on their profile.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": 42, "email": "alice@example.com", "email_verified": true, "name": "Alice",
    "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-02T12:00:00Z"
}))]
pub struct UserOut {
    pub id: i32,
    pub email: String,
    /// True once a link sent to `email` was followed.
    pub email_verified: bool,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An error: `{"detail": "<message>"}`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"detail": "Not authenticated"}))]
pub struct ErrorBody {
    pub detail: String,
}

/// A login's 403: a second factor is due (`mfa_token` and the rest are then present; send
/// them to `POST /api/auth/mfa/verify`), or the account may not sign in (`detail` only).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "detail": "Two-factor authentication required", "mfa_token": "<MFA_TOKEN>",
    "mfa_methods": ["totp", "recovery_code"], "mfa_expires_in": 300
}))]
pub struct LoginRefusedBody {
    /// `Two-factor authentication required`, `Account disabled` or `Email not verified`.
    pub detail: String,
    /// For the second step; single use.
    pub mfa_token: Option<String>,
    /// The kinds of code the second step takes.
    pub mfa_methods: Option<Vec<MfaMethod>>,
    /// Seconds the `mfa_token` works.
    pub mfa_expires_in: Option<u64>,
}

/// A kind of code the second step of a login takes.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethod {
    Totp,
    RecoveryCode,
}

/// A validation error: the first message, and every invalid field.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "detail": "Password must be at least 8 characters long.",
    "errors": [{"field": "password", "message": "Password must be at least 8 characters long."}]
}))]
pub struct ValidationErrorBody {
    pub detail: String,
    pub errors: Vec<FieldErrorBody>,
}

/// One invalid field.
#[derive(Serialize, ToSchema)]
pub struct FieldErrorBody {
    pub field: String,
    pub message: String,
}

/// JSON of the wrong type for a field: where (`loc`) and what is wrong (`msg`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"detail": [{"loc": ["body", "email"], "msg": "invalid type: integer `42`, expected a string", "type": "type_error"}]}))]
pub struct TypeErrorBody {
    pub detail: Vec<TypeErrorItem>,
}

/// Where and what: `loc` is `["body", field]` or `["path", parameter]`, with an item's index
/// (a number) for a list (`["body", "events", 0]`).
#[derive(Serialize, ToSchema)]
pub struct TypeErrorItem {
    pub loc: Vec<LocPart>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A step of a `loc`: a key, or a list index.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LocPart {
    Key(String),
    Index(u64),
}

/// `/healthz` and `/readyz`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    /// `ok` (alive), `ready` (database answers) or `unavailable`.
    pub status: String,
}

/// A photo upload: one multipart field, `file`.
#[derive(ToSchema)]
pub struct PhotoUpload {
    /// A JPEG, PNG or WebP image, at most `MAX_UPLOAD_BYTES`.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    pub file: Vec<u8>,
}

/// An account as an admin sees it.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": 42, "email": "alice@example.com", "name": "Alice", "role": "user",
    "email_verified": true, "disabled": false, "mfa_enabled": false,
    "created_at": "2025-01-01T00:00:00Z",
    "updated_at": "2025-01-02T12:00:00Z", "last_login_at": "2025-01-03T09:30:00Z"
}))]
pub struct AdminUserOut {
    pub id: i32,
    pub email: String,
    pub name: Option<String>,
    /// `user` or `admin`.
    #[schema(pattern = "^(user|admin)$")]
    pub role: String,
    pub email_verified: bool,
    /// Disabled accounts may not log in.
    pub disabled: bool,
    /// TOTP is on.
    pub mfa_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Null before the first login.
    pub last_login_at: Option<DateTime<Utc>>,
}

/// A page of accounts, newest first.
#[derive(Serialize, ToSchema)]
pub struct AdminUserPage {
    pub items: Vec<AdminUserOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// How many accounts match, on every page.
    pub total: u64,
}

/// A security event.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "1017", "created_at": "2025-01-03T09:30:00Z", "action": "role_changed",
    "actor_id": 1, "subject_id": 42, "ip": "203.0.113.7",
    "request_id": "6f1c3a4e-2b7d-4c1e-9a8f-0d2e4b6c8a10", "details": {"from": "user", "to": "admin"}
}))]
pub struct AuditEventOut {
    /// The event's id (a string: it may outgrow 32 bits).
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// `register`, `login`, `login_failed`, `account_locked`, `logout`, `refresh_reuse`,
    /// `password_changed`, `password_reset_requested`, `password_reset`, `email_verified`,
    /// `email_changed`, `account_deleted`, `user_disabled`, `user_enabled`, `role_changed`,
    /// `sessions_revoked` or `user_deleted`.
    pub action: String,
    /// The account that acted; null for an anonymous request or the command line.
    pub actor_id: Option<i32>,
    /// The account acted on.
    pub subject_id: Option<i32>,
    /// The client's address.
    pub ip: Option<String>,
    /// The request's `x-request-id`, to find it in the logs.
    pub request_id: Option<String>,
    /// More about the event; never a password, hash or token.
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A page of security events, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditEventPage {
    pub items: Vec<AuditEventOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// How many events match, on every page.
    pub total: u64,
}

/// How many sessions ended.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"sessions_ended": 3}))]
pub struct SessionsEnded {
    pub sessions_ended: u64,
}
