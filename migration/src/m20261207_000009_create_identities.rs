//! Sign-in with external OpenID providers: `user_identities`, an account's linked identities
//! (one per provider; a provider's `sub` belongs to one account), and `oidc_flows`, the
//! server-side half of an authorization in progress (its `state` as a SHA-256, the `nonce`,
//! the PKCE verifier and where to send the browser back; 10 minutes, once), kept in the
//! database so that any replica can finish what another started. Both go with their user.

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
                    .table(UserIdentities::Table)
                    .if_not_exists()
                    .col(pk_auto(UserIdentities::Id))
                    .col(integer(UserIdentities::UserId))
                    .col(string_len(UserIdentities::Provider, 32))
                    .col(string_len(UserIdentities::Subject, 255))
                    .col(string_len_null(UserIdentities::Email, 254))
                    .col(timestamp_with_time_zone(UserIdentities::LinkedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_identities_user_id")
                            .from(UserIdentities::Table, UserIdentities::UserId)
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
                    .name("idx_user_identities_provider_subject")
                    .table(UserIdentities::Table)
                    .col(UserIdentities::Provider)
                    .col(UserIdentities::Subject)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_identities_user_id_provider")
                    .table(UserIdentities::Table)
                    .col(UserIdentities::UserId)
                    .col(UserIdentities::Provider)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OidcFlows::Table)
                    .if_not_exists()
                    .col(string_len(OidcFlows::Id, 64).primary_key())
                    .col(string_len(OidcFlows::Provider, 32))
                    .col(integer_null(OidcFlows::UserId))
                    .col(string_len(OidcFlows::Nonce, 64))
                    .col(string_len(OidcFlows::PkceVerifier, 128))
                    .col(string_len(OidcFlows::RedirectTo, 2048))
                    .col(timestamp_with_time_zone(OidcFlows::CreatedAt))
                    .col(timestamp_with_time_zone(OidcFlows::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_oidc_flows_user_id")
                            .from(OidcFlows::Table, OidcFlows::UserId)
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
                    .name("idx_oidc_flows_expires_at")
                    .table(OidcFlows::Table)
                    .col(OidcFlows::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OidcFlows::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(UserIdentities::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum UserIdentities {
    Table,
    Id,
    UserId,
    Provider,
    Subject,
    Email,
    LinkedAt,
}

#[derive(DeriveIden)]
enum OidcFlows {
    Table,
    Id,
    Provider,
    UserId,
    Nonce,
    PkceVerifier,
    RedirectTo,
    CreatedAt,
    ExpiresAt,
}
