use async_graphql::{Context, Object, Result};

use super::{
    admin::{AuditAction, AuditEventConnection, Role, UserConnection, UserStatus},
    context,
    mfa::MfaStatus,
    oidc::{Identity, OidcProvider},
    passkeys::Passkey,
    types::{Profile, Session, User},
    webhooks::{Webhook, WebhookDelivery},
};
use crate::domain::{CursorKind, PageRequest, UserFilter};

/// Reads. Every field needs a bearer token.
pub struct QueryRoot;

/// Reads. Every field but `oidcProviders` needs a bearer token (`Authorization: Bearer
/// <accessToken>`); `users`, `user`, `auditEvents` and the webhook fields need an admin's.
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

    /// The account's second factors: TOTP on or off, recovery codes left, passkeys.
    async fn my_mfa(&self, ctx: &Context<'_>) -> Result<MfaStatus> {
        let (services, actor) = context(ctx);
        Ok(services.mfa_status(&actor).await?.into())
    }

    /// The account's passkeys, newest first.
    async fn my_passkeys(&self, ctx: &Context<'_>) -> Result<Vec<Passkey>> {
        let (services, actor) = context(ctx);
        let passkeys = services.my_passkeys(&actor).await?;
        Ok(passkeys.into_iter().map(Passkey::from).collect())
    }

    /// The external OpenID providers this service signs in with (no token needed).
    async fn oidc_providers(&self, ctx: &Context<'_>) -> Vec<OidcProvider> {
        let (services, _) = context(ctx);
        services
            .oidc_providers()
            .into_iter()
            .map(OidcProvider::from)
            .collect()
    }

    /// The identities at external providers linked to the account, oldest first.
    async fn my_identities(&self, ctx: &Context<'_>) -> Result<Vec<Identity>> {
        let (services, actor) = context(ctx);
        let identities = services.my_identities(&actor).await?;
        Ok(identities.into_iter().map(Identity::from).collect())
    }

    /// The webhook endpoints, oldest first (admins only).
    async fn webhooks(&self, ctx: &Context<'_>) -> Result<Vec<Webhook>> {
        let (services, actor) = context(ctx);
        let hooks = services.webhooks(&actor).await?;
        Ok(hooks.into_iter().map(Webhook::from).collect())
    }

    /// One webhook endpoint (admins only); `NOT_FOUND` for an unknown id.
    async fn webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: async_graphql::ID,
    ) -> Result<Webhook> {
        let (services, actor) = context(ctx);
        Ok(services.webhook(&actor, &id).await?.into())
    }

    /// An endpoint's latest delivery attempts, newest first (admins only).
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: async_graphql::ID,
    ) -> Result<Vec<WebhookDelivery>> {
        let (services, actor) = context(ctx);
        let deliveries = services.webhook_deliveries(&actor, &id).await?;
        Ok(deliveries.into_iter().map(WebhookDelivery::from).collect())
    }

    /// The account's live sessions, most recently used first.
    async fn my_sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>> {
        let (services, actor) = context(ctx);
        let sessions = services.my_sessions(&actor).await?;
        Ok(sessions.into_iter().map(Session::from).collect())
    }

    /// The security events of the account (logins, password changes, sessions ended, …),
    /// newest first.
    async fn my_security_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, 1 to 100.", default = 20)] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the page before.")] after: Option<String>,
    ) -> Result<AuditEventConnection> {
        let (services, actor) = context(ctx);
        let page = page(first, after, CursorKind::AuditEvents)?;
        Ok(services.my_security_events(&actor, page).await?.into())
    }

    /// Accounts, newest first (admins only). Pages are stable while accounts are added.
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, 1 to 100.", default = 20)] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the page before.")] after: Option<String>,
        #[graphql(desc = "Text in the email or the name, in any case.")] search: Option<String>,
        #[graphql(desc = "Only active or only disabled accounts.")] status: Option<UserStatus>,
        #[graphql(desc = "Only accounts with this role.")] role: Option<Role>,
    ) -> Result<UserConnection> {
        let (services, actor) = context(ctx);
        let page = page(first, after, CursorKind::Users)?;
        let filter = UserFilter::parse(
            search.as_deref(),
            status.map(Into::into),
            role.map(Into::into),
        )?;
        Ok(services.users(&actor, page, filter).await?.into())
    }

    /// One account (admins only); null when there is none.
    async fn user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: i32,
    ) -> Result<Option<User>> {
        let (services, actor) = context(ctx);
        Ok(services.user(&actor, id).await?.map(User))
    }

    /// Security events of every account, newest first (admins only).
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, 1 to 100.", default = 20)] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the page before.")] after: Option<String>,
        #[graphql(desc = "Only events this account did or was the subject of.")] user_id: Option<
            i32,
        >,
        #[graphql(desc = "Only events of this kind.")] action: Option<AuditAction>,
    ) -> Result<AuditEventConnection> {
        let (services, actor) = context(ctx);
        let page = page(first, after, CursorKind::AuditEvents)?;
        let events = services
            .audit_events(&actor, page, user_id, action.map(Into::into))
            .await?;
        Ok(events.into())
    }
}

/// The page a connection field asks for; an explicit null `first` means the default.
fn page(
    first: Option<i32>,
    after: Option<String>,
    kind: CursorKind,
) -> Result<PageRequest, crate::error::AppError> {
    PageRequest::parse(first.map_or(20, i64::from), after.as_deref(), kind)
}
