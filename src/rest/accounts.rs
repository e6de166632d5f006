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

use super::{
    body::{Authenticated, JsonBody, has_media_type, reject_unknown_fields},
    forward::forward,
};
use crate::{caller::Caller, startup::AppState};

/// `{email, password}`, and `name` on the ticket's `/api/users/register`.
#[derive(Deserialize)]
pub struct RegisterBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// JSON login; `username` is accepted for `email`, as in the OAuth2 form.
#[derive(Deserialize)]
pub struct LoginBody {
    #[serde(default, alias = "username")]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The OAuth2 password form (`grant_type`, `scope` and client fields are ignored).
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Only `email` and `name` may change; any other key is refused.
#[derive(Deserialize, Serialize)]
pub struct UpdateAccountBody {
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    email: MaybeUndefined<String>,
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    name: MaybeUndefined<String>,
    #[serde(flatten, skip_serializing)]
    other: Map<String, Value>,
}

/// `POST /api/auth/register` and `POST /api/users/register` → 201 `{id, email, created_at}`.
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
    let op = &state.operations.register;
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::CREATED,
    )
    .await
}

/// `POST /api/auth/login`, as JSON or as the OAuth2 password form.
pub async fn login(State(state): State<AppState>, caller: Caller, request: Request) -> Response {
    let (email, password) =
        if has_media_type(request.headers(), "application/x-www-form-urlencoded") {
            match Form::<LoginForm>::from_request(request, &state).await {
                Ok(Form(form)) => (form.username, form.password),
                Err(rejection) => return rejection.into_response(),
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
    let op = &state.operations.login;
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::OK,
    )
    .await
}

/// `GET /api/users/profile` → the account view `{id, email, name, created_at, updated_at}`.
pub async fn get_account(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &state.operations.account;
    forward(&state, op, caller, json!({}), StatusCode::OK).await
}

/// `PUT /api/users/profile`: changes `email` and/or `name`.
pub async fn update_account(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<UpdateAccountBody>,
) -> Response {
    if let Err(err) = reject_unknown_fields(&body.other) {
        return err.into_response();
    }
    let op = &state.operations.update_account;
    forward(&state, op, caller, json!({ "input": body }), StatusCode::OK).await
}
