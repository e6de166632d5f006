//! `/healthz` and `/readyz`, for load balancers and orchestrators.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{error::UNAVAILABLE, state::AppState};

/// Liveness
///
/// 200 while the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", operation_id = "healthz",
    responses((status = 200, description = "Alive", body = super::schemas::Health)))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness
///
/// 200 when the database answers too; 503 otherwise (take the replica out of rotation).
#[utoipa::path(get, path = "/readyz", tag = "health", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = super::schemas::Health, example = json!({"status": "ready"})),
        (status = 503, description = "The database cannot be reached", body = super::schemas::Health,
            example = json!({"status": "unavailable", "detail": "Service unavailable"})),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.services.ready().await {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "detail": UNAVAILABLE })),
        )
            .into_response()
    }
}
