use sea_orm::entity::prelude::*;

/// An account's TOTP secret: pending until a code confirms it.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_totp")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i32,
    /// The secret as stored: sealed (`v1:…`) when `MFA_ENCRYPTION_KEY` is set, else
    /// `plain:` and its base32. Never leaves the service layer.
    pub secret: String,
    /// When a code confirmed it; `None` while the enrolment is pending.
    pub confirmed_at: Option<DateTimeUtc>,
    /// The time step of the last accepted code: a code of that step or an earlier one is
    /// refused.
    pub last_step: Option<i64>,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
