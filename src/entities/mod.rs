//! sea-orm entities, one per table. Only `services` uses them; nothing here leaves that layer
//! (output types are separate structs, so `password_hash` has no road out).

pub mod account_token;
pub mod audit_event;
pub mod mail_outbox;
pub mod mfa_challenge;
pub mod oidc_flow;
pub mod passkey;
pub mod profile;
pub mod recovery_code;
pub mod refresh_token;
pub mod session;
pub mod user;
pub mod user_identity;
pub mod user_totp;
pub mod webauthn_flow;
pub mod webhook;
pub mod webhook_delivery;
pub mod webhook_outbox;
