//! `profiles`: at most one per user (unique `user_id`), removed with its user.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20250101_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Profiles::Table)
                    .if_not_exists()
                    .col(pk_auto(Profiles::Id))
                    .col(integer_uniq(Profiles::UserId))
                    .col(string_len_null(Profiles::Name, 100))
                    .col(string_len_null(Profiles::Phone, 16))
                    .col(string_len_null(Profiles::Bio, 1000))
                    .col(string_len_null(Profiles::Hobby, 100))
                    .col(string_len_null(Profiles::Occupation, 100))
                    .col(string_len_null(Profiles::Location, 100))
                    .col(string_len_null(Profiles::ProfilePhotoPath, 255))
                    .col(timestamp_with_time_zone(Profiles::CreatedAt))
                    .col(timestamp_with_time_zone(Profiles::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_profiles_user_id")
                            .from(Profiles::Table, Profiles::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Profiles::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Profiles {
    Table,
    Id,
    UserId,
    Name,
    Phone,
    Bio,
    Hobby,
    Occupation,
    Location,
    ProfilePhotoPath,
    CreatedAt,
    UpdatedAt,
}
