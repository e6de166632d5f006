//! The HTTP server under the router: accepting connections, and what no client may hold of it.
//!
//! `axum::serve` sets no timeout and no bound at all: a socket that sends nothing, headers
//! one byte at a time, or a body that never ends is held forever, and enough of them use up
//! the process's file descriptors. Here:
//!
//! - a request's headers must arrive within `HEADER_READ_TIMEOUT_SECS`; hyper's timer also
//!   runs while a keep-alive connection waits for its next request, so idle connections close
//!   after the same time;
//! - a request body may pause at most `BODY_IDLE_TIMEOUT_SECS` between two pieces and take at
//!   most `BODY_TIMEOUT_SECS` in all ([`guard`]), else the request is answered 408 and the
//!   connection closed;
//! - a request body must also keep up `BODY_MIN_RATE` bytes a second once it has had
//!   [`BODY_RATE_GRACE`](crate::config::BODY_RATE_GRACE) to start: one byte every few seconds
//!   keeps the idle timer happy, not this one;
//! - a header block over [`MAX_HEADER_BYTES`](crate::config::MAX_HEADER_BYTES) is answered 431
//!   (hyper's read buffer stops there), so an unfinished one holds at most that much;
//! - a response the client does not read for `WRITE_TIMEOUT_SECS` closes the connection
//!   ([`WriteTimeout`]): hyper has no write timeout, and a client that never reads would keep
//!   its response's buffers as long as the socket lives;
//! - at most `MAX_CONNECTIONS` connections are open; at the limit a new client still gets in,
//!   and the connection idle the longest (no request in flight) is closed to make room. Only
//!   when every connection is busy is the newcomer turned away;
//! - at most `MAX_CONNECTIONS_PER_IP` of them come from one peer address (trusted proxies
//!   aside): a new one past that takes the place of that address's own longest-idle
//!   connection, or is turned away, so one address cannot hold the others' share.
//!
//! HTTP/1.1 only: HTTP/2 is for the load balancer in front to speak with browsers.

use std::{
    collections::HashMap,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, Request},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::Response,
};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::Notify,
};
use tokio_util::task::TaskTracker;

use crate::{
    config::{HttpLimits, MAX_HEADER_BYTES},
    error::ErrorCode,
    http::{self, Problem},
};

/// File descriptors kept free for the database, log files and photos.
const RESERVED_FDS: usize = 64;
/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` completes, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_as("listening", listener, router, limits, shutdown).await
}

/// As [`serve`]; `what` is the start-up log line's message (`metrics listening`).
pub async fn serve_as(
    what: &'static str,
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max_connections = limits.max_connections.min(fd_budget());
    let connections = Arc::new(Connections::default());
    let tasks = TaskTracker::new();
    let stopping = Arc::new(Notify::new());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    tracing::info!(address = %listener.local_addr()?, max_connections, "{what}");

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or similar: shed, wait a little, go on.
                    tracing::warn!(error = %e, "accept failed");
                    connections.shed_idle();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Counted per address unless the peer is a trusted proxy (then it is many clients).
        let address = crate::net::canonical(peer.ip());
        let counted = (!limits
            .trusted_proxies
            .iter()
            .any(|net| net.contains(address)))
        .then_some(address);
        if let Some(address) = counted
            && connections.from(address) >= limits.max_connections_per_ip
            && !connections.shed_idle_of(Some(address))
        {
            tracing::warn!(
                max_connections_per_ip = limits.max_connections_per_ip,
                "one address holds its share of connections, all busy: turning it away"
            );
            drop(stream);
            continue;
        }
        if connections.len() >= max_connections && !connections.shed_idle() {
            tracing::warn!(
                max_connections,
                "every connection is busy: turning a client away"
            );
            drop(stream);
            continue;
        }
        let connection = connections.open(counted);
        let service = hyper::service::service_fn({
            let router = router.clone();
            let connection = Arc::clone(&connection);
            move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let busy = connection.busy();
                let router = router.clone();
                async move {
                    // hyper's buffer bound is approximate (a head read in one go passes it).
                    if head_bytes(&request) > MAX_HEADER_BYTES {
                        return Ok(headers_too_large());
                    }
                    let response = tower::ServiceExt::oneshot(router, request.map(Body::new)).await;
                    drop(busy);
                    response
                }
            }
        });
        let stream = WriteTimeout::new(stream, limits.write_timeout);
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let stopping = Arc::clone(&stopping);
        let connections = Arc::clone(&connections);
        tasks.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // Shed to make room: nothing is in flight on it.
                () = connection.shed.notified() => {}
                () = stopping.notified() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
                }
            }
            connections.close(connection.id);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tasks.close();
    stopping.notify_waiters();
    // A connection spawned just now may not wait on `stopping` yet: keep telling.
    while tokio::time::timeout(Duration::from_millis(100), tasks.wait())
        .await
        .is_err()
    {
        stopping.notify_waiters();
    }
    Ok(())
}

/// The size of a request's head as sent: its target and every header line.
fn head_bytes<B>(request: &hyper::Request<B>) -> usize {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    target + headers
}

/// 431 for a head over [`MAX_HEADER_BYTES`]; the connection closes after it.
fn headers_too_large() -> Response {
    let mut response = Problem::new(ErrorCode::BadUserInput, "Request header fields too large")
        .into_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    http::add_security_headers(headers);
    response
}

/// The soft limit on open files, less what the rest of the process needs.
fn fd_budget() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and touches nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if !ok || limit.rlim_cur == libc::RLIM_INFINITY {
        return usize::MAX;
    }
    usize::try_from(limit.rlim_cur)
        .unwrap_or(usize::MAX)
        .saturating_sub(RESERVED_FDS)
        .max(1)
}

/// The open connections, which of them are idle, and how many each address holds.
#[derive(Default)]
struct Connections {
    open: Mutex<Open>,
    next_id: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

#[derive(Default)]
struct Open {
    by_id: HashMap<u64, Arc<Connection>>,
    per_address: HashMap<IpAddr, usize>,
}

impl Open {
    fn remove(&mut self, id: u64) -> Option<Arc<Connection>> {
        let connection = self.by_id.remove(&id)?;
        if let Some(address) = connection.address
            && let Some(count) = self.per_address.get_mut(&address)
        {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&address);
            }
        }
        Some(connection)
    }
}

struct Connection {
    id: u64,
    /// The peer's address, when its connections are counted against the per-address limit.
    address: Option<IpAddr>,
    in_flight: AtomicUsize,
    /// Milliseconds since the epoch at which the connection last finished a request.
    idle_since: AtomicU64,
    shed: Notify,
    connections: std::sync::Weak<Connections>,
}

impl Connections {
    fn now_ms(&self) -> u64 {
        self.epoch.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// How many connections `address` holds.
    fn from(&self, address: IpAddr) -> usize {
        self.lock()
            .per_address
            .get(&address)
            .copied()
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(self: &Arc<Self>, address: Option<IpAddr>) -> Arc<Connection> {
        let connection = Arc::new(Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            address,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now_ms()),
            shed: Notify::new(),
            connections: Arc::downgrade(self),
        });
        let mut open = self.lock();
        open.by_id.insert(connection.id, Arc::clone(&connection));
        if let Some(address) = address {
            *open.per_address.entry(address).or_default() += 1;
        }
        connection
    }

    fn close(&self, id: u64) {
        self.lock().remove(id);
    }

    /// Closes the connection idle the longest; false when every connection is busy.
    fn shed_idle(&self) -> bool {
        self.shed_idle_of(None)
    }

    /// Closes the connection idle the longest (of `address`, if given); false when every
    /// such connection is busy.
    fn shed_idle_of(&self, address: Option<IpAddr>) -> bool {
        let mut open = self.lock();
        let victim = open
            .by_id
            .values()
            .filter(|c| address.is_none() || c.address == address)
            .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|c| c.idle_since.load(Ordering::Relaxed))
            .map(|c| c.id);
        match victim.and_then(|id| open.remove(id)) {
            Some(connection) => {
                connection.shed.notify_one();
                true
            }
            None => false,
        }
    }
}

impl Connection {
    /// Marks a request in flight until the guard is dropped.
    fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(self))
    }
}

struct Busy(Arc<Connection>);

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(connections) = self.0.connections.upgrade() {
            self.0
                .idle_since
                .store(connections.now_ms(), Ordering::Relaxed);
        }
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

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

/// A socket whose writes fail once one has waited `timeout` for the client to read: hyper
/// then drops the connection, and with it the response it was holding.
struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Runs while a write (or flush) waits; `None` while writes go through.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            waiting: None,
        }
    }

    /// Turns a write's `Pending` into an error once it has waited too long.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if poll.is_ready() {
            self.waiting = None;
            return poll;
        }
        let timeout = self.timeout;
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if waiting.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not read its response",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, poll)
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

    #[test]
    fn the_idle_connection_is_shed_first() {
        let connections = Arc::new(Connections::default());
        let busy = connections.open(None);
        let idle = connections.open(None);
        let _guard = busy.busy();
        assert!(connections.shed_idle());
        assert_eq!(connections.len(), 1);
        assert!(connections.lock().by_id.contains_key(&busy.id));
        assert!(!connections.lock().by_id.contains_key(&idle.id));
        // Only busy ones left: nothing to shed.
        assert!(!connections.shed_idle());
    }

    #[test]
    fn connections_are_counted_per_address_and_shed_within_it() {
        let connections = Arc::new(Connections::default());
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a_busy = connections.open(Some(a));
        let _a_idle = connections.open(Some(a));
        let b_idle = connections.open(Some(b));
        let _exempt = connections.open(None);
        let _guard = a_busy.busy();
        assert_eq!((connections.from(a), connections.from(b)), (2, 1));
        // Shedding within `a` never touches `b`'s idle connection.
        assert!(connections.shed_idle_of(Some(a)));
        assert_eq!(connections.from(a), 1);
        assert!(!connections.shed_idle_of(Some(a)), "a's last one is busy");
        assert!(connections.lock().by_id.contains_key(&b_idle.id));
        connections.close(b_idle.id);
        assert_eq!(connections.from(b), 0);
        assert!(!connections.lock().per_address.contains_key(&b));
    }
}
