//! Schema migrations for nta-user-svc: one file per change, each with `up` and `down`.
//!
//! The server applies pending migrations on start; `nta-user-svc migrate up|down|status`
//! runs them by hand.

pub use sea_orm_migration::prelude::*;

mod m20250101_000001_create_users;
mod m20250101_000002_create_profiles;
mod m20261202_000003_create_sessions;
mod m20261202_000004_create_mail_and_account_tokens;
mod m20261202_000005_create_roles_and_audit;
mod m20261207_000006_index_account_token_emails;
mod m20261207_000007_create_two_factor;
mod m20261207_000008_create_passkeys;
mod m20261207_000009_create_identities;
mod m20261207_000010_create_webhooks;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250101_000001_create_users::Migration),
            Box::new(m20250101_000002_create_profiles::Migration),
            Box::new(m20261202_000003_create_sessions::Migration),
            Box::new(m20261202_000004_create_mail_and_account_tokens::Migration),
            Box::new(m20261202_000005_create_roles_and_audit::Migration),
            Box::new(m20261207_000006_index_account_token_emails::Migration),
            Box::new(m20261207_000007_create_two_factor::Migration),
            Box::new(m20261207_000008_create_passkeys::Migration),
            Box::new(m20261207_000009_create_identities::Migration),
            Box::new(m20261207_000010_create_webhooks::Migration),
        ]
    }
}
