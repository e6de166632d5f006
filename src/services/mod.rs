//! The service layer: every rule of the contract, and the only code that touches entities.
//!
//! Services take an [`Actor`](crate::auth::Actor) and validated [`domain`](crate::domain)
//! values, make the access decisions themselves, and return plain output structs (never
//! entities). Database failures become [`AppError`]s here: a unique-key violation is a
//! `Conflict`, a missing row a `NotFound`, an unreachable database `Unavailable`.

// Features: each a part of the contract. They use the leaves below, never each other's
// items (`tests/api/layering.rs` checks it).
mod accounts;
mod admin;
mod audit;
mod mail;
mod mfa;
mod oidc;
mod passkeys;
mod profiles;
mod sessions;
mod webhooks;

// Leaves: what the features share. They import no feature.
mod access;
mod events;
pub mod photos;
mod prepared;
mod query;
mod time;
mod tokens;
mod webhook_outbox;

use std::sync::Arc;

use tokio::sync::Notify;

use sea_orm::DatabaseConnection;

pub use accounts::{AccessToken, Account};
pub use audit::AuditEventView;
pub use mfa::{MfaStatus, TotpEnrollment};
pub use oidc::{IdentityView, OidcProviderView};
pub use passkeys::{PasskeyOptions, PasskeyView};
pub use profiles::{PhotoObject, ProfileView};
pub use sessions::SessionView;
pub use webhooks::{DeliveryView, WebhookView};

use crate::{
    auth::{JwtKeys, PasswordHasher, oidc::OidcProviders, sealing::Sealer},
    config::{Config, MailConfig, SessionConfig},
    db::Reader,
    domain::{Cursor, CursorKind, PageRequest},
    limits::RateLimiter,
    mail::Mailer,
};
pub use photos::PhotoStore;

/// Everything the rules need: the database, the hasher, the token keys and the photo store.
/// Cheap to clone.
#[derive(Clone)]
pub struct Services {
    db: DatabaseConnection,
    /// The key lookups of authenticated requests, outside the pool.
    reader: Option<Arc<Reader>>,
    hasher: PasswordHasher,
    jwt: Arc<JwtKeys>,
    photos: Arc<PhotoStore>,
    limits: Arc<RateLimiter>,
    max_upload_bytes: usize,
    sessions: SessionConfig,
    mailer: Arc<Mailer>,
    mail: MailConfig,
    /// Rung when a transaction that queued mail commits.
    mail_wake: Arc<Notify>,
    /// How long audit events are kept.
    audit_retention: std::time::Duration,
    /// Seals and opens TOTP secrets.
    sealer: Arc<Sealer>,
    /// The issuer authenticator apps show (`MFA_ISSUER`).
    mfa_issuer: String,
    /// The passkey relying party; `None` when its configuration is unusable (logged).
    webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    /// The external OpenID providers (`OIDC_PROVIDERS`).
    oidc: Arc<OidcProviders>,
    /// Where their flows may send the browser back to (`OIDC_REDIRECT_ALLOWLIST`).
    oidc_redirects: Arc<[String]>,
    /// Delivers webhook events.
    webhook_sender: Arc<webhooks::WebhookSender>,
}

impl Services {
    /// The rules over `db`; `jwt` signs the tokens that logins issue (the transports verify
    /// them with the same keys); `mailer` delivers what the outbox holds; `photos` keeps the
    /// photo files.
    pub fn new(
        db: DatabaseConnection,
        config: &Config,
        jwt: Arc<JwtKeys>,
        mailer: Arc<Mailer>,
        photos: PhotoStore,
    ) -> Self {
        Self {
            db,
            reader: Reader::new(&config.database).map(Arc::new),
            hasher: PasswordHasher::new(config.bcrypt_cost, config.hash_queue_max_wait),
            jwt,
            photos: Arc::new(photos),
            limits: Arc::new(RateLimiter::new(config)),
            max_upload_bytes: config.max_upload_bytes,
            sessions: config.sessions.clone(),
            mailer,
            mail: config.mail.clone(),
            mail_wake: Arc::new(Notify::new()),
            audit_retention: config.audit_retention,
            sealer: Arc::new(
                Sealer::new(config.mfa.encryption_key.as_ref(), &config.mfa.old_keys)
                    .expect("MFA keys are checked when the configuration is read"),
            ),
            mfa_issuer: config.mfa.issuer.clone(),
            webauthn: relying_party(&config.webauthn).map(Arc::new),
            oidc: Arc::new(OidcProviders::new(&config.oidc)),
            oidc_redirects: config.oidc.redirect_allowlist.clone().into(),
            webhook_sender: Arc::new(webhooks::WebhookSender::new(&config.webhooks)),
        }
    }

    /// The pool, for the prepared reads outside a transaction.
    fn pool(&self) -> prepared::Pool<'_> {
        prepared::Pool {
            db: &self.db,
            reader: self.reader.as_deref(),
        }
    }

    /// Resolves when mail was queued since the last call (for the mail worker).
    pub async fn mail_waiting(&self) {
        self.mail_wake.notified().await;
    }

    /// Database connections of the pool: `(idle, in use)`.
    pub fn pool_use(&self) -> (u32, u32) {
        let (size, idle) = match self.db.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX);
        (idle, size.saturating_sub(idle))
    }

    /// Is the database answering? For `/readyz`.
    ///
    /// After an outage the pool may still hold idle connections the server closed: the
    /// session checks, which run outside the pool, no longer wear them out. A failed ping
    /// discards the connection it took, so while idle ones are left, the next is tried.
    pub async fn ready(&self) -> bool {
        let (idle, busy) = self.pool_use();
        for _ in 0..=idle + busy {
            if self.db.ping().await.is_ok() {
                return true;
            }
            if self.pool_use().0 == 0 {
                return false;
            }
        }
        false
    }
}

/// The passkey relying party of `config`; `None` (logged) when the RP id is not a domain of
/// the first origin: passkey paths then answer 503.
fn relying_party(config: &crate::config::WebauthnConfig) -> Option<webauthn_rs::Webauthn> {
    use webauthn_rs::prelude::WebauthnBuilder;
    let origins = &config.origins;
    let first = origins.first()?;
    let built = WebauthnBuilder::new(&config.rp_id, first).and_then(|builder| {
        origins
            .iter()
            .skip(1)
            .fold(builder, |b, origin| b.append_allowed_origin(origin))
            .rp_name(&config.rp_name)
            .build()
    });
    match built {
        Ok(webauthn) => Some(webauthn),
        Err(e) => {
            tracing::error!(
                error = %e,
                rp_id = %config.rp_id,
                "passkeys are off: WEBAUTHN_RP_ID must be the host of the first of WEBAUTHN_ORIGINS or a parent domain of it"
            );
            None
        }
    }
}

/// One page of a list, newest first: each item with its cursor, whether more follow, and
/// how many items the whole list holds.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<(String, T)>,
    pub has_next_page: bool,
    pub total: u64,
}

impl<T> Page<T> {
    /// The page of `rows` (read with one row more than the page holds, to tell whether more
    /// follow); `item` gives each row's id and item, or `None` to leave it out.
    fn of<R>(
        rows: Vec<R>,
        page: PageRequest,
        total: u64,
        kind: CursorKind,
        mut item: impl FnMut(R) -> Option<(i64, T)>,
    ) -> Self {
        let has_next_page = rows.len() as u64 > page.first;
        let items = rows
            .into_iter()
            .take(page.first as usize)
            .filter_map(|row| item(row).map(|(id, item)| (Cursor(id).encode(kind), item)))
            .collect();
        Self {
            items,
            has_next_page,
            total,
        }
    }

    /// The cursor of the last item.
    pub fn end_cursor(&self) -> Option<&str> {
        self.items.last().map(|(cursor, _)| cursor.as_str())
    }
}
