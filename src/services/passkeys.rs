//! Passkeys (WebAuthn, `webauthn-rs`): adding one to a signed-in account, listing and removing
//! them, and signing in with one (a discoverable credential: no email typed).
//!
//! - A ceremony's state stays on the server, in `webauthn_flows`, for 5 minutes and one use
//!   (taken by a conditional delete, so two finishes of one flow cannot both pass); the client
//!   only holds its id. Any replica can finish what another started.
//! - Registration asks for a discoverable credential with user verification and attestation
//!   `none` (ES256, EdDSA or RS256), and excludes the account's own credentials. A credential id
//!   registered anywhere already is refused.
//! - Sign-in finds the passkey by the credential id the authenticator returns and checks that
//!   its user handle is the account's; the library checks the signature, origin, RP id,
//!   challenge, user verification and that the sign counter moved forward (a counter that goes
//!   back is a cloned key: refused). A passkey is a whole sign-in (`amr` `["passkey"]`): no
//!   second step.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::instrument;
use uuid::Uuid;
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Webauthn,
};

use super::{
    AccessToken, Services,
    events::Event,
    query::{for_update, keep_newest},
    time::{delta, now},
};
use crate::{
    auth::Actor,
    db,
    domain::{Amr, AuditAction, Factor, Origin, PasskeyRegistrationInput, PasskeySignIn},
    entities::{passkey, profile, user, webauthn_flow},
    error::{AppError, Refusal},
    mail::Notice,
};

/// How long a ceremony may take.
const FLOW_SECS: u64 = 300;
/// Passkey additions an account may have pending at once (tabs, retries); starting one more
/// drops the oldest.
const PENDING_REGISTRATIONS: u64 = 5;
pub const PASSKEY_NOT_VERIFIED: &str = "Passkey could not be verified.";
pub const PASSKEY_NOT_RECOGNISED: &str = "Passkey not recognised";
pub const PASSKEY_NOT_FOUND: &str = "Passkey not found";
pub const PASSKEYS_UNAVAILABLE: &str = "Passkeys are not available on this server";
const REGISTER: &str = "register";
const SIGN_IN: &str = "sign_in";

/// A ceremony's options for the browser (`{"publicKey": {…}}`), and the id to send back.
pub struct PasskeyOptions {
    pub flow_id: String,
    pub options: Value,
}

/// A passkey of the caller's.
#[derive(Clone, Debug)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<passkey::Model> for PasskeyView {
    fn from(p: passkey::Model) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

/// What a registration keeps between its two steps.
#[derive(Serialize, Deserialize)]
struct RegistrationState {
    handle: Uuid,
    state: PasskeyRegistration,
}

impl Services {
    /// The ceremony that adds a passkey to the caller's account.
    #[instrument(skip_all)]
    pub async fn start_passkey_registration(
        &self,
        actor: &Actor,
    ) -> Result<PasskeyOptions, AppError> {
        let webauthn = self.webauthn()?;
        let user = self.signed_in(&self.pool(), actor.bearer()?).await?;
        let own = passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user.id))
            .all(&self.db)
            .await?;
        // One handle per account, the same for all its passkeys.
        let handle = own
            .first()
            .and_then(|p| Uuid::try_parse(&p.user_handle).ok())
            .unwrap_or_else(Uuid::new_v4);
        // The ids as stored: no credential needs to be read whole for them.
        let exclude = own
            .iter()
            .filter_map(|p| URL_SAFE_NO_PAD.decode(&p.credential_id).ok())
            .map(CredentialID::from)
            .collect::<Vec<_>>();
        let (challenge, state) = webauthn
            .start_passkey_registration(handle, &user.email, &user.email, Some(exclude))
            .map_err(AppError::internal)?;
        let mut options = serde_json::to_value(&challenge).map_err(AppError::internal)?;
        // A discoverable credential: sign-in names no account first.
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        selection["residentKey"] = json!("required");
        selection["requireResidentKey"] = json!(true);
        let mut state = serde_json::to_value(&RegistrationState { handle, state })
            .map_err(AppError::internal)?;
        allow_eddsa(&mut options, &mut state);
        let state = state.to_string();
        let flow_id = self.open_flow(REGISTER, Some(user.id), state).await?;
        Ok(PasskeyOptions { flow_id, options })
    }

    /// Finishes adding a passkey: the browser's credential, checked against the flow.
    #[instrument(skip_all)]
    pub async fn finish_passkey_registration(
        &self,
        actor: &Actor,
        origin: &Origin,
        input: PasskeyRegistrationInput,
    ) -> Result<PasskeyView, AppError> {
        let webauthn = self.webauthn()?;
        let refused = || AppError::validation("credential", PASSKEY_NOT_VERIFIED);
        let user = self.signed_in(&self.pool(), actor.bearer()?).await?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(input.credential).map_err(|_| refused())?;
        // Taken before it is checked: a failed finish spends the ceremony too.
        let state = take_flow(&self.db, &input.flow_id, REGISTER, Some(user.id))
            .await?
            .ok_or_else(refused)?;
        let RegistrationState { handle, state } =
            serde_json::from_str(&state).map_err(AppError::internal)?;
        let key = webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| {
                tracing::info!(error = %e, "a passkey registration was refused");
                refused()
            })?;
        let credential_id = credential_id_text(key.cred_id().as_slice());
        let txn = db::begin_write(&self.db).await?;
        let taken = passkey::Entity::find()
            .filter(passkey::Column::CredentialId.eq(&credential_id))
            .one(&txn)
            .await?
            .is_some();
        if taken {
            return Err(refused());
        }
        let now = now();
        let row = passkey::ActiveModel {
            id: Set(Uuid::new_v4().to_string()),
            user_id: Set(user.id),
            user_handle: Set(handle.to_string()),
            credential_id: Set(credential_id),
            name: Set(input.name),
            credential: Set(serde_json::to_string(&key).map_err(AppError::internal)?),
            created_at: Set(now),
            last_used_at: Set(None),
        }
        .insert(&txn)
        .await?;
        Event::own(AuditAction::PasskeyAdded, user.id)
            .with(json!({ "passkey": row.id, "name": row.name }))
            .write(&txn, Some(origin))
            .await?;
        // A passkey needs only a token to add and outlives a password change: the owner hears
        // of it at once.
        self.send_security_notice(&txn, &user.email, Notice::PasskeyAdded)
            .await?;
        txn.commit().await?;
        self.mail_queued();
        Ok(row.into())
    }

    /// The caller's passkeys, newest first.
    pub async fn my_passkeys(&self, actor: &Actor) -> Result<Vec<PasskeyView>, AppError> {
        let user = self.signed_in(&self.pool(), actor.bearer()?).await?;
        Ok(passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user.id))
            .order_by_desc(passkey::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(PasskeyView::from)
            .collect())
    }

    /// Removes one of the caller's passkeys; 404 for any other id.
    #[instrument(skip_all)]
    pub async fn delete_passkey(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: &str,
    ) -> Result<(), AppError> {
        let bearer = actor.bearer()?;
        let txn = db::begin_write(&self.db).await?;
        let user = self.signed_in(&txn, bearer).await?;
        let deleted = passkey::Entity::delete_many()
            .filter(passkey::Column::Id.eq(id))
            .filter(passkey::Column::UserId.eq(user.id))
            .exec(&txn)
            .await?
            .rows_affected;
        if deleted == 0 {
            return Err(AppError::NotFound(PASSKEY_NOT_FOUND));
        }
        Event::own(AuditAction::PasskeyRemoved, user.id)
            .with(json!({ "passkey": id }))
            .write(&txn, Some(origin))
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// The ceremony that signs in with a passkey: no account named, any passkey of this site.
    /// Counts toward the address's login limit.
    #[instrument(skip_all)]
    pub async fn start_passkey_sign_in(&self, origin: &Origin) -> Result<PasskeyOptions, AppError> {
        let webauthn = self.webauthn()?;
        self.limits.refresh_attempt(origin.ip).await?;
        let (challenge, state) = webauthn
            .start_discoverable_authentication()
            .map_err(AppError::internal)?;
        let mut options = serde_json::to_value(&challenge).map_err(AppError::internal)?;
        // The library asks for conditional mediation (autofill); the options are the
        // `publicKey` alone, for a sign-in button as much as for autofill.
        if let Some(object) = options.as_object_mut() {
            object.remove("mediation");
        }
        let state = serde_json::to_string(&state).map_err(AppError::internal)?;
        let flow_id = self.open_flow(SIGN_IN, None, state).await?;
        Ok(PasskeyOptions { flow_id, options })
    }

    /// Finishes a sign-in with a passkey: a session with `amr` `["passkey"]`.
    #[instrument(skip_all)]
    pub async fn finish_passkey_sign_in(
        &self,
        origin: &Origin,
        input: PasskeySignIn,
    ) -> Result<AccessToken, AppError> {
        let webauthn = self.webauthn()?;
        self.limits.refresh_attempt(origin.ip).await?;
        let refused = || AppError::Unauthenticated(PASSKEY_NOT_RECOGNISED);
        let credential: PublicKeyCredential =
            serde_json::from_value(input.credential).map_err(|_| refused())?;
        // Taken before it is checked: a failed finish spends the ceremony too.
        let state = take_flow(&self.db, &input.flow_id, SIGN_IN, None)
            .await?
            .ok_or_else(refused)?;
        let state: DiscoverableAuthentication =
            serde_json::from_str(&state).map_err(AppError::internal)?;
        let (handle, credential_id) = webauthn
            .identify_discoverable_authentication(&credential)
            .map_err(|_| refused())?;
        let txn = db::begin_write(&self.db).await?;
        let Some(row) = passkey::Entity::find()
            .filter(passkey::Column::CredentialId.eq(credential_id_text(credential_id)))
            .filter(passkey::Column::UserHandle.eq(handle.to_string()))
            .one(&txn)
            .await?
        else {
            return Err(refused());
        };
        let mut key: Passkey = serde_json::from_str(&row.credential).map_err(AppError::internal)?;
        let result = webauthn
            .finish_discoverable_authentication(&credential, state, &[DiscoverableKey::from(&key)])
            .map_err(|e| {
                tracing::info!(user_id = row.user_id, error = %e, "a passkey sign-in was refused");
                refused()
            })?;
        key.update_credential(&result);
        let Some((user, profile)) = user::Entity::find_by_id(row.user_id)
            .find_also_related(profile::Entity)
            .one(&txn)
            .await?
        else {
            return Err(refused());
        };
        if user.disabled_at.is_some() {
            return Err(AppError::Forbidden(Refusal::AccountDisabled));
        }
        let mut active: passkey::ActiveModel = row.into();
        active.credential = Set(serde_json::to_string(&key).map_err(AppError::internal)?);
        active.last_used_at = Set(Some(now()));
        active.update(&txn).await?;
        let user_id = user.id;
        let tokens = self
            .finish_sign_in(&txn, user, profile, origin, &Amr::of(Factor::Passkey))
            .await?;
        txn.commit().await?;
        tracing::info!(user_id, "login succeeded with a passkey");
        Ok(tokens)
    }

    /// The account's passkeys, counted (for its MFA status).
    pub(super) async fn passkey_count(
        &self,
        db: &impl ConnectionTrait,
        user_id: i32,
    ) -> Result<u64, AppError> {
        use sea_orm::PaginatorTrait;
        Ok(passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user_id))
            .count(db)
            .await?)
    }

    /// Removes every passkey of an account (an admin's reset), in the caller's transaction.
    pub(super) async fn remove_passkeys(
        &self,
        db: &impl ConnectionTrait,
        user_id: i32,
    ) -> Result<(), AppError> {
        passkey::Entity::delete_many()
            .filter(passkey::Column::UserId.eq(user_id))
            .exec(db)
            .await?;
        webauthn_flow::Entity::delete_many()
            .filter(webauthn_flow::Column::UserId.eq(user_id))
            .exec(db)
            .await?;
        Ok(())
    }

    fn webauthn(&self) -> Result<&Webauthn, AppError> {
        self.webauthn.as_deref().ok_or_else(|| {
            AppError::Unavailable(std::sync::Arc::new(anyhow::anyhow!(PASSKEYS_UNAVAILABLE)))
        })
    }

    /// Stores a ceremony's state; its id. An account keeps its newest few pending (a sign-in's
    /// have no account: the address's login limit bounds them).
    async fn open_flow(
        &self,
        kind: &str,
        user_id: Option<i32>,
        state: String,
    ) -> Result<String, AppError> {
        let id = Uuid::new_v4().to_string();
        let now = now();
        // Trimmed and added under the account's row lock (SQLite: the write lock), so that
        // starts at once cannot all see room.
        let txn = db::begin_write(&self.db).await?;
        if let Some(user_id) = user_id {
            for_update(&txn, user::Entity::find_by_id(user_id))
                .one(&txn)
                .await?;
            keep_newest::<webauthn_flow::Entity>(
                &txn,
                webauthn_flow::Column::UserId.eq(user_id),
                webauthn_flow::Column::CreatedAt,
                webauthn_flow::Column::Id,
                PENDING_REGISTRATIONS - 1,
            )
            .await?;
        }
        webauthn_flow::ActiveModel {
            id: Set(id.clone()),
            kind: Set(kind.to_owned()),
            user_id: Set(user_id),
            state: Set(state),
            created_at: Set(now),
            expires_at: Set(now + delta(std::time::Duration::from_secs(FLOW_SECS))),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(id)
    }
}

/// The state of flow `id` of `kind` (and `user_id`), taken: deleted, so that it is used once
/// (of two takers at once, the one whose delete removed it). `None` when there is no such live
/// flow.
async fn take_flow(
    db: &impl ConnectionTrait,
    id: &str,
    kind: &str,
    user_id: Option<i32>,
) -> Result<Option<String>, AppError> {
    let now = now();
    let mut select = webauthn_flow::Entity::find_by_id(id)
        .filter(webauthn_flow::Column::Kind.eq(kind))
        .filter(webauthn_flow::Column::ExpiresAt.gt(now));
    if let Some(user_id) = user_id {
        select = select.filter(webauthn_flow::Column::UserId.eq(user_id));
    }
    let Some(flow) = select.one(db).await? else {
        return Ok(None);
    };
    let taken = webauthn_flow::Entity::delete_by_id(&flow.id)
        .exec(db)
        .await?
        .rows_affected;
    Ok((taken == 1).then_some(flow.state))
}

/// Adds EdDSA (Ed25519, COSE -8) to the algorithms a registration offers and accepts:
/// `webauthn-rs` verifies it, but offers only ES256 and RS256 by default. Both the options the
/// browser gets and the state the answer is checked against say so.
fn allow_eddsa(options: &mut Value, state: &mut Value) {
    if let Some(params) = options["publicKey"]["pubKeyCredParams"].as_array_mut() {
        params.push(json!({"type": "public-key", "alg": -8}));
    }
    if let Some(algorithms) = state["state"]["rs"]["credential_algorithms"].as_array_mut() {
        algorithms.push(json!("EDDSA"));
    }
}

/// A credential id as stored and looked up: base64url without padding.
fn credential_id_text(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}
