//! Webhook endpoints over REST (admins only): register, list, read, remove, rotate the
//! secret, and the delivery log.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{
    body::{Authenticated, JsonBody},
    forward::{forward, run},
    operations::OPERATIONS,
    schemas::{ErrorBody, TypeErrorBody, ValidationErrorBody},
};
use crate::state::AppState;

/// A new endpoint.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"url": "https://crm.example.com/hooks/users", "events": ["user.created", "user.deleted"], "description": "CRM"}))]
pub struct WebhookBody {
    /// An http(s) URL on a public address.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 2048)]
    url: Option<String>,
    /// Event types, or `["*"]` for all.
    #[serde(default)]
    #[schema(value_type = Vec<String>, required = true, min_items = 1, max_items = 13)]
    events: Option<Vec<String>>,
    #[serde(default)]
    #[schema(max_length = 500)]
    description: Option<String>,
}

/// An endpoint.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "4b1e…", "url": "https://crm.example.com/hooks/users", "events": ["user.created"], "description": "CRM", "enabled": true, "created_at": "2025-01-01T00:00:00Z"}))]
pub struct WebhookOut {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// False once the receiver answered 410 Gone.
    pub enabled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A new endpoint, with its secret (shown this once).
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhookOut {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// `whsec_…`: verify the `webhook-signature` header with it. Shown only now.
    pub secret: String,
    pub enabled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A new secret.
#[derive(Serialize, ToSchema)]
pub struct SecretOut {
    /// `whsec_…`; the previous secret still signs, beside it, for 24 hours.
    pub secret: String,
}

/// One delivery attempt.
#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: i32,
    /// The `webhook-id` (the same on every attempt of an event).
    pub event_id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    pub attempt: i32,
    /// `delivered`, `failed`, `given_up`, `disabled` (410) or `refused`.
    pub status: String,
    /// Null when the receiver did not answer.
    pub response_status: Option<i32>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Register a webhook endpoint
///
/// Account events of the chosen types are POSTed to `url`, signed per Standard Webhooks.
/// Admins only.
#[utoipa::path(
    post, path = "/api/admin/webhooks", tag = "admin", operation_id = "createWebhook",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = WebhookBody,
    responses(
        (status = 201, description = "Registered; `secret` is shown only now", body = CreatedWebhookOut),
        (status = 400, description = "Bad `url` (or one on a private address) or `events`", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<WebhookBody>,
) -> Response {
    let input = json!({
        "url": body.url.unwrap_or_default(),
        "events": body.events.unwrap_or_default(),
        "description": body.description,
    });
    let op = &OPERATIONS.create_webhook;
    forward(
        &state,
        op,
        caller,
        json!({ "input": input }),
        StatusCode::CREATED,
    )
    .await
}

/// List webhook endpoints
///
/// Oldest first. Admins only.
#[utoipa::path(
    get, path = "/api/admin/webhooks", tag = "admin", operation_id = "listWebhooks",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The endpoints", body = Vec<WebhookOut>),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
    )
)]
pub async fn list(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Response {
    forward(
        &state,
        &OPERATIONS.webhooks,
        caller,
        json!({}),
        StatusCode::OK,
    )
    .await
}

/// Read a webhook endpoint
///
/// Admins only.
#[utoipa::path(
    get, path = "/api/admin/webhooks/{id}", tag = "admin", operation_id = "getWebhook",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookOut),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "Unknown endpoint", body = ErrorBody, example = json!({"detail": "Webhook not found"})),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let op = &OPERATIONS.webhook;
    forward(&state, op, caller, json!({ "id": id }), StatusCode::OK).await
}

/// Remove a webhook endpoint
///
/// Its pending events and its delivery log go too. Admins only.
#[utoipa::path(
    delete, path = "/api/admin/webhooks/{id}", tag = "admin", operation_id = "deleteWebhook",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "Unknown endpoint", body = ErrorBody, example = json!({"detail": "Webhook not found"})),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let op = &OPERATIONS.delete_webhook;
    forward(
        &state,
        op,
        caller,
        json!({ "id": id }),
        StatusCode::NO_CONTENT,
    )
    .await
}

/// Turn a webhook endpoint on
///
/// It takes events again from now on (after a 410 Gone, say). Admins only.
#[utoipa::path(
    post, path = "/api/admin/webhooks/{id}/enable", tag = "admin", operation_id = "enableWebhook",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookOut),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "Unknown endpoint", body = ErrorBody, example = json!({"detail": "Webhook not found"})),
    )
)]
pub async fn enable(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let op = &OPERATIONS.enable_webhook;
    forward(&state, op, caller, json!({ "id": id }), StatusCode::OK).await
}

/// Turn a webhook endpoint off
///
/// No event is queued for it until it is turned on again. Admins only.
#[utoipa::path(
    post, path = "/api/admin/webhooks/{id}/disable", tag = "admin", operation_id = "disableWebhook",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookOut),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "Unknown endpoint", body = ErrorBody, example = json!({"detail": "Webhook not found"})),
    )
)]
pub async fn disable(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let op = &OPERATIONS.disable_webhook;
    forward(&state, op, caller, json!({ "id": id }), StatusCode::OK).await
}

/// Rotate a webhook endpoint's secret
///
/// A new secret; for 24 hours every delivery carries a signature by the old one too, so the
/// receiver can switch without missing an event. Admins only.
#[utoipa::path(
    post, path = "/api/admin/webhooks/{id}/rotate-secret", tag = "admin", operation_id = "rotateWebhookSecret",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The new secret", body = SecretOut),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "Unknown endpoint", body = ErrorBody, example = json!({"detail": "Webhook not found"})),
    )
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let op = &OPERATIONS.rotate_webhook_secret;
    match run(&state, op, caller, json!({ "id": id })).await {
        Ok(secret) => (StatusCode::OK, axum::Json(json!({ "secret": secret }))).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// A webhook endpoint's delivery log
///
/// The latest 100 attempts, newest first. Admins only.
#[utoipa::path(
    get, path = "/api/admin/webhooks/{id}/deliveries", tag = "admin", operation_id = "listWebhookDeliveries",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The attempts, newest first", body = Vec<DeliveryOut>),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody, example = json!({"detail": "Forbidden"})),
        (status = 404, description = "Unknown endpoint", body = ErrorBody, example = json!({"detail": "Webhook not found"})),
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let op = &OPERATIONS.webhook_deliveries;
    forward(&state, op, caller, json!({ "id": id }), StatusCode::OK).await
}
