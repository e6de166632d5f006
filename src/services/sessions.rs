//! Sessions: what a login opens and a refresh extends, and what logout, revocation, a
//! password change and account deletion end.
//!
//! - An access token names its session (`sid`). Every authenticated service call loads the
//!   caller's user row joined to that session, live (not revoked, not expired): one query,
//!   and a session ended on any replica is refused on the very next request.
//! - A refresh token is 32 random bytes, stored as its SHA-256. Each refresh spends it (and
//!   any other live token of the session) and issues one new token, so a session has at
//!   most one live token at a time: one chain. A spent token used again within the grace
//!   window gets a new pair for the same session (two tabs refreshing at once); used later,
//!   it is taken as stolen and the whole session ends (RFC 9700 §4.14).
//! - Refreshes are serialised per session: the session row is locked (PostgreSQL) or the
//!   database's write lock is held (SQLite) while the token is checked and replaced.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    sea_query::{Expr, ExprTrait},
};
use serde_json::json;
use tracing::instrument;
use uuid::Uuid;

use super::{
    AccessToken, Account, Services,
    events::Event,
    query::{end_sessions, for_update, live},
    time::{delta, now},
    tokens::{new_random_token, token_hash},
};
use crate::{
    auth::{Actor, Bearer},
    db,
    domain::{Amr, AuditAction, Confirmation, Factor, Origin, PasswordChange, RefreshToken},
    entities::{mfa_challenge, profile, refresh_token, session, user, webauthn_flow},
    error::{AppError, NOT_AUTHENTICATED, PASSWORD_WRONG, Refusal},
};

pub use crate::domain::INVALID_REFRESH_TOKEN;
pub const SESSION_NOT_FOUND: &str = "Session not found";
pub const CURRENT_PASSWORD_WRONG: &str = "Current password is incorrect.";

/// One of the caller's live sessions.
#[derive(Clone, Debug)]
pub struct SessionView {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The session of the token that asked.
    pub current: bool,
}

impl Services {
    /// Where every sign-in ends once all its factors are in, whatever the first was: the
    /// account's last login is now, a session opens (its tokens carry `amr`), and the login is
    /// recorded; all in the caller's transaction.
    pub(super) async fn finish_sign_in(
        &self,
        txn: &impl ConnectionTrait,
        user: user::Model,
        profile: Option<profile::Model>,
        origin: &Origin,
        amr: &Amr,
    ) -> Result<AccessToken, AppError> {
        let user_id = user.id;
        let mut active: user::ActiveModel = user.into();
        active.last_login_at = Set(Some(now()));
        let user = active.update(txn).await?;
        let tokens = self.open_session(txn, user, profile, origin, amr).await?;
        let amr_names = amr.names().collect::<Vec<_>>();
        let mut event = Event::own(AuditAction::Login, user_id)
            .session(json!({ "id": tokens.session_id, "amr": amr_names }));
        // A password alone is the plain case; the factors of any other sign-in are kept.
        if *amr != Amr::of(Factor::Password) {
            event = event.with(json!({ "amr": amr_names }));
        }
        event.write(txn, Some(origin)).await?;
        Ok(tokens)
    }

    /// Opens a session for `user` (in the caller's transaction) and issues its first pair.
    async fn open_session(
        &self,
        db: &impl ConnectionTrait,
        user: user::Model,
        profile: Option<profile::Model>,
        origin: &Origin,
        amr: &Amr,
    ) -> Result<AccessToken, AppError> {
        let now = now();
        let session = session::ActiveModel {
            id: Set(Uuid::new_v4().to_string()),
            user_id: Set(user.id),
            created_at: Set(now),
            last_used_at: Set(now),
            expires_at: Set(self.session_expiry(now, now)),
            revoked_at: Set(None),
            user_agent: Set(origin.user_agent.clone()),
            ip: Set(Some(origin.ip.to_string())),
            amr: Set(amr.to_stored()),
        }
        .insert(db)
        .await?;
        self.issue_pair(db, &session, Account::new(user, profile), now)
            .await
    }

    /// Exchanges a refresh token for a new pair (see the module comment for the rules).
    #[instrument(skip_all)]
    pub async fn refresh(
        &self,
        origin: &Origin,
        token: RefreshToken,
    ) -> Result<AccessToken, AppError> {
        self.limits.refresh_attempt(origin.ip).await?;
        let invalid = || AppError::Unauthenticated(INVALID_REFRESH_TOKEN);
        let hash = token_hash(token.expose());

        let txn = db::begin_write(&self.db).await?;
        let Some(presented) = find_token(&txn, &hash).await? else {
            return Err(invalid());
        };
        let session = for_update(&txn, session::Entity::find_by_id(&presented.session_id))
            .one(&txn)
            .await?
            .ok_or_else(invalid)?;
        let (user, profile) = user::Entity::find_by_id(session.user_id)
            .find_also_related(profile::Entity)
            .one(&txn)
            .await?
            .ok_or_else(invalid)?;
        // A disabled account's sessions have ended; its tokens say why.
        if user.disabled_at.is_some() {
            return Err(AppError::Forbidden(Refusal::AccountDisabled));
        }
        // The time once the lock is held: refreshes of one session see it move forward.
        let now = now();
        if session.revoked_at.is_some() || session.expires_at <= now {
            return Err(invalid());
        }
        // Read again under the lock: a refresh that held it first may have spent the token.
        let presented = find_token(&txn, &hash).await?.ok_or_else(invalid)?;
        if let Some(spent_at) = presented.spent_at
            && now - spent_at > delta(self.sessions.reuse_grace)
        {
            let user_id = session.user_id;
            end_sessions(&txn, session::Column::Id.eq(&session.id), now).await?;
            Event::on(AuditAction::RefreshReuse, user_id)
                .with(json!({ "session": session.id }))
                .write(&txn, Some(origin))
                .await?;
            txn.commit().await?;
            tracing::warn!(
                user_id,
                "a spent refresh token was used again after its grace window; session ended"
            );
            return Err(invalid());
        }
        let created_at = session.created_at;
        let mut active: session::ActiveModel = session.into();
        active.last_used_at = Set(now);
        active.expires_at = Set(self.session_expiry(created_at, now));
        active.user_agent = Set(origin.user_agent.clone());
        active.ip = Set(Some(origin.ip.to_string()));
        let session = active.update(&txn).await?;
        let pair = self
            .issue_pair(&txn, &session, Account::new(user, profile), now)
            .await?;
        txn.commit().await?;
        Ok(pair)
    }

    /// Ends the caller's session.
    #[instrument(skip_all)]
    pub async fn logout(&self, actor: &Actor, origin: &Origin) -> Result<(), AppError> {
        let bearer = actor.bearer()?;
        let now = now();
        let txn = db::begin_write(&self.db).await?;
        let ended = end_sessions(
            &txn,
            live(session::Column::Id.eq(bearer.session_id.to_string()), now)
                .and(session::Column::UserId.eq(bearer.user_id)),
            now,
        )
        .await?;
        if ended == 0 {
            return Err(AppError::Unauthenticated(NOT_AUTHENTICATED));
        }
        Event::own(AuditAction::Logout, bearer.user_id)
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Ends every session of the caller, this one included; returns how many.
    #[instrument(skip_all)]
    pub async fn logout_all(&self, actor: &Actor, origin: &Origin) -> Result<u64, AppError> {
        let bearer = actor.bearer()?;
        let now = now();
        let txn = db::begin_write(&self.db).await?;
        self.signed_in(&txn, bearer).await?;
        let ended = end_sessions(
            &txn,
            live(session::Column::UserId.eq(bearer.user_id), now),
            now,
        )
        .await?;
        Event::own(AuditAction::Logout, bearer.user_id)
            .with(json!({ "sessions_ended": ended }))
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        Ok(ended)
    }

    /// The caller's live sessions, most recently used first.
    pub async fn my_sessions(&self, actor: &Actor) -> Result<Vec<SessionView>, AppError> {
        let bearer = actor.bearer()?;
        // One query: the caller's own session must be among them, or the token is dead.
        let sessions = self
            .live_sessions(bearer.user_id, bearer.session_id)
            .await?;
        if !sessions.iter().any(|s| s.current) {
            return Err(AppError::Unauthenticated(NOT_AUTHENTICATED));
        }
        Ok(sessions)
    }

    /// The live sessions of account `user_id`, most recently used first; `current` marks
    /// session `current`.
    pub(super) async fn live_sessions(
        &self,
        user_id: i32,
        current: Uuid,
    ) -> Result<Vec<SessionView>, AppError> {
        let current = current.to_string();
        let sessions = session::Entity::find()
            .filter(live(session::Column::UserId.eq(user_id), now()))
            .order_by_desc(session::Column::LastUsedAt)
            .order_by_desc(session::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(sessions
            .into_iter()
            .map(|s| SessionView {
                current: s.id == current,
                id: s.id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect())
    }

    /// Ends one of the caller's live sessions (their own included); 404 for any other id.
    #[instrument(skip_all)]
    pub async fn revoke_session(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: &str,
    ) -> Result<(), AppError> {
        let bearer = actor.bearer()?;
        let not_found = || AppError::NotFound(SESSION_NOT_FOUND);
        let txn = db::begin_write(&self.db).await?;
        self.signed_in(&txn, bearer).await?;
        // Ids are made as hyphenated lower-case UUIDs; anything else names no session.
        let id = Uuid::try_parse(id).map_err(|_| not_found())?.to_string();
        let now = now();
        let ended = end_sessions(
            &txn,
            live(session::Column::Id.eq(&id), now).and(session::Column::UserId.eq(bearer.user_id)),
            now,
        )
        .await?;
        if ended == 0 {
            return Err(not_found());
        }
        Event::own(AuditAction::SessionsRevoked, bearer.user_id)
            .with(json!({ "session": id }))
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Changes the caller's password after checking the current one (a wrong one counts as
    /// a failed login), and ends every other session.
    #[instrument(skip_all)]
    pub async fn change_password(
        &self,
        actor: &Actor,
        origin: &Origin,
        change: PasswordChange,
    ) -> Result<(), AppError> {
        let bearer = actor.bearer()?;
        let user = self.signed_in(&self.pool(), bearer).await?;
        self.confirm_password(
            origin,
            &user,
            &change.current,
            "current_password",
            CURRENT_PASSWORD_WRONG,
        )
        .await?;
        let password_hash = self.hasher.hash(&change.new).await?;

        let now = now();
        let txn = db::begin_write(&self.db).await?;
        // Still signed in? The session may have ended while the hash ran.
        let user = self.signed_in(&txn, bearer).await?;
        let mut active: user::ActiveModel = user.into();
        active.password_hash = Set(password_hash);
        active.update(&txn).await?;
        let others = end_sessions(
            &txn,
            live(session::Column::UserId.eq(bearer.user_id), now)
                .and(session::Column::Id.ne(bearer.session_id.to_string())),
            now,
        )
        .await?;
        Event::own(AuditAction::PasswordChanged, bearer.user_id)
            .with(json!({ "sessions_ended": others }))
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        tracing::info!(
            user_id = bearer.user_id,
            ended_sessions = others,
            "password changed"
        );
        Ok(())
    }

    /// Deletes the caller's account after checking their password: the user row and, with
    /// it, the profile, sessions and refresh tokens (one statement; the foreign keys
    /// cascade); then the photo files.
    #[instrument(skip_all)]
    pub async fn delete_account(
        &self,
        actor: &Actor,
        origin: &Origin,
        confirmation: Confirmation,
    ) -> Result<(), AppError> {
        let bearer = actor.bearer()?;
        let user = self.signed_in(&self.pool(), bearer).await?;
        self.confirm_password(origin, &user, &confirmation.0, "password", PASSWORD_WRONG)
            .await?;

        let txn = db::begin_write(&self.db).await?;
        let user = self.signed_in(&txn, bearer).await?;
        // Recorded first: the event's webhook payload describes the account as it was.
        Event::own(AuditAction::AccountDeleted, user.id)
            .write(&txn, Some(origin))
            .await?;
        user::Entity::delete_by_id(user.id).exec(&txn).await?;
        txn.commit().await?;
        self.photos.remove_user(bearer.user_id).await;
        tracing::info!(user_id = bearer.user_id, "account deleted");
        Ok(())
    }

    /// Deletes sessions that ended (revoked or expired), with their tokens, spent tokens that
    /// would have expired by now anyway (a reuse of one is refused as unknown), and expired
    /// second steps of sign-ins and passkey ceremonies. Returns how many rows went.
    pub async fn prune_sessions(&self) -> Result<u64, AppError> {
        let now = now();
        let sessions = session::Entity::delete_many()
            .filter(
                session::Column::RevokedAt
                    .is_not_null()
                    .or(session::Column::ExpiresAt.lte(now)),
            )
            .exec(&self.db)
            .await?
            .rows_affected;
        let tokens = refresh_token::Entity::delete_many()
            .filter(refresh_token::Column::SpentAt.is_not_null())
            .filter(refresh_token::Column::CreatedAt.lte(now - delta(self.sessions.refresh_ttl)))
            .exec(&self.db)
            .await?
            .rows_affected;
        // Second steps of sign-ins that were taken or ran out.
        let challenges = mfa_challenge::Entity::delete_many()
            .filter(mfa_challenge::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await?
            .rows_affected
            + webauthn_flow::Entity::delete_many()
                .filter(webauthn_flow::Column::ExpiresAt.lte(now))
                .exec(&self.db)
                .await?
                .rows_affected;
        if sessions + tokens + challenges > 0 {
            tracing::info!(
                sessions,
                tokens,
                challenges,
                "pruned ended sessions, old refresh tokens and expired second steps"
            );
        }
        Ok(sessions + tokens + challenges)
    }

    /// Checks `password` against the user's hash, as a login attempt would be counted: a
    /// wrong one is a failed login for the lockout, and is answered as a 400 on `field`.
    pub(super) async fn confirm_password(
        &self,
        origin: &Origin,
        user: &user::Model,
        password: &str,
        field: &str,
        wrong: &str,
    ) -> Result<(), AppError> {
        let reservation = self.limits.login_attempt(origin.ip, &user.email).await?;
        if self.hasher.verify(password, &user.password_hash).await? {
            self.limits.login_succeeded(&user.email, reservation).await;
            Ok(())
        } else {
            self.login_failed(&user.email, Some(user.id), reservation, origin)
                .await?;
            Err(AppError::validation(field, wrong))
        }
    }

    /// Spends every live refresh token of `session` and issues a new one with an access
    /// token: the session's only live chain.
    async fn issue_pair(
        &self,
        db: &impl ConnectionTrait,
        session: &session::Model,
        account: Account,
        now: DateTime<Utc>,
    ) -> Result<AccessToken, AppError> {
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::SpentAt, Expr::value(now))
            .filter(refresh_token::Column::SessionId.eq(&session.id))
            .filter(refresh_token::Column::SpentAt.is_null())
            .exec(db)
            .await?;
        let refresh_token = new_random_token()?;
        refresh_token::ActiveModel {
            session_id: Set(session.id.clone()),
            token_hash: Set(token_hash(&refresh_token)),
            created_at: Set(now),
            spent_at: Set(None),
            ..Default::default()
        }
        .insert(db)
        .await?;
        let session_id = Uuid::try_parse(&session.id).map_err(AppError::internal)?;
        let access = self.jwt.issue(
            Bearer {
                user_id: session.user_id,
                session_id,
            },
            &Amr::from_stored(&session.amr),
        )?;
        Ok(AccessToken {
            session_id: session.id.clone(),
            token: access.token,
            expires_in: access.expires_in,
            refresh_token,
            refresh_expires_in: std::cmp::max((session.expires_at - now).num_seconds(), 0) as u64,
            account,
        })
    }

    /// When a session used at `now` ends: `REFRESH_TOKEN_DAYS` later, but never more than
    /// `SESSION_MAX_DAYS` after it began.
    fn session_expiry(&self, created_at: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        std::cmp::min(
            now + delta(self.sessions.refresh_ttl),
            created_at + delta(self.sessions.max_age),
        )
    }
}

async fn find_token(
    db: &impl ConnectionTrait,
    hash: &str,
) -> Result<Option<refresh_token::Model>, AppError> {
    Ok(refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash))
        .one(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_long_random_and_url_safe() {
        let a = new_random_token().unwrap();
        let b = new_random_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
