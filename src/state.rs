//! What every handler can reach: the schema, the services, and the pieces the transports
//! need of their own (the REST operations, the upload gate, GraphiQL). Both transports import
//! this module; it imports neither.

use std::sync::Arc;

use axum::{body::Body, extract::FromRef};
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    config::{Config, IpNet},
    error::AppError,
    graphql::{self, AppSchema},
    rest::Operations,
    services::{Services, photos},
};

/// Largest JSON body accepted on any route (uploads have their own limit).
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub schema: AppSchema,
    pub services: Services,
    pub operations: Arc<Operations>,
    pub trusted_proxies: Arc<[IpNet]>,
    pub uploads: Uploads,
    /// Parsed GraphQL documents by their text, for clients that repeat their queries.
    pub documents: Arc<graphql::DocumentCache>,
}

impl FromRef<AppState> for Services {
    fn from_ref(state: &AppState) -> Self {
        state.services.clone()
    }
}

impl AppState {
    pub fn new(services: Services, config: &Config) -> Self {
        Self {
            schema: graphql::build_schema(services.clone(), config),
            services,
            operations: Arc::new(Operations::new()),
            trusted_proxies: config.trusted_proxies.clone().into(),
            uploads: Uploads::new(config.max_upload_bytes),
            documents: Arc::default(),
        }
    }
}

/// How many uploads are read and processed at the same time.
pub const UPLOAD_SLOTS: usize = 4;

/// The gate both upload paths (REST and GraphQL multipart) go through: the size limit of the
/// file, and [`UPLOAD_SLOTS`] slots, so that the memory uploads take stays bounded however
/// many arrive together.
#[derive(Clone)]
pub struct Uploads {
    slots: Arc<Semaphore>,
    /// The largest file accepted, in bytes (`MAX_UPLOAD_BYTES`).
    pub max_bytes: usize,
}

impl Uploads {
    fn new(max_bytes: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(UPLOAD_SLOTS)),
            max_bytes,
        }
    }

    /// The 413 for a file over the limit.
    pub fn too_large(&self) -> AppError {
        photos::too_large(self.max_bytes)
    }

    /// Waits until the body's first bytes arrive, then for a slot. A client that sends its
    /// headers and then nothing holds no slot (and its body times out); the slot is held by
    /// the returned permit until the response is built. Call it only for a caller that has
    /// shown a valid token.
    ///
    /// Returns the body to read (its first piece put back in front), or the body's error
    /// (a timeout, which the server answers 408).
    pub async fn slot(&self, body: Body) -> Result<(OwnedSemaphorePermit, Body), axum::Error> {
        let mut body = body;
        let first = body.frame().await.transpose()?;
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the upload semaphore is never closed");
        let first = first.and_then(|frame| frame.into_data().ok());
        let rest = body.into_data_stream();
        let body = match first {
            Some(first) => {
                Body::from_stream(futures_util::stream::once(async { Ok(first) }).chain(rest))
            }
            None => Body::from_stream(rest),
        };
        Ok((permit, body))
    }
}
