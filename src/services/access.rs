//! Who is asking: the caller's user row behind a live session, and whether they are an admin.
//! A leaf: it imports no feature.

use super::{
    Services,
    prepared::{self, ReadSource},
    time::now,
};
use crate::{
    auth::{Actor, Bearer},
    domain::Role,
    entities::user,
    error::{AppError, NOT_AUTHENTICATED, Refusal},
};

impl Services {
    /// The caller's user row, if their token's session is live: one query (the session is
    /// joined, not fetched apart). 401 otherwise.
    pub(super) async fn signed_in(
        &self,
        db: &impl ReadSource,
        bearer: Bearer,
    ) -> Result<user::Model, AppError> {
        prepared::user(db, bearer, now())
            .await?
            .ok_or(AppError::Unauthenticated(NOT_AUTHENTICATED))
    }

    /// The caller's row if they are a signed-in admin: 401 without a live session, 403 for
    /// anyone else.
    pub(super) async fn admin(
        &self,
        db: &impl ReadSource,
        actor: &Actor,
    ) -> Result<user::Model, AppError> {
        let user = self.signed_in(db, actor.bearer()?).await?;
        if Role::from_stored(&user.role) != Role::Admin {
            return Err(AppError::Forbidden(Refusal::NotAllowed));
        }
        Ok(user)
    }
}
