//! Prometheus metrics, served on their own listener (`METRICS_ADDR`, never with the public
//! API) at `/metrics`.
//!
//! The series are recorded where things happen, through the `metrics` facade: requests in the
//! server's guard (labelled by route template, never by raw path), GraphQL operations around
//! `Schema::execute` (no schema extension: one would put every field through its chain),
//! logins in the service, rate-limit refusals in the limiter and the hash queue, the
//! password-hash queue wait in the hasher. Gauges of state (database pool, mail outbox) are
//! read when Prometheus scrapes. Labels never hold an email, a token or an id.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: from a cached read to a bcrypt-bound login under load.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Most GraphQL operation names (besides the REST paths' own) kept as labels at a time.
const MAX_OPERATION_NAMES: usize = 100;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use; its handle renders the scrape.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
            metrics::gauge!("build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request (to the response head), by method and route template"
    );
    describe_counter!(
        "graphql_operations_total",
        "GraphQL operations run (REST paths included), by operation name and outcome"
    );
    describe_counter!("logins_total", "Login attempts, by outcome");
    describe_counter!(
        "rate_limit_refusals_total",
        "Requests refused by a rate limit, by limit"
    );
    describe_histogram!(
        "password_hash_queue_wait_seconds",
        Unit::Seconds,
        "Time a bcrypt hash or check waited for a free core"
    );
    describe_gauge!(
        "db_pool_connections",
        "Database pool connections, by state (idle, in_use)"
    );
    describe_gauge!(
        "mail_outbox_depth",
        "Messages in the outbox not yet sent (due or waiting for a retry)"
    );
    describe_gauge!("build_info", "Always 1; the version is a label");
}

/// An HTTP method as a label: the standard ones, anything else `other`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A GraphQL operation name as a label: names are the client's to choose, so only plain ones
/// (letters, digits, `_`, at most 64) are kept. The REST paths' own operations are always
/// labelled by name ([`pin_operation_name`]); of the others, at most
/// [`MAX_OPERATION_NAMES`] chosen by recent use, and the rest count as `other`, operations
/// without a name as `anonymous`.
pub fn operation_label(name: Option<&str>) -> SharedString {
    let Some(name) = name else {
        return SharedString::const_str("anonymous");
    };
    if !is_plain_name(name) {
        return SharedString::const_str("other");
    }
    operation_names().label(name, Instant::now())
}

/// Keeps `name` as a label for good (the REST paths' operations, at start-up).
pub fn pin_operation_name(name: &str) {
    if is_plain_name(name) {
        operation_names().pin(name);
    }
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn operation_names() -> &'static OperationNames {
    static NAMES: OnceLock<OperationNames> = OnceLock::new();
    NAMES.get_or_init(|| OperationNames::new(Instant::now()))
}

/// A label's place is taken by a new name only once it has not been used for this long, so
/// a burst of made-up names cannot push names in use out (and each admitted name is a new
/// series: this also bounds how fast the series grow).
const NAME_IDLE_BEFORE_EVICTION: Duration = Duration::from_secs(600);

type Names = HashMap<Arc<str>, Arc<NameSlot>>;

/// The operation names kept as labels. Looking a known name up takes no lock: it loads the
/// current table, stores the time of use in the name's slot and shares the name (a reference
/// count, no copy). A new name, rare by design, is admitted under a mutex into a copy of the
/// table (at most [`MAX_OPERATION_NAMES`] and the pinned ones) that then replaces it; the
/// slots are shared between the copies, so no use is lost.
struct OperationNames {
    names: ArcSwap<Names>,
    admitting: Mutex<()>,
    epoch: Instant,
}

struct NameSlot {
    pinned: bool,
    /// Seconds since the epoch of its last use.
    last_used: AtomicU64,
}

impl OperationNames {
    fn new(epoch: Instant) -> Self {
        Self {
            names: ArcSwap::default(),
            admitting: Mutex::default(),
            epoch,
        }
    }

    fn pin(&self, name: &str) {
        let _admitting = self.admitting.lock().unwrap_or_else(|e| e.into_inner());
        let mut names = Names::clone(&self.names.load());
        let slot = NameSlot {
            pinned: true,
            last_used: AtomicU64::new(0),
        };
        names.insert(name.into(), Arc::new(slot));
        self.names.store(Arc::new(names));
    }

    fn label(&self, name: &str, now: Instant) -> SharedString {
        let now = now.saturating_duration_since(self.epoch).as_secs();
        if let Some(known) = Self::used(&self.names.load(), name, now) {
            return known;
        }
        let _admitting = self.admitting.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.names.load_full();
        if let Some(known) = Self::used(&current, name, now) {
            return known;
        }
        let mut names = Names::clone(&current);
        let unpinned = names.values().filter(|slot| !slot.pinned).count();
        if unpinned >= MAX_OPERATION_NAMES {
            let idlest = names
                .iter()
                .filter(|(_, slot)| !slot.pinned)
                .map(|(name, slot)| (slot.last_used.load(Ordering::Relaxed), name))
                .min()
                .filter(|(used, _)| {
                    now.saturating_sub(*used) >= NAME_IDLE_BEFORE_EVICTION.as_secs()
                })
                .map(|(_, name)| Arc::clone(name));
            match idlest {
                Some(idlest) => names.remove(&idlest),
                None => return SharedString::const_str("other"),
            };
        }
        let label: Arc<str> = name.into();
        let slot = NameSlot {
            pinned: false,
            last_used: AtomicU64::new(now),
        };
        names.insert(Arc::clone(&label), Arc::new(slot));
        self.names.store(Arc::new(names));
        label.into()
    }

    /// `name`'s shared label if the table has it, its use recorded.
    fn used(names: &Names, name: &str, now: u64) -> Option<SharedString> {
        let (label, slot) = names.get_key_value(name)?;
        slot.last_used.store(now, Ordering::Relaxed);
        Some(Arc::clone(label).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_plain() {
        assert_eq!(&*operation_label(None), "anonymous");
        assert_eq!(&*operation_label(Some("a@b.c")), "other");
        assert_eq!(&*operation_label(Some(&"x".repeat(65))), "other");
    }

    #[test]
    fn junk_names_cannot_push_names_in_use_out_for_good() {
        let start = Instant::now();
        let names = OperationNames::new(start);
        names.pin("Login");
        assert_eq!(&*names.label("MyProfile", start), "MyProfile");
        // A burst of made-up names fills the free places, and no more.
        for i in 0..(3 * MAX_OPERATION_NAMES) {
            names.label(&format!("Junk{i}"), start);
        }
        assert_eq!(&*names.label("NeverSeenBefore", start), "other");
        // Names in use keep their labels, pinned ones always.
        assert_eq!(&*names.label("MyProfile", start), "MyProfile");
        assert_eq!(&*names.label("Login", start), "Login");
        // Once the junk has gone unused for a while, new names get in again.
        let later = start + NAME_IDLE_BEFORE_EVICTION;
        assert_eq!(&*names.label("NeverSeenBefore", later), "NeverSeenBefore");
        assert_eq!(&*names.label("Login", later), "Login");
        let count = names.names.load().len();
        assert_eq!(
            count,
            MAX_OPERATION_NAMES + 1,
            "100 others and the pinned one"
        );
    }
}
