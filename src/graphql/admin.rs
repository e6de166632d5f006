//! The administration types: roles, statuses, audit events, and the Relay connections that
//! page through accounts and events.

use async_graphql::{Enum, ID, SimpleObject};

use super::types::{DateTime, User};
use crate::{
    domain,
    services::{Account, AuditEventView, Page},
};

/// What an account may do.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::Role")]
pub enum Role {
    /// Its own account only.
    User,
    /// Also every other account: find, disable, enable, change roles, end sessions, delete.
    Admin,
}

/// Whether an account may log in.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::UserStatus")]
pub enum UserStatus {
    /// It may log in.
    Active,
    /// An admin disabled it: it may not log in, and its sessions have ended.
    Disabled,
}

/// A kind of security event.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::AuditAction")]
pub enum AuditAction {
    /// An account was created.
    Register,
    /// A login succeeded (a session began).
    Login,
    /// A password check failed (login, password change or account deletion).
    LoginFailed,
    /// Failed checks locked the account for a while.
    AccountLocked,
    /// One session, or all of them, ended at the account's request.
    Logout,
    /// A spent refresh token came back after its grace window; its session ended.
    RefreshReuse,
    /// The password was changed; the other sessions ended.
    PasswordChanged,
    /// A reset link was sent to the account's address.
    PasswordResetRequested,
    /// The password was set with a reset link; every session ended.
    PasswordReset,
    /// The address was confirmed with a verification link.
    EmailVerified,
    /// The login email changed.
    EmailChanged,
    /// The account deleted itself.
    AccountDeleted,
    /// An admin disabled the account.
    UserDisabled,
    /// An admin enabled the account again.
    UserEnabled,
    /// The account's role changed.
    RoleChanged,
    /// Sessions were ended one by one, or all at once by an admin.
    SessionsRevoked,
    /// An admin deleted the account.
    UserDeleted,
    /// TOTP was confirmed and turned on; the other sessions ended.
    MfaEnabled,
    /// TOTP was turned off (with the password and a code).
    MfaDisabled,
    /// A wrong code was given at a sign-in's second step.
    MfaFailed,
    /// A recovery code was spent to sign in.
    RecoveryCodeUsed,
    /// New recovery codes replaced the old ones.
    RecoveryCodesRegenerated,
    /// An admin removed the account's second factors; its sessions ended.
    MfaReset,
    /// A passkey was registered.
    PasskeyAdded,
    /// A passkey was removed.
    PasskeyRemoved,
    /// An external identity was linked to the account.
    IdentityLinked,
    /// An external identity was unlinked.
    IdentityUnlinked,
}

/// A security event: what happened to which account, when, by whom, from where.
#[derive(SimpleObject)]
pub struct AuditEvent {
    /// The event's id.
    pub id: ID,
    /// When it happened.
    pub created_at: DateTime,
    /// What happened.
    pub action: AuditAction,
    /// The account that acted; null for an anonymous request or the command line.
    pub actor_id: Option<i32>,
    /// The account acted on.
    pub subject_id: Option<i32>,
    /// The client's address.
    pub ip: Option<String>,
    /// The request's `x-request-id`, to find it in the logs.
    pub request_id: Option<String>,
    /// More about it, as a JSON object (a role's old and new value, how many sessions
    /// ended); never a password, hash or token.
    pub details: Option<String>,
}

impl From<AuditEventView> for AuditEvent {
    fn from(e: AuditEventView) -> Self {
        Self {
            id: ID(e.id.to_string()),
            created_at: DateTime(e.created_at),
            action: e.action.into(),
            actor_id: e.actor_id,
            subject_id: e.subject_id,
            ip: e.ip,
            request_id: e.request_id,
            details: e.details,
        }
    }
}

/// Where a page of a connection stands (Relay's `PageInfo`). Pages only go forward, so
/// `hasPreviousPage` is always false.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether a page follows this one.
    pub has_next_page: bool,
    /// Always false: pages go forward only (`first`, `after`).
    pub has_previous_page: bool,
    /// The cursor of the first edge.
    pub start_cursor: Option<String>,
    /// The cursor of the last edge: pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

impl PageInfo {
    fn of<T>(page: &Page<T>) -> Self {
        Self {
            has_next_page: page.has_next_page,
            has_previous_page: false,
            start_cursor: page.items.first().map(|(cursor, _)| cursor.clone()),
            end_cursor: page.end_cursor().map(str::to_owned),
        }
    }
}

/// An account in a page of accounts.
#[derive(SimpleObject)]
pub struct UserEdge {
    /// Opaque: pass it as `after` to read the accounts that follow this one.
    pub cursor: String,
    /// The account.
    pub node: User,
}

/// A page of accounts, newest first.
#[derive(SimpleObject)]
pub struct UserConnection {
    /// The accounts of this page.
    pub edges: Vec<UserEdge>,
    /// Where this page stands.
    pub page_info: PageInfo,
    /// How many accounts match the filters, on every page.
    pub total_count: u64,
}

impl From<Page<Account>> for UserConnection {
    fn from(page: Page<Account>) -> Self {
        Self {
            page_info: PageInfo::of(&page),
            total_count: page.total,
            edges: page
                .items
                .into_iter()
                .map(|(cursor, account)| UserEdge {
                    cursor,
                    node: User(account),
                })
                .collect(),
        }
    }
}

/// A security event in a page of events.
#[derive(SimpleObject)]
pub struct AuditEventEdge {
    /// Opaque: pass it as `after` to read the events that follow this one.
    pub cursor: String,
    /// The event.
    pub node: AuditEvent,
}

/// A page of security events, newest first.
#[derive(SimpleObject)]
pub struct AuditEventConnection {
    /// The events of this page.
    pub edges: Vec<AuditEventEdge>,
    /// Where this page stands.
    pub page_info: PageInfo,
    /// How many events match the filters, on every page.
    pub total_count: u64,
}

impl From<Page<AuditEventView>> for AuditEventConnection {
    fn from(page: Page<AuditEventView>) -> Self {
        Self {
            page_info: PageInfo::of(&page),
            total_count: page.total,
            edges: page
                .items
                .into_iter()
                .map(|(cursor, event)| AuditEventEdge {
                    cursor,
                    node: event.into(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::EnumType;

    use super::*;

    /// The schema's actions are the domain's, in the same order and under the same names.
    #[test]
    fn actions_match_the_domain() {
        let items = AuditAction::items();
        assert_eq!(items.len(), domain::AuditAction::ALL.len());
        for (item, action) in items.iter().zip(domain::AuditAction::ALL) {
            assert_eq!(item.name, action.as_str().to_ascii_uppercase());
            assert_eq!(domain::AuditAction::from(item.value), action);
            assert_eq!(AuditAction::from(action), item.value);
        }
    }
}
