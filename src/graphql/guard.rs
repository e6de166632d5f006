use async_graphql::{Context, Guard, Result};

use crate::auth::Actor;

/// Lets a field run only for a caller with a valid token (the account itself is checked by
/// the service that loads it).
pub struct RequireUser;

impl Guard for RequireUser {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let actor = ctx.data_opt::<Actor>().copied().unwrap_or(Actor::Anonymous);
        actor.user_id()?;
        Ok(())
    }
}
