//! Who is asking: the caller's user row behind a live session. A leaf: it imports no feature.

use sea_orm::ConnectionTrait;

use super::{Services, prepared, time::now};
use crate::{
    auth::Bearer,
    entities::user,
    error::{AppError, NOT_AUTHENTICATED},
};

impl Services {
    /// The caller's user row, if their token's session is live: one query (the session is
    /// joined, not fetched apart). 401 otherwise.
    pub(super) async fn signed_in(
        &self,
        db: &impl ConnectionTrait,
        bearer: Bearer,
    ) -> Result<user::Model, AppError> {
        prepared::user(db, bearer, now())
            .await?
            .ok_or(AppError::Unauthenticated(NOT_AUTHENTICATED))
    }
}
