//! Crashes, outages and sustained load, against the real binary.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, PostgresDatabase, image_bytes, login_at, proc_status_kb},
    process::ServerProcess,
};

const NO_LIMITS: [(&str, &str); 2] = [
    ("LOGIN_PER_IP_PER_MINUTE", "100000000"),
    ("REGISTER_PER_IP_PER_MINUTE", "100000000"),
];

fn settings<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    NO_LIMITS
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

/// Pseudo-random milliseconds in `range` (no RNG crate needed for a jitter).
fn jitter(range: std::ops::Range<u64>) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_millis(range.start + nanos % (range.end - range.start))
}

/// Writers register users and update their profiles; the server is killed with SIGKILL at a
/// random moment and restarted, ten times. Whatever was acknowledged must survive, the
/// database must stay intact, and no user may exist without a profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_write_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/crash.db?mode=rwc", dir.path().display());
    let settings = settings(&[("DATABASE_URL", &url)]);
    // email → the bio whose update was acknowledged (None: registered, not yet updated).
    let acknowledged: Arc<Mutex<HashMap<String, Option<String>>>> = Arc::default();
    let client = crate::helpers::http_client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    for round in 0..10 {
        let server = ServerProcess::start_in(dir.path(), &settings);
        verify_acknowledged(&client, &server.address, &acknowledged).await;

        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = tokio::task::JoinSet::new();
        for writer in 0..6 {
            let (client, base, stop, acked) = (
                client.clone(),
                server.address.clone(),
                stop.clone(),
                acknowledged.clone(),
            );
            writers.spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let email = format!("r{round}-w{writer}-{n}@example.com");
                    let registered = client
                        .post(format!("{base}/api/auth/register"))
                        .json(&json!({"email": email, "password": PASSWORD}))
                        .send()
                        .await;
                    if !matches!(registered, Ok(ref r) if r.status() == StatusCode::CREATED) {
                        continue;
                    }
                    acked.lock().unwrap().insert(email.clone(), None);
                    let Some(token) = login_at(&client, &base, &email).await else {
                        continue;
                    };
                    let bio = format!("bio of {email}");
                    let updated = client
                        .put(format!("{base}/api/profiles/me"))
                        .bearer_auth(&token)
                        .json(&json!({"bio": bio}))
                        .send()
                        .await;
                    if matches!(updated, Ok(ref r) if r.status() == StatusCode::OK) {
                        acked.lock().unwrap().insert(email, Some(bio));
                    }
                }
            });
        }
        tokio::time::sleep(jitter(200..900)).await;
        server.signal("KILL");
        stop.store(true, Ordering::Relaxed);
        writers.join_all().await;
        drop(server);

        let db = Database::connect(&url).await.unwrap();
        let backend = db.get_database_backend();
        let integrity = db
            .query_one_raw(Statement::from_string(backend, "PRAGMA integrity_check"))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<String>(0)
            .unwrap();
        assert_eq!(integrity, "ok", "round {round}");
        let orphans = db
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT COUNT(*) FROM users u WHERE NOT EXISTS \
                 (SELECT 1 FROM profiles p WHERE p.user_id = u.id)",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap();
        assert_eq!(orphans, 0, "round {round}: users without a profile");
        db.close().await.unwrap();
    }
    let server = ServerProcess::start_in(dir.path(), &settings);
    verify_acknowledged(&client, &server.address, &acknowledged).await;
    assert!(
        acknowledged.lock().unwrap().len() >= 10,
        "the writers got some work done"
    );
}

async fn verify_acknowledged(
    client: &reqwest::Client,
    base: &str,
    acknowledged: &Mutex<HashMap<String, Option<String>>>,
) {
    let expected = acknowledged.lock().unwrap().clone();
    for (email, bio) in expected {
        let token = login_at(client, base, &email)
            .await
            .unwrap_or_else(|| panic!("{email} got a 201 but cannot log in"));
        if let Some(bio) = bio {
            let profile: Value = client
                .get(format!("{base}/api/users/me/profile"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                profile["bio"], bio,
                "{email}: an acknowledged update was lost"
            );
        }
    }
}

/// PostgreSQL refuses connections and drops the open ones: requests fail fast with 503,
/// `/readyz` says not ready, the process lives on, and it recovers by itself.
#[cfg_attr(not(pg_tests), ignore = "set TEST_DATABASE_URL to run on PostgreSQL")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_is_503_and_recovers_by_itself() {
    let pg = PostgresDatabase::create().await;
    let server = ServerProcess::start(&settings(&[
        ("DATABASE_URL", &pg.url),
        ("DATABASE_ACQUIRE_TIMEOUT_SECS", "2"),
    ]));
    let client = crate::helpers::http_client_builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let base = &server.address;
    client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": "pg@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let token = login_at(&client, base, "pg@example.com").await.unwrap();
    let profile = || {
        client
            .get(format!("{base}/api/users/me/profile"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(profile().await.unwrap().status(), StatusCode::OK);

    let admin = Database::connect(&pg.admin_url).await.unwrap();
    let outage = |allow: bool| {
        format!(
            "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS {allow}",
            pg.name
        )
    };
    admin.execute_unprepared(&outage(false)).await.unwrap();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            pg.name
        ))
        .await
        .unwrap();

    let started = Instant::now();
    let response = profile().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.json::<Value>().await.unwrap()["detail"],
        "Service unavailable"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let graphql: Value = client
        .post(format!("{base}/graphql"))
        .bearer_auth(&token)
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        graphql["errors"][0]["extensions"]["code"],
        "SERVICE_UNAVAILABLE"
    );
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let alive = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), StatusCode::OK);

    admin.execute_unprepared(&outage(true)).await.unwrap();
    let returned = Instant::now();
    loop {
        if profile().await.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(
            returned.elapsed() < Duration::from_secs(10),
            "no recovery within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    drop(server);
    pg.drop_database();
}

/// SIGTERM while a registration and a photo upload are in flight: both complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_upload_in_flight_finish() {
    let mut server = ServerProcess::start(&settings(&[]));
    let client = crate::helpers::http_client();
    let base = server.address.clone();
    client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": "up@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let token = login_at(&client, &base, "up@example.com").await.unwrap();
    let photo = image_bytes(2000, 1500, image::ImageFormat::Jpeg);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(photo).file_name("big.jpg"),
    );
    let upload = tokio::spawn(
        client
            .post(format!("{base}/api/profiles/me/photo"))
            .bearer_auth(&token)
            .multipart(form)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    server.signal("TERM");
    let response = upload.await.unwrap().expect("the upload completes");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.wait(Duration::from_secs(10)), Some(0));
}

/// Mixed load for `SOAK_SECS` (default 60), with two webhook endpoints (one receiving, one
/// down, so its events are retried throughout): no errors, memory that stops growing once
/// warm, and mail and webhooks delivered beside the load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_mixed_load_has_no_errors_and_flat_memory() {
    let seconds: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/soak.db?mode=rwc", dir.path().display());
    // Metrics on, as in production, and never scraped: what they keep must stay bounded too.
    let server = ServerProcess::start_in(
        dir.path(),
        &settings(&[
            ("METRICS_ADDR", "127.0.0.1:0"),
            ("DATABASE_URL", &database_url),
            ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ]),
    );
    let client = crate::helpers::http_client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = server.address.clone();
    // Two endpoints for every event: a receiver, and an address where nothing listens.
    let receiver = crate::webhooks::Receiver::start();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": "hooks@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    Database::connect(&database_url)
        .await
        .unwrap()
        .execute_unprepared("UPDATE users SET role = 'admin'")
        .await
        .unwrap();
    let admin = login_at(&client, &base, "hooks@example.com").await.unwrap();
    for url in [
        format!("{}/in", receiver.url),
        format!("http://127.0.0.1:{dead}/in"),
    ] {
        let created = client
            .post(format!("{base}/api/admin/webhooks"))
            .bearer_auth(&admin)
            .json(&json!({"url": url, "events": ["*"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let mut tokens = Vec::new();
    for i in 0..8 {
        let email = format!("soak{i}@example.com");
        client
            .post(format!("{base}/api/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        tokens.push((
            email.clone(),
            login_at(&client, &base, &email).await.unwrap(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (requests, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..12usize {
        let (client, base, requests, errors) = (
            client.clone(),
            base.clone(),
            requests.clone(),
            errors.clone(),
        );
        let (email, token) = tokens[worker % tokens.len()].clone();
        workers.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let response = match n % 20 {
                    0 => {
                        client
                            .post(format!("{base}/api/auth/login"))
                            .json(&json!({"email": email, "password": PASSWORD}))
                            .send()
                            .await
                    }
                    1..=3 => {
                        client
                            .put(format!("{base}/api/profiles/me"))
                            .bearer_auth(&token)
                            .json(&json!({"bio": format!("bio {n}")}))
                            .send()
                            .await
                    }
                    4..=6 => {
                        client
                            .post(format!("{base}/graphql"))
                            .bearer_auth(&token)
                            .json(&json!({"query": "{ me { id profile { bio } } }"}))
                            .send()
                            .await
                    }
                    _ => {
                        client
                            .get(format!("{base}/api/users/me/profile"))
                            .bearer_auth(&token)
                            .send()
                            .await
                    }
                };
                requests.fetch_add(1, Ordering::Relaxed);
                if !matches!(response, Ok(ref r) if r.status().is_success()) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let warm_at = Duration::from_secs(seconds / 4);
    tokio::time::sleep(warm_at).await;
    let warm = rss_kb(server.pid());
    workers.join_all().await;
    let end = rss_kb(server.pid());
    let (requests, errors) = (
        requests.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    );
    eprintln!(
        "soak: {requests} requests in {seconds} s, {errors} errors, RSS {warm} kB warm → {end} kB"
    );
    assert_eq!(errors, 0, "of {requests}");
    assert!(requests > seconds * 50, "{requests} requests");
    assert!(
        end <= warm + warm / 5 + 2048,
        "RSS grew from {warm} kB to {end} kB"
    );
    // Mail went out beside it (a verification per registration), and webhooks too.
    let mail_dir = dir.path().join("data/mail");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mails = loop {
        let mails = std::fs::read_dir(&mail_dir).map_or(0, |d| d.count());
        if mails >= 9 || Instant::now() > deadline {
            break mails;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(mails >= 9, "{mails} messages");
    let delivered = receiver.received().await.len();
    eprintln!("soak: {delivered} webhook deliveries received");
    assert!(delivered >= 9, "{delivered} webhook deliveries");
}

fn rss_kb(pid: u32) -> u64 {
    proc_status_kb(pid, "VmRSS")
}
