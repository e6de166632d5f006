use sea_orm::entity::prelude::*;

/// An event waiting for (or done with) delivery to one endpoint.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub webhook_id: String,
    /// `msg_…`: the `webhook-id` header, the same on every attempt.
    pub event_id: String,
    pub event_type: String,
    /// The JSON body, exactly as sent on every attempt.
    pub body: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// A worker holds it until then.
    pub claimed_until: Option<DateTimeUtc>,
    /// Delivered, given up, or its endpoint disabled.
    pub done_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
