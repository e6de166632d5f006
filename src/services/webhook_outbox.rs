//! Writing an account event to the webhook outbox, in the transaction of the change it
//! records: a leaf (the audit [`Event`](super::events::Event) calls it; delivering is
//! [`webhooks`](super::webhooks)'s).
//!
//! One row per event per endpoint that takes its type, each with the body as it will be sent
//! (the same bytes on every attempt) and the event's `webhook-id`. A change that rolls back
//! leaves no event; one that commits is delivered at least once.

use chrono::SecondsFormat;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use super::time::now;
use crate::{
    domain::{AuditAction, Role},
    entities::{profile, user, webhook, webhook_outbox},
    error::AppError,
};

/// The webhook event type an audit action is, if it is one.
pub(super) fn event_type(action: AuditAction) -> Option<&'static str> {
    Some(match action {
        AuditAction::Register => "user.created",
        AuditAction::EmailChanged => "user.updated",
        AuditAction::EmailVerified => "user.email_verified",
        AuditAction::AccountDeleted | AuditAction::UserDeleted => "user.deleted",
        AuditAction::UserDisabled => "user.disabled",
        AuditAction::UserEnabled => "user.enabled",
        AuditAction::RoleChanged => "user.role_changed",
        AuditAction::Login => "session.created",
        AuditAction::PasswordChanged => "password.changed",
        AuditAction::PasswordReset => "password.reset",
        AuditAction::MfaEnabled => "mfa.enabled",
        AuditAction::MfaDisabled | AuditAction::MfaReset => "mfa.disabled",
        _ => return None,
    })
}

/// Does an endpoint's list (`events` as stored) take `event_type`?
pub(super) fn takes(events: &str, event_type: &str) -> bool {
    events.split(',').any(|e| e == "*" || e == event_type)
}

/// Queues `event_type` about account `user_id` (as it is now, in `db`'s transaction) for
/// every enabled endpoint that takes it; `session` joins the data of `session.created`.
pub(super) async fn enqueue(
    db: &impl ConnectionTrait,
    event_type: &str,
    user_id: i32,
    session: Option<Value>,
) -> Result<(), AppError> {
    let endpoints: Vec<webhook::Model> = webhook::Entity::find()
        .filter(webhook::Column::Enabled.eq(true))
        .all(db)
        .await?
        .into_iter()
        .filter(|w| takes(&w.events, event_type))
        .collect();
    if endpoints.is_empty() {
        return Ok(());
    }
    let Some((user, profile)) = user::Entity::find_by_id(user_id)
        .find_also_related(profile::Entity)
        .one(db)
        .await?
    else {
        return Ok(());
    };
    let now = now();
    let mut data = json!({
        "user": {
            "id": user.id,
            "email": user.email,
            "name": profile.and_then(|p| p.name),
            "role": Role::from_stored(&user.role).as_str(),
            "email_verified": user.email_verified,
            "disabled": user.disabled_at.is_some(),
            "created_at": user.created_at,
            "updated_at": user.updated_at,
        }
    });
    if let Some(session) = session {
        data["session"] = session;
    }
    let body = json!({
        "type": event_type,
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Micros, true),
        "data": data,
    })
    .to_string();
    let event_id = format!("msg_{}", Uuid::new_v4().simple());
    for endpoint in endpoints {
        webhook_outbox::ActiveModel {
            webhook_id: Set(endpoint.id),
            event_id: Set(event_id.clone()),
            event_type: Set(event_type.to_owned()),
            body: Set(body.clone()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            claimed_until: Set(None),
            done_at: Set(None),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WEBHOOK_EVENT_TYPES;

    #[test]
    fn every_event_type_has_a_cause() {
        for event_type in WEBHOOK_EVENT_TYPES {
            assert!(
                AuditAction::ALL
                    .iter()
                    .any(|a| super::event_type(*a) == Some(event_type)),
                "{event_type}"
            );
        }
        assert!(takes("*", "user.created"));
        assert!(takes("user.created,mfa.enabled", "mfa.enabled"));
        assert!(!takes("user.created", "user.created.x"));
    }
}
