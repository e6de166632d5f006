//! `graphql_operations_total`: every operation the schema runs (GraphQL clients' and the
//! REST paths' alike), by operation name and outcome.
//!
//! Counted around `Schema::execute` rather than by a schema extension: with any extension
//! installed, async-graphql runs every field through the extension chain, which cost a fifth
//! more CPU on a profile read.

use async_graphql::{Request, Response, ServerError, Value, parser::types::DocumentOperations};

use metrics::SharedString;

use super::AppSchema;
use crate::monitoring::operation_label;

/// Runs `request` and counts it: `ok`, the first error's code in lower case, or `invalid` for
/// a document that did not parse or validate. The operation's name is a client's to choose:
/// it is looked up among the labels kept ([`operation_label`]).
pub async fn execute(schema: &AppSchema, mut request: Request) -> Response {
    let operation = operation_label(operation_name(&mut request).as_deref());
    counted(schema, request, operation).await
}

/// As [`execute`], for an operation whose label is known (a REST path's own): no lookup, no
/// lock, no allocation.
pub async fn execute_as(schema: &AppSchema, request: Request, operation: &'static str) -> Response {
    counted(schema, request, operation.into()).await
}

async fn counted(schema: &AppSchema, request: Request, operation: SharedString) -> Response {
    let response = schema.execute(request).await;
    let outcome = response.errors.first().map_or("ok", outcome);
    metrics::counter!(
        "graphql_operations_total",
        "operation" => operation,
        "outcome" => outcome,
    )
    .increment(1);
    response
}

/// The name of the operation `request` runs: the one it names, or that of a document's only
/// operation (REST's fixed operations name none); `None` for an anonymous one, or a document
/// that does not parse.
fn operation_name(request: &mut Request) -> Option<String> {
    if let Some(name) = &request.operation_name {
        return Some(name.clone());
    }
    match &request.parsed_query().ok()?.operations {
        DocumentOperations::Multiple(operations) if operations.len() == 1 => {
            operations.keys().next().map(|name| name.to_string())
        }
        _ => None,
    }
}

/// An error's code as a label, from the fixed set of codes.
fn outcome(error: &ServerError) -> &'static str {
    let code = error
        .extensions
        .as_ref()
        .and_then(|extensions| extensions.get("code"));
    match code {
        Some(Value::String(code)) => match code.as_str() {
            "BAD_USER_INPUT" => "bad_user_input",
            "UNAUTHENTICATED" => "unauthenticated",
            "FORBIDDEN" => "forbidden",
            "NOT_FOUND" => "not_found",
            "CONFLICT" => "conflict",
            "MFA_REQUIRED" => "mfa_required",
            "PAYLOAD_TOO_LARGE" => "payload_too_large",
            "RATE_LIMITED" => "rate_limited",
            "SERVICE_UNAVAILABLE" => "service_unavailable",
            "INTERNAL_SERVER_ERROR" => "internal_server_error",
            _ => "error",
        },
        // Parse and validation errors carry no code (the transport adds one later).
        _ => "invalid",
    }
}
