//! The GraphQL API: one schema for GraphQL clients and for the REST layer alike.
//!
//! Resolvers are thin: they read the [`Actor`](crate::auth::Actor) and the
//! [`Services`](crate::services::Services) from the context, convert their input into
//! [`domain`](crate::domain) types, call one service and wrap the result in an output type.

mod admin;
mod documents;
pub mod graphiql;
mod http;
mod loaders;
mod metrics;
mod mfa;
mod mutation;
mod oidc;
mod passkeys;
mod query;
mod shape;
mod suggest;
mod types;
mod webhooks;

use std::sync::Arc;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder, dataloader::DataLoader};

/// The event types `createWebhook` takes (REST's document lists them).
pub use crate::domain::WEBHOOK_EVENT_TYPES;
pub use admin::{AuditAction, Role, UserStatus};
pub use documents::DocumentCache;
pub use http::{graphql_get, graphql_post};
use loaders::ProfileLoader;
pub use metrics::{execute, execute_as};
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use suggest::Suggestions;
pub use types::{Profile, ProfileInput};

use crate::{
    auth::Actor, caller::Client, config::Config, domain::Origin, http::Uploads, services::Services,
};

pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// What `/graphql` needs: the schema, the cache of parsed documents, the upload gate.
#[derive(Clone)]
pub struct GraphqlState {
    pub schema: AppSchema,
    /// Parsed GraphQL documents by their text, for clients that repeat their queries.
    pub documents: Arc<DocumentCache>,
    pub uploads: Uploads,
    /// "Did you mean …?" for unknown fields and types; `None` with `GRAPHQL_SUGGESTIONS=false`.
    pub suggestions: Option<Arc<Suggestions>>,
}

/// Deepest selection allowed. GraphiQL's introspection query nests about 15 levels.
pub const MAX_DEPTH: usize = 20;
/// Largest total field count (complexity) of one operation; introspection needs about 230.
pub const MAX_COMPLEXITY: usize = 500;
/// Most operations accepted in one batched request.
pub const MAX_BATCH: usize = 10;

/// The schema with its limits, before any runtime data is attached.
pub(crate) fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
}

/// The schema that serves requests.
pub fn build_schema(services: Services, config: &Config) -> AppSchema {
    // Without a cache the loader only batches, so one instance can serve every request.
    let profiles = DataLoader::new(ProfileLoader(services.clone()), tokio::spawn);
    let mut builder = builder().data(services).data(profiles);
    if !config.graphql_introspection {
        builder = builder.disable_introspection();
    }
    if !config.graphql_suggestions {
        builder = builder.disable_suggestions();
    }
    builder.finish()
}

/// The SDL that `schema.graphql` holds (`nta-user-svc export-schema`).
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// A request's one file, used at most once: however many fields (aliases, operations of a
/// batch) name it, it is decoded once. Put into multipart requests by the transport.
#[derive(Clone, Default)]
pub(crate) struct UploadOnce(Arc<std::sync::atomic::AtomicBool>);

impl UploadOnce {
    /// True the first time only.
    fn take(&self) -> bool {
        !self.0.swap(true, std::sync::atomic::Ordering::AcqRel)
    }
}

/// The services and the caller, as every resolver needs them.
fn context<'a>(ctx: &async_graphql::Context<'a>) -> (&'a Services, Actor) {
    (
        ctx.data_unchecked::<Services>(),
        ctx.data_opt::<Actor>().copied().unwrap_or(Actor::Anonymous),
    )
}

/// The client address (for rate limits); unspecified when the request came from elsewhere.
fn client_ip(ctx: &async_graphql::Context<'_>) -> std::net::IpAddr {
    ctx.data_opt::<Client>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.ip)
}

/// The client's address, user agent and request id: for the sessions a login or refresh
/// opens, and for the audit log.
fn origin(ctx: &async_graphql::Context<'_>) -> Origin {
    let client = ctx.data_opt::<Client>();
    let text = |value: Option<&axum::http::HeaderValue>| {
        value.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let user_agent = text(client.and_then(|c| c.user_agent.as_ref()));
    let request_id = text(client.and_then(|c| c.request_id.as_ref()));
    Origin::new(client_ip(ctx), user_agent.as_deref()).with_request_id(request_id.as_deref())
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_schema_matches_the_code() {
        let committed = include_str!("../../schema.graphql");
        assert!(
            committed == super::sdl(),
            "schema.graphql is out of date: run `cargo run -- export-schema > schema.graphql`"
        );
    }
}
