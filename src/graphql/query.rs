use async_graphql::{Context, Object, Result};

use super::{
    context,
    types::{Profile, Session, User},
};

/// Reads. Every field needs a bearer token.
pub struct QueryRoot;

/// Reads. Every field needs a bearer token (`Authorization: Bearer <accessToken>`).
#[Object(name = "Query")]
impl QueryRoot {
    /// The current account.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let (services, actor) = context(ctx);
        Ok(User(services.me(&actor).await?))
    }

    /// The current account's profile; `NOT_FOUND` after it was deleted.
    async fn my_profile(&self, ctx: &Context<'_>) -> Result<Profile> {
        let (services, actor) = context(ctx);
        Ok(services.my_profile(&actor).await?.into())
    }

    /// Any user's profile (the same `Profile` as `myProfile`; `email` and `user` are null
    /// unless it is yours).
    async fn profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The owner's account id.")] user_id: i32,
    ) -> Result<Profile> {
        let (services, actor) = context(ctx);
        Ok(services.profile_of(&actor, user_id).await?.into())
    }

    /// The account's live sessions, most recently used first.
    async fn my_sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>> {
        let (services, actor) = context(ctx);
        let sessions = services.my_sessions(&actor).await?;
        Ok(sessions.into_iter().map(Session::from).collect())
    }
}
