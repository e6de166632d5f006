//! Sessions over REST: refresh, logout, the list of sessions, password change and account
//! deletion.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{
    body::{Authenticated, JsonBody},
    forward::forward,
    operations::OPERATIONS,
    schemas::{ErrorBody, SessionOut, Token, TypeErrorBody, ValidationErrorBody},
};
use crate::{caller::Caller, state::AppState};

/// A refresh token to exchange.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"refresh_token": "<REFRESH_TOKEN_HERE>"}))]
pub struct RefreshBody {
    /// The `refresh_token` of the last login or refresh.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1)]
    refresh_token: Option<String>,
}

/// The current password and the new one.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"current_password": "StrongPass123", "new_password": "EvenStronger456"}))]
pub struct ChangePasswordBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128)]
    current_password: Option<String>,
    /// At least 8 characters, at most 72 bytes.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 8, max_length = 72)]
    new_password: Option<String>,
}

/// The password, to confirm the deletion.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"password": "StrongPass123"}))]
pub struct DeleteAccountBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128)]
    password: Option<String>,
}

/// Refresh the tokens
///
/// Exchanges a refresh token for a new access token and refresh token; the one sent is
/// spent. Sent again within a few seconds (two tabs refreshing at once) it gets another new
/// pair; sent again later, it is taken as stolen and the whole session ends. Counts toward
/// the address's login limit.
#[utoipa::path(
    post, path = "/api/auth/refresh", tag = "auth", operation_id = "refresh",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "A new pair", body = Token),
        (status = 400, description = "`refresh_token` missing", body = ValidationErrorBody),
        (status = 401, description = "Unknown, spent, expired or revoked refresh token", body = ErrorBody,
            example = json!({"detail": "Invalid refresh token"})),
        (status = 403, description = "The account was disabled", body = ErrorBody,
            example = json!({"detail": "Account disabled"})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many attempts; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Response {
    let input = json!({ "refreshToken": body.refresh_token.unwrap_or_default() });
    let op = &OPERATIONS.refresh;
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::OK,
    )
    .await
}

/// Log out
///
/// Ends the current session: its access token and refresh token stop working at once.
#[utoipa::path(
    post, path = "/api/auth/logout", tag = "auth", operation_id = "logout",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &OPERATIONS.logout;
    forward(&state, op, caller, json!({}), StatusCode::NO_CONTENT).await
}

/// Log out everywhere
///
/// Ends every session of the account, this one included.
#[utoipa::path(
    post, path = "/api/auth/logout-all", tag = "auth", operation_id = "logoutAll",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Every session ended"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    )
)]
pub async fn logout_all(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &OPERATIONS.logout_all;
    forward(&state, op, caller, json!({}), StatusCode::NO_CONTENT).await
}

/// List my sessions
///
/// The account's live sessions, most recently used first; `current` marks the one of the
/// token that asks.
#[utoipa::path(
    get, path = "/api/users/me/sessions", tag = "sessions", operation_id = "listMySessions",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The live sessions", body = Vec<SessionOut>),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    )
)]
pub async fn my_sessions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &OPERATIONS.sessions;
    forward(&state, op, caller, json!({}), StatusCode::OK).await
}

/// End one of my sessions
///
/// Its tokens stop working at once. Ending the current session is logging out.
#[utoipa::path(
    delete, path = "/api/users/me/sessions/{id}", tag = "sessions", operation_id = "revokeMySession",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = String, Path, description = "The session's id, from the list")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "Not one of your live sessions", body = ErrorBody,
            example = json!({"detail": "Session not found"})),
    )
)]
pub async fn revoke_session(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let op = &OPERATIONS.revoke_session;
    forward(
        &state,
        op,
        caller,
        json!({ "id": id }),
        StatusCode::NO_CONTENT,
    )
    .await
}

/// Change my password
///
/// Checks the current password (a wrong one counts as a failed login toward the lockout),
/// sets the new one, and ends every other session; this one stays.
#[utoipa::path(
    put, path = "/api/users/me/password", tag = "users", operation_id = "changeMyPassword",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = ChangePasswordBody,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "Wrong current password, or a weak new one", body = ValidationErrorBody,
            example = json!({"detail": "Current password is incorrect.", "errors": [{"field": "current_password", "message": "Current password is incorrect."}]})),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many wrong passwords; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<ChangePasswordBody>,
) -> Response {
    let input = json!({
        "currentPassword": body.current_password.unwrap_or_default(),
        "newPassword": body.new_password.unwrap_or_default(),
    });
    let op = &OPERATIONS.change_password;
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::NO_CONTENT,
    )
    .await
}

/// Delete my account
///
/// After checking the password: the account, its profile, photo and sessions are gone, its
/// tokens stop working, and the email can register again.
#[utoipa::path(
    delete, path = "/api/users/me", tag = "users", operation_id = "deleteMyAccount",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = DeleteAccountBody,
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Wrong password", body = ValidationErrorBody,
            example = json!({"detail": "Password is incorrect.", "errors": [{"field": "password", "message": "Password is incorrect."}]})),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many wrong passwords; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn delete_account(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<DeleteAccountBody>,
) -> Response {
    let input = json!({ "password": body.password.unwrap_or_default() });
    let op = &OPERATIONS.delete_account;
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::NO_CONTENT,
    )
    .await
}
