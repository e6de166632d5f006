use async_graphql::{Context, Object, Result};

use super::{context, guard::RequireUser, types::User};

/// Reads. Every field needs a bearer token.
pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The current account.
    #[graphql(guard = "RequireUser")]
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let (services, actor) = context(ctx);
        Ok(User(services.me(&actor).await?))
    }
}
