//! Prometheus metrics, served on their own listener (`METRICS_ADDR`, never with the public
//! API) at `/metrics`.
//!
//! The series are recorded where things happen, through the `metrics` facade: requests in the
//! server's guard (labelled by route template, never by raw path), GraphQL operations by an
//! extension of the schema, logins in the service, rate-limit refusals in the limiter, the
//! password-hash queue in the hasher. Gauges of state (database pool, mail outbox) are read
//! when Prometheus scrapes. Labels never hold an email, a token or an id.

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: from a cached read to a bcrypt-bound login under load.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Most distinct GraphQL operation names kept as labels; later ones count as `other`.
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

/// A GraphQL operation name as a label: names are the client's to choose, so only plain
/// ones (letters, digits, `_`, at most 64) are kept, and only the first 100 distinct names;
/// the rest count as `other`, and operations without a name as `anonymous`.
pub fn operation_label(name: Option<&str>) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Some(name) = name else {
        return "anonymous".to_owned();
    };
    let plain = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plain {
        return "other".to_owned();
    }
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if seen.contains(name) || seen.len() < MAX_OPERATION_NAMES {
        seen.insert(name.to_owned());
        name.to_owned()
    } else {
        "other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded_and_plain() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("Login")), "Login");
        assert_eq!(operation_label(Some("a@b.c")), "other");
        assert_eq!(operation_label(Some(&"x".repeat(65))), "other");
        for i in 0..(2 * MAX_OPERATION_NAMES) {
            operation_label(Some(&format!("Op{i}")));
        }
        assert_eq!(operation_label(Some("NeverSeenBefore")), "other");
        assert_eq!(operation_label(Some("Login")), "Login");
    }
}
