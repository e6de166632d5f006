//! Passkeys (WebAuthn): `passkeys`, an account's registered credentials (the library's
//! serialised credential, its id for the lookup of a sign-in, the account's user handle and a
//! name), and `webauthn_flows`, the server-side state of a ceremony in progress (5 minutes,
//! once), kept in the database so that any replica can finish what another started. Both go
//! with their user.

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
                    .table(Passkeys::Table)
                    .if_not_exists()
                    .col(string_len(Passkeys::Id, 36).primary_key())
                    .col(integer(Passkeys::UserId))
                    .col(string_len(Passkeys::UserHandle, 36))
                    .col(string_len_uniq(Passkeys::CredentialId, 1400))
                    .col(string_len(Passkeys::Name, 100))
                    .col(text(Passkeys::Credential))
                    .col(timestamp_with_time_zone(Passkeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(Passkeys::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_passkeys_user_id")
                            .from(Passkeys::Table, Passkeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_passkeys_user_id")
                    .table(Passkeys::Table)
                    .col(Passkeys::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebauthnFlows::Table)
                    .if_not_exists()
                    .col(string_len(WebauthnFlows::Id, 36).primary_key())
                    .col(string_len(WebauthnFlows::Kind, 16))
                    .col(integer_null(WebauthnFlows::UserId))
                    .col(text(WebauthnFlows::State))
                    .col(timestamp_with_time_zone(WebauthnFlows::CreatedAt))
                    .col(timestamp_with_time_zone(WebauthnFlows::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webauthn_flows_user_id")
                            .from(WebauthnFlows::Table, WebauthnFlows::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webauthn_flows_expires_at")
                    .table(WebauthnFlows::Table)
                    .col(WebauthnFlows::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebauthnFlows::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Passkeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    UserHandle,
    CredentialId,
    Name,
    Credential,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum WebauthnFlows {
    Table,
    Id,
    Kind,
    UserId,
    State,
    CreatedAt,
    ExpiresAt,
}
