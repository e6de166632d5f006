//! Administration and the audit log over REST: the account list and what an admin does to an
//! account, the audit log, and the caller's own security events.
//!
//! Lists answer `{items, next_cursor, total}`: the connection of the GraphQL operation, with
//! `next_cursor` null on the last page. Query parameters are read here only for their type
//! (a non-integer `limit` is a 422, as a path's is); their rules are the service's. Roles and
//! actions read and write in lower case, as the query parameters take them.

use async_graphql::EnumType;
use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::{
    body::{Authenticated, JsonBody, unprocessable},
    forward::{forward, run},
    operations::{OPERATIONS, Operation},
    schemas::{
        AdminUserOut, AdminUserPage, AuditEventPage, ErrorBody, SessionsEnded, TypeErrorBody,
        ValidationErrorBody,
    },
};
use crate::{
    caller::Caller,
    error::ErrorCode,
    graphql::{AuditAction, Role, UserStatus},
    http::Problem,
    state::AppState,
};

const USER_NOT_FOUND: &str = "User not found";
/// The operations' argument names, as the query parameters call them.
const PARAMETERS: &[(&str, &str)] = &[("first", "limit"), ("after", "cursor"), ("search", "q")];

/// Which page of accounts, and which accounts.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// How many, 1 to 100 (default 20).
    #[param(value_type = Option<i32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
    /// Text in the email or the name, in any case.
    q: Option<String>,
    /// `active` or `disabled`.
    #[param(value_type = Option<String>, pattern = "^(active|disabled)$")]
    status: Option<String>,
    /// `user` or `admin`.
    #[param(value_type = Option<String>, pattern = "^(user|admin)$")]
    role: Option<String>,
}

/// Which page of events, and which events.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// How many, 1 to 100 (default 20).
    #[param(value_type = Option<i32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
    /// Only events this account did or was the subject of.
    #[param(value_type = Option<i32>)]
    user_id: Option<String>,
    /// Only events of this kind (`login_failed`, `role_changed`, …).
    action: Option<String>,
}

/// Which page of one's own events.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many, 1 to 100 (default 20).
    #[param(value_type = Option<i32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

/// The new role.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"role": "admin"}))]
pub struct RoleBody {
    /// `user` or `admin`.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^(user|admin)$")]
    role: Option<String>,
}

/// List accounts
///
/// Newest first, a page at a time: pass `next_cursor` as `cursor` for the next page. Pages
/// stay stable while accounts are added. Admins only.
#[utoipa::path(
    get, path = "/api/admin/users", tag = "admin", operation_id = "listUsers",
    security(("bearer" = []), ("oauth2" = [])),
    params(UsersQuery),
    responses(
        (status = 200, description = "A page of accounts", body = AdminUserPage),
        (status = 400, description = "`limit` out of range, a bad cursor, or search text over 254 characters", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 422, description = "A parameter of the wrong type", body = TypeErrorBody),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return unprocessable(&["query".into()], "Invalid query string");
    };
    let mut variables = match page_variables(query.limit, query.cursor) {
        Ok(variables) => variables,
        Err(response) => return response,
    };
    if let Some(q) = query.q {
        variables.insert("search".into(), q.into());
    }
    for (name, value, items) in [
        ("status", query.status, names::<UserStatus>()),
        ("role", query.role, names::<Role>()),
    ] {
        if let Some(value) = value {
            match enum_value(&["query", name], &value, &items) {
                Ok(value) => variables.insert(name.into(), value),
                Err(response) => return response,
            };
        }
    }
    page(&state, &OPERATIONS.admin_users, caller, variables).await
}

/// Read an account
///
/// Admins only.
#[utoipa::path(
    get, path = "/api/admin/users/{id}", tag = "admin", operation_id = "getUser",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = i32, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account", body = AdminUserOut),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "No such account", body = ErrorBody, example = json!({"detail": USER_NOT_FOUND})),
        (status = 422, description = "`id` is not an integer", body = TypeErrorBody),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let id = match path_id(id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match run(&state, &OPERATIONS.admin_user, caller, json!({ "id": id })).await {
        Ok(async_graphql::Value::Null) => {
            Problem::new(ErrorCode::NotFound, USER_NOT_FOUND).into_response()
        }
        Ok(user) => Json(admin_item(user.into_json().unwrap_or_default())).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Disable an account
///
/// It may not log in (403 `Account disabled`), and its sessions end at once. Not on your own
/// account. Admins only.
#[utoipa::path(
    post, path = "/api/admin/users/{id}/disable", tag = "admin", operation_id = "disableUser",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = i32, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account, disabled", body = AdminUserOut),
        (status = 400, description = "Your own account", body = ValidationErrorBody,
            example = json!({"detail": "Not allowed on your own account.", "errors": [{"field": "id", "message": "Not allowed on your own account."}]})),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "No such account", body = ErrorBody, example = json!({"detail": USER_NOT_FOUND})),
        (status = 422, description = "`id` is not an integer", body = TypeErrorBody),
    )
)]
pub async fn disable_user(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    act_on_user(&state, &OPERATIONS.disable_user, caller, id, json!({})).await
}

/// Enable an account
///
/// A disabled account may log in again. Not on your own account. Admins only.
#[utoipa::path(
    post, path = "/api/admin/users/{id}/enable", tag = "admin", operation_id = "enableUser",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = i32, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account, enabled", body = AdminUserOut),
        (status = 400, description = "Your own account", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "No such account", body = ErrorBody, example = json!({"detail": USER_NOT_FOUND})),
        (status = 422, description = "`id` is not an integer", body = TypeErrorBody),
    )
)]
pub async fn enable_user(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    act_on_user(&state, &OPERATIONS.enable_user, caller, id, json!({})).await
}

/// Change an account's role
///
/// Not on your own account. Admins only.
#[utoipa::path(
    put, path = "/api/admin/users/{id}/role", tag = "admin", operation_id = "setUserRole",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = i32, Path, description = "The account's id")),
    request_body = RoleBody,
    responses(
        (status = 200, description = "The account, with its new role", body = AdminUserOut),
        (status = 400, description = "Your own account, or `role` missing", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "No such account", body = ErrorBody, example = json!({"detail": USER_NOT_FOUND})),
        (status = 422, description = "`id` is not an integer, or `role` is not `user` or `admin`", body = TypeErrorBody),
    )
)]
pub async fn set_user_role(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    JsonBody(body): JsonBody<RoleBody>,
) -> Response {
    let Some(role) = body.role else {
        return crate::error::AppError::validation("role", "Role is required.").into_response();
    };
    let role = match enum_value(&["body", "role"], &role, &names::<Role>()) {
        Ok(role) => role,
        Err(response) => return response,
    };
    act_on_user(
        &state,
        &OPERATIONS.set_user_role,
        caller,
        id,
        json!({ "role": role }),
    )
    .await
}

/// End an account's sessions
///
/// Every session of the account ends at once; answers how many. Not on your own account
/// (`POST /api/auth/logout-all` is for that). Admins only.
#[utoipa::path(
    delete, path = "/api/admin/users/{id}/sessions", tag = "admin", operation_id = "revokeUserSessions",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = i32, Path, description = "The account's id")),
    responses(
        (status = 200, description = "How many sessions ended", body = SessionsEnded),
        (status = 400, description = "Your own account", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "No such account", body = ErrorBody, example = json!({"detail": USER_NOT_FOUND})),
        (status = 422, description = "`id` is not an integer", body = TypeErrorBody),
    )
)]
pub async fn revoke_user_sessions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let id = match path_id(id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let op = &OPERATIONS.revoke_user_sessions;
    match run(&state, op, caller, json!({ "id": id })).await {
        Ok(ended) => Json(json!({ "sessions_ended": ended })).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Reset an account's second factors
///
/// TOTP, recovery codes and passkeys are removed and every session ends: for someone who
/// lost their phone and their recovery codes (check who they are first). Not on your own
/// account. Admins only.
#[utoipa::path(
    post, path = "/api/admin/users/{id}/mfa/reset", tag = "admin", operation_id = "resetUserMfa",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = i32, Path, description = "The account's id")),
    responses(
        (status = 204, description = "Reset; the account signs in with its password alone"),
        (status = 400, description = "Your own account", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "No such account", body = ErrorBody, example = json!({"detail": USER_NOT_FOUND})),
        (status = 422, description = "`id` is not an integer", body = TypeErrorBody),
    )
)]
pub async fn reset_user_mfa(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    done_to_user(&state, &OPERATIONS.reset_user_mfa, caller, id).await
}

/// Delete an account
///
/// The account, its profile, photo files and sessions. Not on your own account
/// (`DELETE /api/users/me` is for that). Admins only.
#[utoipa::path(
    delete, path = "/api/admin/users/{id}", tag = "admin", operation_id = "deleteUser",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = i32, Path, description = "The account's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Your own account", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "No such account", body = ErrorBody, example = json!({"detail": USER_NOT_FOUND})),
        (status = 422, description = "`id` is not an integer", body = TypeErrorBody),
    )
)]
pub async fn delete_user(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    done_to_user(&state, &OPERATIONS.delete_user, caller, id).await
}

/// Runs an operation on account `id` (from the path) that answers nothing: 204.
async fn done_to_user(
    state: &AppState,
    op: &Operation,
    caller: Caller,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    match path_id(id) {
        Ok(id) => {
            forward(
                state,
                op,
                caller,
                json!({ "id": id }),
                StatusCode::NO_CONTENT,
            )
            .await
        }
        Err(response) => response,
    }
}

/// Read the audit log
///
/// Security events of every account, newest first. Admins only.
#[utoipa::path(
    get, path = "/api/admin/audit", tag = "admin", operation_id = "listAuditEvents",
    security(("bearer" = []), ("oauth2" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of events", body = AuditEventPage),
        (status = 400, description = "`limit` out of range, or a bad cursor", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 422, description = "A parameter of the wrong type, or an unknown action", body = TypeErrorBody),
    )
)]
pub async fn audit_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return unprocessable(&["query".into()], "Invalid query string");
    };
    let mut variables = match page_variables(query.limit, query.cursor) {
        Ok(variables) => variables,
        Err(response) => return response,
    };
    if let Some(user_id) = query.user_id {
        match user_id.trim().parse::<i32>() {
            Ok(id) => variables.insert("userId".into(), id.into()),
            Err(_) => {
                return unprocessable(
                    &["query".into(), "user_id".into()],
                    "Input should be a valid integer",
                );
            }
        };
    }
    if let Some(action) = query.action {
        match enum_value(&["query", "action"], &action, &names::<AuditAction>()) {
            Ok(action) => variables.insert("action".into(), action),
            Err(response) => return response,
        };
    }
    page(&state, &OPERATIONS.audit_events, caller, variables).await
}

/// My security events
///
/// The events about your own account (logins, failed logins, password changes, sessions
/// ended, …), newest first.
#[utoipa::path(
    get, path = "/api/users/me/security-events", tag = "users", operation_id = "listMySecurityEvents",
    security(("bearer" = []), ("oauth2" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of events", body = AuditEventPage),
        (status = 400, description = "`limit` out of range, or a bad cursor", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 422, description = "A parameter of the wrong type", body = TypeErrorBody),
    )
)]
pub async fn my_security_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return unprocessable(&["query".into()], "Invalid query string");
    };
    match page_variables(query.limit, query.cursor) {
        Ok(variables) => page(&state, &OPERATIONS.my_security_events, caller, variables).await,
        Err(response) => response,
    }
}

/// Runs an operation on account `id` (from the path) that answers the account.
async fn act_on_user(
    state: &AppState,
    op: &Operation,
    caller: Caller,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    mut variables: Value,
) -> Response {
    let id = match path_id(id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    variables["id"] = id.into();
    match run(state, op, caller, variables).await {
        Ok(user) => Json(admin_item(user.into_json().unwrap_or_default())).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Runs a list operation and answers `{items, next_cursor, total}`.
async fn page(
    state: &AppState,
    op: &Operation,
    caller: Caller,
    variables: Map<String, Value>,
) -> Response {
    let connection = match run(state, op, caller, Value::Object(variables)).await {
        Ok(connection) => connection.into_json().unwrap_or_default(),
        Err(problem) => return problem.rename_fields(PARAMETERS).into_response(),
    };
    let items: Vec<Value> = connection["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|edge| admin_item(edge["node"].clone()))
                .collect()
        })
        .unwrap_or_default();
    let info = &connection["page_info"];
    let next_cursor = if info["has_next_page"] == true {
        info["end_cursor"].clone()
    } else {
        Value::Null
    };
    Json(json!({ "items": items, "next_cursor": next_cursor, "total": connection["total"] }))
        .into_response()
}

/// An item as REST shows it: the role and action in lower case, as the parameters take
/// them; an event's details as an object.
fn admin_item(mut item: Value) -> Value {
    for key in ["role", "action"] {
        if let Some(value) = item[key].as_str() {
            item[key] = Value::from(value.to_ascii_lowercase());
        }
    }
    if let Some(details) = item["details"].as_str() {
        item["details"] = serde_json::from_str(details).unwrap_or(Value::Null);
    }
    item
}

/// `first` and `after` from `limit` and `cursor`; 422 for a `limit` that is not an integer.
#[allow(clippy::result_large_err)]
fn page_variables(
    limit: Option<String>,
    cursor: Option<String>,
) -> Result<Map<String, Value>, Response> {
    let mut variables = Map::new();
    if let Some(limit) = limit {
        let Ok(limit) = limit.trim().parse::<i32>() else {
            return Err(unprocessable(
                &["query".into(), "limit".into()],
                "Input should be a valid integer",
            ));
        };
        variables.insert("first".into(), limit.into());
    }
    if let Some(cursor) = cursor {
        variables.insert("after".into(), cursor.into());
    }
    Ok(variables)
}

/// The schema's name for a lower-case enum value (`login_failed` → `LOGIN_FAILED`); 422 at
/// `loc` for a value the enum does not have.
#[allow(clippy::result_large_err)]
fn enum_value(loc: &[&str], value: &str, names: &[&'static str]) -> Result<Value, Response> {
    let wanted = value.trim().to_ascii_uppercase();
    if let Some(name) = names.iter().find(|name| **name == wanted) {
        return Ok(Value::from(*name));
    }
    let names: Vec<String> = names
        .iter()
        .map(|name| format!("'{}'", name.to_ascii_lowercase()))
        .collect();
    let loc: Vec<Value> = loc.iter().map(|part| Value::from(*part)).collect();
    Err(unprocessable(
        &loc,
        &format!("Input should be one of {}", names.join(", ")),
    ))
}

/// The names of a schema enum's values.
fn names<E: EnumType>() -> Vec<&'static str> {
    E::items().iter().map(|item| item.name).collect()
}

/// The account id of the path; 422 when it is not an integer.
#[allow(clippy::result_large_err)]
fn path_id(
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<i32, Response> {
    match id.ok().map(|Path(id)| id.parse::<i32>()) {
        Some(Ok(id)) => Ok(id),
        _ => Err(unprocessable(
            &["path".into(), "id".into()],
            "Input should be a valid integer",
        )),
    }
}
