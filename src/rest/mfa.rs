//! Two-factor authentication over REST: the caller's status, TOTP enrolment and removal,
//! recovery codes, and the second step of a login.

use axum::{extract::State, http::StatusCode, response::Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{
    body::{Authenticated, JsonBody},
    forward::forward,
    operations::OPERATIONS,
    schemas::{ErrorBody, Token, TypeErrorBody, ValidationErrorBody},
};
use crate::{caller::Caller, state::AppState};

/// The account's password, to confirm.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"password": "StrongPass123"}))]
pub struct MfaPasswordBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128)]
    password: Option<String>,
}

/// A code of the authenticator app.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"code": "123456"}))]
pub struct MfaCodeBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 64)]
    code: Option<String>,
}

/// The password and a code (TOTP or recovery), to turn TOTP off.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"password": "StrongPass123", "code": "123456"}))]
pub struct DisableTotpBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128)]
    password: Option<String>,
    /// A current TOTP code, or a recovery code.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 64)]
    code: Option<String>,
}

/// The second step of a login.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"mfa_token": "<MFA_TOKEN_HERE>", "code": "123456"}))]
pub struct VerifyMfaBody {
    /// The `mfa_token` of the login's 403.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256)]
    mfa_token: Option<String>,
    /// A TOTP code, or a recovery code.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 64)]
    code: Option<String>,
}

/// The account's second factors.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"totp": true, "recovery_codes_left": 9, "passkeys": 0}))]
pub struct MfaStatusOut {
    /// TOTP is on: a login needs a code after the password.
    pub totp: bool,
    /// Recovery codes not yet used.
    pub recovery_codes_left: u64,
    /// Passkeys registered.
    pub passkeys: u64,
}

/// A pending TOTP secret, shown this once.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    "otpauth_uri": "otpauth://totp/nta-user-svc:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=nta-user-svc&algorithm=SHA1&digits=6&period=30"
}))]
pub struct TotpEnrollmentOut {
    /// Base32, 160 bits: type it into an authenticator app…
    pub secret: String,
    /// …or let the app read this (as a QR code).
    pub otpauth_uri: String,
}

/// Recovery codes, shown this once.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"recovery_codes": ["7kq2-m9xw-4hrt-cj3p", "…"]}))]
pub struct RecoveryCodesOut {
    /// Ten single-use codes; case, spaces and hyphens do not matter.
    pub recovery_codes: Vec<String>,
}

/// My second factors
///
/// Whether TOTP is on, how many recovery codes are left, how many passkeys are registered.
#[utoipa::path(
    get, path = "/api/users/me/mfa", tag = "mfa", operation_id = "getMyMfa",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The account's second factors", body = MfaStatusOut),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    )
)]
pub async fn my_mfa(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    forward(
        &state,
        &OPERATIONS.my_mfa,
        caller,
        json!({}),
        StatusCode::OK,
    )
    .await
}

/// Start TOTP enrolment
///
/// After checking the password (a wrong one counts as a failed login toward the lockout): a
/// new pending secret, shown this once. TOTP is not on until a code confirms it; a second
/// call replaces the pending secret.
#[utoipa::path(
    post, path = "/api/users/me/mfa/totp", tag = "mfa", operation_id = "startTotpEnrollment",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = MfaPasswordBody,
    responses(
        (status = 200, description = "A pending secret", body = TotpEnrollmentOut),
        (status = 400, description = "Wrong password", body = ValidationErrorBody,
            example = json!({"detail": "Password is incorrect.", "errors": [{"field": "password", "message": "Password is incorrect."}]})),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 409, description = "TOTP is on already", body = ErrorBody,
            example = json!({"detail": "Two-factor authentication is already enabled"})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many wrong passwords; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn start_totp(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<MfaPasswordBody>,
) -> Response {
    let variables = json!({ "password": body.password.unwrap_or_default() });
    forward(
        &state,
        &OPERATIONS.start_totp,
        caller,
        variables,
        StatusCode::OK,
    )
    .await
}

/// Confirm TOTP enrolment
///
/// A code of the pending secret turns TOTP on: the answer holds ten recovery codes (shown
/// this once), and every other session of the account ends.
#[utoipa::path(
    post, path = "/api/users/me/mfa/totp/confirm", tag = "mfa", operation_id = "confirmTotpEnrollment",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = MfaCodeBody,
    responses(
        (status = 200, description = "TOTP is on", body = RecoveryCodesOut),
        (status = 400, description = "Wrong code", body = ValidationErrorBody,
            example = json!({"detail": "Invalid code.", "errors": [{"field": "code", "message": "Invalid code."}]})),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 409, description = "No enrolment pending", body = ErrorBody,
            example = json!({"detail": "No enrollment in progress"})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
    )
)]
pub async fn confirm_totp(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<MfaCodeBody>,
) -> Response {
    let variables = json!({ "code": body.code.unwrap_or_default() });
    forward(
        &state,
        &OPERATIONS.confirm_totp,
        caller,
        variables,
        StatusCode::OK,
    )
    .await
}

/// Turn TOTP off
///
/// With the password and a code (a current TOTP code or a recovery code); the recovery codes
/// are void. A wrong password or code counts as a failed login.
#[utoipa::path(
    delete, path = "/api/users/me/mfa/totp", tag = "mfa", operation_id = "disableTotp",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = DisableTotpBody,
    responses(
        (status = 204, description = "TOTP is off"),
        (status = 400, description = "Wrong password or code", body = ValidationErrorBody,
            example = json!({"detail": "Invalid code.", "errors": [{"field": "code", "message": "Invalid code."}]})),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 409, description = "TOTP is off already", body = ErrorBody,
            example = json!({"detail": "Two-factor authentication is not enabled"})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many wrong passwords or codes; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn disable_totp(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<DisableTotpBody>,
) -> Response {
    let input = json!({
        "password": body.password.unwrap_or_default(),
        "code": body.code.unwrap_or_default(),
    });
    let op = &OPERATIONS.disable_totp;
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::NO_CONTENT,
    )
    .await
}

/// New recovery codes
///
/// Ten new codes (shown this once) after checking the password; the old ones are void.
#[utoipa::path(
    post, path = "/api/users/me/mfa/recovery-codes", tag = "mfa", operation_id = "regenerateRecoveryCodes",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = MfaPasswordBody,
    responses(
        (status = 200, description = "The new codes", body = RecoveryCodesOut),
        (status = 400, description = "Wrong password", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 409, description = "TOTP is off", body = ErrorBody,
            example = json!({"detail": "Two-factor authentication is not enabled"})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many wrong passwords; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn regenerate_codes(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<MfaPasswordBody>,
) -> Response {
    let variables = json!({ "password": body.password.unwrap_or_default() });
    let op = &OPERATIONS.regenerate_codes;
    forward(&state, op, caller, variables, StatusCode::OK).await
}

/// Finish a login with a second factor
///
/// The `mfa_token` of the login's 403 and a TOTP code or a recovery code: the session opens
/// now. A wrong code counts as a failed login toward the lockout; after 5 wrong codes, or
/// once used or 5 minutes old, the token is void.
#[utoipa::path(
    post, path = "/api/auth/mfa/verify", tag = "auth", operation_id = "verifyMfa",
    request_body = VerifyMfaBody,
    responses(
        (status = 200, description = "Signed in", body = Token),
        (status = 400, description = "Wrong code, or a field missing", body = ValidationErrorBody,
            example = json!({"detail": "Invalid code.", "errors": [{"field": "code", "message": "Invalid code."}]})),
        (status = 401, description = "Unknown, expired or spent `mfa_token`", body = ErrorBody,
            example = json!({"detail": "Invalid MFA token"})),
        (status = 403, description = "The account was disabled", body = ErrorBody,
            example = json!({"detail": "Account disabled"})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many attempts; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<VerifyMfaBody>,
) -> Response {
    let input = json!({
        "mfaToken": body.mfa_token.unwrap_or_default(),
        "code": body.code.unwrap_or_default(),
    });
    let op = &OPERATIONS.verify_mfa;
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::OK,
    )
    .await
}
