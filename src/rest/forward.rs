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
    let request = op.request().variables(Variables::from_json(variables));
    execute(state, op, request, caller).await
}

/// Executes `request`, built from `op` (one carrying an upload, say), for `caller`: the
/// operation's `result`, or the REST error.
pub async fn execute(
    state: &AppState,
    op: &Operation,
    request: async_graphql::Request,
    caller: Caller,
) -> Result<async_graphql::Value, Problem> {
    let request = request.data(caller.actor).data(caller.client);
    let mut response = graphql::execute_as(&state.graphql.schema, request, op.label()).await;
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

/// Executes `op` for `caller` with `variables`; on success answers `status` with
/// `data.result` (nothing for 204).
pub async fn forward(
    state: &AppState,
    op: &Operation,
    caller: Caller,
    variables: Value,
    status: StatusCode,
) -> Response {
    respond(run(state, op, caller, variables).await, status)
}

/// The REST answer to an operation's outcome: `status` with its `result` as the body
/// (none for 204), or the error.
pub fn respond(result: Result<async_graphql::Value, Problem>, status: StatusCode) -> Response {
    match result {
        Ok(_) if status == StatusCode::NO_CONTENT => status.into_response(),
        // The GraphQL value serialises as the same JSON, with no copy into serde_json's tree.
        Ok(body) => (status, Json(body)).into_response(),
        Err(problem) => problem.into_response(),
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
