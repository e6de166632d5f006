//! The audit log: security events, each written in the transaction of the change it records
//! (a failed login, which changes nothing, on its own). An event keeps its time, action,
//! actor, subject, client address and request id, and small details (a role's old and new
//! value, a count); never a password, hash or token. Admins page through all of it; each
//! account sees the events about itself. Events older than `AUDIT_RETENTION_DAYS` are pruned.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    sea_query::ExprTrait,
};
use tracing::instrument;

use super::{
    Page, Services,
    time::{delta, now},
};
use crate::{
    auth::Actor,
    domain::{AuditAction, CursorKind, PageRequest},
    entities::audit_event,
    error::AppError,
};

/// One security event, as read back.
#[derive(Clone, Debug)]
pub struct AuditEventView {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub action: AuditAction,
    /// Who acted: an account, or none (anonymous, or the command line).
    pub actor_id: Option<i32>,
    /// The account acted on.
    pub subject_id: Option<i32>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// A JSON object, when the event has more to say.
    pub details: Option<String>,
}

impl Services {
    /// Every event, newest first (admins only); `user_id` keeps those it acted in or was the
    /// subject of, `action` those of one kind.
    #[instrument(skip_all)]
    pub async fn audit_events(
        &self,
        actor: &Actor,
        page: PageRequest,
        user_id: Option<i32>,
        action: Option<AuditAction>,
    ) -> Result<Page<AuditEventView>, AppError> {
        self.admin(&self.pool(), actor).await?;
        let mut select = audit_event::Entity::find();
        if let Some(user_id) = user_id {
            select = select.filter(
                audit_event::Column::SubjectId
                    .eq(user_id)
                    .or(audit_event::Column::ActorId.eq(user_id)),
            );
        }
        if let Some(action) = action {
            select = select.filter(audit_event::Column::Action.eq(action.as_str()));
        }
        self.event_page(select, page).await
    }

    /// The events about the caller's own account, newest first.
    #[instrument(skip_all)]
    pub async fn my_security_events(
        &self,
        actor: &Actor,
        page: PageRequest,
    ) -> Result<Page<AuditEventView>, AppError> {
        let user = self.signed_in(&self.pool(), actor.bearer()?).await?;
        let select = audit_event::Entity::find().filter(audit_event::Column::SubjectId.eq(user.id));
        self.event_page(select, page).await
    }

    /// Deletes the events older than the retention period; returns how many went.
    pub async fn prune_audit(&self) -> Result<u64, AppError> {
        let pruned = audit_event::Entity::delete_many()
            .filter(audit_event::Column::CreatedAt.lt(now() - delta(self.audit_retention)))
            .exec(&self.db)
            .await?
            .rows_affected;
        if pruned > 0 {
            tracing::info!(pruned, "pruned audit events past their retention");
        }
        Ok(pruned)
    }

    async fn event_page(
        &self,
        select: Select<audit_event::Entity>,
        page: PageRequest,
    ) -> Result<Page<AuditEventView>, AppError> {
        // Only the actions this version knows (a newer replica may write others).
        let select = select
            .filter(audit_event::Column::Action.is_in(AuditAction::ALL.map(AuditAction::as_str)));
        let count = select.clone().count(&self.db);
        let mut rows = select;
        if let Some(after) = page.after {
            rows = rows.filter(audit_event::Column::Id.lt(after.0));
        }
        let rows = rows
            .order_by_desc(audit_event::Column::Id)
            .limit(page.first + 1)
            .all(&self.db);
        // Two connections: the page's answer waits for the slower of the two, not both.
        let (total, rows) = tokio::try_join!(count, rows)?;
        Ok(Page::of(rows, page, total, CursorKind::AuditEvents, |e| {
            let view = AuditEventView {
                id: e.id,
                created_at: e.created_at,
                action: AuditAction::from_stored(&e.action)?,
                actor_id: e.actor_id,
                subject_id: e.subject_id,
                ip: e.ip,
                request_id: e.request_id,
                details: e.details,
            };
            Some((e.id, view))
        }))
    }
}
