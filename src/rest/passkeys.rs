//! Passkeys over REST: adding, listing and removing the caller's, and signing in with one.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{
    body::{Authenticated, JsonBody},
    forward::forward,
    operations::OPERATIONS,
    schemas::{ErrorBody, Token, TypeErrorBody, ValidationErrorBody},
};
use crate::{caller::Caller, state::AppState};

/// A ceremony for the browser.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"flow_id": "6f1c3a4e-2b7d-4c1e-9a8f-0d2e4b6c8a10", "options": {"publicKey": {"challenge": "…", "rpId": "example.com"}}}))]
pub struct PasskeyOptionsOut {
    /// Send it back with the result; valid for 5 minutes, once.
    pub flow_id: String,
    /// `{"publicKey": {…}}`: for `PublicKeyCredential.parseCreationOptionsFromJSON()` (adding)
    /// or `parseRequestOptionsFromJSON()` (signing in).
    #[schema(value_type = Object)]
    pub options: Value,
}

/// A passkey of the account.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "0b5e…", "name": "Laptop", "created_at": "2025-01-01T00:00:00Z", "last_used_at": null}))]
pub struct PasskeyOut {
    pub id: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Null before the first sign-in with it.
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The browser's new credential.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct AddPasskeyBody {
    /// The `flow_id` of the options.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 64)]
    flow_id: Option<String>,
    /// `credential.toJSON()` of `navigator.credentials.create()`.
    #[serde(default)]
    #[schema(value_type = Object, required = true)]
    credential: Option<Value>,
    /// A name for it; `Passkey` when none.
    #[serde(default)]
    #[schema(max_length = 100)]
    name: Option<String>,
}

/// The browser's assertion.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct PasskeySignInBody {
    /// The `flow_id` of the options.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 64)]
    flow_id: Option<String>,
    /// `credential.toJSON()` of `navigator.credentials.get()`.
    #[serde(default)]
    #[schema(value_type = Object, required = true)]
    credential: Option<Value>,
}

/// Start adding a passkey
///
/// Options for `navigator.credentials.create()`: a discoverable credential, user verification
/// required, attestation `none`, the account's own passkeys excluded.
#[utoipa::path(
    post, path = "/api/users/me/passkeys/options", tag = "passkeys", operation_id = "startPasskeyRegistration",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The ceremony", body = PasskeyOptionsOut),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 503, description = "Passkeys are not configured (see `WEBAUTHN_RP_ID`)", body = ErrorBody),
    )
)]
pub async fn registration_options(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &OPERATIONS.start_passkey_registration;
    forward(&state, op, caller, json!({}), StatusCode::OK).await
}

/// Add a passkey
///
/// The browser's credential for the ceremony: checked (origin, RP id, challenge, signature,
/// user verification) and kept.
#[utoipa::path(
    post, path = "/api/users/me/passkeys", tag = "passkeys", operation_id = "addPasskey",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = AddPasskeyBody,
    responses(
        (status = 201, description = "Added", body = PasskeyOut),
        (status = 400, description = "The credential does not verify, or the ceremony was used or expired", body = ValidationErrorBody,
            example = json!({"detail": "Passkey could not be verified.", "errors": [{"field": "credential", "message": "Passkey could not be verified."}]})),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 503, description = "Passkeys are not configured", body = ErrorBody),
    )
)]
pub async fn add(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<AddPasskeyBody>,
) -> Response {
    let input = json!({
        "flowId": body.flow_id.unwrap_or_default(),
        "credential": body.credential.unwrap_or_else(|| json!({})),
        "name": body.name,
    });
    let op = &OPERATIONS.finish_passkey_registration;
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::CREATED,
    )
    .await
}

/// List my passkeys
///
/// The account's passkeys, newest first; `last_used_at` is the last sign-in with each.
#[utoipa::path(
    get, path = "/api/users/me/passkeys", tag = "passkeys", operation_id = "listMyPasskeys",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The passkeys, newest first", body = Vec<PasskeyOut>),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Response {
    forward(
        &state,
        &OPERATIONS.my_passkeys,
        caller,
        json!({}),
        StatusCode::OK,
    )
    .await
}

/// Remove a passkey
///
/// It signs in no more (the authenticator keeps its copy until the user removes it there).
#[utoipa::path(
    delete, path = "/api/users/me/passkeys/{id}", tag = "passkeys", operation_id = "deletePasskey",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = String, Path, description = "The passkey's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "Not one of your passkeys", body = ErrorBody,
            example = json!({"detail": "Passkey not found"})),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let op = &OPERATIONS.delete_passkey;
    forward(
        &state,
        op,
        caller,
        json!({ "id": id }),
        StatusCode::NO_CONTENT,
    )
    .await
}

/// Start a sign-in with a passkey
///
/// Options for `navigator.credentials.get()`: no `allowCredentials` (the authenticator offers
/// the site's passkeys), user verification required. Counts toward the address's login limit.
#[utoipa::path(
    post, path = "/api/auth/passkey/options", tag = "auth", operation_id = "startPasskeySignIn",
    responses(
        (status = 200, description = "The ceremony", body = PasskeyOptionsOut),
        (status = 429, description = "Too many attempts; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Passkeys are not configured", body = ErrorBody),
    )
)]
pub async fn sign_in_options(State(state): State<AppState>, caller: Caller) -> Response {
    let op = &OPERATIONS.start_passkey_sign_in;
    forward(&state, op, caller, json!({}), StatusCode::OK).await
}

/// Sign in with a passkey
///
/// The browser's assertion for the ceremony: a session (the login shape, `amr`
/// `["passkey"]`), with no second step. Counts toward the address's login limit.
#[utoipa::path(
    post, path = "/api/auth/passkey/verify", tag = "auth", operation_id = "finishPasskeySignIn",
    request_body = PasskeySignInBody,
    responses(
        (status = 200, description = "Signed in", body = Token),
        (status = 400, description = "`flow_id` or `credential` missing", body = ValidationErrorBody),
        (status = 401, description = "Unknown passkey, a check failed, a sign counter went back, or the ceremony was used or expired", body = ErrorBody,
            example = json!({"detail": "Passkey not recognised"})),
        (status = 403, description = "The account is disabled", body = ErrorBody,
            example = json!({"detail": "Account disabled"})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many attempts; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn sign_in(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<PasskeySignInBody>,
) -> Response {
    let input = json!({
        "flowId": body.flow_id.unwrap_or_default(),
        "credential": body.credential.unwrap_or_else(|| json!({})),
    });
    let op = &OPERATIONS.finish_passkey_sign_in;
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::OK,
    )
    .await
}
