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

mod guard;
mod write_timeout;

use std::{
    collections::HashMap,
    future::Future,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::task::TaskTracker;

use crate::{
    config::{HttpLimits, MAX_HEADER_BYTES},
    error::ErrorCode,
    http::{self, Problem},
};

pub use guard::{MAX_REQUEST_ID, guard};
use write_timeout::WriteTimeout;

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
            .any(|net| net.contains(&address)))
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

#[cfg(test)]
mod tests {
    use super::*;

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
