use async_graphql::{Context, Object, Result};

use super::{
    context,
    guard::RequireUser,
    types::{AuthPayload, LoginInput, RegisterInput, UpdateMeInput, User},
};
use crate::domain::{AccountPatch, Credentials, NewAccount};

/// Changes. `register` and `login` need no token; the rest act on the caller's own data.
pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Creates an account and its (empty) profile.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<User> {
        let (services, _) = context(ctx);
        let new = NewAccount::parse(&input.email, input.password, input.name.as_deref())?;
        Ok(User(services.register(new).await?))
    }

    /// Exchanges email and password for a bearer token.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        let (services, _) = context(ctx);
        let credentials = Credentials::parse(&input.email, input.password)?;
        Ok(services.login(credentials).await?.into())
    }

    /// Changes the current account's email and/or name.
    #[graphql(guard = "RequireUser")]
    async fn update_me(&self, ctx: &Context<'_>, input: UpdateMeInput) -> Result<User> {
        let (services, actor) = context(ctx);
        let patch = AccountPatch::parse(input.email, input.name)?;
        Ok(User(services.update_me(&actor, patch).await?))
    }
}
