use sea_orm::entity::prelude::*;

/// An identity at an external OpenID provider, linked to an account: the provider's name (as
/// configured) and its `sub` for the person. One per provider per account; a (provider, sub)
/// belongs to one account.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_identities")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub user_id: i32,
    pub provider: String,
    pub subject: String,
    /// The address the provider gave when it was linked (for the owner to recognise it).
    pub email: Option<String>,
    pub linked_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
