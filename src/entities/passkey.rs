use sea_orm::entity::prelude::*;

/// A registered passkey of an account.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    /// A UUID, as text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: i32,
    /// The account's WebAuthn user handle (a UUID), the same for all its passkeys: what a
    /// discoverable sign-in names the account by.
    pub user_handle: String,
    /// The credential's id, base64url: how a sign-in finds it.
    #[sea_orm(unique)]
    pub credential_id: String,
    pub name: String,
    /// The library's credential (public key, sign counter, flags), as JSON.
    pub credential: String,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
