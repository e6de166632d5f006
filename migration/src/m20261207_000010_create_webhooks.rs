//! Webhooks: `webhooks`, the endpoints an admin registered (URL, event types, the signing
//! secret and, during a rotation, the previous one until it expires); `webhook_outbox`, one row
//! per event per endpoint, written in the transaction of the change (its body as sent, the
//! same bytes on every retry), claimed by a delivery worker; and `webhook_deliveries`, the log
//! of attempts. Outbox and log rows go with their endpoint.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .if_not_exists()
                    .col(string_len(Webhooks::Id, 36).primary_key())
                    .col(string_len(Webhooks::Url, 2048))
                    .col(string_len(Webhooks::Events, 1024))
                    .col(string_len_null(Webhooks::Description, 500))
                    .col(string_len(Webhooks::Secret, 128))
                    .col(string_len_null(Webhooks::OldSecret, 128))
                    .col(timestamp_with_time_zone_null(Webhooks::OldSecretUntil))
                    .col(boolean(Webhooks::Enabled))
                    .col(timestamp_with_time_zone(Webhooks::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookOutbox::Table)
                    .if_not_exists()
                    .col(pk_auto(WebhookOutbox::Id))
                    .col(string_len(WebhookOutbox::WebhookId, 36))
                    .col(string_len(WebhookOutbox::EventId, 64))
                    .col(string_len(WebhookOutbox::EventType, 64))
                    .col(text(WebhookOutbox::Body))
                    .col(integer(WebhookOutbox::Attempts))
                    .col(timestamp_with_time_zone(WebhookOutbox::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(WebhookOutbox::ClaimedUntil))
                    .col(timestamp_with_time_zone_null(WebhookOutbox::DoneAt))
                    .col(timestamp_with_time_zone(WebhookOutbox::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_outbox_webhook_id")
                            .from(WebhookOutbox::Table, WebhookOutbox::WebhookId)
                            .to(Webhooks::Table, Webhooks::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_outbox_due")
                    .table(WebhookOutbox::Table)
                    .col(WebhookOutbox::DoneAt)
                    .col(WebhookOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .if_not_exists()
                    .col(pk_auto(WebhookDeliveries::Id))
                    .col(string_len(WebhookDeliveries::WebhookId, 36))
                    .col(string_len(WebhookDeliveries::EventId, 64))
                    .col(string_len(WebhookDeliveries::EventType, 64))
                    .col(integer(WebhookDeliveries::Attempt))
                    .col(string_len(WebhookDeliveries::Status, 16))
                    .col(integer_null(WebhookDeliveries::ResponseStatus))
                    .col(string_len_null(WebhookDeliveries::Error, 500))
                    .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_deliveries_webhook_id")
                            .from(WebhookDeliveries::Table, WebhookDeliveries::WebhookId)
                            .to(Webhooks::Table, Webhooks::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_webhook_id")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::WebhookId)
                    .col(WebhookDeliveries::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookDeliveries::Table.into_iden(),
            WebhookOutbox::Table.into_iden(),
            Webhooks::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    Url,
    Events,
    Description,
    Secret,
    OldSecret,
    OldSecretUntil,
    Enabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookOutbox {
    Table,
    Id,
    WebhookId,
    EventId,
    EventType,
    Body,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
    DoneAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    EventId,
    EventType,
    Attempt,
    Status,
    ResponseStatus,
    Error,
    CreatedAt,
}
