use sea_orm::entity::prelude::*;

/// One login: live until it is revoked or `expires_at` passes.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// A UUID, as text; access tokens carry it as `sid`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: i32,
    pub created_at: DateTimeUtc,
    /// The login or the last refresh.
    pub last_used_at: DateTimeUtc,
    /// Slides with each refresh, never past the session's absolute cap.
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// How the sign-in was made, space-separated (`pwd`, `pwd otp`, `pwd rc`): the access
    /// tokens' `amr`, kept by refreshes.
    pub amr: String,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::user::Entity>,
    #[sea_orm(has_many)]
    pub refresh_tokens: HasMany<super::refresh_token::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
