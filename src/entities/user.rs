use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Trimmed and lower-cased before it is stored.
    #[sea_orm(unique)]
    pub email: String,
    pub password_hash: String,
    /// Set when a verification link sent to `email` was followed (or a reset link was).
    pub email_verified: bool,
    /// `user` or `admin`.
    pub role: String,
    /// Set while the account is disabled: it cannot log in, and its sessions are dead.
    pub disabled_at: Option<DateTimeUtc>,
    pub last_login_at: Option<DateTimeUtc>,
    /// TOTP is on: a right password alone opens no session.
    pub mfa_enabled: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(has_one)]
    pub profile: HasOne<super::profile::Entity>,
    #[sea_orm(has_many)]
    pub sessions: HasMany<super::session::Entity>,
    #[sea_orm(has_many)]
    pub account_tokens: HasMany<super::account_token::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
