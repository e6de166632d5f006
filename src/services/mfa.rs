//! Two-factor authentication: TOTP enrolment behind the password, recovery codes, and the
//! second step of a sign-in.
//!
//! - A sign-in whose first factor passed for an account with TOTP on gets a challenge: a
//!   random `mfa_token` (stored as its SHA-256) good for 5 minutes and 5 codes. Each code
//!   reserves one of the token's attempts before it is checked (an atomic update), and one
//!   of the account's password checks (the login lockout), so a parallel burst checks no
//!   more codes than a slow one.
//! - A right code spends the token and opens the session in one write transaction: the
//!   spend is a conditional update, so of two right codes at once exactly one wins.
//! - A TOTP code works once: the account's last accepted step moves forward in a conditional
//!   update, and a code of that step or an earlier one is refused. Confirming the enrolment
//!   sets it, so the confirmation's code cannot sign in.
//! - Recovery codes are stored as SHA-256 hashes of their normalised form and spent by a
//!   conditional update.
//! - The secret is shown once, at enrolment, and is sealed at rest with `MFA_ENCRYPTION_KEY`
//!   (see [`crate::auth::sealing`]); it is never logged and never in an audit entry.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
    sea_query::{Expr, ExprTrait},
};
use serde_json::json;
use tracing::instrument;

use super::{
    AccessToken, Services,
    events::Event,
    query::{end_sessions, for_update, keep_newest, live},
    time::{delta, now},
    tokens::{new_random_token, token_hash},
};
use crate::{
    auth::{
        Actor,
        totp::{self, RECOVERY_CODES},
    },
    db,
    domain::{
        Amr, AuditAction, Confirmation, Factor, INVALID_CODE, INVALID_MFA_TOKEN, MfaCode,
        MfaDisable, MfaVerification, Origin,
    },
    entities::{mfa_challenge, profile, recovery_code, session, user, user_totp},
    error::{AppError, MfaChallenge, PASSWORD_WRONG, Refusal},
    mail::Notice,
};

/// How long the second step of a sign-in may take.
pub const MFA_TOKEN_SECS: u64 = 300;
/// Codes one `mfa_token` may try.
pub const MFA_TOKEN_ATTEMPTS: i32 = 5;
/// Second steps an account may have pending at once (each right password makes one); one more
/// drops the oldest.
const PENDING_CHALLENGES: u64 = 10;
pub const MFA_ALREADY_ENABLED: &str = "Two-factor authentication is already enabled";
pub const MFA_NOT_ENABLED: &str = "Two-factor authentication is not enabled";
pub const NO_ENROLLMENT: &str = "No enrollment in progress";

/// What an account has of second factors.
#[derive(Clone, Debug)]
pub struct MfaStatus {
    pub totp: bool,
    pub recovery_codes_left: u64,
    pub passkeys: u64,
}

/// A pending TOTP secret, shown once: typed in (`secret`) or scanned (`otpauth_uri`).
pub struct TotpEnrollment {
    pub secret: String,
    pub otpauth_uri: String,
}

impl Services {
    /// The caller's second factors.
    pub async fn mfa_status(&self, actor: &Actor) -> Result<MfaStatus, AppError> {
        let user = self.signed_in(&self.pool(), actor.bearer()?).await?;
        Ok(MfaStatus {
            totp: user.mfa_enabled,
            recovery_codes_left: recovery_codes_left(&self.db, user.id).await?,
            passkeys: self.passkey_count(&self.db, user.id).await?,
        })
    }

    /// A new pending TOTP secret for the caller, after checking their password (a wrong one
    /// counts as a failed login). A second call replaces the pending secret.
    #[instrument(skip_all)]
    pub async fn start_totp_enrollment(
        &self,
        actor: &Actor,
        origin: &Origin,
        password: Confirmation,
    ) -> Result<TotpEnrollment, AppError> {
        let bearer = actor.bearer()?;
        let user = self.signed_in(&self.pool(), bearer).await?;
        if user.mfa_enabled {
            return Err(AppError::Conflict(MFA_ALREADY_ENABLED));
        }
        self.confirm_password(origin, &user, &password.0, "password", PASSWORD_WRONG)
            .await?;
        let secret = totp::new_secret()?;
        let sealed = self.sealer.seal(user.id, &secret)?;

        let txn = db::begin_write(&self.db).await?;
        let user = self.signed_in(&txn, bearer).await?;
        if user.mfa_enabled {
            return Err(AppError::Conflict(MFA_ALREADY_ENABLED));
        }
        user_totp::Entity::delete_by_id(user.id).exec(&txn).await?;
        user_totp::ActiveModel {
            user_id: Set(user.id),
            secret: Set(sealed),
            confirmed_at: Set(None),
            last_step: Set(None),
            created_at: Set(now()),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(TotpEnrollment {
            secret: totp::base32(&secret),
            otpauth_uri: totp::otpauth_uri(&self.mfa_issuer, &user.email, &secret),
        })
    }

    /// Turns TOTP on with a code of the pending secret: ten recovery codes are made (and
    /// returned, the only time they are shown) and every other session of the account ends.
    #[instrument(skip_all)]
    pub async fn confirm_totp_enrollment(
        &self,
        actor: &Actor,
        origin: &Origin,
        code: MfaCode,
    ) -> Result<Vec<String>, AppError> {
        let bearer = actor.bearer()?;
        let txn = db::begin_write(&self.db).await?;
        let user = self.signed_in(&txn, bearer).await?;
        let pending = user_totp::Entity::find_by_id(user.id)
            .filter(user_totp::Column::ConfirmedAt.is_null())
            .one(&txn)
            .await?;
        let (Some(pending), false) = (pending, user.mfa_enabled) else {
            return Err(AppError::Conflict(NO_ENROLLMENT));
        };
        let secret = self.sealer.open(user.id, &pending.secret)?.secret;
        let step = match &code {
            MfaCode::Totp(code) => totp::matching_step(&secret, code, unix(now())),
            MfaCode::Recovery(_) => None,
        }
        .ok_or_else(|| AppError::validation("code", INVALID_CODE))?;

        let now = now();
        let mut active: user_totp::ActiveModel = pending.into();
        active.confirmed_at = Set(Some(now));
        // The confirmation's code is spent: it cannot sign in.
        active.last_step = Set(Some(step as i64));
        active.update(&txn).await?;
        set_mfa_enabled(&txn, user.id, true).await?;
        let codes = replace_recovery_codes(&txn, user.id, now).await?;
        let ended = end_sessions(
            &txn,
            live(session::Column::UserId.eq(user.id), now)
                .and(session::Column::Id.ne(bearer.session_id.to_string())),
            now,
        )
        .await?;
        Event::own(AuditAction::MfaEnabled, user.id)
            .with(json!({ "sessions_ended": ended }))
            .write(&txn, Some(origin))
            .await?;
        self.send_security_notice(&txn, &user.email, Notice::TotpEnabled)
            .await?;
        txn.commit().await?;
        self.mail_queued();
        tracing::info!(
            user_id = user.id,
            ended_sessions = ended,
            "two-factor authentication enabled"
        );
        Ok(codes)
    }

    /// Turns TOTP off, with the password and a code (TOTP or recovery); the recovery codes
    /// are void. A wrong password or code counts as a failed login.
    #[instrument(skip_all)]
    pub async fn disable_totp(
        &self,
        actor: &Actor,
        origin: &Origin,
        input: MfaDisable,
    ) -> Result<(), AppError> {
        let bearer = actor.bearer()?;
        let user = self.signed_in(&self.pool(), bearer).await?;
        if !user.mfa_enabled {
            return Err(AppError::Conflict(MFA_NOT_ENABLED));
        }
        self.confirm_password(origin, &user, &input.password, "password", PASSWORD_WRONG)
            .await?;
        let reservation = self.limits.login_attempt(origin.ip, &user.email).await?;
        let txn = db::begin_write(&self.db).await?;
        let Some(factor) = self.accept_code(&txn, user.id, &input.code).await? else {
            drop(txn);
            self.check_failed(
                AuditAction::MfaFailed,
                &user.email,
                Some(user.id),
                reservation,
                origin,
            )
            .await?;
            return Err(AppError::validation("code", INVALID_CODE));
        };
        remove_second_factors(&txn, user.id).await?;
        Event::own(AuditAction::MfaDisabled, user.id)
            .with(json!({ "with": factor.as_str() }))
            .write(&txn, Some(origin))
            .await?;
        self.send_security_notice(&txn, &user.email, Notice::TotpDisabled)
            .await?;
        txn.commit().await?;
        self.mail_queued();
        self.limits.login_succeeded(&user.email, reservation).await;
        tracing::info!(user_id = user.id, "two-factor authentication disabled");
        Ok(())
    }

    /// Ten new recovery codes for the caller, after checking their password; the old ones
    /// are void.
    #[instrument(skip_all)]
    pub async fn regenerate_recovery_codes(
        &self,
        actor: &Actor,
        origin: &Origin,
        password: Confirmation,
    ) -> Result<Vec<String>, AppError> {
        let bearer = actor.bearer()?;
        let user = self.signed_in(&self.pool(), bearer).await?;
        if !user.mfa_enabled {
            return Err(AppError::Conflict(MFA_NOT_ENABLED));
        }
        self.confirm_password(origin, &user, &password.0, "password", PASSWORD_WRONG)
            .await?;
        let txn = db::begin_write(&self.db).await?;
        let user = self.signed_in(&txn, bearer).await?;
        if !user.mfa_enabled {
            return Err(AppError::Conflict(MFA_NOT_ENABLED));
        }
        let codes = replace_recovery_codes(&txn, user.id, now()).await?;
        Event::own(AuditAction::RecoveryCodesRegenerated, user.id)
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        Ok(codes)
    }

    /// The refusal that hands out a sign-in's second step: a new challenge for `user_id`,
    /// whose first factor `first` passed.
    pub(super) async fn second_factor_due(
        &self,
        user_id: i32,
        first: Factor,
    ) -> Result<AppError, AppError> {
        let token = new_random_token()?;
        let now = now();
        // Trimmed and added under the account's row lock (SQLite: the write lock), so that
        // right passwords at once cannot all see room.
        let txn = db::begin_write(&self.db).await?;
        for_update(&txn, user::Entity::find_by_id(user_id))
            .one(&txn)
            .await?;
        keep_newest::<mfa_challenge::Entity>(
            &txn,
            mfa_challenge::Column::UserId.eq(user_id),
            mfa_challenge::Column::CreatedAt,
            mfa_challenge::Column::TokenHash,
            PENDING_CHALLENGES - 1,
        )
        .await?;
        mfa_challenge::ActiveModel {
            token_hash: Set(token_hash(&token)),
            user_id: Set(user_id),
            first_factor: Set(first.as_str().to_owned()),
            attempts: Set(0),
            created_at: Set(now),
            expires_at: Set(now + delta(std::time::Duration::from_secs(MFA_TOKEN_SECS))),
            spent_at: Set(None),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(AppError::MfaRequired(Box::new(MfaChallenge {
            token,
            methods: vec![Factor::Otp.method(), Factor::RecoveryCode.method()],
            expires_in: MFA_TOKEN_SECS,
        })))
    }

    /// The second step of a sign-in: a right code spends the `mfa_token` and opens the
    /// session. A wrong one counts toward the account's lockout (as a wrong password does)
    /// and uses one of the token's five attempts.
    #[instrument(skip_all)]
    pub async fn verify_mfa(
        &self,
        origin: &Origin,
        input: MfaVerification,
    ) -> Result<AccessToken, AppError> {
        let invalid = || AppError::Unauthenticated(INVALID_MFA_TOKEN);
        let hash = token_hash(input.token.expose());
        let now = now();
        let found = mfa_challenge::Entity::find_by_id(&hash)
            .find_also_related(user::Entity)
            .one(&self.db)
            .await?;
        let Some((challenge, Some(user))) = found.filter(|(c, _)| usable(c, now)) else {
            // Guessing tokens counts against the address, as guessing passwords does.
            self.limits.refresh_attempt(origin.ip).await?;
            return Err(invalid());
        };
        let reservation = self.limits.login_attempt(origin.ip, &user.email).await?;
        // One of the token's attempts, taken before the code is checked.
        let reserved = mfa_challenge::Entity::update_many()
            .col_expr(
                mfa_challenge::Column::Attempts,
                Expr::col(mfa_challenge::Column::Attempts).add(1),
            )
            .filter(mfa_challenge::Column::TokenHash.eq(&hash))
            .filter(mfa_challenge::Column::SpentAt.is_null())
            .filter(mfa_challenge::Column::ExpiresAt.gt(now))
            .filter(mfa_challenge::Column::Attempts.lt(MFA_TOKEN_ATTEMPTS))
            .exec(&self.db)
            .await?
            .rows_affected;
        if reserved == 0 {
            self.limits.login_released(&user.email, reservation).await;
            return Err(invalid());
        }

        let txn = db::begin_write(&self.db).await?;
        // Spent first: of two right codes at once, the second finds it spent (and waits for
        // the first's transaction on PostgreSQL, whose row lock it needs).
        let spent = mfa_challenge::Entity::update_many()
            .col_expr(mfa_challenge::Column::SpentAt, Expr::value(now))
            .filter(mfa_challenge::Column::TokenHash.eq(&hash))
            .filter(mfa_challenge::Column::SpentAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected;
        if spent == 0 {
            drop(txn);
            self.limits.login_released(&user.email, reservation).await;
            return Err(invalid());
        }
        let Some(factor) = self.accept_code(&txn, user.id, &input.code).await? else {
            // Rolled back: the token stays unspent, with one attempt fewer.
            drop(txn);
            self.check_failed(
                AuditAction::MfaFailed,
                &user.email,
                Some(user.id),
                reservation,
                origin,
            )
            .await?;
            return Err(AppError::validation("code", INVALID_CODE));
        };
        // Read again inside the transaction: disabled, deleted or reset meanwhile?
        let Some((user, profile)) = user::Entity::find_by_id(user.id)
            .find_also_related(profile::Entity)
            .one(&txn)
            .await?
            .filter(|(user, _)| user.mfa_enabled)
        else {
            self.limits.login_released(&user.email, reservation).await;
            return Err(invalid());
        };
        if user.disabled_at.is_some() {
            self.limits.login_released(&user.email, reservation).await;
            return Err(AppError::Forbidden(Refusal::AccountDisabled));
        }
        if factor == Factor::RecoveryCode {
            let left = recovery_codes_left(&txn, user.id).await?;
            Event::own(AuditAction::RecoveryCodeUsed, user.id)
                .with(json!({ "recovery_codes_left": left }))
                .write(&txn, Some(origin))
                .await?;
        }
        let email = user.email.clone();
        let user_id = user.id;
        let first = Factor::from_stored(&challenge.first_factor).unwrap_or(Factor::Password);
        let amr = Amr::of(first).and(factor);
        let tokens = self
            .finish_sign_in(&txn, user, profile, origin, &amr)
            .await?;
        txn.commit().await?;
        self.limits.login_succeeded(&email, reservation).await;
        tracing::info!(user_id, "login succeeded with a second factor");
        Ok(tokens)
    }

    /// Removes an account's TOTP, recovery codes, pending sign-ins and passkeys (an admin's
    /// reset, in the caller's transaction).
    pub(super) async fn reset_second_factors(
        &self,
        txn: &impl ConnectionTrait,
        user_id: i32,
    ) -> Result<(), AppError> {
        remove_second_factors(txn, user_id).await?;
        self.remove_passkeys(txn, user_id).await
    }

    /// Checks `code` for account `user_id` in `txn` and spends it: a TOTP code of a step after
    /// the last accepted one, or an unused recovery code. `None` when it is neither.
    async fn accept_code(
        &self,
        txn: &impl ConnectionTrait,
        user_id: i32,
        code: &MfaCode,
    ) -> Result<Option<Factor>, AppError> {
        match code {
            MfaCode::Totp(code) => {
                let Some(row) = user_totp::Entity::find_by_id(user_id)
                    .filter(user_totp::Column::ConfirmedAt.is_not_null())
                    .one(txn)
                    .await?
                else {
                    return Ok(None);
                };
                let opened = self.sealer.open(user_id, &row.secret)?;
                let Some(step) = totp::matching_step(&opened.secret, code, unix(now())) else {
                    return Ok(None);
                };
                let step = step as i64;
                let mut update = user_totp::Entity::update_many()
                    .col_expr(user_totp::Column::LastStep, Expr::value(step))
                    .filter(user_totp::Column::UserId.eq(user_id))
                    .filter(
                        user_totp::Column::LastStep
                            .is_null()
                            .or(user_totp::Column::LastStep.lt(step)),
                    );
                if opened.stale {
                    // Sealed with a retired key (or not at all): sealed with the current one now.
                    let sealed = self.sealer.seal(user_id, &opened.secret)?;
                    update = update.col_expr(user_totp::Column::Secret, Expr::value(sealed));
                }
                let accepted = update.exec(txn).await?.rows_affected == 1;
                Ok(accepted.then_some(Factor::Otp))
            }
            MfaCode::Recovery(code) => {
                let used = recovery_code::Entity::update_many()
                    .col_expr(recovery_code::Column::UsedAt, Expr::value(now()))
                    .filter(recovery_code::Column::UserId.eq(user_id))
                    .filter(recovery_code::Column::CodeHash.eq(token_hash(code)))
                    .filter(recovery_code::Column::UsedAt.is_null())
                    .exec(txn)
                    .await?
                    .rows_affected;
                Ok((used > 0).then_some(Factor::RecoveryCode))
            }
        }
    }
}

impl Factor {
    /// The name of the kind of code, as `mfa_methods` lists it.
    fn method(self) -> &'static str {
        match self {
            Self::RecoveryCode => "recovery_code",
            Self::Otp => "totp",
            other => other.as_str(),
        }
    }
}

/// Is the challenge still good at `now`?
fn usable(challenge: &mfa_challenge::Model, now: DateTime<Utc>) -> bool {
    challenge.spent_at.is_none()
        && challenge.expires_at > now
        && challenge.attempts < MFA_TOKEN_ATTEMPTS
}

fn unix(time: DateTime<Utc>) -> u64 {
    u64::try_from(time.timestamp()).unwrap_or_default()
}

async fn recovery_codes_left(db: &impl ConnectionTrait, user_id: i32) -> Result<u64, AppError> {
    Ok(recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .count(db)
        .await?)
}

async fn set_mfa_enabled(
    db: &impl ConnectionTrait,
    user_id: i32,
    enabled: bool,
) -> Result<(), AppError> {
    user::Entity::update_many()
        .col_expr(user::Column::MfaEnabled, Expr::value(enabled))
        .col_expr(user::Column::UpdatedAt, Expr::value(now()))
        .filter(user::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Ten new recovery codes for `user_id` in place of its old ones; returns them as shown.
async fn replace_recovery_codes(
    db: &impl ConnectionTrait,
    user_id: i32,
    now: DateTime<Utc>,
) -> Result<Vec<String>, AppError> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    let codes = totp::new_recovery_codes()?;
    let rows = codes.iter().map(|code| recovery_code::ActiveModel {
        user_id: Set(user_id),
        code_hash: Set(token_hash(&MfaCode::normalise(code))),
        used_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    });
    recovery_code::Entity::insert_many(rows).exec(db).await?;
    debug_assert_eq!(codes.len(), RECOVERY_CODES);
    Ok(codes)
}

/// TOTP off, recovery codes and pending sign-ins gone.
async fn remove_second_factors(db: &impl ConnectionTrait, user_id: i32) -> Result<(), AppError> {
    user_totp::Entity::delete_by_id(user_id).exec(db).await?;
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    mfa_challenge::Entity::delete_many()
        .filter(mfa_challenge::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    set_mfa_enabled(db, user_id, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_codes_hash_as_typed_ones_do() {
        for code in totp::new_recovery_codes().unwrap() {
            let typed = code.to_uppercase().replace('-', " ");
            let MfaCode::Recovery(read) = MfaCode::parse(typed).unwrap() else {
                panic!("a recovery code read as TOTP");
            };
            assert_eq!(token_hash(&read), token_hash(&MfaCode::normalise(&code)));
        }
    }
}
