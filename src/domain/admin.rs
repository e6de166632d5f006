//! Inputs of administration and of the audit log: roles, account status, audit actions, and
//! the page requests of the cursor-paginated lists.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::Checks;
use crate::error::AppError;

/// Largest page of a list.
pub const MAX_PAGE: u64 = 100;
/// Longest search text, in characters (the longest email).
pub const MAX_SEARCH_CHARS: usize = 254;

/// What an account may do: `admin` may also administer other accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    /// The stored value; an unknown one reads as the least privileged role.
    pub fn from_stored(value: &str) -> Self {
        if value == "admin" {
            Self::Admin
        } else {
            Self::User
        }
    }

    /// A role named on the command line.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "user" => Some(Self::User),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// Whether an account may log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Disabled,
}

/// A security event's kind; stored in snake_case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    Register,
    Login,
    LoginFailed,
    AccountLocked,
    Logout,
    RefreshReuse,
    PasswordChanged,
    PasswordResetRequested,
    PasswordReset,
    EmailVerified,
    EmailChanged,
    AccountDeleted,
    UserDisabled,
    UserEnabled,
    RoleChanged,
    SessionsRevoked,
    UserDeleted,
    MfaEnabled,
    MfaDisabled,
    MfaFailed,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    MfaReset,
    PasskeyAdded,
    PasskeyRemoved,
    IdentityLinked,
    IdentityUnlinked,
}

impl AuditAction {
    pub const ALL: [Self; 27] = [
        Self::Register,
        Self::Login,
        Self::LoginFailed,
        Self::AccountLocked,
        Self::Logout,
        Self::RefreshReuse,
        Self::PasswordChanged,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::EmailVerified,
        Self::EmailChanged,
        Self::AccountDeleted,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::RoleChanged,
        Self::SessionsRevoked,
        Self::UserDeleted,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::MfaFailed,
        Self::RecoveryCodeUsed,
        Self::RecoveryCodesRegenerated,
        Self::MfaReset,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::IdentityLinked,
        Self::IdentityUnlinked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::LoginFailed => "login_failed",
            Self::AccountLocked => "account_locked",
            Self::Logout => "logout",
            Self::RefreshReuse => "refresh_reuse",
            Self::PasswordChanged => "password_changed",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::EmailVerified => "email_verified",
            Self::EmailChanged => "email_changed",
            Self::AccountDeleted => "account_deleted",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::RoleChanged => "role_changed",
            Self::SessionsRevoked => "sessions_revoked",
            Self::UserDeleted => "user_deleted",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::MfaFailed => "mfa_failed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::MfaReset => "mfa_reset",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::IdentityLinked => "identity_linked",
            Self::IdentityUnlinked => "identity_unlinked",
        }
    }

    /// The action stored as `value`; `None` for one this version does not know.
    pub fn from_stored(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }
}

/// Which list a cursor belongs to, so one list's cursor is refused by another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorKind {
    Users,
    AuditEvents,
}

impl CursorKind {
    fn tag(self) -> &'static str {
        match self {
            Self::Users => "u",
            Self::AuditEvents => "a",
        }
    }
}

/// A position in a list, newest first: the id of the last row seen. Opaque to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor(pub i64);

impl Cursor {
    pub fn encode(self, kind: CursorKind) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", kind.tag(), self.0))
    }

    fn decode(raw: &str, kind: CursorKind) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (tag, id) = text.split_once(':')?;
        let id: i64 = id.parse().ok()?;
        (tag == kind.tag() && id > 0).then_some(Self(id))
    }
}

/// One page to read: how many rows, after which cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub first: u64,
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// `first` 1..=100 (400 on `first`), `after` a cursor of this list (400 on `after`).
    pub fn parse(first: i64, after: Option<&str>, kind: CursorKind) -> Result<Self, AppError> {
        let mut checks = Checks::default();
        let size = checks.check(
            "first",
            u64::try_from(first)
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| format!("Page size must be between 1 and {MAX_PAGE}.")),
        );
        let after = match after.filter(|a| !a.trim().is_empty()) {
            None => Some(None),
            Some(raw) => checks
                .check(
                    "after",
                    Cursor::decode(raw, kind).ok_or_else(|| "Invalid cursor.".to_owned()),
                )
                .map(Some),
        };
        checks.finish(|| {
            Some(Self {
                first: size?,
                after: after?,
            })
        })
    }
}

/// What the admin's account list is filtered by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Lower-cased text to find in the email or the profile's name.
    pub search: Option<String>,
    pub status: Option<UserStatus>,
    pub role: Option<Role>,
}

impl UserFilter {
    /// Blank search text means no search; longer than 254 characters → 400 on `search`.
    pub fn parse(
        search: Option<&str>,
        status: Option<UserStatus>,
        role: Option<Role>,
    ) -> Result<Self, AppError> {
        let search = search.map(str::trim).filter(|s| !s.is_empty());
        if search.is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS) {
            return Err(AppError::validation(
                "search",
                format!("Search text must be at most {MAX_SEARCH_CHARS} characters."),
            ));
        }
        if let Some(search) = search {
            super::text::no_control("Search text", search, false)
                .map_err(|message| AppError::validation("search", message))?;
        }
        Ok(Self {
            search: search.map(str::to_lowercase),
            status,
            role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_stay_in_their_list() {
        let cursor = Cursor(42).encode(CursorKind::Users);
        let page = PageRequest::parse(20, Some(&cursor), CursorKind::Users).unwrap();
        assert_eq!(page.after, Some(Cursor(42)));
        assert!(PageRequest::parse(20, Some(&cursor), CursorKind::AuditEvents).is_err());
        for blank in ["", "  "] {
            assert_eq!(
                PageRequest::parse(5, Some(blank), CursorKind::Users)
                    .unwrap()
                    .after,
                None
            );
        }
        for bad in ["x", "42", "dTotMQ", "dTow"] {
            assert!(
                PageRequest::parse(5, Some(bad), CursorKind::Users).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn page_sizes_are_bounded() {
        for first in [0, -1, 101, i64::MAX] {
            let Err(AppError::Validation(errors)) =
                PageRequest::parse(first, None, CursorKind::Users)
            else {
                panic!("{first} accepted");
            };
            assert_eq!(errors[0].field, "first");
        }
        assert_eq!(
            PageRequest::parse(100, None, CursorKind::Users)
                .unwrap()
                .first,
            100
        );
    }

    #[test]
    fn actions_read_back_as_stored() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::from_stored(action.as_str()), Some(action));
        }
        assert_eq!(AuditAction::from_stored("nope"), None);
    }

    #[test]
    fn search_is_trimmed_lower_cased_and_bounded() {
        let filter = UserFilter::parse(Some("  Ann@X "), None, None).unwrap();
        assert_eq!(filter.search.as_deref(), Some("ann@x"));
        assert_eq!(
            UserFilter::parse(Some(" "), None, None).unwrap().search,
            None
        );
        assert!(UserFilter::parse(Some(&"a".repeat(255)), None, None).is_err());
    }
}
