//! Query pieces every feature shares: live sessions, ending them, row locks, and unique-key
//! violations turned into a conflict. A leaf: it imports no feature.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, JoinType, QueryFilter, QueryOrder,
    QuerySelect, Related, SqlErr,
    sea_query::{Expr, ExprTrait},
};

use crate::{
    auth::Bearer,
    entities::{session, user},
    error::AppError,
};

/// `query` (which reaches `users`) restricted to the bearer's live session.
pub(super) fn live_session<Q: QuerySelect + QueryFilter>(
    query: Q,
    bearer: Bearer,
    now: DateTime<Utc>,
) -> Q {
    query
        .join(
            JoinType::InnerJoin,
            <user::Entity as Related<session::Entity>>::to(),
        )
        .filter(live(
            session::Column::Id.eq(bearer.session_id.to_string()),
            now,
        ))
        // A disabled account's sessions end when it is disabled; this keeps one that a
        // racing login opened from working.
        .filter(user::Column::DisabledAt.is_null())
}

/// `condition` on sessions, and the session neither revoked nor expired.
pub(super) fn live(condition: Expr, now: DateTime<Utc>) -> Expr {
    condition
        .and(session::Column::RevokedAt.is_null())
        .and(session::Column::ExpiresAt.gt(now))
}

/// Marks the sessions matching `condition` revoked; returns how many.
pub(super) async fn end_sessions(
    db: &impl ConnectionTrait,
    condition: Expr,
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    Ok(session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(condition)
        .exec(db)
        .await?
        .rows_affected)
}

/// Deletes the rows of `E` matching `owner` but the `keep` newest (by `created`; `id` is the
/// text key): what bounds one account's pending ceremonies, however many it starts.
pub(super) async fn keep_newest<E: EntityTrait>(
    db: &impl ConnectionTrait,
    owner: Expr,
    created: E::Column,
    id: E::Column,
    keep: u64,
) -> Result<(), AppError> {
    let newest: Vec<String> = E::find()
        .filter(owner.clone())
        .order_by_desc(created)
        .limit(keep)
        .select_only()
        .column(id)
        .into_tuple()
        .all(db)
        .await?;
    E::delete_many()
        .filter(owner)
        .filter(id.is_not_in(newest))
        .exec(db)
        .await?;
    Ok(())
}

/// `select` holding its rows until the transaction ends. SQLite has no row locks (and no
/// `FOR UPDATE`); there the transaction's `BEGIN IMMEDIATE` already serialises writers.
pub(super) fn for_update<E: EntityTrait>(
    db: &impl ConnectionTrait,
    select: sea_orm::Select<E>,
) -> sea_orm::Select<E> {
    match db.get_database_backend() {
        DbBackend::Postgres => select.lock_exclusive(),
        _ => select,
    }
}

/// Turns a unique-key violation into `conflict`, anything else into the usual mapping.
pub(super) fn unique_violation_as(conflict: AppError) -> impl FnOnce(DbErr) -> AppError {
    move |err| match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => conflict,
        _ => err.into(),
    }
}
