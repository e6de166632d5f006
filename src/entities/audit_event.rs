use sea_orm::entity::prelude::*;

/// A security event: what happened, when, who did it, to whom, and from where. Never a
/// password, hash or token. No foreign keys: an event outlives the accounts it names.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub created_at: DateTimeUtc,
    /// One of `domain::AuditAction`, in snake_case.
    pub action: String,
    /// Who acted: the signed-in account, or none (anonymous or the command line).
    pub actor_id: Option<i32>,
    /// The account acted on.
    pub subject_id: Option<i32>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// A JSON object of what else is worth keeping (a role's old and new value, a count).
    pub details: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
