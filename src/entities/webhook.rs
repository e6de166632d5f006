use sea_orm::entity::prelude::*;

/// An endpoint that account events are sent to.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    /// A UUID, as text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub url: String,
    /// The event types it takes, comma-separated (`*`: all).
    pub events: String,
    pub description: Option<String>,
    /// The signing secret (`whsec_…`). Never leaves the server but at creation and rotation.
    pub secret: String,
    /// The secret before the last rotation, still signing until `old_secret_until`.
    pub old_secret: Option<String>,
    pub old_secret_until: Option<DateTimeUtc>,
    pub enabled: bool,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
