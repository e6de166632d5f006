//! The types of sign-in with external OpenID providers.

use async_graphql::{InputObject, SimpleObject};

use super::types::DateTime;
use crate::services::{IdentityView, OidcProviderView};

/// An external OpenID provider this service signs in with.
#[derive(SimpleObject)]
pub struct OidcProvider {
    /// Its name in paths (`/api/auth/oidc/{name}/authorize`) and identities.
    pub name: String,
    /// What a sign-in button says.
    pub display_name: String,
}

impl From<OidcProviderView> for OidcProvider {
    fn from(p: OidcProviderView) -> Self {
        Self {
            name: p.name,
            display_name: p.display_name,
        }
    }
}

/// An identity at an external provider, linked to the account.
#[derive(SimpleObject)]
pub struct Identity {
    /// The provider's name.
    pub provider: String,
    /// The provider's id for the person (`sub`).
    pub subject: String,
    /// The address the provider gave when it was linked.
    pub email: Option<String>,
    /// When it was linked.
    pub linked_at: DateTime,
}

impl From<IdentityView> for Identity {
    fn from(i: IdentityView) -> Self {
        Self {
            provider: i.provider,
            subject: i.subject,
            email: i.email,
            linked_at: DateTime(i.linked_at),
        }
    }
}

/// What a provider's redirect to the callback carries.
#[derive(InputObject)]
pub struct FinishOidcSignInInput {
    /// The provider's name.
    pub provider: String,
    /// The `state` parameter.
    pub state: Option<String>,
    /// The `code` parameter.
    pub code: Option<String>,
    /// The `error` parameter (the user declined, …).
    pub error: Option<String>,
}
