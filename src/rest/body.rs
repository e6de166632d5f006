//! Reading REST bodies and writing REST errors.
//!
//! The answers REST clients rely on: a body that is not JSON → 415, JSON that does not
//! parse → 400, JSON of the wrong type for a field → 422 with a `detail` array. Every other
//! error is `{"detail": "<message>"}` (plus `errors` for validation) with the status of its
//! code.

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::StatusCode,
    http::request::Parts,
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{
    caller::Caller,
    error::{AppError, ErrorCode, FieldError},
    http::{Problem, has_media_type},
    state::AppState,
};

/// A JSON request body of type `T`, refused with the documented statuses.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_media_type(req.headers(), "application/json") {
            return Err(Problem::new(
                ErrorCode::BadUserInput,
                "Content-Type must be application/json",
            )
            .into_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(ErrorCode::PayloadTooLarge, "Request body too large").into_response()
            } else {
                Problem::new(ErrorCode::BadUserInput, "Could not read the request body")
                    .into_response()
            }
        })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            AppError::validation("body", format!("Invalid JSON: {e}")).into_response()
        })?;
        if !value.is_object() {
            // serde would read a struct from an array too; the contract wants an object.
            return Err(unprocessable(
                &["body".into()],
                "Input should be a JSON object",
            ));
        }
        serde_path_to_error::deserialize(value)
            .map(JsonBody)
            .map_err(|e| type_error(&e))
    }
}

/// 422 with the offending location: `{"detail": [{"loc": ["body", …], "msg": …, "type": …}]}`.
/// The offending value is not echoed: it may be a password.
fn type_error(err: &serde_path_to_error::Error<serde_json::Error>) -> Response {
    let path: Vec<Value> = std::iter::once(Value::from("body"))
        .chain(err.path().iter().filter_map(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(Value::from(key.as_str())),
            serde_path_to_error::Segment::Seq { index } => Some(Value::from(*index)),
            _ => None,
        }))
        .collect();
    let msg = err.inner().to_string();
    unprocessable(&path, msg.split(" at line ").next().unwrap_or_default())
}

/// A 422 for the value at `loc` (`["body", "email"]`, `["path", "user_id"]`).
pub fn unprocessable(loc: &[Value], msg: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "detail": [{ "loc": loc, "msg": msg, "type": "type_error" }] })),
    )
        .into_response()
}

/// Rejects the fields of an update body that the operation does not know.
pub fn reject_unknown_fields(other: &serde_json::Map<String, Value>) -> Result<(), AppError> {
    if other.is_empty() {
        return Ok(());
    }
    let errors = other
        .keys()
        .map(|key| FieldError::new(key, format!("Unknown field '{key}'.")))
        .collect();
    Err(AppError::Validation(errors))
}

/// The caller of a path that needs a token. Checked before the body is read, so a request
/// without a valid token is a 401 whatever its body holds.
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Ok(caller) = Caller::from_request_parts(parts, state).await;
        match caller.actor.bearer() {
            Ok(_) => Ok(Self(caller)),
            Err(err) => Err(err.into_response()),
        }
    }
}
