//! Webhooks: the endpoints an admin registers, and the worker that delivers account events to
//! them (Standard Webhooks).
//!
//! - Events are written to `webhook_outbox` in the transaction of the change
//!   ([`webhook_outbox`](super::webhook_outbox)); the worker of every replica claims due rows
//!   for a while (as the mail outbox: `FOR UPDATE SKIP LOCKED` / the write lock), so two
//!   replicas never send one row at once, and a worker that dies loses its claim when it runs
//!   out: delivery is at least once, and a receiver tells repeats by `webhook-id`.
//! - Each attempt is signed anew (`webhook-timestamp` is the attempt's); the body is the
//!   stored bytes. During a rotation the previous secret signs too, for 24 hours.
//! - Retries after 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h (±10 %), up to
//!   `WEBHOOK_MAX_ATTEMPTS`; 2xx is done; 410 disables the endpoint. Each call is bounded
//!   (10 s), follows no redirect, and at most 8 run at once, so a slow receiver holds 8
//!   tasks, never the mail or the requests.
//! - No SSRF: a receiver's address is checked at creation and again at every delivery, after
//!   DNS, in the connector's own resolver (what is checked is what is connected to), unless
//!   `WEBHOOK_ALLOW_PRIVATE`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
    sea_query::Expr,
};
use tracing::instrument;
use uuid::Uuid;

use super::{
    Services,
    time::{delta, now},
};
use crate::{
    auth::Actor,
    config::WebhookConfig,
    db,
    domain::NewWebhook,
    entities::{webhook, webhook_delivery, webhook_outbox},
    error::AppError,
    net::is_public,
};

pub const WEBHOOK_NOT_FOUND: &str = "Webhook not found";
pub const PRIVATE_RECEIVER: &str =
    "URL must be on a public address (private, loopback and link-local receivers are refused).";
/// Rows a worker claims at once.
const BATCH: i64 = 32;
/// How long a claim holds: longer than a batch can take (8 at once, 10 s each).
const CLAIM: Duration = Duration::from_secs(120);
/// Deliveries in flight per replica.
const CONCURRENCY: usize = 8;
/// One delivery's time, answer included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The waits before the 2nd, 3rd, … attempt.
const RETRY_SECS: [u64; 9] = [5, 30, 120, 600, 1800, 3600, 10_800, 21_600, 43_200];
/// How long a rotated-out secret still signs.
const OLD_SECRET_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a finished event's row is kept (its body is emptied at once).
const DONE_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Attempts shown in an endpoint's delivery log.
const DELIVERY_LOG: u64 = 100;
/// Random bytes of a secret.
const SECRET_BYTES: usize = 32;

/// An endpoint, as the admin sees it.
#[derive(Clone, Debug)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// Only when it was just made (creation or rotation): never again.
    pub secret: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

impl WebhookView {
    fn of(w: webhook::Model, secret: Option<String>) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events.split(',').map(str::to_owned).collect(),
            description: w.description,
            secret,
            enabled: w.enabled,
            created_at: w.created_at,
        }
    }
}

/// One attempt of a delivery.
#[derive(Clone, Debug)]
pub struct DeliveryView {
    pub id: i32,
    pub event_id: String,
    pub event_type: String,
    pub attempt: i32,
    /// `delivered`, `failed` (tried again later), `given_up`, `disabled` (410) or `refused`.
    pub status: String,
    pub response_status: Option<i32>,
    pub created_at: DateTime<Utc>,
}

impl From<webhook_delivery::Model> for DeliveryView {
    fn from(d: webhook_delivery::Model) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            attempt: d.attempt,
            status: d.status,
            response_status: d.response_status,
            created_at: d.created_at,
        }
    }
}

impl Services {
    /// Registers an endpoint (admins only): its secret, shown this once.
    #[instrument(skip_all)]
    pub async fn create_webhook(
        &self,
        actor: &Actor,
        new: NewWebhook,
    ) -> Result<WebhookView, AppError> {
        self.admin(&self.pool(), actor).await?;
        if !self.webhook_sender.config.allow_private && !receiver_is_public(&new.url).await {
            return Err(AppError::validation("url", PRIVATE_RECEIVER));
        }
        let secret = new_secret()?;
        let row = webhook::ActiveModel {
            id: Set(Uuid::new_v4().to_string()),
            url: Set(new.url.to_string()),
            events: Set(new.events.join(",")),
            description: Set(new.description),
            secret: Set(secret.clone()),
            old_secret: Set(None),
            old_secret_until: Set(None),
            enabled: Set(true),
            created_at: Set(now()),
        }
        .insert(&self.db)
        .await?;
        tracing::info!(webhook = %row.id, "webhook endpoint registered");
        Ok(WebhookView::of(row, Some(secret)))
    }

    /// The endpoints, oldest first (admins only).
    pub async fn webhooks(&self, actor: &Actor) -> Result<Vec<WebhookView>, AppError> {
        self.admin(&self.pool(), actor).await?;
        Ok(webhook::Entity::find()
            .order_by_asc(webhook::Column::CreatedAt)
            .order_by_asc(webhook::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|w| WebhookView::of(w, None))
            .collect())
    }

    /// One endpoint (admins only); 404 for an unknown id.
    pub async fn webhook(&self, actor: &Actor, id: &str) -> Result<WebhookView, AppError> {
        self.admin(&self.pool(), actor).await?;
        Ok(WebhookView::of(self.find_webhook(id).await?, None))
    }

    /// Removes an endpoint, its pending events and its log (admins only).
    #[instrument(skip_all)]
    pub async fn delete_webhook(&self, actor: &Actor, id: &str) -> Result<(), AppError> {
        self.admin(&self.pool(), actor).await?;
        let deleted = webhook::Entity::delete_by_id(id)
            .exec(&self.db)
            .await?
            .rows_affected;
        if deleted == 0 {
            return Err(AppError::NotFound(WEBHOOK_NOT_FOUND));
        }
        Ok(())
    }

    /// Turns an endpoint on or off (admins only). Off, no event is queued for it; on again,
    /// it takes the events from then on (one disabled by a 410 included).
    #[instrument(skip_all)]
    pub async fn set_webhook_enabled(
        &self,
        actor: &Actor,
        id: &str,
        enabled: bool,
    ) -> Result<WebhookView, AppError> {
        self.admin(&self.pool(), actor).await?;
        let row = self.find_webhook(id).await?;
        let mut active: webhook::ActiveModel = row.into();
        active.enabled = Set(enabled);
        let row = active.update(&self.db).await?;
        tracing::info!(webhook = %row.id, enabled, "webhook endpoint switched");
        Ok(WebhookView::of(row, None))
    }

    /// A new secret for an endpoint (admins only): the old one keeps signing for 24 hours,
    /// beside the new one, so receivers can switch without losing an event.
    #[instrument(skip_all)]
    pub async fn rotate_webhook_secret(&self, actor: &Actor, id: &str) -> Result<String, AppError> {
        self.admin(&self.pool(), actor).await?;
        let txn = db::begin_write(&self.db).await?;
        let row = webhook::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound(WEBHOOK_NOT_FOUND))?;
        let secret = new_secret()?;
        let old = row.secret.clone();
        let mut active: webhook::ActiveModel = row.into();
        active.secret = Set(secret.clone());
        active.old_secret = Set(Some(old));
        active.old_secret_until = Set(Some(now() + delta(OLD_SECRET_TTL)));
        active.update(&txn).await?;
        txn.commit().await?;
        Ok(secret)
    }

    /// An endpoint's latest attempts, newest first (admins only).
    pub async fn webhook_deliveries(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<Vec<DeliveryView>, AppError> {
        self.admin(&self.pool(), actor).await?;
        self.find_webhook(id).await?;
        Ok(webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::WebhookId.eq(id))
            .order_by_desc(webhook_delivery::Column::Id)
            .limit(DELIVERY_LOG)
            .all(&self.db)
            .await?
            .into_iter()
            .map(DeliveryView::from)
            .collect())
    }

    async fn find_webhook(&self, id: &str) -> Result<webhook::Model, AppError> {
        webhook::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(AppError::NotFound(WEBHOOK_NOT_FOUND))
    }

    /// Events waiting for delivery, and the age of the oldest in seconds (for the metrics).
    pub async fn webhook_backlog(&self) -> Result<(u64, u64), AppError> {
        let pending =
            webhook_outbox::Entity::find().filter(webhook_outbox::Column::DoneAt.is_null());
        let count = pending.clone().count(&self.db).await?;
        let oldest = pending
            .order_by_asc(webhook_outbox::Column::CreatedAt)
            .one(&self.db)
            .await?
            .map_or(0, |row| {
                (now() - row.created_at).num_seconds().max(0) as u64
            });
        Ok((count, oldest))
    }

    /// Delivers the events that are due, at most [`CONCURRENCY`] at once; how many it tried.
    pub async fn deliver_webhooks(&self) -> Result<usize, AppError> {
        let claimed = self.claim_webhook_events().await?;
        let count = claimed.len();
        let results: Vec<Result<(), AppError>> = futures_util::stream::iter(claimed)
            .map(|row| self.deliver_one(row))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), _>>()?;
        Ok(count)
    }

    /// Deletes events done a week ago, and log entries older than the audit retention.
    pub async fn prune_webhooks(&self) -> Result<u64, AppError> {
        let before = now() - delta(self.audit_retention);
        let events = webhook_outbox::Entity::delete_many()
            .filter(webhook_outbox::Column::DoneAt.lte(now() - delta(DONE_KEPT)))
            .exec(&self.db)
            .await?
            .rows_affected;
        let log = webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::CreatedAt.lte(before))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(events + log)
    }

    async fn deliver_one(&self, row: webhook_outbox::Model) -> Result<(), AppError> {
        let endpoint = webhook::Entity::find_by_id(&row.webhook_id)
            .one(&self.db)
            .await?
            .filter(|w| w.enabled);
        let now = now();
        let mut active: webhook_outbox::ActiveModel = row.clone().into();
        active.claimed_until = Set(None);
        let Some(endpoint) = endpoint else {
            // Disabled (or deleted) since: nothing to send.
            active.done_at = Set(Some(now));
            active.body = Set(String::new());
            active.update(&self.db).await?;
            return Ok(());
        };
        let outcome = self.webhook_sender.send(&endpoint, &row).await;
        let attempt = row.attempts;
        let max = self.webhook_sender.config.max_attempts as i32;
        let (status, response_status, error) = match &outcome {
            Sent::Answered(code) if (200..300).contains(code) => ("delivered", Some(*code), None),
            Sent::Answered(410) => ("disabled", Some(410), None),
            Sent::Refused(why) => ("refused", None, Some(why.clone())),
            Sent::Answered(code) if attempt >= max => ("given_up", Some(*code), None),
            Sent::Failed(why) if attempt >= max => ("given_up", None, Some(why.clone())),
            Sent::Answered(code) => ("failed", Some(*code), None),
            Sent::Failed(why) => ("failed", None, Some(why.clone())),
        };
        let txn = db::begin_write(&self.db).await?;
        match status {
            "failed" => {
                active.next_attempt_at = Set(now + delta(retry_after(attempt)));
            }
            "refused" if attempt < max => {
                // An address refused now may be public again (DNS changes): tried later.
                active.next_attempt_at = Set(now + delta(retry_after(attempt)));
            }
            _ => {
                active.done_at = Set(Some(now));
                // The body held the account's details; once done, only the log remains.
                active.body = Set(String::new());
            }
        }
        if status == "disabled" {
            webhook::Entity::update_many()
                .col_expr(webhook::Column::Enabled, Expr::value(false))
                .filter(webhook::Column::Id.eq(&endpoint.id))
                .exec(&txn)
                .await?;
            tracing::warn!(webhook = %endpoint.id, "webhook endpoint answered 410 Gone: disabled");
        }
        active.update(&txn).await?;
        webhook_delivery::ActiveModel {
            webhook_id: Set(endpoint.id.clone()),
            event_id: Set(row.event_id.clone()),
            event_type: Set(row.event_type.clone()),
            attempt: Set(attempt),
            status: Set(status.to_owned()),
            response_status: Set(response_status),
            error: Set(error.map(|e| e.chars().take(500).collect())),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        metrics::counter!("webhook_deliveries_total", "outcome" => status).increment(1);
        match status {
            "delivered" => {
                tracing::info!(webhook = %endpoint.id, event = %row.event_id, attempt, "webhook delivered")
            }
            "given_up" => {
                tracing::error!(webhook = %endpoint.id, event = %row.event_id, attempt, "webhook given up")
            }
            _ => {
                tracing::warn!(webhook = %endpoint.id, event = %row.event_id, attempt, status, response_status, "webhook delivery failed")
            }
        }
        Ok(())
    }

    /// Claims up to [`BATCH`] due events for [`CLAIM`], counting an attempt on each.
    async fn claim_webhook_events(&self) -> Result<Vec<webhook_outbox::Model>, AppError> {
        let backend = self.db.get_database_backend();
        let now = now();
        // A read first: an idle worker (the usual case) takes no write lock.
        let due = webhook_outbox::Entity::find()
            .select_only()
            .column(webhook_outbox::Column::Id)
            .filter(webhook_outbox::Column::DoneAt.is_null())
            .filter(webhook_outbox::Column::NextAttemptAt.lte(now))
            .filter(
                Condition::any()
                    .add(webhook_outbox::Column::ClaimedUntil.is_null())
                    .add(webhook_outbox::Column::ClaimedUntil.lt(now)),
            )
            .into_tuple::<i32>()
            .one(&self.db)
            .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let until = now + delta(CLAIM);
        let (sql, values): (&str, Vec<sea_orm::Value>) = match backend {
            DbBackend::Postgres => (
                "UPDATE webhook_outbox SET claimed_until = $1, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM webhook_outbox \
                   WHERE done_at IS NULL AND next_attempt_at <= $2 \
                   AND (claimed_until IS NULL OR claimed_until < $2) \
                   ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING *",
                vec![until.into(), now.into(), BATCH.into()],
            ),
            _ => (
                "UPDATE webhook_outbox SET claimed_until = ?, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM webhook_outbox \
                   WHERE done_at IS NULL AND next_attempt_at <= ? \
                   AND (claimed_until IS NULL OR claimed_until < ?) \
                   ORDER BY id LIMIT ?) \
                 RETURNING *",
                vec![until.into(), now.into(), now.into(), BATCH.into()],
            ),
        };
        let txn = db::begin_write(&self.db).await?;
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        txn.commit().await?;
        let mut claimed = rows
            .iter()
            .map(|row| webhook_outbox::Model::from_query_result(row, ""))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }
}

/// A new secret: `whsec_` and the base64 of 32 random bytes.
fn new_secret() -> Result<String, AppError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
    Ok(format!("whsec_{}", STANDARD.encode(bytes)))
}

/// The wait after attempt `attempt` failed: the schedule, ±10 %.
fn retry_after(attempt: i32) -> Duration {
    let index = usize::try_from(attempt.max(1) - 1)
        .unwrap_or(0)
        .min(RETRY_SECS.len() - 1);
    let base = RETRY_SECS[index] as f64;
    let mut random = [0u8; 2];
    let _ = getrandom::fill(&mut random);
    let jitter = (f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX)) * 0.2 - 0.1;
    Duration::from_secs_f64(base * (1.0 + jitter))
}

/// `v1,{base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"}` with `secret` (`whsec_…`).
fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body.as_bytes());
    Some(format!("v1,{}", STANDARD.encode(context.sign().as_ref())))
}

/// Is every address `url`'s host resolves to public? A name that does not resolve (yet) is
/// let through: it is checked again, after DNS, at every delivery.
async fn receiver_is_public(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => is_public(ip.into()),
        Some(url::Host::Ipv6(ip)) => is_public(ip.into()),
        Some(url::Host::Domain(name)) => {
            if name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost") {
                return false;
            }
            let port = url.port_or_known_default().unwrap_or(443);
            match tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::lookup_host((name, port)),
            )
            .await
            {
                Ok(Ok(addresses)) => addresses.into_iter().all(|a| is_public(a.ip())),
                _ => true,
            }
        }
        None => false,
    }
}

/// How an attempt went.
enum Sent {
    Answered(i32),
    /// No answer (connection, timeout, TLS).
    Failed(String),
    /// The receiver's address is not public.
    Refused(String),
}

/// The HTTP client of deliveries: bounded, no redirects, and a resolver that connects only to
/// public addresses (unless allowed).
pub struct WebhookSender {
    client: reqwest::Client,
    config: WebhookConfig,
}

impl WebhookSender {
    pub fn new(config: &WebhookConfig) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Straight to the receiver: through a proxy, the guard would check the proxy's
            // address, not the receiver's.
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(TIMEOUT)
            .pool_max_idle_per_host(2)
            .user_agent("nta-user-svc-webhooks")
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: config.allow_private,
            }))
            .build()
            .expect("the webhook HTTP client builds");
        Self {
            client,
            config: config.clone(),
        }
    }

    async fn send(&self, endpoint: &webhook::Model, row: &webhook_outbox::Model) -> Sent {
        let Ok(url) = url::Url::parse(&endpoint.url) else {
            return Sent::Refused("invalid URL".into());
        };
        // An address written as such never reaches the resolver.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if !self.config.allow_private && literal.is_some_and(|ip| !is_public(ip)) {
            return Sent::Refused("a private address".into());
        }
        let timestamp = now().timestamp();
        let mut signatures: Vec<String> = Vec::new();
        signatures.extend(signature(
            &endpoint.secret,
            &row.event_id,
            timestamp,
            &row.body,
        ));
        if let (Some(old), Some(until)) = (&endpoint.old_secret, endpoint.old_secret_until)
            && until > now()
        {
            signatures.extend(signature(old, &row.event_id, timestamp, &row.body));
        }
        let request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &row.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures.join(" "))
            .body(row.body.clone());
        match request.send().await {
            Ok(response) => Sent::Answered(i32::from(response.status().as_u16())),
            Err(e) if is_refusal(&e) => Sent::Refused("resolves to a private address".into()),
            Err(e) => Sent::Failed(error_text(&e)),
        }
    }
}

/// Did the resolver refuse (a private address)?
fn is_refusal(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if e.to_string().contains(REFUSED) {
            return true;
        }
        source = e.source();
    }
    false
}

fn error_text(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        "no answer".into()
    }
}

const REFUSED: &str = "webhook receiver refused: not a public address";

/// Resolves names as the system does, and keeps only public addresses (unless allowed): the
/// connection goes to an address this checked, whatever the name resolves to next time.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if addresses.is_empty() {
                return Err(REFUSED.into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn retries_follow_the_schedule_with_jitter() {
        for (attempt, base) in [(1, 5.0), (2, 30.0), (9, 43_200.0), (15, 43_200.0)] {
            let wait = retry_after(attempt).as_secs_f64();
            assert!(
                (base * 0.9..=base * 1.1).contains(&wait),
                "{attempt}: {wait}"
            );
        }
    }

    #[test]
    fn secrets_are_whsec_and_32_bytes() {
        let secret = new_secret().unwrap();
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(key.len(), 32);
        assert_ne!(new_secret().unwrap(), secret);
    }
}
