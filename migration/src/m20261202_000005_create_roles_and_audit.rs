//! Administration: `users.role` (`user` or `admin`), `users.disabled_at` (set while the
//! account is disabled) and `users.last_login_at`; the `audit_events` table of security
//! events; and the indexes that keep the admin's account list fast at scale.
//!
//! The list pages by `id` (newest first, keyset) and may filter by role, by status and by a
//! case-insensitive substring of the email or the profile's name. On PostgreSQL the substring
//! search is served by trigram indexes (`pg_trgm`, shipped with PostgreSQL): the extension is
//! created when the database offers it and the role may create it; otherwise the search
//! still works, by scanning.

use sea_orm_migration::{
    prelude::*,
    schema::*,
    sea_orm::{DbBackend, Statement},
};

use crate::m20250101_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            string_len(UsersAdmin::Role, 16).default("user").to_owned(),
            timestamp_with_time_zone_null(UsersAdmin::DisabledAt).to_owned(),
            timestamp_with_time_zone_null(UsersAdmin::LastLoginAt).to_owned(),
        ] {
            // One column per statement: SQLite's ALTER TABLE adds one at a time.
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_users_role_id")
                    .table(Users::Table)
                    .col(UsersAdmin::Role)
                    .col(Users::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_disabled_at")
                    .table(Users::Table)
                    .col(UsersAdmin::DisabledAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditEvents::Id))
                    .col(timestamp_with_time_zone(AuditEvents::CreatedAt))
                    .col(string_len(AuditEvents::Action, 32))
                    // No foreign keys: an event outlives the accounts it names.
                    .col(integer_null(AuditEvents::ActorId))
                    .col(integer_null(AuditEvents::SubjectId))
                    .col(string_len_null(AuditEvents::Ip, 45))
                    .col(string_len_null(AuditEvents::RequestId, 64))
                    .col(text_null(AuditEvents::Details))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "idx_audit_events_subject",
                [AuditEvents::SubjectId, AuditEvents::Id],
            ),
            (
                "idx_audit_events_actor",
                [AuditEvents::ActorId, AuditEvents::Id],
            ),
            (
                "idx_audit_events_action",
                [AuditEvents::Action, AuditEvents::Id],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(AuditEvents::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_created_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::CreatedAt)
                    .to_owned(),
            )
            .await?;

        if manager.get_database_backend() == DbBackend::Postgres {
            trigram_indexes(manager).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("DROP INDEX IF EXISTS idx_users_email_trgm")
                .await?;
            db.execute_unprepared("DROP INDEX IF EXISTS idx_profiles_name_trgm")
                .await?;
        }
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await?;
        for name in ["idx_users_role_id", "idx_users_disabled_at"] {
            manager
                .drop_index(Index::drop().name(name).table(Users::Table).to_owned())
                .await?;
        }
        for column in [
            UsersAdmin::Role,
            UsersAdmin::DisabledAt,
            UsersAdmin::LastLoginAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// GIN trigram indexes on `users.email` and `profiles.name`, when `pg_trgm` is installed
/// or this role may install it (a superuser, or the database's `CREATE` privilege and a
/// trusted extension, as `pg_trgm` is since PostgreSQL 13).
async fn trigram_indexes(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let allowed = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_available_extensions e WHERE e.name = 'pg_trgm' AND ( \
               e.installed_version IS NOT NULL \
               OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
               OR (has_database_privilege(current_database(), 'CREATE') AND EXISTS ( \
                 SELECT 1 FROM pg_available_extension_versions v \
                 WHERE v.name = e.name AND v.version = e.default_version AND v.trusted)))",
        ))
        .await?
        .is_some();
    if !allowed {
        return Ok(());
    }
    db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        .await?;
    db.execute_unprepared(
        "CREATE INDEX IF NOT EXISTS idx_users_email_trgm ON users USING gin (email gin_trgm_ops)",
    )
    .await?;
    db.execute_unprepared(
        "CREATE INDEX IF NOT EXISTS idx_profiles_name_trgm ON profiles USING gin (name gin_trgm_ops)",
    )
    .await?;
    Ok(())
}

#[derive(DeriveIden)]
enum UsersAdmin {
    Role,
    DisabledAt,
    LastLoginAt,
}

#[derive(DeriveIden)]
pub enum AuditEvents {
    Table,
    Id,
    CreatedAt,
    Action,
    ActorId,
    SubjectId,
    Ip,
    RequestId,
    Details,
}
