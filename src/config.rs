//! Configuration: read once at start from the environment (and a `.env` file), checked, and
//! passed down as a value. Nothing else in the code reads environment variables.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use crate::net::{IpNet, parse_net};

use jsonwebtoken::Algorithm;

/// Everything the service can be configured with.
#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    pub host: IpAddr,
    pub port: u16,
    pub jwt: JwtConfig,
    pub bcrypt_cost: u32,
    pub upload_dir: PathBuf,
    /// `file://…` or `s3://bucket[/prefix]`; unset: local files in `upload_dir`.
    pub photo_store: Option<String>,
    /// The `AWS_*` variables that are set (of [`AWS_VARIABLES`]), for an S3 photo store.
    pub aws: Vec<(&'static str, Secret)>,
    /// Where Prometheus metrics are served (`/metrics`); `None` turns them off.
    pub metrics_addr: Option<SocketAddr>,
    pub max_upload_bytes: usize,
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key, so several deployments (or test runs) can share a server.
    pub redis_key_prefix: String,
    pub cors_origins: Vec<String>,
    pub login_max_failures: u32,
    pub login_window: Duration,
    pub login_per_ip_per_minute: u32,
    pub register_per_ip_per_minute: u32,
    pub trusted_proxies: Vec<IpNet>,
    pub log_format: LogFormat,
    /// Serve the schema to introspection queries (GraphiQL, codegen). Off in production if
    /// the schema is not meant to be public.
    pub graphql_introspection: bool,
    /// "Did you mean …?" hints in GraphQL validation errors.
    pub graphql_suggestions: bool,
    /// Timeouts and limits of the HTTP connections themselves.
    pub http: HttpLimits,
    /// Most rate-limit counters of client addresses kept in memory (the least recently used
    /// go first when it is full; account counters and locks are never dropped early).
    pub rate_limit_max_keys: usize,
    /// How often photo files that no profile references are looked for and removed.
    pub photo_sweep_interval: Duration,
    pub sessions: SessionConfig,
    pub mail: MailConfig,
    /// How long audit events are kept (pruned with the sessions).
    pub audit_retention: Duration,
    /// A login or registration whose password hash would wait longer than this in the queue
    /// is answered 503 at once.
    pub hash_queue_max_wait: Duration,
    /// Most calls to the photo store at once.
    pub photo_store_concurrency: usize,
    pub mfa: MfaConfig,
    pub webauthn: WebauthnConfig,
    pub oidc: OidcConfig,
    pub webhooks: WebhookConfig,
}

/// Webhooks: how their delivery is bounded.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// `WEBHOOK_MAX_ATTEMPTS`: attempts per event before it is given up (10: about a day).
    pub max_attempts: u32,
    /// `WEBHOOK_ALLOW_PRIVATE`: receivers on private, loopback or link-local addresses are
    /// allowed (a test bench, a cluster-internal receiver); off, they are refused.
    pub allow_private: bool,
}

/// Sign-in with external OpenID providers.
#[derive(Clone, Debug, Default)]
pub struct OidcConfig {
    /// `OIDC_PROVIDERS`, in order, each with its `OIDC_{NAME}_*` variables.
    pub providers: Vec<OidcProviderConfig>,
    /// `OIDC_REDIRECT_ALLOWLIST`: where a flow may send the browser back to (each a prefix
    /// that ends at a path boundary); `PUBLIC_URL` when unset.
    pub redirect_allowlist: Vec<String>,
    /// `PUBLIC_URL`, for the redirect URI `{PUBLIC_URL}/api/auth/oidc/{name}/callback`.
    pub public_url: String,
}

/// One external OpenID provider.
#[derive(Clone, Debug)]
pub struct OidcProviderConfig {
    /// Its name in paths and identities: lower-case letters, digits, `-` and `_`.
    pub name: String,
    /// `OIDC_{NAME}_DISPLAY_NAME`: what a sign-in button says (the name when unset).
    pub display_name: String,
    /// `OIDC_{NAME}_ISSUER`: https, or http on a loopback address; exactly as the provider
    /// spells it (its discovery document must name the same).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// `OIDC_{NAME}_SCOPES` (space- or comma-separated): `openid email profile` when unset.
    pub scopes: Vec<String>,
}

/// Passkeys: the relying party browsers check credentials against.
#[derive(Clone, Debug)]
pub struct WebauthnConfig {
    /// `WEBAUTHN_RP_ID`: the host of `PUBLIC_URL` (`localhost` for a loopback address, which
    /// browsers refuse as an RP id), or a parent domain of it.
    pub rp_id: String,
    /// `WEBAUTHN_ORIGINS`: the origins pages may ask from (`PUBLIC_URL`'s; for a loopback
    /// address also the same origin under `localhost`).
    pub origins: Vec<url::Url>,
    /// `WEBAUTHN_RP_NAME`: the name authenticators show.
    pub rp_name: String,
}

/// Two-factor authentication.
#[derive(Clone, Debug)]
pub struct MfaConfig {
    /// The issuer authenticator apps show next to the account (`MFA_ISSUER`).
    pub issuer: String,
    /// Seals TOTP secrets at rest: 32 bytes, base64 (`MFA_ENCRYPTION_KEY`).
    pub encryption_key: Option<Secret>,
    /// Retired keys that still open the secrets sealed with them (`MFA_ENCRYPTION_OLD_KEYS`).
    pub old_keys: Vec<Secret>,
}

/// Outgoing mail, and the links it carries.
#[derive(Clone, Debug)]
pub struct MailConfig {
    /// Where messages are written as `.eml` files when there is no SMTP server.
    pub dir: PathBuf,
    /// `smtp://host:port` or `smtps://user:pass@host`; may hold a password.
    pub smtp_url: Option<Secret>,
    /// The `From` header.
    pub from: String,
    /// The service's public address, for links in messages (no trailing slash).
    pub public_url: String,
    /// Delivery attempts before a message is given up (and logged).
    pub max_attempts: u32,
    /// How long an email-verification link works.
    pub verify_ttl: Duration,
    /// How long a password-reset link works.
    pub reset_ttl: Duration,
    /// Password-reset requests per client address per hour.
    pub recovery_per_ip_per_hour: u32,
    /// Refuse the login of an account whose address is not verified.
    pub require_verified_email: bool,
}

/// How long sessions and their refresh tokens live.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// A session ends this long after its last refresh (or its login)…
    pub refresh_ttl: Duration,
    /// …and never later than this after its login.
    pub max_age: Duration,
    /// A spent refresh token used again within this of its rotation gets a new pair (two
    /// tabs refreshing at once); later, the reuse ends the session.
    pub reuse_grace: Duration,
    /// How often ended sessions and expired refresh tokens are deleted.
    pub prune_interval: Duration,
}

/// What a slow, silent or numerous client may hold of the server.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// A request's headers must arrive within this; an idle keep-alive connection is closed
    /// after it too.
    pub header_read_timeout: Duration,
    /// Longest pause between two pieces of a request body.
    pub body_idle_timeout: Duration,
    /// Longest time a whole request body may take.
    pub body_timeout: Duration,
    /// Most open connections; at the limit the longest-idle connection is closed to make room.
    pub max_connections: usize,
    /// Most open connections from one peer address (a trusted proxy's are not counted).
    pub max_connections_per_ip: usize,
    /// The networks whose connections are exempt from `max_connections_per_ip`.
    pub trusted_proxies: Vec<IpNet>,
    /// Slowest a request body may arrive, in bytes per second, once it has had
    /// [`BODY_RATE_GRACE`] to start.
    pub body_min_rate: u64,
    /// Longest a response may wait for the client to read it before the connection closes.
    pub write_timeout: Duration,
}

/// How long a request body may take before its rate is held against `BODY_MIN_RATE`.
pub const BODY_RATE_GRACE: Duration = Duration::from_secs(5);
/// Largest header block a request may send (431 past it).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; may hold a password, so it is kept secret.
    pub url: Secret,
    /// Pool size; `None` picks a default per backend.
    pub max_connections: Option<u32>,
    /// How long a request waits for a pooled connection before it fails with 503.
    pub acquire_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct JwtConfig {
    pub secret: Secret,
    pub algorithm: Algorithm,
    pub expires_in: Duration,
    /// True when no `JWT_SECRET` was given and a random one was made for this process.
    pub secret_generated: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A string that must never be printed (`Debug` shows `[REDACTED]`), wiped when dropped; read
/// it with [`ExposeSecret::expose_secret`].
pub type Secret = secrecy::SecretString;
pub use secrecy::ExposeSecret;

/// A configuration value that could not be used; the message names the variable.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Every environment variable the service reads (the deployment files are checked against it).
pub const VARIABLES: [&str; 62] = [
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_ACQUIRE_TIMEOUT_SECS",
    "HOST",
    "PORT",
    "JWT_SECRET",
    "JWT_ALGORITHM",
    "JWT_EXP_HOURS",
    "BCRYPT_COST",
    "UPLOAD_DIR",
    "MAX_UPLOAD_BYTES",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "CORS_ORIGINS",
    "LOGIN_MAX_FAILURES",
    "LOGIN_WINDOW_SECS",
    "LOGIN_PER_IP_PER_MINUTE",
    "REGISTER_PER_IP_PER_MINUTE",
    "TRUSTED_PROXIES",
    "LOG_FORMAT",
    "GRAPHQL_INTROSPECTION",
    "GRAPHQL_SUGGESTIONS",
    "HEADER_READ_TIMEOUT_SECS",
    "BODY_IDLE_TIMEOUT_SECS",
    "BODY_TIMEOUT_SECS",
    "MAX_CONNECTIONS",
    "RATE_LIMIT_MAX_KEYS",
    "PHOTO_SWEEP_INTERVAL_SECS",
    "REFRESH_TOKEN_DAYS",
    "SESSION_MAX_DAYS",
    "REFRESH_REUSE_GRACE_SECS",
    "SESSION_PRUNE_INTERVAL_SECS",
    "MAIL_DIR",
    "SMTP_URL",
    "MAIL_FROM",
    "PUBLIC_URL",
    "MAIL_MAX_ATTEMPTS",
    "VERIFY_TOKEN_HOURS",
    "RESET_TOKEN_MINUTES",
    "RECOVERY_PER_IP_PER_HOUR",
    "REQUIRE_VERIFIED_EMAIL",
    "AUDIT_RETENTION_DAYS",
    "PHOTO_STORE",
    "METRICS_ADDR",
    "MAX_CONNECTIONS_PER_IP",
    "BODY_MIN_RATE",
    "WRITE_TIMEOUT_SECS",
    "HASH_QUEUE_MAX_WAIT_SECS",
    "PHOTO_STORE_CONCURRENCY",
    "MFA_ISSUER",
    "MFA_ENCRYPTION_KEY",
    "MFA_ENCRYPTION_OLD_KEYS",
    "WEBAUTHN_RP_ID",
    "WEBAUTHN_ORIGINS",
    "WEBAUTHN_RP_NAME",
    // With `OIDC_{NAME}_ISSUER`, `_CLIENT_ID`, `_CLIENT_SECRET`, `_SCOPES` and `_DISPLAY_NAME`
    // for each name it lists.
    "OIDC_PROVIDERS",
    "OIDC_REDIRECT_ALLOWLIST",
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_ALLOW_PRIVATE",
    // Read by the logging set-up and the Rust runtime, not by `Config`.
    "RUST_LOG",
    "RUST_BACKTRACE",
    "TOKIO_WORKER_THREADS",
];

/// The standard `AWS_*` variables an S3 photo store reads (as the AWS tools name them).
pub const AWS_VARIABLES: [&str; 16] = [
    "AWS_ENDPOINT",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ALLOW_HTTP",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    "AWS_TIMEOUT",
    "AWS_CONNECT_TIMEOUT",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/nta_user_svc.db?mode=rwc";
/// HMAC keys shorter than this are refused: they can be brute-forced offline from one token.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

impl Config {
    /// Reads the process environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing `.env` is normal; a malformed one is worth refusing to start over.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError(format!(".env: {e}"))),
        }
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Builds the configuration from any key → value lookup (tests pass a map): each section
    /// reads its own variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let trusted_proxies: Vec<IpNet> = env
            .list("TRUSTED_PROXIES")
            .iter()
            .map(|net| {
                parse_net(net)
                    .ok_or_else(|| ConfigError("TRUSTED_PROXIES has an invalid value".into()))
            })
            .collect::<Result<_, _>>()?;
        let bcrypt_cost: u32 = env.number("BCRYPT_COST", 12)?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(ConfigError("BCRYPT_COST must be between 4 and 31".into()));
        }
        Ok(Self {
            database: DatabaseConfig::read(&env)?,
            host: env.number("HOST", IpAddr::from([127, 0, 0, 1]))?,
            port: env.number("PORT", 8000)?,
            jwt: JwtConfig::read(&env)?,
            bcrypt_cost,
            upload_dir: PathBuf::from(env.text("UPLOAD_DIR", "uploads")),
            photo_store: env.get("PHOTO_STORE"),
            aws: AWS_VARIABLES
                .iter()
                .filter_map(|key| env.get(key).map(|value| (*key, Secret::from(value))))
                .collect(),
            // Set but empty turns metrics off (so the raw lookup, which sees empty values).
            metrics_addr: match env.raw("METRICS_ADDR") {
                None => Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
                Some(addr) if addr.trim().is_empty() => None,
                Some(addr) => Some(parse_value("METRICS_ADDR", addr.trim())?),
            },
            max_upload_bytes: env.number("MAX_UPLOAD_BYTES", 5 * 1024 * 1024)?,
            redis_url: env.get("REDIS_URL").map(Secret::from),
            redis_key_prefix: env.text("REDIS_KEY_PREFIX", "nta-user-svc:"),
            cors_origins: env.list("CORS_ORIGINS"),
            login_max_failures: env.number("LOGIN_MAX_FAILURES", 10)?,
            login_window: Duration::from_secs(env.number("LOGIN_WINDOW_SECS", 900)?),
            login_per_ip_per_minute: env.number("LOGIN_PER_IP_PER_MINUTE", 60)?,
            register_per_ip_per_minute: env.number("REGISTER_PER_IP_PER_MINUTE", 20)?,
            trusted_proxies: trusted_proxies.clone(),
            log_format: match env
                .text("LOG_FORMAT", "pretty")
                .to_ascii_lowercase()
                .as_str()
            {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => return Err(ConfigError("LOG_FORMAT must be `pretty` or `json`".into())),
            },
            graphql_introspection: env.flag("GRAPHQL_INTROSPECTION", true)?,
            graphql_suggestions: env.flag("GRAPHQL_SUGGESTIONS", true)?,
            http: HttpLimits::read(&env, trusted_proxies)?,
            rate_limit_max_keys: env.positive("RATE_LIMIT_MAX_KEYS", 100_000)?,
            photo_sweep_interval: env.seconds("PHOTO_SWEEP_INTERVAL_SECS", 3600)?,
            sessions: SessionConfig::read(&env)?,
            mail: MailConfig::read(&env)?,
            audit_retention: env.days("AUDIT_RETENTION_DAYS", 365)?,
            hash_queue_max_wait: env.seconds("HASH_QUEUE_MAX_WAIT_SECS", 5)?,
            photo_store_concurrency: env.positive("PHOTO_STORE_CONCURRENCY", 16)?,
            mfa: MfaConfig::read(&env)?,
            webauthn: WebauthnConfig::read(&env)?,
            oidc: OidcConfig::read(&env)?,
            webhooks: WebhookConfig {
                max_attempts: env.positive("WEBHOOK_MAX_ATTEMPTS", 10)?,
                allow_private: env.flag("WEBHOOK_ALLOW_PRIVATE", false)?,
            },
        })
    }
}

impl DatabaseConfig {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            url: Secret::from(env.text("DATABASE_URL", DEFAULT_DATABASE_URL)),
            max_connections: env
                .get("DATABASE_MAX_CONNECTIONS")
                .map(|v| parse_value("DATABASE_MAX_CONNECTIONS", &v))
                .transpose()?,
            acquire_timeout: Duration::from_secs(env.number("DATABASE_ACQUIRE_TIMEOUT_SECS", 5)?),
        })
    }
}

impl JwtConfig {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        // Untrimmed: every byte of a secret counts.
        let (secret, secret_generated) = match env.raw("JWT_SECRET").filter(|s| !s.is_empty()) {
            Some(secret) if secret.len() < MIN_JWT_SECRET_BYTES => {
                return Err(ConfigError(format!(
                    "JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes long"
                )));
            }
            Some(secret) => (Secret::from(secret), false),
            None => (random_secret()?, true),
        };
        let exp_hours: u64 = env.number("JWT_EXP_HOURS", 24)?;
        if exp_hours == 0 {
            return Err(ConfigError("JWT_EXP_HOURS must be at least 1".into()));
        }
        Ok(Self {
            secret,
            algorithm: jwt_algorithm(&env.text("JWT_ALGORITHM", "HS256"))?,
            expires_in: Duration::from_secs(exp_hours * 3600),
            secret_generated,
        })
    }
}

impl HttpLimits {
    fn read(env: &Env, trusted_proxies: Vec<IpNet>) -> Result<Self, ConfigError> {
        Ok(Self {
            header_read_timeout: env.seconds("HEADER_READ_TIMEOUT_SECS", 10)?,
            body_idle_timeout: env.seconds("BODY_IDLE_TIMEOUT_SECS", 10)?,
            body_timeout: env.seconds("BODY_TIMEOUT_SECS", 60)?,
            max_connections: env.positive("MAX_CONNECTIONS", 1024)?,
            max_connections_per_ip: env.positive("MAX_CONNECTIONS_PER_IP", 64)?,
            trusted_proxies,
            body_min_rate: env.number("BODY_MIN_RATE", 1024)?,
            write_timeout: env.seconds("WRITE_TIMEOUT_SECS", 30)?,
        })
    }
}

impl SessionConfig {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            refresh_ttl: env.days("REFRESH_TOKEN_DAYS", 30)?,
            max_age: env.days("SESSION_MAX_DAYS", 90)?,
            reuse_grace: Duration::from_secs(env.number("REFRESH_REUSE_GRACE_SECS", 10)?),
            prune_interval: env.seconds("SESSION_PRUNE_INTERVAL_SECS", 3600)?,
        })
    }
}

impl MailConfig {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            dir: PathBuf::from(env.text("MAIL_DIR", "data/mail")),
            smtp_url: env.get("SMTP_URL").map(Secret::from),
            from: env.text("MAIL_FROM", "nta-user-svc <no-reply@localhost>"),
            public_url: env
                .text("PUBLIC_URL", "http://127.0.0.1:8000")
                .trim_end_matches('/')
                .to_owned(),
            max_attempts: env.positive("MAIL_MAX_ATTEMPTS", 8)?,
            verify_ttl: Duration::from_secs(
                env.positive::<u64>("VERIFY_TOKEN_HOURS", 48)?
                    .saturating_mul(3600),
            ),
            reset_ttl: Duration::from_secs(
                env.positive::<u64>("RESET_TOKEN_MINUTES", 30)?
                    .saturating_mul(60),
            ),
            recovery_per_ip_per_hour: env.number("RECOVERY_PER_IP_PER_HOUR", 10)?,
            require_verified_email: env.flag("REQUIRE_VERIFIED_EMAIL", false)?,
        })
    }
}

impl MfaConfig {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        let key = |name: &str, text: String| {
            mfa_key_bytes(&text)
                .map(|_| Secret::from(text))
                .map_err(|why| ConfigError(format!("{name} {why}")))
        };
        Ok(Self {
            issuer: env.text("MFA_ISSUER", "nta-user-svc"),
            encryption_key: env
                .get("MFA_ENCRYPTION_KEY")
                .map(|text| key("MFA_ENCRYPTION_KEY", text))
                .transpose()?,
            old_keys: env
                .list("MFA_ENCRYPTION_OLD_KEYS")
                .into_iter()
                .map(|text| key("MFA_ENCRYPTION_OLD_KEYS", text))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl WebauthnConfig {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        let public_url = env.text("PUBLIC_URL", "http://127.0.0.1:8000");
        let public = url::Url::parse(&public_url)
            .map_err(|_| ConfigError("PUBLIC_URL must be an absolute URL".into()))?;
        let host = public.host_str().unwrap_or("localhost").to_owned();
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let listed = env.list("WEBAUTHN_ORIGINS");
        let explicit_origins = !listed.is_empty();
        let mut origins = listed
            .iter()
            .map(|origin| {
                url::Url::parse(origin).map_err(|_| {
                    ConfigError(format!("WEBAUTHN_ORIGINS has an invalid origin: {origin}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if origins.is_empty() {
            if loopback && host != "localhost" {
                let mut local = public.clone();
                let _ = local.set_host(Some("localhost"));
                origins.push(local);
            }
            origins.push(public.clone());
        }
        let explicit_rp_id = env.get("WEBAUTHN_RP_ID");
        let rp_id = explicit_rp_id.clone().unwrap_or_else(|| {
            if loopback {
                "localhost".to_owned()
            } else {
                host
            }
        });
        // A combination browsers refuse, set on purpose, stops the start; a default that does
        // not work (a `PUBLIC_URL` on an IP address) only turns passkeys off, with an error.
        if explicit_rp_id.is_some() && rp_id.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
            return Err(ConfigError(
                "WEBAUTHN_RP_ID must be a domain: browsers refuse an IP address (use localhost)"
                    .into(),
            ));
        }
        for (i, origin) in origins.iter_mut().enumerate() {
            // An origin is scheme, host and port: a path or query given with it is dropped.
            *origin = url::Url::parse(&origin.origin().ascii_serialization()).map_err(|_| {
                ConfigError(format!("WEBAUTHN_ORIGINS has an invalid origin: {origin}"))
            })?;
            let on_rp = origin
                .host_str()
                .is_some_and(|h| h == rp_id || h.ends_with(&format!(".{rp_id}")));
            if !on_rp && (explicit_origins || (explicit_rp_id.is_some() && i == 0)) {
                return Err(ConfigError(format!(
                    "WEBAUTHN_ORIGINS: {origin} is not on the RP id {rp_id} (WEBAUTHN_RP_ID \
                     must be the origin's host or a parent domain of it)"
                )));
            }
        }
        Ok(Self {
            rp_id,
            origins,
            rp_name: env.text("WEBAUTHN_RP_NAME", "nta-user-svc"),
        })
    }
}

impl OidcConfig {
    /// Longest provider name.
    pub const MAX_NAME_CHARS: usize = 32;

    fn read(env: &Env) -> Result<Self, ConfigError> {
        let public_url = env
            .text("PUBLIC_URL", "http://127.0.0.1:8000")
            .trim_end_matches('/')
            .to_owned();
        let mut providers: Vec<OidcProviderConfig> = Vec::new();
        for name in env.list("OIDC_PROVIDERS") {
            let name = name.to_ascii_lowercase();
            let valid = !name.is_empty()
                && name.len() <= Self::MAX_NAME_CHARS
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid {
                return Err(ConfigError(format!(
                    "OIDC_PROVIDERS: `{name}` is not a provider name (letters, digits, - and _, \
                     at most 32)"
                )));
            }
            if providers.iter().any(|p| p.name == name) {
                return Err(ConfigError(format!("OIDC_PROVIDERS lists `{name}` twice")));
            }
            let prefix = format!("OIDC_{}_", name.to_ascii_uppercase().replace('-', "_"));
            let required = |key: &str| {
                env.get(&format!("{prefix}{key}"))
                    .ok_or_else(|| ConfigError(format!("{prefix}{key} is required")))
            };
            let issuer_text = required("ISSUER")?;
            let issuer = url::Url::parse(&issuer_text)
                .map_err(|_| ConfigError(format!("{prefix}ISSUER must be an absolute URL")))?;
            if !crate::net::secure_or_loopback(&issuer) {
                return Err(ConfigError(format!(
                    "{prefix}ISSUER must be https (plain http only on a loopback address)"
                )));
            }
            let scopes = env
                .get(&format!("{prefix}SCOPES"))
                .unwrap_or_else(|| "openid email profile".to_owned())
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            providers.push(OidcProviderConfig {
                display_name: env.text(&format!("{prefix}DISPLAY_NAME"), &name),
                issuer: issuer_text,
                client_id: required("CLIENT_ID")?,
                client_secret: Secret::from(required("CLIENT_SECRET")?),
                scopes,
                name,
            });
        }
        let mut redirect_allowlist = env.list("OIDC_REDIRECT_ALLOWLIST");
        if redirect_allowlist.is_empty() {
            redirect_allowlist.push(public_url.clone());
        }
        for entry in &redirect_allowlist {
            let parsed = url::Url::parse(entry).map_err(|_| {
                ConfigError(format!(
                    "OIDC_REDIRECT_ALLOWLIST: `{entry}` is not an absolute URL"
                ))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(ConfigError(format!(
                    "OIDC_REDIRECT_ALLOWLIST: `{entry}` must be an http(s) URL"
                )));
            }
        }
        Ok(Self {
            providers,
            redirect_allowlist,
            public_url,
        })
    }
}

/// Bytes of an `MFA_ENCRYPTION_KEY`.
pub const MFA_KEY_BYTES: usize = 32;

/// An MFA key as configured: 32 bytes in base64 (standard or URL-safe, padded or not).
pub fn mfa_key_bytes(text: &str) -> Result<[u8; MFA_KEY_BYTES], String> {
    use base64::{
        Engine,
        engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    };
    let text = text.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .map_err(|_| "is not base64".to_owned())?;
    bytes
        .try_into()
        .map_err(|_| format!("must be {MFA_KEY_BYTES} bytes (base64 of 32 random bytes)"))
}

/// The variables, read through one lookup: trimmed, and empty ones taken as unset.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// The value as set, untrimmed.
    fn raw(&self, key: &str) -> Option<String> {
        (self.0)(key)
    }

    fn get(&self, key: &str) -> Option<String> {
        (self.0)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value, or `default`.
    fn text(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or_else(|| default.to_owned())
    }

    fn number<T: FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        self.get(key).map_or(Ok(default), |v| parse_value(key, &v))
    }

    /// A number of at least one.
    fn positive<T: FromStr + PartialOrd + From<u8>>(
        &self,
        key: &str,
        default: T,
    ) -> Result<T, ConfigError> {
        let value = self.number(key, default)?;
        if value < T::from(1) {
            return Err(ConfigError(format!("{key} must be at least 1")));
        }
        Ok(value)
    }

    /// A whole number of seconds, at least one.
    fn seconds(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        self.positive(key, default).map(Duration::from_secs)
    }

    /// A whole number of days, at least one.
    fn days(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        self.positive(key, default)
            .map(|d: u64| Duration::from_secs(d.saturating_mul(24 * 3600)))
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(_) => Err(ConfigError(format!("{key} must be true or false"))),
        }
    }

    /// A comma-separated list; blanks dropped.
    fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

fn parse_value<T: FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError(format!("{key} has an invalid value")))
}

fn jwt_algorithm(name: &str) -> Result<Algorithm, ConfigError> {
    match name.to_ascii_uppercase().as_str() {
        "HS256" => Ok(Algorithm::HS256),
        "HS384" => Ok(Algorithm::HS384),
        "HS512" => Ok(Algorithm::HS512),
        _ => Err(ConfigError(
            "JWT_ALGORITHM must be HS256, HS384 or HS512".into(),
        )),
    }
}

/// 32 random bytes, hex-encoded: tokens then die with the process, which is the point.
fn random_secret() -> Result<Secret, ConfigError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ConfigError(format!("no randomness for a JWT secret: {e}")))?;
    Ok(Secret::from(
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database.url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!((c.host.to_string().as_str(), c.port), ("127.0.0.1", 8000));
        assert_eq!(c.jwt.algorithm, Algorithm::HS256);
        assert_eq!(c.jwt.expires_in, Duration::from_secs(24 * 3600));
        assert!(c.jwt.secret_generated);
        assert!(c.jwt.secret.expose_secret().len() >= MIN_JWT_SECRET_BYTES);
        assert_eq!(c.bcrypt_cost, 12);
        assert_eq!(c.max_upload_bytes, 5_242_880);
        assert_eq!(c.login_max_failures, 10);
        assert_eq!(c.login_window, Duration::from_secs(900));
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.sessions.refresh_ttl, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(c.sessions.max_age, Duration::from_secs(90 * 24 * 3600));
        assert_eq!(c.sessions.reuse_grace, Duration::from_secs(10));
    }

    #[test]
    fn variables_lists_exactly_what_the_configuration_reads() {
        let read = std::sync::Mutex::new(std::collections::BTreeSet::new());
        Config::from_lookup(|key| {
            read.lock().unwrap().insert(key.to_owned());
            None
        })
        .unwrap();
        let listed: std::collections::BTreeSet<String> = VARIABLES
            .iter()
            .chain(AWS_VARIABLES.iter())
            .filter(|v| !["RUST_LOG", "RUST_BACKTRACE", "TOKIO_WORKER_THREADS"].contains(v))
            .map(|v| v.to_string())
            .collect();
        assert_eq!(read.into_inner().unwrap(), listed);
    }

    #[test]
    fn metrics_listen_on_the_loopback_unless_told_otherwise() {
        let default = config(&[]).unwrap().metrics_addr;
        assert_eq!(default, Some(SocketAddr::from(([127, 0, 0, 1], 9464))));
        assert_eq!(config(&[("METRICS_ADDR", "")]).unwrap().metrics_addr, None);
        let set = config(&[("METRICS_ADDR", "0.0.0.0:9100")]).unwrap();
        assert_eq!(
            set.metrics_addr,
            Some(SocketAddr::from(([0, 0, 0, 0], 9100)))
        );
        assert!(config(&[("METRICS_ADDR", "nine")]).is_err());
    }

    #[test]
    fn generated_secrets_differ_per_process() {
        let a = config(&[]).unwrap().jwt.secret;
        let b = config(&[]).unwrap().jwt.secret;
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn short_jwt_secret_is_refused() {
        let err = config(&[("JWT_SECRET", "too-short")]).unwrap_err();
        assert!(err.to_string().contains("at least 32 bytes"));
        assert!(!err.to_string().contains("too-short"));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (key, value) in [
            ("PORT", "eighty"),
            ("BCRYPT_COST", "3"),
            ("JWT_ALGORITHM", "RS256"),
            ("LOG_FORMAT", "xml"),
            ("TRUSTED_PROXIES", "not-an-ip"),
            ("GRAPHQL_INTROSPECTION", "maybe"),
        ] {
            let err = config(&[(key, value)]).unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn trusted_proxies_take_addresses_and_networks() {
        let c = config(&[("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.5, ::1")]).unwrap();
        let trusted = |ip: &str| {
            c.trusted_proxies
                .iter()
                .any(|n| n.contains(&crate::net::canonical(ip.parse().unwrap())))
        };
        assert!(trusted("10.200.3.4"));
        assert!(trusted("192.168.1.5"));
        assert!(trusted("::ffff:10.1.1.1"));
        assert!(trusted("::1"));
        assert!(!trusted("192.168.1.6"));
        assert!(!trusted("11.0.0.1"));
        assert!(config(&[("TRUSTED_PROXIES", "10.0.0.0/33")]).is_err());
    }

    #[test]
    fn lists_are_split_on_commas() {
        let c = config(&[("CORS_ORIGINS", " https://a.example, https://b.example ,")]).unwrap();
        assert_eq!(c.cors_origins, ["https://a.example", "https://b.example"]);
    }

    #[test]
    fn the_relying_party_follows_the_public_url() {
        let local = config(&[("PUBLIC_URL", "http://127.0.0.1:8000")]).unwrap();
        assert_eq!(local.webauthn.rp_id, "localhost");
        let origins = |c: &Config| -> Vec<String> {
            c.webauthn
                .origins
                .iter()
                .map(|o| o.origin().ascii_serialization())
                .collect()
        };
        assert_eq!(
            origins(&local),
            ["http://localhost:8000", "http://127.0.0.1:8000"]
        );
        let public = config(&[("PUBLIC_URL", "https://id.example.com/")]).unwrap();
        assert_eq!(public.webauthn.rp_id, "id.example.com");
        assert_eq!(origins(&public), ["https://id.example.com"]);
        let set = config(&[
            ("PUBLIC_URL", "https://id.example.com"),
            ("WEBAUTHN_RP_ID", "example.com"),
            (
                "WEBAUTHN_ORIGINS",
                "https://id.example.com, https://app.example.com",
            ),
        ])
        .unwrap();
        assert_eq!(set.webauthn.rp_id, "example.com");
        assert_eq!(set.webauthn.origins.len(), 2);
        assert!(config(&[("PUBLIC_URL", "not a url")]).is_err());
        // Combinations browsers refuse stop the start.
        for bad in [
            vec![("WEBAUTHN_RP_ID", "127.0.0.1")],
            vec![
                ("PUBLIC_URL", "https://id.example.com"),
                ("WEBAUTHN_RP_ID", "other.com"),
            ],
            vec![
                ("WEBAUTHN_RP_ID", "example.com"),
                (
                    "WEBAUTHN_ORIGINS",
                    "https://id.example.com, https://evil.com",
                ),
            ],
        ] {
            let err = config(&bad).unwrap_err().to_string();
            assert!(err.starts_with("WEBAUTHN_"), "{err}");
        }
    }

    #[test]
    fn mfa_keys_are_32_bytes_of_base64() {
        use base64::{Engine, engine::general_purpose::STANDARD};
        let key = STANDARD.encode([7u8; 32]);
        let c = config(&[("MFA_ENCRYPTION_KEY", &key)]).unwrap();
        assert!(c.mfa.encryption_key.is_some());
        assert_eq!(c.mfa.issuer, "nta-user-svc");
        assert!(!format!("{c:?}").contains(&key));
        for bad in [STANDARD.encode([7u8; 16]), "not base64!".into()] {
            let err = config(&[("MFA_ENCRYPTION_KEY", &bad)]).unwrap_err();
            assert!(err.to_string().starts_with("MFA_ENCRYPTION_KEY"), "{err}");
        }
        assert!(config(&[("MFA_ENCRYPTION_OLD_KEYS", &format!("{key},short"))]).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let c = config(&[("JWT_SECRET", &"s".repeat(40))]).unwrap();
        assert!(!format!("{c:?}").contains(&"s".repeat(40)));
    }
}
