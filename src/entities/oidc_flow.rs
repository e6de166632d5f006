use sea_orm::entity::prelude::*;

/// An authorization at an external OpenID provider in progress: valid for 10 minutes, once.
/// (Its foreign key to `users`, which cascades, is the migration's: an optional owner has no
/// relation here.)
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oidc_flows")]
pub struct Model {
    /// The SHA-256 (hex) of the `state` sent to the provider.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The provider's configured name.
    pub provider: String,
    /// The account linking an identity; none for a sign-in.
    pub user_id: Option<i32>,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier. Never leaves the server but to the provider's token endpoint.
    pub pkce_verifier: String,
    /// Where the browser goes back to (checked against the allow-list when the flow began).
    pub redirect_to: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
