use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "profiles")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub user_id: i32,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub bio: Option<String>,
    pub hobby: Option<String>,
    pub occupation: Option<String>,
    pub location: Option<String>,
    /// `uploads/{user_id}/{uuid}.{ext}`, relative to the served `/uploads` root.
    pub profile_photo_path: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
