//! The one middleware around every request: request ids, body timers and rates, `Connection:
//! close` after an early answer, JSON errors, security headers, the request metrics.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::Response,
};
use hyper::body::{Frame, SizeHint};

use crate::{
    config::HttpLimits,
    error::ErrorCode,
    http::{self, Problem},
};

/// The one middleware around everything (one layer, so one boxed call per request):
///
/// - a client's `X-Request-Id` is kept only when it is short and plain (letters, digits,
///   `-`, `_`, `.`, `:`), else removed so that a new one is made: the id is written into
///   every log line, where spaces or `=` could forge fields;
/// - the request body is timed out (see the module docs): 408, connection closed;
/// - a response sent before the body was read to its end says `Connection: close`: the
///   connection still holds the rest of the body, and the client must not send its next
///   request down a connection that is about to close;
/// - errors are JSON ([`http::as_json_error`]) and every response carries the security
///   headers ([`http::add_security_headers`]).
pub async fn guard(
    axum::extract::State(limits): axum::extract::State<Arc<HttpLimits>>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = header::HeaderName::from_static("x-request-id");
    if request
        .headers()
        .get(&request_id)
        .is_some_and(|id| !is_plain_id(id.as_bytes()))
    {
        request.headers_mut().remove(&request_id);
    }
    let started = Instant::now();
    let method = crate::monitoring::method_label(request.method());
    // The route template (`/api/admin/users/{id}`), never the raw path.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let watch = Arc::new(BodyWatch::default());
    // A request without a body (most GETs) has nothing to time or to leave unread.
    let request = if hyper::body::Body::is_end_stream(request.body()) {
        watch.finished.store(true, Ordering::Release);
        request
    } else {
        let (parts, body) = request.into_parts();
        let body = TimedBody::new(body, &limits, Arc::clone(&watch));
        Request::from_parts(parts, Body::new(body))
    };
    let mut response = next.run(request).await;
    if watch.timed_out.load(Ordering::Acquire) {
        // Whatever the handler made of the broken body, the answer is a 408; the headers the
        // inner layers set (the request id) stay.
        let (mut head, _) = response.into_parts();
        let (timeout, body) = Problem::new(
            ErrorCode::BadUserInput,
            "The request body arrived too slowly",
        )
        .into_status(StatusCode::REQUEST_TIMEOUT)
        .into_parts();
        head.status = timeout.status;
        head.headers.remove(header::CONTENT_LENGTH);
        head.headers.extend(timeout.headers);
        response = Response::from_parts(head, body);
    }
    let finished = watch.finished.load(Ordering::Acquire);
    if !finished || response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let mut response = http::as_json_error(response);
    http::add_security_headers(response.headers_mut());
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[derive(Default)]
struct BodyWatch {
    finished: AtomicBool,
    timed_out: AtomicBool,
}

/// A request body that fails when it pauses too long, takes too long, or arrives slower than
/// `BODY_MIN_RATE`. The timers start when the body is first found waiting, so a body that is
/// read at once (or never) costs none.
struct TimedBody {
    inner: Body,
    limits: Arc<HttpLimits>,
    /// When the request's head was read: the body's rate counts from here.
    started: tokio::time::Instant,
    received: u64,
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// When the bytes received so far stop being enough for the minimum rate.
    behind: Option<Pin<Box<tokio::time::Sleep>>>,
    watch: Arc<BodyWatch>,
}

impl TimedBody {
    fn new(inner: Body, limits: &Arc<HttpLimits>, watch: Arc<BodyWatch>) -> Self {
        Self {
            inner,
            limits: Arc::clone(limits),
            started: tokio::time::Instant::now(),
            received: 0,
            idle: None,
            deadline: None,
            behind: None,
            watch,
        }
    }

    /// The moment the body falls behind the minimum rate with what it sent so far: after the
    /// grace period, `received / rate` seconds after it started. `None`: no minimum.
    fn behind_at(&self) -> Option<tokio::time::Instant> {
        let rate = self.limits.body_min_rate;
        (rate > 0).then(|| {
            let earned = Duration::from_secs_f64(self.received as f64 / rate as f64);
            self.started + earned.max(crate::config::BODY_RATE_GRACE)
        })
    }

    /// Has a timer run out? Starts the timers the first time the body waits.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.behind.is_none()
            && let Some(at) = self.behind_at()
        {
            self.behind = Some(Box::pin(tokio::time::sleep_until(at)));
        }
        let limits = &self.limits;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limits.body_timeout)));
        let idle = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limits.body_idle_timeout)));
        let behind = self
            .behind
            .as_mut()
            .is_some_and(|behind| behind.as_mut().poll(cx).is_ready());
        idle.as_mut().poll(cx).is_ready() || deadline.as_mut().poll(cx).is_ready() || behind
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if frame.is_none() || hyper::body::Body::is_end_stream(&this.inner) {
                    this.watch.finished.store(true, Ordering::Release);
                }
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                    this.received += data.map_or(0, |d| d.len() as u64);
                }
                if let Some(idle) = this.idle.as_mut() {
                    let next = tokio::time::Instant::now() + this.limits.body_idle_timeout;
                    idle.as_mut().reset(next);
                }
                if let Some(at) = this.behind_at()
                    && let Some(behind) = this.behind.as_mut()
                {
                    behind.as_mut().reset(at);
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                if this.expired(cx) {
                    this.watch.timed_out.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[derive(Debug)]
struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body arrived too slowly")
    }
}

impl std::error::Error for BodyTimeout {}

/// Longest request id accepted from a client.
pub const MAX_REQUEST_ID: usize = 64;

fn is_plain_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_request_ids_are_kept() {
        assert!(is_plain_id(b"3f2a-11:req_7.x"));
        assert!(!is_plain_id(b""));
        assert!(!is_plain_id(b"1 user_id=42 status=500 ERROR forged"));
        assert!(!is_plain_id(&[b'a'; MAX_REQUEST_ID + 1]));
        assert!(!is_plain_id("é".as_bytes()));
    }
}
