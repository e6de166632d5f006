//! Account recovery and email verification over REST (the links in messages open the pages
//! in `pages`).

use axum::{extract::State, http::StatusCode, response::Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{
    body::{Authenticated, JsonBody},
    forward::{forward, forward_detail},
    operations::OPERATIONS,
    schemas::{ErrorBody, TypeErrorBody, ValidationErrorBody},
};
use crate::{caller::Caller, state::AppState};

pub const VERIFICATION_SENT: &str = "A verification message has been sent.";
pub const RESET_SENT: &str = "If the account exists, a message has been sent.";

/// The address to send a reset link to.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"email": "user@example.com"}))]
pub struct ForgotBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 254)]
    email: Option<String>,
}

/// The token from a reset link and the new password.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"token": "<TOKEN_FROM_THE_LINK>", "new_password": "EvenStronger456"}))]
pub struct ResetBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256)]
    token: Option<String>,
    /// At least 8 characters, at most 72 bytes.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 8, max_length = 72)]
    new_password: Option<String>,
}

/// Forgot my password
///
/// Sends a reset link to the address if it is an account's; the answer is the same, after
/// about the same time, either way. At most 3 messages per address an hour (more requests
/// are answered the same, and nothing is sent), and `RECOVERY_PER_IP_PER_HOUR` requests per
/// client address (then 429).
#[utoipa::path(
    post, path = "/api/auth/forgot-password", tag = "auth", operation_id = "forgotPassword",
    request_body = ForgotBody,
    responses(
        (status = 202, description = "Sent if the account exists", body = ErrorBody,
            example = json!({"detail": RESET_SENT})),
        (status = 400, description = "`email` missing", body = ValidationErrorBody),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many requests from this address; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn forgot_password(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<ForgotBody>,
) -> Response {
    let op = &OPERATIONS.forgot_password;
    let variables = json!({ "email": body.email.unwrap_or_default() });
    forward_detail(
        &state,
        op,
        caller,
        variables,
        StatusCode::ACCEPTED,
        RESET_SENT,
    )
    .await
}

/// Reset my password
///
/// With the token from the reset link: sets the new password, ends every session, clears
/// the login lockout and marks the address verified. The link works once.
#[utoipa::path(
    post, path = "/api/auth/reset-password", tag = "auth", operation_id = "resetPassword",
    request_body = ResetBody,
    responses(
        (status = 204, description = "The password is set"),
        (status = 400, description = "Bad, expired or used token, or a weak password", body = ValidationErrorBody,
            example = json!({"detail": "Invalid or expired token.", "errors": [{"field": "token", "message": "Invalid or expired token."}]})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
    )
)]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<ResetBody>,
) -> Response {
    let op = &OPERATIONS.reset_password;
    let input = json!({
        "token": body.token.unwrap_or_default(),
        "newPassword": body.new_password.unwrap_or_default(),
    });
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::NO_CONTENT,
    )
    .await
}

/// The token from a verification link.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"token": "<TOKEN_FROM_THE_LINK>"}))]
pub struct TokenBody {
    /// The `token` parameter of the link.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256)]
    token: Option<String>,
}

/// Verify an email address
///
/// With the token from the link sent to the address. Works once; a newer message voids the
/// older links.
#[utoipa::path(
    post, path = "/api/auth/verify-email", tag = "auth", operation_id = "verifyEmail",
    request_body = TokenBody,
    responses(
        (status = 204, description = "The address is verified"),
        (status = 400, description = "Bad, expired or used token", body = ValidationErrorBody,
            example = json!({"detail": "Invalid or expired token.", "errors": [{"field": "token", "message": "Invalid or expired token."}]})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
    )
)]
pub async fn verify_email(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<TokenBody>,
) -> Response {
    let op = &OPERATIONS.verify_email;
    let variables = json!({ "token": body.token.unwrap_or_default() });
    forward(&state, op, caller, variables, StatusCode::NO_CONTENT).await
}

/// Undo a change of email address
///
/// With the token from the link in the notice sent to the old address: that address is the
/// account's again (verified), every session ends, and a link to choose a new password is
/// sent to it. Works once, for 7 days.
#[utoipa::path(
    post, path = "/api/auth/undo-email-change", tag = "auth", operation_id = "undoEmailChange",
    request_body = TokenBody,
    responses(
        (status = 204, description = "The old address is restored and every session ended"),
        (status = 400, description = "Bad, expired or used token", body = ValidationErrorBody,
            example = json!({"detail": "Invalid or expired token.", "errors": [{"field": "token", "message": "Invalid or expired token."}]})),
        (status = 409, description = "Another account has the old address now", body = ErrorBody,
            example = json!({"detail": "Email already registered."})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
    )
)]
pub async fn undo_email_change(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<TokenBody>,
) -> Response {
    let op = &OPERATIONS.undo_email_change;
    let variables = json!({ "token": body.token.unwrap_or_default() });
    forward(&state, op, caller, variables, StatusCode::NO_CONTENT).await
}

/// Send me a new verification message
///
/// To the account's address; the links of earlier messages stop working. At most 3 an hour.
#[utoipa::path(
    post, path = "/api/users/me/verify-email", tag = "users", operation_id = "requestEmailVerification",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 202, description = "The message is on its way", body = ErrorBody,
            example = json!({"detail": VERIFICATION_SENT})),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 409, description = "The address is verified already", body = ErrorBody,
            example = json!({"detail": "Email already verified"})),
        (status = 429, description = "Three messages in the last hour; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn request_verification(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &OPERATIONS.request_verification;
    forward_detail(
        &state,
        op,
        caller,
        json!({}),
        StatusCode::ACCEPTED,
        VERIFICATION_SENT,
    )
    .await
}
