//! Black-box tests: each starts the real application on port 0 with a fresh database and
//! drives it over HTTP. Every test runs on SQLite, and on PostgreSQL when
//! `TEST_DATABASE_URL` is set.

mod helpers;

mod abuse;
mod accounts;
mod admin;
mod compose;
mod docs;
mod exhaustion;
mod graphql;
mod graphql_clients;
mod hardening;
mod layering;
mod metrics;
mod mfa;
mod oidc;
mod operations;
mod passkeys;
mod photo_store;
mod photos;
mod process;
mod profiles;
mod recovery;
mod resilience;
mod sessions;
mod smtp;
mod verification;
mod webhooks;
