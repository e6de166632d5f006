use sea_orm::entity::prelude::*;

/// A WebAuthn ceremony in progress: its server-side state, valid for 5 minutes, once. (Its
/// foreign key to `users`, which cascades, is the migration's: an optional owner has no
/// relation here.)
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webauthn_flows")]
pub struct Model {
    /// A UUID, as text: the `flow_id` a client sends back.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `register` or `sign_in`.
    pub kind: String,
    /// The account adding a passkey; none for a sign-in.
    pub user_id: Option<i32>,
    /// The library's ceremony state, as JSON. Never leaves the server.
    pub state: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
