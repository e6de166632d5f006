//! Accounts: registration, login, and the account view (`me`, `updateMe`).

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use tracing::instrument;

use super::{
    Services,
    events::Event,
    prepared::{self, ReadSource},
    query::unique_violation_as,
    time::now,
    webhook_outbox,
};
use crate::{
    auth::{Actor, Bearer},
    db,
    domain::{
        AccountPatch, Amr, AuditAction, Credentials, Factor, NewAccount, Origin, Patch, Role,
    },
    entities::{profile, user},
    error::{AppError, BAD_CREDENTIALS, EMAIL_TAKEN, NOT_AUTHENTICATED, Refusal},
    limits::Reservation,
};

/// The account view: the user's row and the name kept on their profile.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: i32,
    pub email: String,
    /// A link sent to `email` was followed.
    pub email_verified: bool,
    pub name: Option<String>,
    pub role: Role,
    /// It may not log in, and it has no live sessions.
    pub disabled: bool,
    /// TOTP is on: a sign-in needs a code after the password.
    pub mfa_enabled: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Account {
    pub(super) fn new(user: user::Model, profile: Option<profile::Model>) -> Self {
        Self::named(user, profile.and_then(|p| p.name))
    }

    /// The account with its profile's `name`.
    pub(super) fn named(user: user::Model, name: Option<String>) -> Self {
        Self {
            id: user.id,
            email: user.email,
            email_verified: user.email_verified,
            name,
            role: Role::from_stored(&user.role),
            disabled: user.disabled_at.is_some(),
            mfa_enabled: user.mfa_enabled,
            last_login_at: user.last_login_at,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// A bearer token for the API, the refresh token that renews it, and the account.
pub struct AccessToken {
    /// The session it belongs to (the token's `sid`).
    pub session_id: String,
    pub token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds until the session ends unless it is refreshed.
    pub refresh_expires_in: u64,
    pub account: Account,
}

impl Services {
    /// Creates the user and an empty profile (holding `name`, if given) in one transaction.
    #[instrument(skip_all)]
    pub async fn register(&self, origin: &Origin, new: NewAccount) -> Result<Account, AppError> {
        self.limits.registration(origin.ip).await?;
        self.hasher.admit()?;
        let conflict = || AppError::Conflict(EMAIL_TAKEN);
        // Saves a bcrypt run on the common case; the unique index decides under a race.
        if self.find_user_by_email(new.email.as_str()).await?.is_some()
            || self
                .address_reserved(&self.db, new.email.as_str(), None)
                .await?
        {
            return Err(conflict());
        }
        let password_hash = self.hasher.hash(&new.password).await?;
        let now = now();

        let txn = db::begin_write(&self.db).await?;
        let user = user::ActiveModel {
            email: Set(new.email.into_inner()),
            password_hash: Set(password_hash),
            email_verified: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(unique_violation_as(conflict()))?;
        let profile = profile::ActiveModel {
            user_id: Set(user.id),
            name: Set(new.name.map(|n| n.into_inner())),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        self.send_verification(&txn, user.id, &user.email).await?;
        Event::own(AuditAction::Register, user.id)
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        self.mail_queued();

        tracing::info!(user_id = user.id, "account registered");
        Ok(Account::new(user, Some(profile)))
    }

    /// Checks the credentials, opens a session and issues its tokens. Unknown email and wrong
    /// password give the same error after the same amount of work. Every attempt counts
    /// against the client address; the password check is reserved against the account's
    /// limit before it runs, so parallel attempts cannot check more passwords than the limit
    /// allows.
    #[instrument(skip_all)]
    pub async fn login(
        &self,
        origin: &Origin,
        credentials: Credentials,
    ) -> Result<AccessToken, AppError> {
        let result = self.try_login(origin, credentials).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(AppError::Unauthenticated(_)) => "bad_credentials",
            Err(AppError::RateLimited { .. }) => "rate_limited",
            Err(AppError::Forbidden(Refusal::AccountDisabled)) => "disabled",
            Err(AppError::Forbidden(_)) => "unverified",
            Err(AppError::Busy { .. }) => "busy",
            Err(AppError::MfaRequired(_)) => "mfa_required",
            Err(_) => "error",
        };
        metrics::counter!("logins_total", "outcome" => outcome).increment(1);
        result
    }

    async fn try_login(
        &self,
        origin: &Origin,
        credentials: Credentials,
    ) -> Result<AccessToken, AppError> {
        // A full hash queue refuses before the account's reservation is taken.
        self.hasher.admit()?;
        let reservation = self
            .limits
            .login_attempt(origin.ip, &credentials.email)
            .await?;
        // The profile comes along in the same query: the answer carries the account.
        let found = user::Entity::find()
            .filter(user::Column::Email.eq(&credentials.email))
            .find_also_related(profile::Entity)
            .one(&self.db)
            .await?;
        let matched = match &found {
            Some((user, _)) => {
                self.hasher
                    .verify(&credentials.password, &user.password_hash)
                    .await?
            }
            None => self.hasher.verify_dummy(&credentials.password).await?,
        };
        let Some((user, profile)) = found.as_ref().filter(|_| matched).cloned() else {
            let user_id = found.map(|(user, _)| user.id);
            self.login_failed(&credentials.email, user_id, reservation, origin)
                .await?;
            return Err(AppError::Unauthenticated(BAD_CREDENTIALS));
        };
        // The right password alone opens no session of an account with a second factor, and
        // resets nothing: only a completed sign-in does.
        if user.mfa_enabled {
            self.limits
                .login_released(&credentials.email, reservation)
                .await;
        } else {
            self.limits
                .login_succeeded(&credentials.email, reservation)
                .await;
        }
        if user.disabled_at.is_some() {
            return Err(AppError::Forbidden(Refusal::AccountDisabled));
        }
        if self.mail.require_verified_email && !user.email_verified {
            return Err(AppError::Forbidden(Refusal::EmailNotVerified));
        }
        if user.mfa_enabled {
            return Err(self.second_factor_due(user.id, Factor::Password).await?);
        }
        let user_id = user.id;
        let txn = db::begin_write(&self.db).await?;
        let tokens = self
            .finish_sign_in(&txn, user, profile, origin, &Amr::of(Factor::Password))
            .await?;
        txn.commit().await?;
        tracing::info!(user_id, "login succeeded");
        Ok(tokens)
    }

    /// The caller's account; 401 when the token's user or session is gone.
    pub async fn me(&self, actor: &Actor) -> Result<Account, AppError> {
        let (user, profile) = self.my_account(&self.pool(), actor.bearer()?).await?;
        Ok(Account::new(user, profile))
    }

    /// Changes the caller's email and/or name. The name lives on the profile; setting it when
    /// the profile was deleted creates the profile again.
    #[instrument(skip_all)]
    pub async fn update_me(
        &self,
        actor: &Actor,
        origin: &Origin,
        patch: AccountPatch,
    ) -> Result<Account, AppError> {
        if patch.is_empty() {
            return self.me(actor).await;
        }
        let bearer = actor.bearer()?;
        let user_id = bearer.user_id;
        let now = now();
        let txn = db::begin_write(&self.db).await?;
        let (user, profile) = self.my_account(&txn, bearer).await?;

        let old_email = user.email.clone();
        let new_email = patch
            .email
            .map(|e| e.into_inner())
            .filter(|e| *e != old_email);
        if let Some(email) = &new_email {
            // Counted before anything can refuse it: trying taken addresses is an enumeration.
            self.limits.email_change(user_id).await?;
            if self.address_reserved(&txn, email, Some(user_id)).await? {
                return Err(AppError::Conflict(EMAIL_TAKEN));
            }
        }
        let mut user: user::ActiveModel = user.into();
        if let Some(email) = &new_email {
            // A new address is unverified until a link sent to it is followed.
            user.email = Set(email.clone());
            user.email_verified = Set(false);
        }
        user.updated_at = Set(now);
        let user = user
            .update(&txn)
            .await
            .map_err(unique_violation_as(AppError::Conflict(EMAIL_TAKEN)))?;
        if let Some(new_email) = &new_email {
            self.send_verification(&txn, user_id, new_email).await?;
            self.send_email_changed(&txn, user_id, &old_email, new_email)
                .await?;
            Event::own(AuditAction::EmailChanged, user_id)
                .with(serde_json::json!({ "from": old_email, "to": new_email }))
                .write(&txn, Some(origin))
                .await?;
        }

        let name_changed = !matches!(patch.name, Patch::Keep);
        let profile = match (patch.name, profile) {
            (Patch::Keep, profile) => profile,
            (Patch::Clear, None) => None,
            (name, Some(profile)) => {
                let mut profile: profile::ActiveModel = profile.into();
                profile.name = Set(match name {
                    Patch::Set(name) => Some(name.into_inner()),
                    Patch::Keep | Patch::Clear => None,
                });
                profile.updated_at = Set(now);
                Some(profile.update(&txn).await?)
            }
            (Patch::Set(name), None) => Some(
                profile::ActiveModel {
                    user_id: Set(user_id),
                    name: Set(Some(name.into_inner())),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&txn)
                .await?,
            ),
        };
        // An email change is a recorded event (and so `user.updated`); a new name alone is a
        // webhook event only.
        if new_email.is_none() && name_changed {
            webhook_outbox::enqueue(&txn, "user.updated", user_id, None).await?;
        }
        txn.commit().await?;
        if new_email.is_some() {
            self.mail_queued();
        }
        Ok(Account::new(user, profile))
    }

    /// The caller's user row and profile, if their session is live: one query.
    async fn my_account(
        &self,
        db: &impl ReadSource,
        bearer: Bearer,
    ) -> Result<(user::Model, Option<profile::Model>), AppError> {
        prepared::account(db, bearer, now())
            .await?
            .ok_or(AppError::Unauthenticated(NOT_AUTHENTICATED))
    }

    /// Counts a failed password check against the account (and locks it at the limit), and
    /// records it when the account exists.
    pub(super) async fn login_failed(
        &self,
        email: &str,
        user_id: Option<i32>,
        reservation: Reservation,
        origin: &Origin,
    ) -> Result<(), AppError> {
        self.check_failed(
            AuditAction::LoginFailed,
            email,
            user_id,
            reservation,
            origin,
        )
        .await
    }

    /// Records a failed check of kind `action` (`login_failed`, `mfa_failed`): it counts
    /// toward the account's lockout, and the one that locks it records that too.
    pub(super) async fn check_failed(
        &self,
        action: AuditAction,
        email: &str,
        user_id: Option<i32>,
        reservation: Reservation,
        origin: &Origin,
    ) -> Result<(), AppError> {
        let locked = self.limits.login_failed(email, reservation).await;
        let Some(user_id) = user_id else {
            return Ok(());
        };
        let txn = db::begin_write(&self.db).await?;
        Event::on(action, user_id).write(&txn, Some(origin)).await?;
        if let Some(lock) = locked {
            Event::on(AuditAction::AccountLocked, user_id)
                .with(serde_json::json!({ "lock_secs": lock.as_secs() }))
                .write(&txn, Some(origin))
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    pub(super) async fn find_user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<user::Model>, AppError> {
        Ok(user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .one(&self.db)
            .await?)
    }
}
