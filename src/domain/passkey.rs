//! Inputs of the passkey ceremonies: the flow they finish, the browser's credential
//! (`credential.toJSON()`), and a passkey's name.

use serde_json::Value;

use super::{Checks, Name, text::bounded_text};
use crate::error::AppError;

/// Longest credential read (as JSON text): a passkey's is well under 4 KiB.
pub const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;
/// Longest flow id read: ours are UUIDs.
const MAX_FLOW_ID_CHARS: usize = 64;
/// A passkey's name when none is given.
pub const DEFAULT_PASSKEY_NAME: &str = "Passkey";

/// Finishing the addition of a passkey.
#[derive(Debug)]
pub struct PasskeyRegistrationInput {
    pub flow_id: String,
    pub credential: Value,
    pub name: String,
}

impl PasskeyRegistrationInput {
    pub fn parse(
        flow_id: &str,
        credential: Option<Value>,
        name: Option<&str>,
    ) -> Result<Self, AppError> {
        let mut checks = Checks::default();
        let flow_id = checks.check("flow_id", flow(flow_id));
        let credential = checks.check("credential", self::credential(credential));
        let name = checks.check(
            "name",
            name.map(|n| bounded_text("Name", n, Name::MAX_CHARS, false))
                .transpose()
                .map(Option::flatten),
        );
        checks.finish(|| {
            Some(Self {
                flow_id: flow_id?,
                credential: credential?,
                name: name?.unwrap_or_else(|| DEFAULT_PASSKEY_NAME.to_owned()),
            })
        })
    }
}

/// Finishing a sign-in with a passkey.
#[derive(Debug)]
pub struct PasskeySignIn {
    pub flow_id: String,
    pub credential: Value,
}

impl PasskeySignIn {
    pub fn parse(flow_id: &str, credential: Option<Value>) -> Result<Self, AppError> {
        let mut checks = Checks::default();
        let flow_id = checks.check("flow_id", flow(flow_id));
        let credential = checks.check("credential", self::credential(credential));
        checks.finish(|| {
            Some(Self {
                flow_id: flow_id?,
                credential: credential?,
            })
        })
    }
}

fn flow(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("Flow id is required.".into());
    }
    if raw.chars().nth(MAX_FLOW_ID_CHARS).is_some() || raw.chars().any(|c| c.is_control()) {
        return Err("Invalid or expired flow.".into());
    }
    Ok(raw.to_owned())
}

fn credential(value: Option<Value>) -> Result<Value, String> {
    match value {
        None | Some(Value::Null) => Err("Credential is required.".into()),
        Some(Value::Object(map)) if map.is_empty() => Err("Credential is required.".into()),
        Some(value @ Value::Object(_))
            if serde_json::to_vec(&value).map_or(0, |v| v.len()) <= MAX_CREDENTIAL_BYTES =>
        {
            Ok(value)
        }
        Some(_) => Err("Passkey could not be verified.".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn inputs_are_required_and_bounded() {
        let ok = PasskeyRegistrationInput::parse("f", Some(json!({"id": "x"})), None).unwrap();
        assert_eq!(ok.name, DEFAULT_PASSKEY_NAME);
        let Err(AppError::Validation(errors)) =
            PasskeyRegistrationInput::parse(" ", None, Some(&"n".repeat(101)))
        else {
            panic!("refused");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["flow_id", "credential", "name"]);
        let huge = json!({"id": "x".repeat(MAX_CREDENTIAL_BYTES)});
        assert!(PasskeySignIn::parse("f", Some(huge)).is_err());
        assert!(PasskeySignIn::parse("f", Some(json!("a string"))).is_err());
    }
}
