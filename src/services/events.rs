//! Writing a security event, in the transaction of the change it records: a leaf every
//! feature uses (reading them back is [`audit`](super::audit)'s). An event that is also a
//! webhook event type goes to the webhook outbox in the same transaction.

use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::Value;

use super::{time::now, webhook_outbox};
use crate::{
    domain::{AuditAction, Origin},
    entities::audit_event,
    error::AppError,
};

/// An event to write: built with its action, then told who did what to whom.
pub(super) struct Event {
    action: AuditAction,
    actor: Option<i32>,
    subject: Option<i32>,
    details: Option<Value>,
    /// `data.session` of a `session.created` webhook event.
    session: Option<Value>,
}

impl Event {
    /// `action` done to `subject`, by nobody signed in (yet).
    pub(super) fn on(action: AuditAction, subject: i32) -> Self {
        Self {
            action,
            actor: None,
            subject: Some(subject),
            details: None,
            session: None,
        }
    }

    /// `action` an account did to itself.
    pub(super) fn own(action: AuditAction, user_id: i32) -> Self {
        Self::on(action, user_id).by(Some(user_id))
    }

    pub(super) fn by(mut self, actor: Option<i32>) -> Self {
        self.actor = actor;
        self
    }

    pub(super) fn with(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The session a sign-in opened (`{id, amr}`), for its webhook event.
    pub(super) fn session(mut self, session: Value) -> Self {
        self.session = Some(session);
        self
    }

    /// Writes the event in `db`'s transaction; `origin` is the request that caused it (none
    /// for the command line).
    pub(super) async fn write(
        self,
        db: &impl ConnectionTrait,
        origin: Option<&Origin>,
    ) -> Result<(), AppError> {
        audit_event::ActiveModel {
            created_at: Set(now()),
            action: Set(self.action.as_str().to_owned()),
            actor_id: Set(self.actor),
            subject_id: Set(self.subject),
            ip: Set(origin.map(|o| o.ip.to_string())),
            request_id: Set(origin.and_then(|o| o.request_id.clone())),
            details: Set(self.details.map(|d| d.to_string())),
            ..Default::default()
        }
        .insert(db)
        .await?;
        if let (Some(event_type), Some(subject)) =
            (webhook_outbox::event_type(self.action), self.subject)
        {
            webhook_outbox::enqueue(db, event_type, subject, self.session).await?;
        }
        Ok(())
    }
}
