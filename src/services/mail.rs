//! Mail in the service layer: the outbox and its worker, and the account tokens that links
//! in messages carry.
//!
//! - A message is a row of `mail_outbox`, written in the transaction of the change that
//!   causes it: if the change commits, the message will be sent; if not, it never existed.
//! - The worker claims due rows for a while (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the
//!   write lock on SQLite), so replicas never send one message at the same time; delivers
//!   them; and marks them sent, or due again after a backoff. A worker that dies holding a
//!   claim loses it when the claim runs out: delivery is at least once.
//! - A sent message keeps its row (recipient, subject, times) but not its content: the links
//!   it carried hold tokens, which the database otherwise keeps only as hashes.
//! - Account tokens are 32 random bytes, stored as SHA-256, single use; issuing one voids the
//!   earlier unused ones of the same purpose.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, QuerySelect, Set, Statement, sea_query::Expr,
};
use tracing::instrument;

use super::{
    Services,
    events::Event,
    query::{end_sessions, live, unique_violation_as},
    time::{delta, now},
    tokens::{new_account_token, token_hash},
};
use crate::{
    auth::Actor,
    db,
    domain::{AccountToken, AuditAction, Email, Origin, PasswordReset},
    entities::{account_token, mail_outbox, session, user},
    error::{AppError, EMAIL_TAKEN},
    mail::{Letter, Notice, Template},
};

pub const INVALID_TOKEN: &str = "Invalid or expired token.";
pub const ALREADY_VERIFIED: &str = "Email already verified";

/// How long a worker holds the messages it claimed: longer than one delivery may take (the
/// SMTP timeout is 10 s), so another replica never takes a message still being sent.
const CLAIM: Duration = Duration::from_secs(30);
/// Messages claimed at once: one, so that each claim outlasts its own delivery (a batch sent
/// one after another to a slow server could outlive its claim).
const BATCH: u64 = 1;
/// The wait after the first failed attempt; it doubles with each further one.
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between two attempts.
const LONGEST_RETRY: Duration = Duration::from_secs(300);

const VERIFY: &str = "verify";
const RESET: &str = "reset";
/// The link in the old address's notice of an email change: it puts that address back.
const UNDO_EMAIL: &str = "undo_email";
/// How long the undo link of an email change works; while it does, no other account may
/// take the address it restores.
const UNDO_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Every forgot-password request takes at least this long, whether a message goes or not,
/// so the time of the answer does not tell whether an account exists.
const FORGOT_TAKES: Duration = Duration::from_millis(250);

impl Services {
    /// Writes a message to `to` into the outbox, in `db`'s transaction. Call
    /// [`Services::mail_queued`] once it commits.
    pub(super) async fn enqueue(
        &self,
        db: &impl ConnectionTrait,
        to: &str,
        letter: Letter,
    ) -> Result<(), AppError> {
        let now = now();
        mail_outbox::ActiveModel {
            recipient: Set(to.to_owned()),
            subject: Set(letter.subject),
            text_body: Set(letter.text),
            html_body: Set(letter.html),
            created_at: Set(now),
            attempts: Set(0),
            next_attempt_at: Set(now),
            claimed_until: Set(None),
            sent_at: Set(None),
            last_error: Set(None),
            ..Default::default()
        }
        .insert(db)
        .await?;
        Ok(())
    }

    /// The link to one of the account pages (`/account/{page}`) with `token`.
    fn page_link(&self, page: &str, token: &str) -> String {
        format!("{}/account/{page}?token={token}", self.mail.public_url)
    }

    /// Wakes the mail worker (after a transaction that queued mail committed).
    pub(super) fn mail_queued(&self) {
        self.mail_wake.notify_one();
    }

    /// Issues a verification token for `email` (voiding the user's earlier ones) and queues
    /// the message that carries its link, in `db`'s transaction.
    pub(super) async fn send_verification(
        &self,
        db: &impl ConnectionTrait,
        user_id: i32,
        email: &str,
    ) -> Result<(), AppError> {
        let ttl = self.mail.verify_ttl;
        let token = issue_account_token(db, user_id, VERIFY, email, ttl).await?;
        let link = self.page_link("verify-email", &token);
        let letter = Template::VerifyEmail {
            email,
            link: &link,
            hours: ttl.as_secs() / 3600,
        }
        .render();
        self.enqueue(db, email, letter).await
    }

    /// Tells the old address of an account that it changed, with a link that undoes the
    /// change (its token is for the old address, and issuing it voids no earlier one: a thief
    /// changing the address twice must not void the owner's link), in `db`'s transaction.
    pub(super) async fn send_email_changed(
        &self,
        db: &impl ConnectionTrait,
        user_id: i32,
        old_email: &str,
        new_email: &str,
    ) -> Result<(), AppError> {
        let token = new_account_token(db, user_id, UNDO_EMAIL, old_email, UNDO_TTL).await?;
        let link = self.page_link("undo-email-change", &token);
        let notice = Template::EmailChanged {
            email: old_email,
            new_email,
            undo_link: &link,
            days: UNDO_TTL.as_secs() / (24 * 3600),
        }
        .render();
        self.enqueue(db, old_email, notice).await
    }

    /// Tells the account's address of a change of how it signs in, in `db`'s transaction.
    pub(super) async fn send_security_notice(
        &self,
        db: &impl ConnectionTrait,
        email: &str,
        notice: Notice,
    ) -> Result<(), AppError> {
        let letter = Template::SecurityNotice { email, notice }.render();
        self.enqueue(db, email, letter).await
    }

    /// Is `email` the one an unexpired undo link of another account (than `except`) would
    /// restore? Such an address is not free: whoever moved an account off it must not be
    /// able to register it and so block the owner's way back.
    pub(super) async fn address_reserved(
        &self,
        db: &impl ConnectionTrait,
        email: &str,
        except: Option<i32>,
    ) -> Result<bool, AppError> {
        let mut query = account_token::Entity::find()
            .filter(account_token::Column::Email.eq(email))
            .filter(account_token::Column::Purpose.eq(UNDO_EMAIL))
            .filter(account_token::Column::UsedAt.is_null())
            .filter(account_token::Column::ExpiresAt.gt(now()));
        if let Some(user_id) = except {
            query = query.filter(account_token::Column::UserId.ne(user_id));
        }
        Ok(query.count(db).await? > 0)
    }

    /// Undoes an email change with the token of the link sent to the old address: that
    /// address is the account's again (verified: the link reached it), every session ends,
    /// every other pending link of the account dies, and a password-reset link goes to the
    /// restored address. Whoever changed the address keeps nothing.
    #[instrument(skip_all)]
    pub async fn undo_email_change(
        &self,
        origin: &Origin,
        token: AccountToken,
    ) -> Result<(), AppError> {
        let txn = db::begin_write(&self.db).await?;
        let now = now();
        let (row, user) = use_account_token(&txn, &token, UNDO_EMAIL, now).await?;
        let user_id = user.id;
        let changed_to = user.email.clone();
        account_token::Entity::update_many()
            .col_expr(account_token::Column::UsedAt, Expr::value(now))
            .filter(account_token::Column::UserId.eq(user_id))
            .filter(account_token::Column::UsedAt.is_null())
            .exec(&txn)
            .await?;
        let mut active: user::ActiveModel = user.into();
        active.email = Set(row.email.clone());
        active.email_verified = Set(true);
        active.updated_at = Set(now);
        active
            .update(&txn)
            .await
            .map_err(unique_violation_as(AppError::Conflict(EMAIL_TAKEN)))?;
        let ended = end_sessions(&txn, live(session::Column::UserId.eq(user_id), now), now).await?;
        self.queue_reset_link(&txn, user_id, &row.email).await?;
        Event::on(AuditAction::EmailChanged, user_id)
            .with(serde_json::json!({
                "from": changed_to,
                "to": row.email,
                "undo": true,
                "sessions_ended": ended,
            }))
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        self.mail_queued();
        tracing::info!(user_id, "email change undone");
        Ok(())
    }

    /// Confirms the address a verification token was sent to (if it is still the account's).
    #[instrument(skip_all)]
    pub async fn verify_email(&self, origin: &Origin, token: AccountToken) -> Result<(), AppError> {
        let txn = db::begin_write(&self.db).await?;
        let now = now();
        let (row, user) = use_account_token(&txn, &token, VERIFY, now).await?;
        if user.email != row.email {
            // The address changed since the link was sent.
            return Err(AppError::validation("token", INVALID_TOKEN));
        }
        if !user.email_verified {
            let mut active: user::ActiveModel = user.into();
            active.email_verified = Set(true);
            active.updated_at = Set(now);
            active.update(&txn).await?;
            Event::on(AuditAction::EmailVerified, row.user_id)
                .write(&txn, Some(origin))
                .await?;
        }
        txn.commit().await?;
        tracing::info!(user_id = row.user_id, "email verified");
        Ok(())
    }

    /// Sends the caller a new verification message; 409 when the address is verified.
    #[instrument(skip_all)]
    pub async fn request_email_verification(&self, actor: &Actor) -> Result<(), AppError> {
        let bearer = actor.bearer()?;
        let txn = db::begin_write(&self.db).await?;
        let user = self.signed_in(&txn, bearer).await?;
        if user.email_verified {
            return Err(AppError::Conflict(ALREADY_VERIFIED));
        }
        self.limits.verification_mail(user.id).await?;
        self.send_verification(&txn, user.id, &user.email).await?;
        txn.commit().await?;
        self.mail_queued();
        Ok(())
    }

    /// Sends a password-reset link to `email` if it is an account's (at most 3 an hour), and
    /// answers the same, after the same time, either way. 429 past the address's limit.
    #[instrument(skip_all)]
    pub async fn forgot_password(&self, origin: &Origin, email: &str) -> Result<(), AppError> {
        let email =
            Email::lookup(email).map_err(|message| AppError::validation("email", message))?;
        let per_hour = u64::from(self.mail.recovery_per_ip_per_hour);
        self.limits.recovery_request(origin.ip, per_hour).await?;
        let until = tokio::time::Instant::now() + FORGOT_TAKES;
        let sent = self.send_reset(origin, &email).await;
        tokio::time::sleep_until(until).await;
        sent
    }

    /// Issues a reset token (voiding the earlier ones) and queues its link to `email`.
    async fn queue_reset_link(
        &self,
        db: &impl ConnectionTrait,
        user_id: i32,
        email: &str,
    ) -> Result<(), AppError> {
        let ttl = self.mail.reset_ttl;
        let token = issue_account_token(db, user_id, RESET, email, ttl).await?;
        let link = self.page_link("reset-password", &token);
        let letter = Template::ResetPassword {
            link: &link,
            minutes: ttl.as_secs() / 60,
        }
        .render();
        self.enqueue(db, email, letter).await
    }

    async fn send_reset(&self, origin: &Origin, email: &str) -> Result<(), AppError> {
        let Some(user) = self.find_user_by_email(email).await? else {
            return Ok(());
        };
        if !self.limits.recovery_mail(&user.email).await {
            tracing::info!(
                user_id = user.id,
                "reset messages for this account are at their limit; none sent"
            );
            return Ok(());
        }
        let txn = db::begin_write(&self.db).await?;
        self.queue_reset_link(&txn, user.id, &user.email).await?;
        Event::on(AuditAction::PasswordResetRequested, user.id)
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        self.mail_queued();
        Ok(())
    }

    /// Sets a new password with a reset token: every session ends, the lockout is cleared,
    /// and the address counts as verified (the link reached it).
    #[instrument(skip_all)]
    pub async fn reset_password(
        &self,
        origin: &Origin,
        reset: PasswordReset,
    ) -> Result<(), AppError> {
        // The token first: a bad one costs no hashing.
        find_live_token(&self.db, &reset.token, RESET, now()).await?;
        let password_hash = self.hasher.hash(&reset.new).await?;
        let txn = db::begin_write(&self.db).await?;
        let now = now();
        let (row, user) = use_account_token(&txn, &reset.token, RESET, now).await?;
        if user.email != row.email {
            return Err(AppError::validation("token", INVALID_TOKEN));
        }
        let email = user.email.clone();
        let mut active: user::ActiveModel = user.into();
        active.password_hash = Set(password_hash);
        if !*active.email_verified.as_ref() {
            active.email_verified = Set(true);
            active.updated_at = Set(now);
        }
        active.update(&txn).await?;
        let ended = end_sessions(
            &txn,
            live(session::Column::UserId.eq(row.user_id), now),
            now,
        )
        .await?;
        Event::on(AuditAction::PasswordReset, row.user_id)
            .with(serde_json::json!({ "sessions_ended": ended }))
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        self.limits.clear_lockout(&email).await;
        tracing::info!(user_id = row.user_id, "password reset");
        Ok(())
    }

    /// Messages not yet sent (due, or waiting for a retry), for the metrics.
    pub async fn mail_backlog(&self) -> Result<u64, AppError> {
        let max = i32::try_from(self.mail.max_attempts).unwrap_or(i32::MAX);
        Ok(mail_outbox::Entity::find()
            .filter(mail_outbox::Column::SentAt.is_null())
            .filter(mail_outbox::Column::Attempts.lt(max))
            .count(&self.db)
            .await?)
    }

    /// Delivers the messages that are due; returns how many it tried.
    pub async fn deliver_mail(&self) -> Result<usize, AppError> {
        let claimed = self.claim_mail().await?;
        for message in &claimed {
            let letter = Letter {
                subject: message.subject.clone(),
                text: message.text_body.clone(),
                html: message.html_body.clone(),
            };
            let outcome = self
                .mailer
                .send(
                    message.id,
                    message.created_at.timestamp_micros(),
                    &message.recipient,
                    &letter,
                )
                .await;
            let mut active: mail_outbox::ActiveModel = message.clone().into();
            active.claimed_until = Set(None);
            let now = now();
            match outcome {
                Ok(()) => {
                    active.sent_at = Set(Some(now));
                    active.last_error = Set(None);
                    // The content held a token's link; once sent, the database forgets it.
                    active.text_body = Set(String::new());
                    active.html_body = Set(String::new());
                    tracing::info!(message_id = message.id, "mail sent");
                }
                Err(error) => {
                    let attempts = message.attempts.max(1) as u32;
                    if attempts >= self.mail.max_attempts {
                        tracing::error!(message_id = message.id, attempts, %error, "mail given up");
                    } else {
                        tracing::warn!(message_id = message.id, attempts, %error, "mail delivery failed; will retry");
                    }
                    active.next_attempt_at = Set(now + delta(retry_after(attempts)));
                    active.last_error = Set(Some(error.chars().take(500).collect()));
                }
            }
            active.update(&self.db).await?;
        }
        Ok(claimed.len())
    }

    /// Claims up to [`BATCH`] due messages for [`CLAIM`], counting an attempt on each.
    async fn claim_mail(&self) -> Result<Vec<mail_outbox::Model>, AppError> {
        let backend = self.db.get_database_backend();
        let now = now();
        let max = i32::try_from(self.mail.max_attempts).unwrap_or(i32::MAX);
        // A read first: an idle worker (the usual case) takes no write lock.
        let due = mail_outbox::Entity::find()
            .select_only()
            .column(mail_outbox::Column::Id)
            .filter(mail_outbox::Column::SentAt.is_null())
            .filter(mail_outbox::Column::Attempts.lt(max))
            .filter(mail_outbox::Column::NextAttemptAt.lte(now))
            .filter(
                Condition::any()
                    .add(mail_outbox::Column::ClaimedUntil.is_null())
                    .add(mail_outbox::Column::ClaimedUntil.lt(now)),
            )
            .into_tuple::<i32>()
            .one(&self.db)
            .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let until = now + delta(CLAIM);
        let sql = match backend {
            DbBackend::Postgres => {
                "UPDATE mail_outbox SET claimed_until = $1, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM mail_outbox \
                   WHERE sent_at IS NULL AND attempts < $2 AND next_attempt_at <= $3 \
                   AND (claimed_until IS NULL OR claimed_until < $3) \
                   ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
                 RETURNING *"
            }
            _ => {
                "UPDATE mail_outbox SET claimed_until = ?, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM mail_outbox \
                   WHERE sent_at IS NULL AND attempts < ? AND next_attempt_at <= ? \
                   AND (claimed_until IS NULL OR claimed_until < ?) \
                   ORDER BY id LIMIT ?) \
                 RETURNING *"
            }
        };
        let values: Vec<sea_orm::Value> = match backend {
            DbBackend::Postgres => {
                vec![until.into(), max.into(), now.into(), (BATCH as i64).into()]
            }
            _ => vec![
                until.into(),
                max.into(),
                now.into(),
                now.into(),
                (BATCH as i64).into(),
            ],
        };
        // One statement: on SQLite it runs under the write lock, on PostgreSQL the rows it
        // claims are skipped by every other replica's claim.
        let txn = db::begin_write(&self.db).await?;
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        txn.commit().await?;
        let mut claimed = rows
            .iter()
            .map(|row| mail_outbox::Model::from_query_result(row, ""))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }
}

/// The wait before attempt `attempts + 1`: 2 s, 4 s, 8 s, … up to 5 minutes.
fn retry_after(attempts: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
        .min(LONGEST_RETRY)
}

/// A new token for `purpose`, stored as its hash; the user's earlier unused ones of that
/// purpose stop working. Returns the token itself, for the link.
async fn issue_account_token(
    db: &impl ConnectionTrait,
    user_id: i32,
    purpose: &str,
    email: &str,
    ttl: Duration,
) -> Result<String, AppError> {
    account_token::Entity::update_many()
        .col_expr(account_token::Column::UsedAt, Expr::value(now()))
        .filter(account_token::Column::UserId.eq(user_id))
        .filter(account_token::Column::Purpose.eq(purpose))
        .filter(account_token::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    new_account_token(db, user_id, purpose, email, ttl).await
}

/// A live (unused, unexpired) token of `purpose` and its user; 400 on `token` otherwise.
async fn find_live_token(
    db: &impl ConnectionTrait,
    token: &AccountToken,
    purpose: &str,
    now: DateTime<Utc>,
) -> Result<(account_token::Model, user::Model), AppError> {
    let invalid = || AppError::validation("token", INVALID_TOKEN);
    let (row, user) = account_token::Entity::find()
        .filter(account_token::Column::TokenHash.eq(token_hash(token.expose())))
        .filter(account_token::Column::Purpose.eq(purpose))
        .find_also_related(user::Entity)
        .one(db)
        .await?
        .ok_or_else(invalid)?;
    let user = user.ok_or_else(invalid)?;
    if row.used_at.is_some() || row.expires_at <= now {
        return Err(invalid());
    }
    Ok((row, user))
}

/// Spends a live token of `purpose`: the token's row and its user; 400 on `token` otherwise.
async fn use_account_token(
    db: &impl ConnectionTrait,
    token: &AccountToken,
    purpose: &str,
    now: DateTime<Utc>,
) -> Result<(account_token::Model, user::Model), AppError> {
    let (row, user) = find_live_token(db, token, purpose, now).await?;
    let mut active: account_token::ActiveModel = row.clone().into();
    active.used_at = Set(Some(now));
    active.update(db).await?;
    Ok((row, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_five_minutes() {
        let waits: Vec<u64> = (1..=10).map(|a| retry_after(a).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
