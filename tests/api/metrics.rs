//! `/metrics` on its own listener: a scripted sequence of requests moves each counter by
//! exactly what it should, and no label holds an email, a token or an id.

use std::{collections::BTreeMap, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, http_client},
    process::ServerProcess,
};

/// One scrape: each series (`name{label="value",…}`, labels sorted) and its value.
#[derive(Debug)]
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    async fn of(address: &str) -> (Self, String) {
        let response = http_client()
            .get(format!("{address}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = response.text().await.unwrap();
        let mut series = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (name_and_labels, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = parse_series(name_and_labels);
            series.insert(key(&name, &labels), value.parse().unwrap());
        }
        (Self(series), text)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0.get(&key(name, &labels)).copied().unwrap_or(0.0)
    }
}

/// `name{a="x",b="y"}` → the name and its labels (values unescaped).
fn parse_series(text: &str) -> (String, BTreeMap<String, String>) {
    let Some((name, rest)) = text.split_once('{') else {
        return (text.to_owned(), BTreeMap::new());
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.strip_suffix('}').unwrap().chars().peekable();
    loop {
        let label: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if label.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "{text}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(label, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    (name.to_owned(), labels)
}

fn key(name: &str, labels: &BTreeMap<String, String>) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// The metrics listener's address, from its start-up log line.
fn metrics_address(server: &ServerProcess) -> String {
    for _ in 0..100 {
        let found = server.log().iter().find_map(|line| {
            let value: Value = serde_json::from_str(line).ok()?;
            (value["fields"]["message"] == "metrics listening")
                .then(|| value["fields"]["address"].as_str().map(str::to_owned))?
        });
        if let Some(address) = found {
            return format!("http://{address}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no metrics listener: {:?}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_by_exactly_what_was_done_and_labels_hold_no_identity() {
    let server =
        ServerProcess::start(&[("METRICS_ADDR", "127.0.0.1:0"), ("LOGIN_MAX_FAILURES", "2")]);
    let metrics = metrics_address(&server);
    assert_ne!(metrics, server.address, "a listener of its own");
    let client = http_client();
    // The public API does not serve it.
    let public = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);

    let (before, _) = Scrape::of(&metrics).await;
    let email = "metrics.watcher@example.com";
    let registered: Value = client
        .post(server.url("/api/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_id = registered["id"].as_i64().unwrap().to_string();
    let login = |password: &'static str| {
        client
            .post(server.url("/api/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    let signed_in = login(PASSWORD).await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    let token = signed_in.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        let wrong = login("Wrong-Passw0rd").await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    // The second failure locked the account: even the right password is refused, unchecked.
    let locked = login(PASSWORD).await.unwrap();
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let public_profile = client
        .get(server.url(&format!("/api/profiles/{user_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(public_profile.status(), StatusCode::OK);
    let nowhere = client
        .get(server.url(&format!("/nowhere/{email}/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
    let graphql = |body: Value, token: Option<&str>| {
        let request = client.post(server.url("/graphql")).json(&body);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };
    // Named in the document only: counted by that name.
    let me = json!({"query": "query Me { me { id email } }"});
    let answered: Value = graphql(me, Some(&token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answered["data"]["me"]["email"], email);
    let anonymous: Value = graphql(json!({"query": "{ me { id } }"}), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        anonymous["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    let invalid = graphql(json!({"query": "query Misspelt { mee { id } }"}), None)
        .await
        .unwrap();
    assert_eq!(invalid.status(), StatusCode::OK);

    let (after, text) = Scrape::of(&metrics).await;
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let requests = |method, route, status| {
        moved(
            "http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("POST", "/api/auth/register", "201"), 1.0);
    assert_eq!(requests("POST", "/api/auth/login", "200"), 1.0);
    assert_eq!(requests("POST", "/api/auth/login", "401"), 2.0);
    assert_eq!(requests("POST", "/api/auth/login", "429"), 1.0);
    assert_eq!(requests("GET", "/api/profiles/{user_id}", "200"), 1.0);
    assert_eq!(requests("GET", "unmatched", "404"), 1.0);
    assert_eq!(requests("POST", "/graphql", "200"), 3.0);
    assert_eq!(
        moved(
            "http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/api/auth/login")]
        ),
        4.0
    );
    let logins = |outcome| moved("logins_total", &[("outcome", outcome)]);
    assert_eq!(
        [
            logins("success"),
            logins("bad_credentials"),
            logins("rate_limited")
        ],
        [1.0, 2.0, 1.0]
    );
    assert_eq!(
        moved("rate_limit_refusals_total", &[("limit", "account_locked")]),
        1.0
    );
    // REST's operations count as GraphQL operations too, by their fixed names.
    let operations = |operation, outcome| {
        moved(
            "graphql_operations_total",
            &[("operation", operation), ("outcome", outcome)],
        )
    };
    assert_eq!(operations("Register", "ok"), 1.0);
    assert_eq!(operations("Login", "ok"), 1.0);
    assert_eq!(operations("Login", "unauthenticated"), 2.0);
    assert_eq!(operations("Login", "rate_limited"), 1.0);
    assert_eq!(operations("PublicProfile", "ok"), 1.0);
    assert_eq!(operations("Me", "ok"), 1.0);
    assert_eq!(operations("anonymous", "unauthenticated"), 1.0);
    assert_eq!(
        operations("Misspelt", "invalid"),
        1.0,
        "a document that does not validate"
    );
    // One hash at registration, one check per login that was not refused.
    assert_eq!(moved("password_hash_queue_wait_seconds_count", &[]), 4.0);
    assert_eq!(
        after.get("build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    for gauge in [
        "mail_outbox_depth",
        "webhook_outbox_depth",
        "webhook_oldest_pending_seconds",
    ] {
        assert!(
            after.0.contains_key(&key(gauge, &BTreeMap::new())),
            "{gauge}"
        );
    }
    let pool = after.get("db_pool_connections", &[("state", "idle")])
        + after.get("db_pool_connections", &[("state", "in_use")]);
    assert!(pool >= 1.0, "{text}");

    // No label holds the email, the token or the account's id.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('{'))
    {
        let (_, labels) = parse_series(line.rsplit_once(' ').unwrap().0);
        for (label, value) in labels {
            assert!(!value.contains('@') && !value.contains(&token), "{line}");
            if label != "le" && label != "version" {
                assert!(value.split('/').all(|segment| segment != user_id), "{line}");
            }
        }
    }
    assert!(!text.contains(email) && !text.contains(&token));
}

/// A second instance on one machine finds the metrics port taken: it says so and serves the
/// API all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_metrics_port_leaves_the_api_up() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let server = ServerProcess::start(&[("METRICS_ADDR", &address)]);
    let health = http_client()
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let log = server.log();
    let said = log.iter().any(|line| {
        line.contains("metrics are off") && line.contains(&address) && line.contains("ERROR")
    });
    assert!(said, "{}", log.join("\n"));
}

/// The application owns its background workers: when it stops, the metrics listener (a
/// worker) stops with it, instead of serving on from a detached task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_stop_with_the_application() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = free.local_addr().unwrap().to_string();
    drop(free);
    let mut app = crate::helpers::spawn_app_with(
        crate::helpers::Backend::Sqlite,
        &[("METRICS_ADDR", address.as_str())],
    )
    .await;
    let metrics = format!("http://{address}/metrics");
    let scrape = http_client().get(&metrics).send().await.unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    app.shut_down();
    let server = app.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the application stops")
        .unwrap()
        .unwrap();
    let after = http_client()
        .get(&metrics)
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(after.is_err(), "the metrics listener stopped too");
}
