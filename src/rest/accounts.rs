//! `/api/auth/*` and `/api/users/*`: registration, login and the account view.

use async_graphql::MaybeUndefined;
use axum::{
    Form,
    extract::{FromRequest, Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::{
    body::{Authenticated, JsonBody, reject_unknown_fields, unprocessable},
    forward::forward,
    operations::OPERATIONS,
    schemas::{
        ErrorBody, LoginRefusedBody, Token, TypeErrorBody, UserCreated, UserOut,
        ValidationErrorBody,
    },
};
use crate::{
    caller::Caller,
    error::ErrorCode,
    http::{Problem, has_media_type},
    state::AppState,
};

/// `{email, password}`, and optionally `name` (kept on the profile).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "user@example.com", "password": "StrongPass123"}))]
pub struct RegisterBody {
    /// A valid address, at most 254 characters; stored trimmed and lower-cased.
    #[serde(default)]
    #[schema(value_type = String, required = true, format = Email, max_length = 254)]
    email: Option<String>,
    /// At least 8 characters, at most 72 bytes.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 8, max_length = 72)]
    password: Option<String>,
    /// Display name, at most 100 characters (kept on the profile).
    #[serde(default)]
    #[schema(max_length = 100)]
    name: Option<String>,
}

/// JSON login; `username` is accepted for `email`, as in the OAuth2 form.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "user@example.com", "password": "StrongPass123"}))]
pub struct LoginBody {
    #[serde(default, alias = "username")]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 254)]
    email: Option<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128)]
    password: Option<String>,
}

/// The OAuth2 password form (`grant_type`, `scope` and client fields are ignored).
#[derive(Deserialize, ToSchema)]
pub struct LoginForm {
    /// The account's email.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 254)]
    username: Option<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128)]
    password: Option<String>,
}

/// Only `email` and `name` may change; any other key is refused. Absent keys stay as they
/// are; `"name": null` clears the name.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"email": "alice@example.com", "name": "Alice"}))]
pub struct UpdateAccountBody {
    /// A new address (never `null`); at most 254 characters.
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    #[schema(value_type = String, format = Email, max_length = 254)]
    email: MaybeUndefined<String>,
    /// A new display name, at most 100 characters; `null` clears it.
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    #[schema(value_type = Option<String>, max_length = 100)]
    name: MaybeUndefined<String>,
    #[serde(flatten, skip_serializing)]
    #[schema(ignore)]
    other: Map<String, Value>,
}

/// Register a new account
///
/// Creates the user and an empty profile in one transaction. The password is hashed with
/// bcrypt; neither it nor the hash is ever returned.
#[utoipa::path(
    post, path = "/api/auth/register", tag = "auth", operation_id = "register",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "Account created", body = UserCreated),
        (status = 400, description = "Invalid email or weak password", body = ValidationErrorBody),
        (status = 409, description = "Email taken (in any case)", body = ErrorBody,
            example = json!({"detail": "Email already registered."})),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many registrations from this address", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Response {
    let input = json!({
        "email": body.email.unwrap_or_default(),
        "password": body.password.unwrap_or_default(),
        "name": body.name,
    });
    let op = &OPERATIONS.register;
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::CREATED,
    )
    .await
}

/// Register a new account, with a name
///
/// The same as `POST /api/auth/register`; the body may also carry `name`.
#[utoipa::path(
    post, path = "/api/users/register", tag = "auth", operation_id = "registerUser",
    request_body(content = RegisterBody,
        example = json!({"email": "user@example.com", "password": "StrongPass123", "name": "Alice"})),
    responses(
        (status = 201, description = "Account created", body = UserCreated),
        (status = 400, description = "Invalid email or weak password", body = ValidationErrorBody),
        (status = 409, description = "Email taken (in any case)", body = ErrorBody,
            example = json!({"detail": "Email already registered."})),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many registrations from this address", body = ErrorBody),
    )
)]
pub async fn register_alias(
    state: State<AppState>,
    caller: Caller,
    body: JsonBody<RegisterBody>,
) -> Response {
    register(state, caller, body).await
}

/// Log in
///
/// Exchanges email and password for a bearer token. Takes JSON, or the OAuth2 password form
/// (`username`, `password`) that Swagger UI's Authorize button sends (documented as
/// `POST /api/auth/token`, so that generated clients see one body type per path). An unknown
/// email and a wrong password get the same answer. Rate-limited per address and per account.
#[utoipa::path(
    post, path = "/api/auth/login", tag = "auth", operation_id = "login",
    request_body(content = LoginBody, content_type = "application/json"),
    responses(
        (status = 200, description = "A bearer token", body = Token),
        (status = 400, description = "Email or password missing", body = ValidationErrorBody),
        (status = 401, description = "Wrong credentials", body = ErrorBody,
            example = json!({"detail": "Incorrect email or password"})),
        (status = 403, description = "The right password, but a second factor is due (`MFA_REQUIRED`: the body carries `mfa_token`), or the account is disabled or (with `REQUIRE_VERIFIED_EMAIL`) its email is not verified", body = LoginRefusedBody),
        (status = 415, description = "Body is neither JSON nor a form", body = ErrorBody),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many attempts; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn login(state: State<AppState>, caller: Caller, request: Request) -> Response {
    log_in(state, caller, request).await
}

/// Log in with the OAuth2 password form
///
/// The OAuth2 token endpoint (`username` is the email): what Swagger UI's Authorize button
/// and OAuth2 client libraries call. The same login as `POST /api/auth/login`.
#[utoipa::path(
    post, path = "/api/auth/token", tag = "auth", operation_id = "token",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A bearer token", body = Token),
        (status = 400, description = "Email or password missing", body = ValidationErrorBody),
        (status = 401, description = "Wrong credentials", body = ErrorBody,
            example = json!({"detail": "Incorrect email or password"})),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 403, description = "The right password, but a second factor is due (`MFA_REQUIRED`: the body carries `mfa_token`), or the account is disabled or (with `REQUIRE_VERIFIED_EMAIL`) its email is not verified", body = LoginRefusedBody),
        (status = 415, description = "Body is neither a form nor JSON", body = ErrorBody),
        (status = 422, description = "A field given twice, or not a form", body = TypeErrorBody),
        (status = 429, description = "Too many attempts; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn token(state: State<AppState>, caller: Caller, request: Request) -> Response {
    log_in(state, caller, request).await
}

/// Both login paths: a JSON body or the OAuth2 form, whichever the content type says.
async fn log_in(State(state): State<AppState>, caller: Caller, request: Request) -> Response {
    let (email, password) =
        if has_media_type(request.headers(), "application/x-www-form-urlencoded") {
            match Form::<LoginForm>::from_request(request, &state).await {
                Ok(Form(form)) => (form.username, form.password),
                Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    return Problem::new(ErrorCode::PayloadTooLarge, "Request body too large")
                        .into_response();
                }
                // The library's message names serde's view of the form; say it plainly.
                Err(_) => {
                    return unprocessable(
                        &["body".into()],
                        "Input should be a form with one `username` and one `password`",
                    );
                }
            }
        } else {
            match JsonBody::<LoginBody>::from_request(request, &state).await {
                Ok(JsonBody(body)) => (body.email, body.password),
                Err(rejection) => return rejection,
            }
        };
    let input = json!({
        "email": email.unwrap_or_default(),
        "password": password.unwrap_or_default(),
    });
    let op = &OPERATIONS.login;
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::OK,
    )
    .await
}

/// Read the account
///
/// The account view: id, email, the profile's name and the timestamps.
#[utoipa::path(
    get, path = "/api/users/profile", tag = "users", operation_id = "getAccount",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The account", body = UserOut),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    )
)]
pub async fn get_account(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &OPERATIONS.account;
    forward(&state, op, caller, json!({}), StatusCode::OK).await
}

/// Update the account
///
/// Changes `email` and/or `name`; nothing else may be sent.
#[utoipa::path(
    put, path = "/api/users/profile", tag = "users", operation_id = "updateAccount",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = UpdateAccountBody,
    responses(
        (status = 200, description = "The updated account", body = UserOut),
        (status = 400, description = "Invalid value or a field that cannot change here", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 409, description = "Email taken", body = ErrorBody,
            example = json!({"detail": "Email already registered."})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many email changes on this account this hour; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn update_account(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<UpdateAccountBody>,
) -> Response {
    if let Err(err) = reject_unknown_fields(&body.other) {
        return err.into_response();
    }
    let op = &OPERATIONS.update_account;
    forward(&state, op, caller, json!({ "input": body }), StatusCode::OK).await
}
