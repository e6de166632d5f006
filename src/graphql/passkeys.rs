//! The passkey types of the schema.

use async_graphql::{ID, InputObject, Json, SimpleObject};
use serde_json::Value;

use super::types::DateTime;
use crate::services::{PasskeyOptions as Options, PasskeyView};

/// A WebAuthn ceremony to run in the browser: pass `options` to
/// `PublicKeyCredential.parseCreationOptionsFromJSON()` (adding) or
/// `parseRequestOptionsFromJSON()` (signing in), and send `flowId` back with the result.
#[derive(SimpleObject)]
pub struct PasskeyOptions {
    /// The ceremony's id: valid for 5 minutes, once.
    pub flow_id: String,
    /// `{"publicKey": {…}}`, binary values as base64url.
    pub options: Json<Value>,
}

impl From<Options> for PasskeyOptions {
    fn from(o: Options) -> Self {
        Self {
            flow_id: o.flow_id,
            options: Json(o.options),
        }
    }
}

/// A passkey of the account.
#[derive(SimpleObject)]
pub struct Passkey {
    /// The passkey's id (for `deletePasskey`).
    pub id: ID,
    /// What the user called it (`Passkey` unless named).
    pub name: String,
    /// When it was added.
    pub created_at: DateTime,
    /// The last sign-in with it; null before the first.
    pub last_used_at: Option<DateTime>,
}

impl From<PasskeyView> for Passkey {
    fn from(p: PasskeyView) -> Self {
        Self {
            id: ID(p.id),
            name: p.name,
            created_at: DateTime(p.created_at),
            last_used_at: p.last_used_at.map(DateTime),
        }
    }
}

/// The browser's new credential, for the ceremony it answers.
#[derive(InputObject)]
pub struct FinishPasskeyRegistrationInput {
    /// The `flowId` of `startPasskeyRegistration`.
    pub flow_id: String,
    /// `credential.toJSON()` of `navigator.credentials.create()`.
    pub credential: Json<Value>,
    /// A name for it (at most 100 characters).
    pub name: Option<String>,
}

/// The browser's assertion, for the sign-in ceremony it answers.
#[derive(InputObject)]
pub struct FinishPasskeySignInInput {
    /// The `flowId` of `startPasskeySignIn`.
    pub flow_id: String,
    /// `credential.toJSON()` of `navigator.credentials.get()`.
    pub credential: Json<Value>,
}
