use async_graphql::{Context, Object, Result, Upload};

use super::{
    client_ip, context,
    types::{AuthPayload, LoginInput, Profile, ProfileInput, RegisterInput, UpdateMeInput, User},
};
use crate::{
    domain::{AccountPatch, Credentials, NewAccount, ProfilePatch},
    error::AppError,
};

/// Changes. `register` and `login` need no token; the rest act on the caller's own data.
pub struct MutationRoot;

/// Changes. `register` and `login` need no token; the rest act on the caller's own data.
#[Object(name = "Mutation")]
impl MutationRoot {
    /// Creates an account and its (empty) profile.
    async fn register(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new account.")] input: RegisterInput,
    ) -> Result<User> {
        let (services, _) = context(ctx);
        let new = NewAccount::parse(&input.email, input.password, input.name.as_deref())?;
        Ok(User(services.register(client_ip(ctx), new).await?))
    }

    /// Exchanges email and password for a bearer token.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The credentials.")] input: LoginInput,
    ) -> Result<AuthPayload> {
        let (services, _) = context(ctx);
        let credentials = Credentials::parse(&input.email, input.password)?;
        Ok(services.login(client_ip(ctx), credentials).await?.into())
    }

    /// Changes the current account's email and/or name.
    async fn update_me(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields to change.")] input: UpdateMeInput,
    ) -> Result<User> {
        let (services, actor) = context(ctx);
        let patch = AccountPatch::parse(input.email.into(), input.name.into())?;
        Ok(User(services.update_me(&actor, patch).await?))
    }

    /// Creates the current account's profile; `CONFLICT` while one exists.
    async fn create_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The profile's fields.")] input: ProfileInput,
    ) -> Result<Profile> {
        let (services, actor) = context(ctx);
        let fields = ProfilePatch::parse(input.into())?;
        Ok(services.create_profile(&actor, fields).await?.into())
    }

    /// Changes the given fields of the current account's profile.
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields to change; omitted ones stay.")] input: ProfileInput,
    ) -> Result<Profile> {
        let (services, actor) = context(ctx);
        let patch = ProfilePatch::parse(input.into())?;
        Ok(services.update_profile(&actor, patch).await?.into())
    }

    /// Deletes the current account's profile and its photo; returns the deleted profile's id
    /// (for a client cache to evict it).
    async fn delete_profile(&self, ctx: &Context<'_>) -> Result<i32> {
        let (services, actor) = context(ctx);
        Ok(services.delete_profile(&actor).await?)
    }

    /// Sets the profile photo (JPEG, PNG or WebP, sent by the GraphQL multipart request
    /// spec). It is checked by content, re-encoded without metadata, and replaces the old one.
    async fn upload_profile_photo(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The image file.")] file: Upload,
    ) -> Result<Profile> {
        let (services, actor) = context(ctx);
        let upload = file
            .value(ctx)
            .map_err(|_| AppError::validation("file", "The file is missing."))?;
        Ok(services
            .set_photo(&actor, upload.content.into())
            .await?
            .into())
    }

    /// Removes the profile photo and its file; returns the changed profile.
    async fn delete_profile_photo(&self, ctx: &Context<'_>) -> Result<Profile> {
        let (services, actor) = context(ctx);
        Ok(services.delete_photo(&actor).await?.into())
    }
}
