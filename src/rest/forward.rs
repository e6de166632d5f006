//! Runs a REST path's GraphQL operation and maps the GraphQL response to the REST one.

use async_graphql::{ServerError, Variables};
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::operations::Operation;
use crate::{
    caller::Caller,
    error::{AppError, ErrorCode, INTERNAL},
    graphql,
    http::Problem,
    state::AppState,
};

/// Executes `op` for `caller` with `variables`; on success answers `status` with
/// `{"detail": detail}` (for the paths whose operation only says that it worked).
pub async fn forward_detail(
    state: &AppState,
    op: &Operation,
    caller: Caller,
    variables: Value,
    status: StatusCode,
    detail: &'static str,
) -> Response {
    match run(state, op, caller, variables).await {
        Ok(_) => (status, Json(serde_json::json!({ "detail": detail }))).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Executes `op` for `caller` with `variables`: its `result`, or the REST error.
pub async fn run(
    state: &AppState,
    op: &Operation,
    caller: Caller,
    variables: Value,
) -> Result<async_graphql::Value, Problem> {
    let request = op
        .request()
        .variables(Variables::from_json(variables))
        .data(caller.actor)
        .data(caller.client);
    let mut response = graphql::execute(&state.graphql.schema, request).await;
    if let Some(error) = response.errors.first() {
        return Err(problem(error));
    }
    match std::mem::take(&mut response.data) {
        async_graphql::Value::Object(mut data) => data.shift_remove("result").ok_or_else(no_result),
        _ => Err(no_result()),
    }
}

fn no_result() -> Problem {
    tracing::error!("REST operation returned no `result`");
    Problem::new(ErrorCode::InternalServerError, INTERNAL)
}

/// Executes `op` for `caller` with `variables`; on success answers `status` with `data.result`.
pub async fn forward(
    state: &AppState,
    op: &Operation,
    caller: Caller,
    variables: Value,
    status: StatusCode,
) -> Response {
    let request = op.request().variables(Variables::from_json(variables));
    forward_request(state, request, caller, status).await
}

/// As [`forward`], for a request already built (one carrying an upload).
pub async fn forward_request(
    state: &AppState,
    request: async_graphql::Request,
    caller: Caller,
    status: StatusCode,
) -> Response {
    let request = request.data(caller.actor).data(caller.client);
    let mut response = graphql::execute(&state.graphql.schema, request).await;
    if let Some(error) = response.errors.first() {
        return problem(error).into_response();
    }
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    let result = match std::mem::take(&mut response.data) {
        async_graphql::Value::Object(mut data) => data.shift_remove("result"),
        _ => None,
    };
    match result {
        // The GraphQL value serialises as the same JSON, with no copy into serde_json's tree.
        Some(body) => (status, Json(body)).into_response(),
        None => {
            tracing::error!("REST operation returned no `result`");
            Problem::new(ErrorCode::InternalServerError, INTERNAL).into_response()
        }
    }
}

/// The REST error for a GraphQL error: the `AppError` the service returned, carried as the
/// error's source. An error without one is a bug (the REST operations are fixed and checked
/// against the schema by a test), so it is logged and answered as a 500.
fn problem(error: &ServerError) -> Problem {
    match error.source::<AppError>() {
        Some(err) => Problem::from(err.clone()),
        None => {
            tracing::error!(error = %error.message, "REST operation failed without an AppError");
            Problem::new(ErrorCode::InternalServerError, INTERNAL)
        }
    }
}
