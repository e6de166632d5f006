use sea_orm::entity::prelude::*;

/// The second step of a sign-in: its first factor passed, a code is still due.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mfa_challenges")]
pub struct Model {
    /// Lower-case hex SHA-256 of the `mfa_token`; the token itself is never stored.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub user_id: i32,
    /// How the first step was made (`pwd`), the start of the session's `amr`.
    pub first_factor: String,
    /// Codes tried with it (each reserved before it is checked).
    pub attempts: i32,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// When a right code spent it.
    pub spent_at: Option<DateTimeUtc>,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
