//! Administration: the account list (keyset pages, search, filters), and what an admin may do
//! to another account: disable, enable, change its role, end its sessions, reset its second
//! factors, delete it. Also
//! the command line's bootstrap (`create-admin`, `set-role`).
//!
//! - Whether the caller is an admin is read from their row on every call (with their live
//!   session, one query), so a role taken away counts at once.
//! - Nothing here acts on the caller's own account: an admin cannot lock themself out.
//! - A disabled account's sessions end in the transaction that disables it; besides, the
//!   query that checks every token refuses the sessions of a disabled account, so a login
//!   racing the disabling cannot leave a working token behind.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Expr, ExprTrait, LikeExpr, Query, UnionType, extension::postgres::PgExpr},
};
use serde_json::json;
use tracing::instrument;

use super::{
    Account, Page, Services, SessionView,
    events::Event,
    query::{end_sessions, for_update, live, unique_violation_as},
    time::now,
};
use crate::{
    auth::Actor,
    db,
    domain::{
        AuditAction, CursorKind, NewAccount, Origin, PageRequest, Role, UserFilter, UserStatus,
    },
    entities::{profile, session, user},
    error::{AppError, EMAIL_TAKEN, Refusal},
};

pub const NOT_ON_YOURSELF: &str = "Not allowed on your own account.";
pub const USER_NOT_FOUND: &str = "User not found";

impl Services {
    /// A page of accounts, newest first (admins only).
    #[instrument(skip_all)]
    pub async fn users(
        &self,
        actor: &Actor,
        page: PageRequest,
        filter: UserFilter,
    ) -> Result<Page<Account>, AppError> {
        self.admin(&self.pool(), actor).await?;
        let condition = user_condition(&filter, self.db.get_database_backend());
        let count = user::Entity::find()
            .filter(condition.clone())
            .count(&self.db);
        let mut rows = user::Entity::find()
            .find_also_related(profile::Entity)
            .filter(condition);
        if let Some(after) = page.after {
            rows = rows.filter(user::Column::Id.lt(after.0));
        }
        let rows = rows
            .order_by_desc(user::Column::Id)
            .limit(page.first + 1)
            .all(&self.db);
        // Two connections: the page's answer waits for the slower of the two, not both.
        let (total, rows) = tokio::try_join!(count, rows)?;
        Ok(Page::of(rows, page, total, CursorKind::Users, |(u, p)| {
            Some((i64::from(u.id), Account::new(u, p)))
        }))
    }

    /// One account (admins only); `None` when there is no such account.
    pub async fn user(&self, actor: &Actor, id: i32) -> Result<Option<Account>, AppError> {
        self.admin(&self.pool(), actor).await?;
        Ok(user::Entity::find_by_id(id)
            .find_also_related(profile::Entity)
            .one(&self.db)
            .await?
            .map(|(u, p)| Account::new(u, p)))
    }

    /// The live sessions of account `user_id`, most recently used first: one's own, or any
    /// account's for an admin.
    pub async fn sessions_of(
        &self,
        actor: &Actor,
        user_id: i32,
    ) -> Result<Vec<SessionView>, AppError> {
        let bearer = actor.bearer()?;
        if bearer.user_id != user_id {
            self.admin(&self.pool(), actor).await?;
        }
        let sessions = self.live_sessions(user_id, bearer.session_id).await?;
        if bearer.user_id == user_id && !sessions.iter().any(|s| s.current) {
            // One's own list without one's own session: the token is dead.
            self.signed_in(&self.pool(), bearer).await?;
        }
        Ok(sessions)
    }

    /// Disables the account and ends its sessions.
    #[instrument(skip_all, fields(user_id = id))]
    pub async fn disable_user(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: i32,
    ) -> Result<Account, AppError> {
        let txn = db::begin_write(&self.db).await?;
        let (admin, target) = self.target(&txn, actor, id).await?;
        let target = if target.disabled_at.is_none() {
            let now = now();
            let mut active: user::ActiveModel = target.into();
            active.disabled_at = Set(Some(now));
            active.updated_at = Set(now);
            let target = active.update(&txn).await?;
            let ended = end_sessions(&txn, live(session::Column::UserId.eq(id), now), now).await?;
            Event::on(AuditAction::UserDisabled, id)
                .by(Some(admin.id))
                .with(json!({ "sessions_ended": ended }))
                .write(&txn, Some(origin))
                .await?;
            target
        } else {
            target
        };
        let account = account_of(&txn, target).await?;
        txn.commit().await?;
        Ok(account)
    }

    /// Lets a disabled account log in again.
    #[instrument(skip_all, fields(user_id = id))]
    pub async fn enable_user(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: i32,
    ) -> Result<Account, AppError> {
        let txn = db::begin_write(&self.db).await?;
        let (admin, target) = self.target(&txn, actor, id).await?;
        let target = if target.disabled_at.is_some() {
            let mut active: user::ActiveModel = target.into();
            active.disabled_at = Set(None);
            active.updated_at = Set(now());
            let target = active.update(&txn).await?;
            Event::on(AuditAction::UserEnabled, id)
                .by(Some(admin.id))
                .write(&txn, Some(origin))
                .await?;
            target
        } else {
            target
        };
        let account = account_of(&txn, target).await?;
        txn.commit().await?;
        Ok(account)
    }

    /// Gives the account `role`.
    #[instrument(skip_all, fields(user_id = id))]
    pub async fn set_user_role(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: i32,
        role: Role,
    ) -> Result<Account, AppError> {
        let txn = db::begin_write(&self.db).await?;
        let (admin, target) = self.target(&txn, actor, id).await?;
        let target = change_role(&txn, target, role, Some(admin.id), Some(origin)).await?;
        let account = account_of(&txn, target).await?;
        txn.commit().await?;
        Ok(account)
    }

    /// Ends every session of the account; returns how many ended.
    #[instrument(skip_all, fields(user_id = id))]
    pub async fn revoke_user_sessions(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: i32,
    ) -> Result<u64, AppError> {
        let txn = db::begin_write(&self.db).await?;
        let (admin, _) = self.target(&txn, actor, id).await?;
        let now = now();
        let ended = end_sessions(&txn, live(session::Column::UserId.eq(id), now), now).await?;
        Event::on(AuditAction::SessionsRevoked, id)
            .by(Some(admin.id))
            .with(json!({ "sessions_ended": ended }))
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        Ok(ended)
    }

    /// Removes an account's second factors (TOTP, recovery codes, passkeys) and ends its
    /// sessions: the way back for someone who lost their phone and their codes.
    #[instrument(skip_all, fields(user_id = id))]
    pub async fn reset_user_mfa(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: i32,
    ) -> Result<(), AppError> {
        let txn = db::begin_write(&self.db).await?;
        let (admin, _) = self.target(&txn, actor, id).await?;
        self.reset_second_factors(&txn, id).await?;
        let now = now();
        let ended = end_sessions(&txn, live(session::Column::UserId.eq(id), now), now).await?;
        Event::on(AuditAction::MfaReset, id)
            .by(Some(admin.id))
            .with(json!({ "sessions_ended": ended }))
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        tracing::info!(user_id = id, "second factors reset by an admin");
        Ok(())
    }

    /// Deletes the account with its profile, sessions and photo files.
    #[instrument(skip_all, fields(user_id = id))]
    pub async fn delete_user(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: i32,
    ) -> Result<(), AppError> {
        let txn = db::begin_write(&self.db).await?;
        let (admin, _) = self.target(&txn, actor, id).await?;
        // Recorded first: the event's webhook payload describes the account as it was.
        Event::on(AuditAction::UserDeleted, id)
            .by(Some(admin.id))
            .write(&txn, Some(origin))
            .await?;
        user::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        self.photos.remove_user(id).await;
        tracing::info!(by = admin.id, "account deleted by an admin");
        Ok(())
    }

    /// Makes the account with this email an admin (command line); `None` when there is none.
    pub async fn promote(&self, email: &str) -> Result<Option<Account>, AppError> {
        self.set_role_by_email(email, Role::Admin).await
    }

    /// Gives the account with this email `role` (command line); `None` when there is none.
    pub async fn set_role_by_email(
        &self,
        email: &str,
        role: Role,
    ) -> Result<Option<Account>, AppError> {
        let txn = db::begin_write(&self.db).await?;
        let Some(target) = user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .one(&txn)
            .await?
        else {
            return Ok(None);
        };
        let target = change_role(&txn, target, role, None, None).await?;
        let account = account_of(&txn, target).await?;
        txn.commit().await?;
        Ok(Some(account))
    }

    /// Creates an admin account (command line): verified, since the operator vouches for
    /// the address; no message is sent.
    pub async fn create_admin(&self, new: NewAccount) -> Result<Account, AppError> {
        let password_hash = self.hasher.hash(&new.password).await?;
        let now = now();
        let txn = db::begin_write(&self.db).await?;
        let user = user::ActiveModel {
            email: Set(new.email.into_inner()),
            password_hash: Set(password_hash),
            email_verified: Set(true),
            role: Set(Role::Admin.as_str().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(unique_violation_as(AppError::Conflict(EMAIL_TAKEN)))?;
        let profile = profile::ActiveModel {
            user_id: Set(user.id),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        Event::on(AuditAction::Register, user.id)
            .with(json!({ "via": "command line", "role": Role::Admin.as_str() }))
            .write(&txn, None)
            .await?;
        txn.commit().await?;
        Ok(Account::new(user, Some(profile)))
    }

    /// In `txn`: the signed-in admin and the account `id` they act on, both rows locked
    /// until the transaction ends (in id order, so two admins acting on each other at once
    /// wait for one another instead of deadlocking). The admin's row is checked again once
    /// locked: an admin disabled or demoted a moment ago by another can no longer act. 400
    /// for their own account, 404 when there is none.
    async fn target(
        &self,
        txn: &DatabaseTransaction,
        actor: &Actor,
        id: i32,
    ) -> Result<(user::Model, user::Model), AppError> {
        let admin = self.admin(txn, actor).await?;
        if admin.id == id {
            return Err(AppError::validation("id", NOT_ON_YOURSELF));
        }
        let rows = for_update(
            txn,
            user::Entity::find()
                .filter(user::Column::Id.is_in([admin.id, id]))
                .order_by_asc(user::Column::Id),
        )
        .all(txn)
        .await?;
        let mut admin = None;
        let mut target = None;
        for row in rows {
            if row.id == id {
                target = Some(row);
            } else {
                admin = Some(row);
            }
        }
        let admin = admin
            .filter(|a| a.disabled_at.is_none() && Role::from_stored(&a.role) == Role::Admin)
            .ok_or(AppError::Forbidden(Refusal::NotAllowed))?;
        let target = target.ok_or(AppError::NotFound(USER_NOT_FOUND))?;
        Ok((admin, target))
    }
}

/// Sets `target`'s role (and `updated_at`) and records it, when it changes.
async fn change_role(
    txn: &DatabaseTransaction,
    target: user::Model,
    role: Role,
    by: Option<i32>,
    origin: Option<&Origin>,
) -> Result<user::Model, AppError> {
    let from = Role::from_stored(&target.role);
    if from == role {
        return Ok(target);
    }
    let id = target.id;
    let mut active: user::ActiveModel = target.into();
    active.role = Set(role.as_str().to_owned());
    active.updated_at = Set(now());
    let target = active.update(txn).await?;
    let mut details = json!({ "from": from.as_str(), "to": role.as_str() });
    if by.is_none() {
        details["via"] = json!("command line");
    }
    Event::on(AuditAction::RoleChanged, id)
        .by(by)
        .with(details)
        .write(txn, origin)
        .await?;
    Ok(target)
}

/// The account view of `user`, with its profile's name.
async fn account_of(db: &impl ConnectionTrait, user: user::Model) -> Result<Account, AppError> {
    let name = profile::Entity::find()
        .filter(profile::Column::UserId.eq(user.id))
        .one(db)
        .await?
        .and_then(|p| p.name);
    Ok(Account::named(user, name))
}

/// The filters of the account list, as one condition on `users`. The search is a substring
/// of the email or of the profile's name, in any case: `ILIKE` on PostgreSQL (served by the
/// trigram indexes), `LIKE` on SQLite (which ignores ASCII case). Each side is its own
/// subquery, so each can use its own index.
fn user_condition(filter: &UserFilter, backend: DbBackend) -> Condition {
    let mut condition = Condition::all();
    if let Some(search) = &filter.search {
        let pattern = LikeExpr::new(format!("%{}%", escape_like(search)));
        let matches = |column: Expr| match backend {
            // Backslash is PostgreSQL's default escape (sea-query cannot write `ESCAPE`
            // after `ILIKE`).
            DbBackend::Postgres => column.ilike(pattern.clone()),
            _ => column.like(pattern.clone().escape('\\')),
        };
        let mut by_email = Query::select()
            .column(user::Column::Id)
            .from(user::Entity)
            .and_where(matches(Expr::col(user::Column::Email)))
            .to_owned();
        let by_name = Query::select()
            .column(profile::Column::UserId)
            .from(profile::Entity)
            .and_where(matches(Expr::col(profile::Column::Name)))
            .to_owned();
        let matching = by_email.union(UnionType::Distinct, by_name).to_owned();
        condition = condition.add(user::Column::Id.in_subquery(matching));
    }
    match filter.status {
        Some(UserStatus::Active) => condition = condition.add(user::Column::DisabledAt.is_null()),
        Some(UserStatus::Disabled) => {
            condition = condition.add(user::Column::DisabledAt.is_not_null())
        }
        None => {}
    }
    if let Some(role) = filter.role {
        condition = condition.add(user::Column::Role.eq(role.as_str()));
    }
    condition
}

/// `text` with `\`, `%` and `_` escaped for a `LIKE … ESCAPE '\'` pattern.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_the_text_literally() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
        assert_eq!(escape_like("plain"), "plain");
    }
}
