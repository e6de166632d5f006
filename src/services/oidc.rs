//! Sign-in with external OpenID providers, and the identities linked to an account.
//!
//! - A flow's server-side half (`state` as a SHA-256, `nonce`, PKCE verifier, where the
//!   browser goes back) is kept in `oidc_flows` for 10 minutes and one use (taken by a
//!   conditional delete), so any replica finishes what another started, and a replayed or
//!   forged `state` finds nothing. `redirect_to` is checked against the allow-list before a
//!   flow starts; a callback without a live flow has nowhere to go back to: a plain 400.
//! - Linking rules (SPEC §16): the identity (provider, `sub`) first; else an account with the
//!   same email only when the provider says `email_verified` **and** the account's address is
//!   verified (an unverified claim never takes an account over: `account_exists`); else a new
//!   account without a password.
//! - The callback hands the front end a one-time code (60 s, an `account_tokens` row of
//!   purpose `oidc`), exchanged once for the session (`amr` `["oidc"]`) or, when TOTP is on,
//!   for the second step.
//! - Linking from a signed-in session mails the owner (a stolen token could otherwise add a
//!   way in); an account keeps at least one way to sign in (password, passkey or identity).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, sea_query::Expr,
};
use serde_json::json;
use tracing::instrument;

use super::{
    AccessToken, Services,
    events::Event,
    query::{for_update, unique_violation_as},
    time::{delta, now},
    tokens::{new_account_token, token_hash},
};
use crate::{
    auth::{Actor, oidc::Identity, password::NO_PASSWORD},
    db,
    domain::{
        Amr, AuditAction, Email, ExchangeCode, Factor, INVALID_EXCHANGE_CODE, INVALID_REDIRECT,
        INVALID_SIGN_IN_ATTEMPT, MAX_EMAIL_CHARS, Name, OidcCallback, Origin, RedirectTarget,
    },
    entities::{account_token, oidc_flow, profile, user, user_identity},
    error::{AppError, EMAIL_TAKEN, Refusal},
    mail::Notice,
};

pub const PROVIDER_NOT_FOUND: &str = "Provider not found";
pub const IDENTITY_NOT_FOUND: &str = "Identity not found";
pub const LAST_WAY_TO_SIGN_IN: &str = "Cannot remove your last way to sign in";
/// How long a flow may take at the provider.
const FLOW_TTL: Duration = Duration::from_secs(600);
/// How long the front end has to exchange the callback's code.
const EXCHANGE_TTL: Duration = Duration::from_secs(60);
/// The `account_tokens` purpose of an exchange code.
const EXCHANGE: &str = "oidc";

/// The `?error=` values a flow goes back with.
const ACCOUNT_EXISTS: &str = "account_exists";
const ACCOUNT_DISABLED: &str = "account_disabled";
const ACCESS_DENIED: &str = "access_denied";
const PROVIDER_ERROR: &str = "provider_error";
const IDENTITY_IN_USE: &str = "identity_in_use";

/// A configured provider, for a sign-in button.
#[derive(Clone, Debug)]
pub struct OidcProviderView {
    pub name: String,
    pub display_name: String,
}

/// An identity linked to the caller's account.
#[derive(Clone, Debug)]
pub struct IdentityView {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub linked_at: DateTime<Utc>,
}

impl From<user_identity::Model> for IdentityView {
    fn from(i: user_identity::Model) -> Self {
        Self {
            provider: i.provider,
            subject: i.subject,
            email: i.email,
            linked_at: i.linked_at,
        }
    }
}

/// How a callback ends: back to the front end with this query parameter.
type Back = (&'static str, String);

impl Services {
    /// The configured providers, in order.
    pub fn oidc_providers(&self) -> Vec<OidcProviderView> {
        self.oidc
            .list()
            .map(|(name, display_name)| OidcProviderView {
                name: name.to_owned(),
                display_name: display_name.to_owned(),
            })
            .collect()
    }

    /// Starts a sign-in at `provider`: the URL to send the browser to.
    #[instrument(skip_all)]
    pub async fn start_oidc_sign_in(
        &self,
        origin: &Origin,
        provider: &str,
        redirect_to: &str,
    ) -> Result<String, AppError> {
        self.start_oidc(origin, provider, redirect_to, None).await
    }

    /// Starts linking an identity at `provider` to the caller's account: the URL to send the
    /// browser to.
    #[instrument(skip_all)]
    pub async fn link_identity(
        &self,
        actor: &Actor,
        origin: &Origin,
        provider: &str,
        redirect_to: &str,
    ) -> Result<String, AppError> {
        let user = self.signed_in(&self.pool(), actor.bearer()?).await?;
        self.start_oidc(origin, provider, redirect_to, Some(user.id))
            .await
    }

    async fn start_oidc(
        &self,
        origin: &Origin,
        provider: &str,
        redirect_to: &str,
        user_id: Option<i32>,
    ) -> Result<String, AppError> {
        // The provider first: an unknown one is a 404 whatever else was sent.
        if !self.oidc.knows(provider) {
            return Err(AppError::NotFound(PROVIDER_NOT_FOUND));
        }
        let redirect_to = RedirectTarget::parse(redirect_to)?;
        if !self.oidc_redirects.iter().any(|p| redirect_to.is_under(p)) {
            return Err(AppError::validation("redirect_to", INVALID_REDIRECT));
        }
        // Each start keeps a row until it is used or expires: counted per address.
        self.limits.refresh_attempt(origin.ip).await?;
        let authorization = match self.oidc.authorize(provider).await {
            Ok(authorization) => authorization,
            Err(e) => {
                tracing::warn!(provider, error = %e, "an OpenID provider cannot be reached");
                return Ok(back_to(
                    redirect_to.as_str(),
                    ("error", PROVIDER_ERROR.into()),
                ));
            }
        };
        let now = now();
        oidc_flow::ActiveModel {
            id: Set(token_hash(&authorization.state)),
            provider: Set(provider.to_owned()),
            user_id: Set(user_id),
            nonce: Set(authorization.nonce),
            pkce_verifier: Set(authorization.pkce_verifier),
            redirect_to: Set(redirect_to.as_str().to_owned()),
            created_at: Set(now),
            expires_at: Set(now + delta(FLOW_TTL)),
        }
        .insert(&self.db)
        .await?;
        Ok(authorization.url)
    }

    /// The provider's redirect back: where to send the browser (`redirect_to` with `code`,
    /// `linked` or `error`). A `state` of no live flow → 400.
    #[instrument(skip_all)]
    pub async fn finish_oidc(
        &self,
        origin: &Origin,
        provider: &str,
        callback: OidcCallback,
    ) -> Result<String, AppError> {
        if !self.oidc.knows(provider) {
            return Err(AppError::NotFound(PROVIDER_NOT_FOUND));
        }
        let flow = take_flow(&self.db, &token_hash(&callback.state), provider)
            .await?
            .ok_or_else(|| AppError::validation("state", INVALID_SIGN_IN_ATTEMPT))?;
        let back = |to: Back| back_to(&flow.redirect_to, to);
        if let Some(error) = callback.error {
            tracing::info!(provider, error, "an OpenID provider answered with an error");
            let error = if error == ACCESS_DENIED {
                ACCESS_DENIED
            } else {
                PROVIDER_ERROR
            };
            return Ok(back(("error", error.into())));
        }
        let Some(code) = callback.code else {
            return Ok(back(("error", PROVIDER_ERROR.into())));
        };
        let identity = match self
            .oidc
            .identify(provider, &code, &flow.pkce_verifier, &flow.nonce)
            .await
        {
            Ok(identity) => identity,
            Err(e) => {
                tracing::warn!(provider, error = %e, "an OpenID sign-in was refused");
                return Ok(back(("error", PROVIDER_ERROR.into())));
            }
        };
        let to = match flow.user_id {
            Some(user_id) => {
                self.link_found_identity(origin, provider, user_id, identity)
                    .await?
            }
            None => {
                self.sign_in_found_identity(origin, provider, identity)
                    .await?
            }
        };
        Ok(back(to))
    }

    /// The account `identity` signs in to, found or made by SPEC's rules: `code=…` to
    /// exchange, or why not.
    async fn sign_in_found_identity(
        &self,
        origin: &Origin,
        provider: &str,
        identity: Identity,
    ) -> Result<Back, AppError> {
        let refused = |error: &'static str| Ok(("error", error.to_owned()));
        let txn = db::begin_write(&self.db).await?;
        let linked = user_identity::Entity::find()
            .filter(user_identity::Column::Provider.eq(provider))
            .filter(user_identity::Column::Subject.eq(&identity.subject))
            .find_also_related(user::Entity)
            .one(&txn)
            .await?;
        let user = match linked {
            Some((_, Some(user))) => user,
            _ => {
                let Some(email) = identity.email.as_deref().and_then(|e| Email::parse(e).ok())
                else {
                    tracing::info!(provider, "an OpenID identity has no usable email");
                    return refused(PROVIDER_ERROR);
                };
                let email = email.into_inner();
                let same_email = user::Entity::find()
                    .filter(user::Column::Email.eq(&email))
                    .one(&txn)
                    .await?;
                match same_email {
                    // Both sides checked the address: the same person.
                    Some(user) if identity.email_verified && user.email_verified => {
                        if user.disabled_at.is_some() {
                            return refused(ACCOUNT_DISABLED);
                        }
                        self.add_identity(&txn, origin, user.id, provider, &identity)
                            .await?;
                        user
                    }
                    Some(_) => return refused(ACCOUNT_EXISTS),
                    None if self.address_reserved(&txn, &email, None).await? => {
                        return refused(ACCOUNT_EXISTS);
                    }
                    None => {
                        match self
                            .create_oidc_account(&txn, origin, provider, &identity, email)
                            .await
                        {
                            Err(AppError::Conflict(_)) => return refused(ACCOUNT_EXISTS),
                            created => created?,
                        }
                    }
                }
            }
        };
        if user.disabled_at.is_some() {
            return refused(ACCOUNT_DISABLED);
        }
        let code = new_account_token(&txn, user.id, EXCHANGE, &user.email, EXCHANGE_TTL).await?;
        txn.commit().await?;
        self.mail_queued();
        tracing::info!(user_id = user.id, provider, "an OpenID sign-in came back");
        Ok(("code", code))
    }

    /// A new account for `identity`: no password, the address verified as the provider says
    /// (else a verification link goes out), the profile named by the `name` claim.
    async fn create_oidc_account(
        &self,
        txn: &impl ConnectionTrait,
        origin: &Origin,
        provider: &str,
        identity: &Identity,
        email: String,
    ) -> Result<user::Model, AppError> {
        let now = now();
        let user = user::ActiveModel {
            email: Set(email),
            password_hash: Set(NO_PASSWORD.to_owned()),
            email_verified: Set(identity.email_verified),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(txn)
        .await
        .map_err(unique_violation_as(AppError::Conflict(EMAIL_TAKEN)))?;
        let name = identity
            .name
            .as_deref()
            .map(|n| n.chars().take(Name::MAX_CHARS).collect::<String>())
            .and_then(|n| Name::parse(&n).ok().flatten())
            .map(Name::into_inner);
        profile::ActiveModel {
            user_id: Set(user.id),
            name: Set(name),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(txn)
        .await?;
        if !user.email_verified {
            self.send_verification(txn, user.id, &user.email).await?;
        }
        Event::own(AuditAction::Register, user.id)
            .with(json!({ "provider": provider }))
            .write(txn, Some(origin))
            .await?;
        self.add_identity(txn, origin, user.id, provider, identity)
            .await?;
        tracing::info!(
            user_id = user.id,
            provider,
            "account registered through an OpenID provider"
        );
        Ok(user)
    }

    /// Links `identity` to the account that started the flow: `linked=…`, or why not.
    async fn link_found_identity(
        &self,
        origin: &Origin,
        provider: &str,
        user_id: i32,
        identity: Identity,
    ) -> Result<Back, AppError> {
        let txn = db::begin_write(&self.db).await?;
        let Some(user) = for_update(&txn, user::Entity::find_by_id(user_id))
            .one(&txn)
            .await?
        else {
            return Ok(("error", PROVIDER_ERROR.into()));
        };
        if user.disabled_at.is_some() {
            return Ok(("error", ACCOUNT_DISABLED.into()));
        }
        let existing = user_identity::Entity::find()
            .filter(user_identity::Column::Provider.eq(provider))
            .filter(user_identity::Column::Subject.eq(&identity.subject))
            .one(&txn)
            .await?;
        match existing {
            Some(link) if link.user_id == user_id => return Ok(("linked", provider.into())),
            Some(_) => return Ok(("error", IDENTITY_IN_USE.into())),
            None => {}
        }
        // One identity per provider per account: another one of this provider is in the way.
        let has_one = user_identity::Entity::find()
            .filter(user_identity::Column::UserId.eq(user_id))
            .filter(user_identity::Column::Provider.eq(provider))
            .count(&txn)
            .await?
            > 0;
        if has_one {
            return Ok(("error", IDENTITY_IN_USE.into()));
        }
        self.add_identity(&txn, origin, user_id, provider, &identity)
            .await?;
        // A token alone links a way in that outlives a password change: the owner hears of it.
        self.send_security_notice(&txn, &user.email, Notice::IdentityLinked)
            .await?;
        txn.commit().await?;
        self.mail_queued();
        Ok(("linked", provider.into()))
    }

    async fn add_identity(
        &self,
        txn: &impl ConnectionTrait,
        origin: &Origin,
        user_id: i32,
        provider: &str,
        identity: &Identity,
    ) -> Result<(), AppError> {
        user_identity::ActiveModel {
            user_id: Set(user_id),
            provider: Set(provider.to_owned()),
            subject: Set(identity.subject.clone()),
            email: Set(identity
                .email
                .as_deref()
                .map(|e| e.chars().take(MAX_EMAIL_CHARS).collect())),
            linked_at: Set(now()),
            ..Default::default()
        }
        .insert(txn)
        .await?;
        Event::own(AuditAction::IdentityLinked, user_id)
            .with(json!({ "provider": provider, "subject": identity.subject }))
            .write(txn, Some(origin))
            .await
    }

    /// Exchanges a callback's one-time code for a session (`amr` `["oidc"]`), or for the
    /// second step when TOTP is on. Counts toward the address's login limit.
    #[instrument(skip_all)]
    pub async fn exchange_oidc_code(
        &self,
        origin: &Origin,
        code: ExchangeCode,
    ) -> Result<AccessToken, AppError> {
        self.limits.refresh_attempt(origin.ip).await?;
        let invalid = || AppError::validation("code", INVALID_EXCHANGE_CODE);
        let hash = token_hash(code.expose());
        let now = now();
        let txn = db::begin_write(&self.db).await?;
        // Spent by a conditional update: of two exchanges at once, one.
        let spent = account_token::Entity::update_many()
            .col_expr(account_token::Column::UsedAt, Expr::value(now))
            .filter(account_token::Column::TokenHash.eq(&hash))
            .filter(account_token::Column::Purpose.eq(EXCHANGE))
            .filter(account_token::Column::UsedAt.is_null())
            .filter(account_token::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await?
            .rows_affected;
        if spent != 1 {
            return Err(invalid());
        }
        let code_row = account_token::Entity::find()
            .filter(account_token::Column::TokenHash.eq(&hash))
            .one(&txn)
            .await?
            .ok_or_else(invalid)?;
        let (user, profile) = user::Entity::find_by_id(code_row.user_id)
            .find_also_related(profile::Entity)
            .one(&txn)
            .await?
            .ok_or_else(invalid)?;
        if user.disabled_at.is_some() {
            return Err(AppError::Forbidden(Refusal::AccountDisabled));
        }
        if self.mail.require_verified_email && !user.email_verified {
            return Err(AppError::Forbidden(Refusal::EmailNotVerified));
        }
        if user.mfa_enabled {
            txn.commit().await?;
            return Err(self.second_factor_due(user.id, Factor::Oidc).await?);
        }
        let user_id = user.id;
        let tokens = self
            .finish_sign_in(&txn, user, profile, origin, &Amr::of(Factor::Oidc))
            .await?;
        txn.commit().await?;
        tracing::info!(user_id, "login succeeded with an OpenID provider");
        Ok(tokens)
    }

    /// The identities linked to the caller's account, oldest first.
    pub async fn my_identities(&self, actor: &Actor) -> Result<Vec<IdentityView>, AppError> {
        let user = self.signed_in(&self.pool(), actor.bearer()?).await?;
        Ok(user_identity::Entity::find()
            .filter(user_identity::Column::UserId.eq(user.id))
            .order_by_asc(user_identity::Column::LinkedAt)
            .order_by_asc(user_identity::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(IdentityView::from)
            .collect())
    }

    /// Unlinks the caller's identity at `provider`; 404 when there is none, 409 when it is
    /// the account's last way to sign in (no password, no passkey, no other identity).
    #[instrument(skip_all)]
    pub async fn unlink_identity(
        &self,
        actor: &Actor,
        origin: &Origin,
        provider: &str,
    ) -> Result<(), AppError> {
        let bearer = actor.bearer()?;
        let txn = db::begin_write(&self.db).await?;
        let user = self.signed_in(&txn, bearer).await?;
        // Under the account's row lock: two removals at once cannot both see another way in.
        for_update(&txn, user::Entity::find_by_id(user.id))
            .one(&txn)
            .await?;
        let identities = user_identity::Entity::find()
            .filter(user_identity::Column::UserId.eq(user.id))
            .all(&txn)
            .await?;
        let Some(identity) = identities.iter().find(|i| i.provider == provider) else {
            return Err(AppError::NotFound(IDENTITY_NOT_FOUND));
        };
        let other_ways = identities.len() > 1
            || user.password_hash != NO_PASSWORD
            || self.passkey_count(&txn, user.id).await? > 0;
        if !other_ways {
            return Err(AppError::Conflict(LAST_WAY_TO_SIGN_IN));
        }
        user_identity::Entity::delete_by_id(identity.id)
            .exec(&txn)
            .await?;
        Event::own(AuditAction::IdentityUnlinked, user.id)
            .with(json!({ "provider": provider, "subject": identity.subject }))
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Deletes flows that ran out and exchange codes past their minute: how many rows went.
    pub async fn prune_oidc(&self) -> Result<u64, AppError> {
        let now = now();
        let flows = oidc_flow::Entity::delete_many()
            .filter(oidc_flow::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await?
            .rows_affected;
        let codes = account_token::Entity::delete_many()
            .filter(account_token::Column::Purpose.eq(EXCHANGE))
            .filter(account_token::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(flows + codes)
    }
}

/// The flow whose `state` hashes to `id`, at `provider`, taken: deleted, so that it is used
/// once (of two takers at once, the one whose delete removed it). `None` when there is no
/// such live flow.
async fn take_flow(
    db: &impl ConnectionTrait,
    id: &str,
    provider: &str,
) -> Result<Option<oidc_flow::Model>, AppError> {
    let Some(flow) = oidc_flow::Entity::find_by_id(id)
        .filter(oidc_flow::Column::Provider.eq(provider))
        .filter(oidc_flow::Column::ExpiresAt.gt(now()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let taken = oidc_flow::Entity::delete_by_id(id)
        .exec(db)
        .await?
        .rows_affected;
    Ok((taken == 1).then_some(flow))
}

/// `redirect_to` (checked when the flow began) with one more query parameter.
fn back_to(redirect_to: &str, (key, value): Back) -> String {
    match url::Url::parse(redirect_to) {
        Ok(mut url) => {
            url.query_pairs_mut().append_pair(key, &value);
            url.into()
        }
        Err(_) => redirect_to.to_owned(),
    }
}
