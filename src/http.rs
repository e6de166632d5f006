//! HTTP pieces that both transports (REST and `/graphql`) and the server use: the JSON
//! error body and media-type checks. Neither transport imports the other; both import this.

use axum::{
    Json,
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{AppError, ErrorCode};

/// Largest JSON body accepted on any route (uploads have their own limit).
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// A REST error response: status, `detail`, and the headers its code calls for.
pub struct Problem {
    code: ErrorCode,
    body: Value,
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(code: ErrorCode, detail: &str) -> Self {
        Self {
            code,
            body: json!({ "detail": detail }),
            retry_after: None,
        }
    }

    pub fn with_errors(mut self, errors: Value) -> Self {
        self.body["errors"] = errors;
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.code.status(), Json(self.body)).into_response();
        let headers = response.headers_mut();
        if self.code == ErrorCode::Unauthenticated {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<AppError> for Problem {
    /// Logs the hidden cause of a server-side error (with the request's span) on the way.
    fn from(err: AppError) -> Self {
        err.log();
        let problem = Problem::new(err.code(), &err.message());
        match err {
            AppError::Validation(errors) => problem.with_errors(json!(errors)),
            AppError::RateLimited { retry_after_secs } | AppError::Busy { retry_after_secs } => {
                problem.with_retry_after(retry_after_secs)
            }
            AppError::MfaRequired(challenge) => {
                let mut problem = problem;
                problem.body["mfa_token"] = json!(challenge.token);
                problem.body["mfa_methods"] = json!(challenge.methods);
                problem.body["mfa_expires_in"] = json!(challenge.expires_in);
                problem
            }
            _ => problem,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}

impl Problem {
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message (`detail`) of the body.
    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or_default()
    }

    /// The same problem with its fields called by other names (`(from, to)` pairs): a
    /// transport whose parameters are named otherwise than the operation's arguments.
    pub fn rename_fields(mut self, names: &[(&str, &str)]) -> Self {
        if let Some(errors) = self.body["errors"].as_array_mut() {
            for error in errors {
                let renamed = names
                    .iter()
                    .find(|(from, _)| error["field"].as_str() == Some(*from));
                if let Some((_, to)) = renamed {
                    error["field"] = Value::from(*to);
                }
            }
        }
        self
    }

    /// The field of the first validation error, if there is one.
    pub fn field(&self) -> Option<&str> {
        self.body["errors"][0]["field"].as_str()
    }

    /// The same body under another status (415 has no code of its own).
    pub fn into_status(self, status: StatusCode) -> Response {
        let mut response = self.into_response();
        *response.status_mut() = status;
        response
    }
}

/// Is the body JSON: `application/json` or a `+json` type (`application/graphql-response+json`)?
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"))
}

/// Does the request's `Content-Type` name this media type (parameters aside)?
pub fn has_media_type(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case(media_type))
}

/// The safety net under the error format: an error answered by a library in plain text (an
/// extractor's rejection, say, whose message may name our types) goes out as
/// `{"detail": "<the status's reason>"}` instead. The status and other headers stay. The
/// account pages' own HTML error pages go out as they are.
pub fn as_json_error(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || is_json(response.headers())
        || has_media_type(response.headers(), "text/html")
    {
        return response;
    }
    let detail = status.canonical_reason().unwrap_or("Error");
    let body = json!({ "detail": detail }).to_string();
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// Every response's policy: the HTML pages (`/docs`, GraphiQL) load scripts, styles and
/// images from this origin only, run no inline script, talk only to this origin, and no other
/// site may frame them. Inline styles are allowed: both UIs set `style` attributes.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers every response carries (unless a handler set its own): no MIME sniffing, the
/// [`CONTENT_SECURITY_POLICY`], no framing, no referrer.
pub fn add_security_headers(headers: &mut HeaderMap) {
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
}

/// How many uploads are read and processed at the same time.
pub const UPLOAD_SLOTS: usize = 4;

/// The gate both upload paths (REST and GraphQL multipart) go through: the size limit of the
/// file, [`UPLOAD_SLOTS`] slots, so that the memory uploads take stays bounded however many
/// arrive together, and one upload in flight per account, so that one account cannot hold
/// every slot.
#[derive(Clone)]
pub struct Uploads {
    slots: Arc<Semaphore>,
    /// The accounts with an upload in flight.
    uploading: Arc<Mutex<HashSet<i32>>>,
    /// The largest file accepted, in bytes (`MAX_UPLOAD_BYTES`).
    pub max_bytes: usize,
}

/// An upload's right to be read and processed: a slot and its account's place, both given
/// back when dropped (once the response is built).
pub struct UploadSlot {
    _permit: OwnedSemaphorePermit,
    _place: AccountPlace,
}

/// Why an upload was not let in.
pub enum SlotRefused {
    /// The body failed (timed out) before its first bytes: the server answers 408.
    Body,
    /// The account has another upload in flight: 429.
    AccountBusy(AppError),
}

fn lock(set: &Mutex<HashSet<i32>>) -> std::sync::MutexGuard<'_, HashSet<i32>> {
    set.lock().unwrap_or_else(|e| e.into_inner())
}

impl Uploads {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(UPLOAD_SLOTS)),
            uploading: Arc::default(),
            max_bytes,
        }
    }

    /// Waits until the body's first bytes arrive, then takes `account`'s place (429 when it
    /// has another upload in flight) and waits for a slot. A client that sends its headers
    /// and then nothing holds neither (and its body times out). Call it only for a caller
    /// that has shown a valid token.
    ///
    /// Returns the body to read (its first piece put back in front).
    pub async fn slot(&self, account: i32, body: Body) -> Result<(UploadSlot, Body), SlotRefused> {
        let mut body = body;
        let first = body
            .frame()
            .await
            .transpose()
            .map_err(|_| SlotRefused::Body)?;
        if !lock(&self.uploading).insert(account) {
            return Err(SlotRefused::AccountBusy(AppError::RateLimited {
                retry_after_secs: 1,
            }));
        }
        // From here on the account's place is given back whatever happens.
        let place = AccountPlace {
            account,
            uploading: Arc::clone(&self.uploading),
        };
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the upload semaphore is never closed");
        let slot = UploadSlot {
            _permit: permit,
            _place: place,
        };
        let first = first.and_then(|frame| frame.into_data().ok());
        let rest = body.into_data_stream();
        let body = match first {
            Some(first) => {
                Body::from_stream(futures_util::stream::once(async { Ok(first) }).chain(rest))
            }
            None => Body::from_stream(rest),
        };
        Ok((slot, body))
    }
}

/// An account's upload in flight, given back when dropped (the wait for a slot included).
struct AccountPlace {
    account: i32,
    uploading: Arc<Mutex<HashSet<i32>>>,
}

impl Drop for AccountPlace {
    fn drop(&mut self) {
        lock(&self.uploading).remove(&self.account);
    }
}
