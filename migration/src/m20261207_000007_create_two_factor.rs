//! Two-factor authentication (TOTP and recovery codes):
//!
//! - `users.mfa_enabled`: TOTP is on (kept on the user row, so a login of an account without
//!   it costs no further query); `sessions.amr`: how the session's sign-in was made
//!   (`pwd`, `pwd otp`, `pwd rc`, …), which its access tokens carry and refreshes keep.
//! - `user_totp`: the account's TOTP secret (sealed when `MFA_ENCRYPTION_KEY` is set), pending
//!   until `confirmed_at`, and the last step a code was accepted for (no code works twice).
//! - `recovery_codes`: the SHA-256 of each code, spent when `used_at` is set.
//! - `mfa_challenges`: the second step of a login: the SHA-256 of its `mfa_token`, how many
//!   codes were tried with it, and when it was spent.
//!
//! All go with their user.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20250101_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(boolean(UsersMfa::MfaEnabled).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(string_len(Sessions::Amr, 32).default("pwd"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserTotp::Table)
                    .if_not_exists()
                    .col(integer(UserTotp::UserId).primary_key())
                    .col(string_len(UserTotp::Secret, 255))
                    .col(timestamp_with_time_zone_null(UserTotp::ConfirmedAt))
                    .col(big_integer_null(UserTotp::LastStep))
                    .col(timestamp_with_time_zone(UserTotp::CreatedAt))
                    .foreign_key(&mut user_key(
                        "fk_user_totp_user_id",
                        UserTotp::Table,
                        UserTotp::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .if_not_exists()
                    .col(pk_auto(RecoveryCodes::Id))
                    .col(integer(RecoveryCodes::UserId))
                    .col(string_len(RecoveryCodes::CodeHash, 64))
                    .col(timestamp_with_time_zone_null(RecoveryCodes::UsedAt))
                    .col(timestamp_with_time_zone(RecoveryCodes::CreatedAt))
                    .foreign_key(&mut user_key(
                        "fk_recovery_codes_user_id",
                        RecoveryCodes::Table,
                        RecoveryCodes::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_recovery_codes_user_id_code_hash")
                    .table(RecoveryCodes::Table)
                    .col(RecoveryCodes::UserId)
                    .col(RecoveryCodes::CodeHash)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MfaChallenges::Table)
                    .if_not_exists()
                    .col(string_len(MfaChallenges::TokenHash, 64).primary_key())
                    .col(integer(MfaChallenges::UserId))
                    .col(string_len(MfaChallenges::FirstFactor, 16))
                    .col(integer(MfaChallenges::Attempts).default(0))
                    .col(timestamp_with_time_zone(MfaChallenges::CreatedAt))
                    .col(timestamp_with_time_zone(MfaChallenges::ExpiresAt))
                    .col(timestamp_with_time_zone_null(MfaChallenges::SpentAt))
                    .foreign_key(&mut user_key(
                        "fk_mfa_challenges_user_id",
                        MfaChallenges::Table,
                        MfaChallenges::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_mfa_challenges_user_id")
                    .table(MfaChallenges::Table)
                    .col(MfaChallenges::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            MfaChallenges::Table.into_iden(),
            RecoveryCodes::Table.into_iden(),
            UserTotp::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::Amr)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(UsersMfa::MfaEnabled)
                    .to_owned(),
            )
            .await
    }
}

/// The foreign key of `column` in `table` to its user, going with it.
fn user_key(name: &str, table: impl IntoIden, column: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .on_update(ForeignKeyAction::Cascade)
        .to_owned()
}

#[derive(DeriveIden)]
enum UsersMfa {
    MfaEnabled,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Amr,
}

#[derive(DeriveIden)]
enum UserTotp {
    Table,
    UserId,
    Secret,
    ConfirmedAt,
    LastStep,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MfaChallenges {
    Table,
    TokenHash,
    UserId,
    FirstFactor,
    Attempts,
    CreatedAt,
    ExpiresAt,
    SpentAt,
}
