use sea_orm::entity::prelude::*;

/// One attempt to deliver an event to an endpoint.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first try.
    pub attempt: i32,
    /// `delivered`, `failed` (to be tried again), `given_up` or `refused` (an address the
    /// SSRF guard refused).
    pub status: String,
    /// The receiver's HTTP status; none when it did not answer.
    pub response_status: Option<i32>,
    /// Why it failed (for the admin), without the body.
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
