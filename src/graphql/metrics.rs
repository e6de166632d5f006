//! `graphql_operations_total`: every operation the schema runs (GraphQL clients' and the
//! REST paths' alike), by operation name and outcome.

use std::sync::Arc;

use async_graphql::{
    Response, ServerError, Value,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute},
};

use crate::monitoring::operation_label;

/// Counts each executed operation: `ok`, or the first error's code in lower case.
pub struct OperationMetrics;

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationMetrics)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for OperationMetrics {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let response = next.run(ctx, operation_name).await;
        let outcome = response.errors.first().map_or("ok", outcome);
        metrics::counter!(
            "graphql_operations_total",
            "operation" => operation_label(operation_name),
            "outcome" => outcome,
        )
        .increment(1);
        response
    }
}

/// An error's code as a label, from the fixed set of codes (anything else: `error`).
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
            "PAYLOAD_TOO_LARGE" => "payload_too_large",
            "RATE_LIMITED" => "rate_limited",
            "SERVICE_UNAVAILABLE" => "service_unavailable",
            "INTERNAL_SERVER_ERROR" => "internal_server_error",
            _ => "error",
        },
        _ => "error",
    }
}
