//! HTTP pieces that both transports (REST and `/graphql`) and the server use: the JSON
//! error body and media-type checks. Neither transport imports the other; both import this.

use axum::{
    Json,
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::error::{AppError, ErrorCode};

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
            AppError::RateLimited { retry_after_secs } => {
                problem.with_retry_after(retry_after_secs)
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
    /// The same body under another status (415 has no code of its own).
    pub fn into_status(self, status: StatusCode) -> Response {
        let mut response = self.into_response();
        *response.status_mut() = status;
        response
    }
}

/// Does the request's `Content-Type` name this media type (parameters aside)?
pub fn has_media_type(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case(media_type))
}

/// Middleware, the safety net under the error format: an error answered by a library in
/// plain text (an extractor's rejection, say, whose message may name our types) goes out as
/// `{"detail": "<the status's reason>"}` instead. The status and other headers stay.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || has_media_type(response.headers(), "application/json")
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
