//! The webhook types of the schema (admins only).

use async_graphql::{ID, InputObject, SimpleObject};

use super::types::DateTime;
use crate::services::{DeliveryView, WebhookView};

/// An endpoint account events are sent to (Standard Webhooks).
#[derive(SimpleObject)]
pub struct Webhook {
    /// The endpoint's id.
    pub id: ID,
    /// Where events are POSTed.
    pub url: String,
    /// The event types it takes (`*`: all).
    pub events: Vec<String>,
    /// What it is for.
    pub description: Option<String>,
    /// The signing secret (`whsec_…`): only in the answer of `createWebhook`, never again.
    pub secret: Option<String>,
    /// False once the receiver answered 410 Gone.
    pub enabled: bool,
    /// When it was registered.
    pub created_at: DateTime,
}

impl From<WebhookView> for Webhook {
    fn from(w: WebhookView) -> Self {
        Self {
            id: ID(w.id),
            url: w.url,
            events: w.events,
            description: w.description,
            secret: w.secret,
            enabled: w.enabled,
            created_at: DateTime(w.created_at),
        }
    }
}

/// One attempt to deliver an event.
#[derive(SimpleObject)]
pub struct WebhookDelivery {
    /// The attempt's id (newer attempts have larger ones).
    pub id: i32,
    /// The event's `webhook-id` (the same on every attempt).
    pub event_id: String,
    /// The event type.
    #[graphql(name = "type")]
    pub event_type: String,
    /// 1 for the first try.
    pub attempt: i32,
    /// `delivered`, `failed` (tried again later), `given_up`, `disabled` (410) or `refused`
    /// (not a public address).
    pub status: String,
    /// The receiver's HTTP status; null when it did not answer.
    pub response_status: Option<i32>,
    /// When it was made.
    pub created_at: DateTime,
}

impl From<DeliveryView> for WebhookDelivery {
    fn from(d: DeliveryView) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            attempt: d.attempt,
            status: d.status,
            response_status: d.response_status,
            created_at: DateTime(d.created_at),
        }
    }
}

/// A new endpoint.
#[derive(InputObject)]
pub struct CreateWebhookInput {
    /// An http(s) URL on a public address.
    pub url: String,
    /// Event types (`user.created`, …), or `["*"]` for all.
    pub events: Vec<String>,
    /// What it is for (at most 500 characters).
    pub description: Option<String>,
}
