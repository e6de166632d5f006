//! The application: connect and migrate the database, build the state and the router, bind
//! the listener, and serve until a shutdown signal, letting in-flight requests finish.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Request, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};
use tracing::Span;

use crate::{
    auth::JwtKeys,
    config::{Config, HttpLimits},
    db,
    error::{AppError, ErrorCode, INTERNAL},
    graphql,
    http::{MAX_JSON_BODY, Problem},
    mail::Mailer,
    monitoring, rest, server,
    services::{PhotoStore, Services},
    state::AppState,
};

/// A bound, ready-to-serve application, and the background workers it owns.
pub struct App {
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    workers: Workers,
}

/// The background workers (mail, clean-ups, the metrics listener): spawned and stopped by
/// the application, never left running past it.
struct Workers {
    tasks: TaskTracker,
    stop: CancellationToken,
}

/// How long workers may take to finish what they are doing after the server stopped (a mail
/// delivery in flight: the SMTP timeout is 10 s).
const WORKERS_GRACE: Duration = Duration::from_secs(15);

impl Workers {
    fn new() -> Self {
        Self {
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Runs `work(stop)`; `work` ends by itself once `stop` is cancelled.
    fn spawn<F>(&self, work: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(work(self.stop.clone()));
    }

    /// Tells every worker to stop and waits (a while) until they have.
    async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(WORKERS_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background workers did not stop in time");
        }
    }
}

impl App {
    /// Connects (and migrates) the database and binds `HOST:PORT` (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        if config.jwt.secret_generated {
            tracing::warn!(
                "JWT_SECRET is not set: using a random secret, so tokens stop working when \
                 this process exits and are not accepted by other replicas"
            );
        }
        if config.bcrypt_cost < 10 {
            tracing::warn!(
                cost = config.bcrypt_cost,
                "BCRYPT_COST below 10 is weak for production"
            );
        }
        let (services, jwt) = services(&config).await?;
        let workers = Workers::new();
        let mail = services.clone();
        workers.spawn(|stop| deliver_mail(mail, stop));
        let hooks = services.clone();
        workers.spawn(|stop| deliver_webhooks(hooks, stop));
        let photos = services.clone();
        workers.spawn(|stop| {
            periodically(config.photo_sweep_interval, stop, move || {
                let services = photos.clone();
                async move { services.sweep_photos(PHOTO_SWEEP_GRACE).await }
            })
        });
        let sessions = services.clone();
        workers.spawn(|stop| {
            periodically(config.sessions.prune_interval, stop, move || {
                let services = sessions.clone();
                async move {
                    services.prune_sessions().await?;
                    services.prune_oidc().await?;
                    services.prune_webhooks().await?;
                    services.prune_audit().await
                }
            })
        });
        // Metrics are an aid, not the service: a taken port (a second instance on one machine)
        // is logged, and the API starts all the same.
        if let Some(address) = config.metrics_addr
            && let Err(e) =
                serve_metrics(address, services.clone(), config.http.clone(), &workers).await
        {
            tracing::error!(error = format!("{e:#}"), "metrics are off");
        }
        let router = router(AppState::new(services, jwt, &config), &config);
        let address = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        Ok(Self {
            listener,
            router,
            limits: config.http,
            workers,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// Serves until `shutdown` completes, then stops accepting, lets open requests finish,
    /// and stops the background workers.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let served = server::serve(self.listener, self.router, &self.limits, shutdown).await;
        self.workers.stop().await;
        served
    }
}

/// The rules over a connected, migrated database, and the keys the tokens are signed with
/// (for the server, and for the command line's account commands).
pub async fn services(config: &Config) -> anyhow::Result<(Services, Arc<JwtKeys>)> {
    let db = db::connect(&config.database)
        .await
        .context("cannot connect to the database")?;
    db::migrate(&db).await.context("cannot apply migrations")?;
    let jwt = Arc::new(JwtKeys::new(&config.jwt));
    let mailer = Mailer::new(&config.mail).map_err(anyhow::Error::msg)?;
    tracing::info!(transport = %mailer.describe(), "mail");
    let photos = PhotoStore::new(
        config.photo_store.as_deref(),
        &config.upload_dir,
        &config.aws,
    )
    .map_err(anyhow::Error::msg)?
    .with_concurrency(config.photo_store_concurrency);
    tracing::info!(store = %photos.describe(), "photos");
    let services = Services::new(db, config, Arc::clone(&jwt), Arc::new(mailer), photos);
    Ok((services, jwt))
}

/// The whole HTTP surface. A plain function so tests can build it around their own state.
pub fn router(state: AppState, config: &Config) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    // API answers carry tokens and personal data: no cache may keep them.
    let graphql = Router::new()
        .route(
            "/graphql",
            get(graphql::graphql_get).post(graphql::graphql_post),
        )
        .layer(rest::no_store());
    Router::new()
        .merge(graphql)
        .route("/graphiql/{file}", get(graphql::graphiql::asset))
        .merge(rest::router(config.max_upload_bytes))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(cors(&config.cors_origins))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let request_id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or_default();
                    // The path only: query strings may carry GraphQL variables.
                    tracing::info_span!(
                        "request",
                        request_id = %request_id,
                        method = %request.method(),
                        path = %request.uri().path(),
                    )
                })
                .on_request(())
                .on_response(|response: &Response, latency: Duration, _: &Span| {
                    tracing::info!(
                        status = response.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "response"
                    );
                })
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(config.http.clone()),
            server::guard,
        ))
}

/// Prometheus metrics at `address` (`/metrics`), on a listener of their own.
async fn serve_metrics(
    address: SocketAddr,
    services: Services,
    limits: HttpLimits,
    workers: &Workers,
) -> anyhow::Result<()> {
    let handle = monitoring::install();
    let listener = TcpListener::bind(address).await.with_context(|| {
        format!(
            "cannot listen on METRICS_ADDR {address} (set another, or empty to turn metrics off)"
        )
    })?;
    // Histograms keep their samples until drained: drain them every few seconds, scraped or
    // not, or they grow without bound.
    let upkeep = handle.clone();
    workers.spawn(|stop| async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while stop.run_until_cancelled(every.tick()).await.is_some() {
            upkeep.run_upkeep();
        }
    });
    let router = Router::new()
        .route("/metrics", get(scrape))
        .with_state((handle, services));
    workers.spawn(|stop| async move {
        let serving = server::serve_as(
            "metrics listening",
            listener,
            router,
            &limits,
            stop.cancelled_owned(),
        );
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// `/metrics`: the gauges of state read now, then everything in Prometheus's text format.
async fn scrape(
    axum::extract::State((handle, services)): axum::extract::State<(
        metrics_exporter_prometheus::PrometheusHandle,
        Services,
    )>,
) -> Response {
    let (idle, in_use) = services.pool_use();
    metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(f64::from(in_use));
    match services.mail_backlog().await {
        Ok(depth) => metrics::gauge!("mail_outbox_depth").set(depth as f64),
        Err(err) => err.log(),
    }
    match services.webhook_backlog().await {
        Ok((depth, oldest)) => {
            metrics::gauge!("webhook_outbox_depth").set(depth as f64);
            metrics::gauge!("webhook_oldest_pending_seconds").set(oldest as f64);
        }
        Err(err) => err.log(),
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        handle.render(),
    )
        .into_response()
}

/// CORS for the configured origins only; with none configured, no CORS headers at all.
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            axum::http::Method::GET,
            axum::http::Method::POST,
            axum::http::Method::PUT,
            axum::http::Method::DELETE,
        ])
        // What the docs tell clients to send: the token, JSON, a request id, and the headers
        // Apollo Client sends (client awareness) or asks for (apollo-upload-client's
        // preflight marker).
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("apollographql-client-name"),
            HeaderName::from_static("apollographql-client-version"),
            HeaderName::from_static("apollo-require-preflight"),
        ])
        // What a front end needs to read: the request id (to quote in a report), how long to
        // wait after a 429 or 503, a photo's ETag, and why a 401 happened.
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            header::ETAG,
            header::WWW_AUTHENTICATE,
        ])
        // No cookies: the token travels in `Authorization`, so no credentials mode.
        .max_age(Duration::from_secs(600))
}

/// A panic is a bug: log it (the message only), answer as any internal error.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "request handler panicked");
    Problem::new(ErrorCode::InternalServerError, INTERNAL).into_response()
}

async fn not_found() -> Response {
    Problem::new(ErrorCode::NotFound, "Not Found").into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "detail": "Method Not Allowed" })),
    )
        .into_response()
}

/// Files younger than this are left alone: an upload writes its file before its row.
const PHOTO_SWEEP_GRACE: Duration = Duration::from_secs(600);

/// Runs a clean-up once at start, then every `interval` until `stop`: removing unreferenced
/// photo files (a crash between file and row, a failed removal), pruning ended sessions.
/// Every replica runs them; each run is idempotent. A failure is logged and the next run
/// comes on time. A run under way when `stop` comes finishes first.
async fn periodically<F, T>(interval: Duration, stop: CancellationToken, task: impl Fn() -> F)
where
    F: Future<Output = Result<T, AppError>>,
{
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while stop.run_until_cancelled(every.tick()).await.is_some() {
        if let Err(err) = task().await {
            err.log();
        }
    }
}

/// The mail worker: delivers what the outbox holds as soon as it is queued, and looks again
/// every second for messages due for a retry (or queued by another replica). A delivery
/// under way when `stop` comes finishes first.
async fn deliver_mail(services: Services, stop: CancellationToken) {
    while !stop.is_cancelled() {
        match services.deliver_mail().await {
            Ok(0) => {}
            // There may be more.
            Ok(_) => continue,
            Err(err) => err.log(),
        }
        tokio::select! {
            () = services.mail_waiting() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = stop.cancelled() => {}
        }
    }
}

/// Delivers webhook events while the service runs: at once while there are due ones, else
/// looking again every second.
async fn deliver_webhooks(services: Services, stop: CancellationToken) {
    while !stop.is_cancelled() {
        match services.deliver_webhooks().await {
            Ok(0) => {}
            Ok(_) => continue,
            Err(err) => err.log(),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = stop.cancelled() => {}
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received: finishing in-flight requests");
}
