//! The router's state: what the handlers of both transports reach. Each transport declares
//! the part it needs ([`GraphqlState`], [`CallerKeys`]); this module builds the whole and
//! hands each part out (`FromRef`), so neither transport imports the other or this. The
//! services are here for the two REST paths that carry no GraphQL operation (a photo's
//! bytes, readiness): they reach them through the state and never import the service layer.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::{
    auth::JwtKeys,
    caller::CallerKeys,
    config::Config,
    graphql::{self, GraphqlState},
    http::Uploads,
    services::Services,
};

/// What every handler can reach. Cheap to clone.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub graphql: GraphqlState,
    #[from_ref(skip)]
    pub services: Arc<Services>,
    pub caller: CallerKeys,
}

impl AppState {
    pub fn new(services: Services, jwt: Arc<JwtKeys>, config: &Config) -> Self {
        let schema = graphql::build_schema(services.clone(), config);
        let suggestions = config
            .graphql_suggestions
            .then(|| Arc::new(graphql::Suggestions::from_sdl(&schema.sdl())));
        Self {
            graphql: GraphqlState {
                schema,
                documents: Arc::default(),
                uploads: Uploads::new(config.max_upload_bytes),
                suggestions,
            },
            services: Arc::new(services),
            caller: CallerKeys {
                jwt,
                trusted_proxies: config.trusted_proxies.clone().into(),
            },
        }
    }
}
