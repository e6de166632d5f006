//! nta-user-svc: accounts, login (JWT), profiles and profile photos, served as a GraphQL API
//! with a REST compatibility layer.
//!
//! A request travels through the modules in this order:
//!
//! 1. [`server`] accepts the connection and bounds what it may hold (timeouts, rates,
//!    connections per address); its `guard` is the one middleware around the router that
//!    [`startup`] builds (request ids, tracing, CORS, security headers, body limits).
//! 2. [`caller`] turns the `Authorization` header into an [`auth::Actor`]. [`graphql`] serves
//!    `/graphql`: it executes the document against the one schema. [`rest`] serves the
//!    documented REST paths by running a fixed GraphQL operation against that same schema,
//!    then shaping the result, and the service's error, into the documented JSON and status.
//! 3. Resolvers convert their input into [`domain`] types (validated once) and call one
//!    function of [`services`], where every rule lives and the only code that touches the
//!    [`entities`].
//! 4. [`error::AppError`] carries failures back up; one code table renders it both as a
//!    GraphQL error and as an HTTP status.

/// Password hashing on a bounded blocking pool, JWT issue/verify, the request's `Actor`.
pub mod auth;
/// The caller of a request: its `Actor` and its client address.
pub mod caller;
/// The command line: `serve`, `migrate`, `export-schema`, `export-openapi`, `create-admin`,
/// `set-role`.
pub mod cli;
/// Typed configuration, read once from the environment (and `.env`).
pub mod config;
/// Connecting to SQLite or PostgreSQL, write transactions that lock up front, and the
/// readers that run every authenticated request's key lookups outside the pool.
pub mod db;
/// Validated input types: an `Email` or a `Password` that exists is a valid one.
pub mod domain;
/// sea-orm entities; only the service layer uses them.
pub mod entities;
/// The error enum and its code table (HTTP status, GraphQL `extensions.code`).
pub mod error;
/// The GraphQL schema, its resolvers and the `/graphql` endpoint.
pub mod graphql;
/// HTML escaping for the account pages and the HTML parts of messages.
pub mod html;
/// HTTP pieces both transports share: the JSON error body, media types, the upload gate.
pub mod http;
/// Rate limits (login, registration, recovery, mail, email changes), counted in memory or in
/// Redis.
pub mod limits;
/// Outgoing mail: templates, and the `.eml` file and SMTP transports.
pub mod mail;
/// Prometheus metrics: the recorder, and labels that stay bounded.
pub mod monitoring;
/// Client addresses: trusted proxy networks and `X-Forwarded-For`.
pub mod net;
/// The REST compatibility layer: each documented path runs a named GraphQL operation.
pub mod rest;
/// Accepting connections: header, body and write timeouts, body rates, connections in all and
/// per address.
pub mod server;
/// The rules: features (accounts, sessions, mail, profiles, admin, audit) over shared leaves.
/// The only module that touches entities.
pub mod services;
/// The application: router, listener, the background workers it owns, graceful shutdown.
pub mod startup;
/// What every handler can reach: the GraphQL state (schema, documents, upload gate), the
/// caller's keys, and the services for the paths without an operation.
pub mod state;
/// Logging: pretty or JSON lines, each carrying the request id.
pub mod telemetry;
