//! Webhooks (SPEC §17) on both APIs and both databases, delivered to a real receiver that
//! verifies every signature with the PyPI `standardwebhooks` library
//! (`tests/webhooks/receiver.py`).

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    admin::signed_in_admin,
    helpers::{
        PASSWORD, TestApp, body, decode_claims, expect_error, http_client, link_token, python_with,
    },
    mfa::{code, enrolled},
    on_both_backends, on_both_backends_with,
    process::ServerProcess,
};

on_both_backends!(inward_receivers_are_refused_without_the_flag);
on_both_backends_with!(
    allow_private;
    every_event_arrives_signed_once,
    a_failed_delivery_is_retried_with_the_same_id,
    a_rotation_signs_with_both_secrets,
    gone_disables_the_endpoint,
    an_outage_delays_and_never_drops,
    two_replicas_send_each_event_once,
    a_killed_replica_loses_nothing,
);

fn allow_private() -> Vec<(&'static str, &'static str)> {
    vec![("WEBHOOK_ALLOW_PRIVATE", "true")]
}

fn python() -> &'static std::path::PathBuf {
    static PYTHON: OnceLock<std::path::PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        python_with(
            "WEBHOOK_TEST_PYTHON",
            "standardwebhooks-venv",
            "standardwebhooks",
            "standardwebhooks==1.3.0",
        )
    })
}

/// A receiver process on 127.0.0.1; stopped when dropped.
pub(crate) struct Receiver {
    child: Child,
    pub(crate) url: String,
}

impl Receiver {
    pub(crate) fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhooks/receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the receiver did not start: {line:?}"))
            .trim()
            .to_owned();
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn control(&self, path: &str, json: Value) {
        let sent = http_client()
            .post(format!("{}{path}", self.url))
            .json(&json)
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), StatusCode::NO_CONTENT);
    }

    pub(crate) async fn received(&self) -> Vec<Value> {
        let got = http_client()
            .get(format!("{}/__received", self.url))
            .send()
            .await
            .unwrap();
        body(got).await.as_array().unwrap().clone()
    }

    /// The deliveries once there are at least `count` (waiting up to `wait`).
    async fn wait_for(&self, count: usize, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let received = self.received().await;
            if received.len() >= count || Instant::now() > deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    json: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(json) = json {
        request = request.json(&json);
    }
    request.send().await.unwrap()
}

/// Registers an endpoint at `url` for `events` over REST: `(id, secret)`.
async fn create(app: &TestApp, admin: &str, url: &str, events: Value) -> (String, String) {
    let created = send(
        app,
        reqwest::Method::POST,
        "/api/admin/webhooks",
        admin,
        Some(json!({"url": url, "events": events, "description": "test receiver"})),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = body(created).await;
    let keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "url",
            "events",
            "description",
            "secret",
            "enabled",
            "created_at"
        ]
    );
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (created["id"].as_str().unwrap().to_owned(), secret)
}

async fn deliveries(app: &TestApp, admin: &str, id: &str) -> Vec<Value> {
    let path = format!("/api/admin/webhooks/{id}/deliveries");
    let got = send(app, reqwest::Method::GET, &path, admin, None).await;
    assert_eq!(got.status(), StatusCode::OK);
    body(got).await.as_array().unwrap().clone()
}

/// Every key of a JSON value, at any depth.
fn keys_of(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone()).chain(keys_of(v)))
            .collect(),
        Value::Array(items) => items.iter().flat_map(keys_of).collect(),
        _ => Vec::new(),
    }
}

fn types(received: &[Value]) -> Vec<String> {
    received
        .iter()
        .map(|r| r["body"]["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn inward_receivers_are_refused_without_the_flag(app: TestApp) {
    let (_, admin) = signed_in_admin(&app).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let refused = send(
            &app,
            reqwest::Method::POST,
            "/api/admin/webhooks",
            &admin,
            Some(json!({"url": url, "events": ["*"]})),
        )
        .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(body(refused).await["errors"][0]["field"], "url", "{url}");
    }
    // Bad events, bad URLs: 400 on that field; over GraphQL too.
    let refused = send(
        &app,
        reqwest::Method::POST,
        "/api/admin/webhooks",
        &admin,
        Some(json!({"url": "ftp://hooks.example.com/", "events": ["user.exploded"]})),
    )
    .await;
    let refused = body(refused).await;
    let fields: Vec<&str> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["url", "events"]);
    let gql = app
        .graphql(
            Some(&admin),
            "mutation { createWebhook(input: {url: \"http://127.0.0.1/x\", events: [\"*\"]}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        gql["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{gql}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM webhooks").await, 0);

    // Admins only.
    assert_eq!(
        app.register("user@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let user = app.tokens("user@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let forbidden = send(
        &app,
        reqwest::Method::GET,
        "/api/admin/webhooks",
        &user,
        None,
    )
    .await;
    expect_error(forbidden, StatusCode::FORBIDDEN, "Forbidden").await;
    let unknown = send(
        &app,
        reqwest::Method::GET,
        "/api/admin/webhooks/nope",
        &admin,
        None,
    )
    .await;
    expect_error(unknown, StatusCode::NOT_FOUND, "Webhook not found").await;
}

async fn every_event_arrives_signed_once(app: TestApp) {
    let receiver = Receiver::start();
    let (_, admin) = signed_in_admin(&app).await;
    let (id, secret) = create(&app, &admin, &format!("{}/in", receiver.url), json!(["*"])).await;
    receiver
        .control("/__secrets", json!({"secrets": [secret]}))
        .await;

    // One change of each kind.
    let email = "life@example.com";
    assert_eq!(
        app.register(email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let tokens = app.tokens(email).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let user_id = body(app.account(&token).await).await["id"]
        .as_i64()
        .unwrap();
    let verification = app.mail_to(email, 1).await;
    let verify_token = link_token(&verification[0], "/account/verify-email");
    let verified = app
        .post_json("/api/auth/verify-email", &json!({"token": verify_token}))
        .await;
    assert!(verified.status().is_success(), "{}", verified.status());
    let renamed = app
        .update_account(&token, &json!({"name": "Life Cycle"}))
        .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    let (otp_secret, _, _) = enrolled(&app, &token).await;
    let disabled = send(
        &app,
        reqwest::Method::DELETE,
        "/api/users/me/mfa/totp",
        &token,
        Some(json!({"password": PASSWORD, "code": code(&otp_secret, 1)})),
    )
    .await;
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    let changed = app
        .put_auth(
            "/api/users/me/password",
            &token,
            &json!({"current_password": PASSWORD, "new_password": "AnotherPass456"}),
        )
        .await;
    assert!(changed.status().is_success(), "{}", changed.status());
    // The notices of the steps above leave the outbox on their own time: count them all.
    app.mail_delivered().await;
    let before = app.mail_to(email, 0).await.len();
    let forgot = app
        .post_json("/api/auth/forgot-password", &json!({"email": email}))
        .await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let messages = app.mail_to(email, before + 1).await;
    let reset_token = link_token(&messages[before], "/account/reset-password");
    let reset = app
        .post_json(
            "/api/auth/reset-password",
            &json!({"token": reset_token, "new_password": "ThirdPass789"}),
        )
        .await;
    assert!(reset.status().is_success(), "{}", reset.status());
    for (method, path, json) in [
        (
            reqwest::Method::POST,
            format!("/api/admin/users/{user_id}/disable"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/api/admin/users/{user_id}/enable"),
            None,
        ),
        (
            reqwest::Method::PUT,
            format!("/api/admin/users/{user_id}/role"),
            Some(json!({"role": "admin"})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/admin/users/{user_id}"),
            None,
        ),
    ] {
        let done = send(&app, method, &path, &admin, json).await;
        assert!(done.status().is_success(), "{path}: {}", done.status());
    }

    let expected = [
        "user.created",
        "session.created",
        "user.email_verified",
        "user.updated",
        "mfa.enabled",
        "mfa.disabled",
        "password.changed",
        "password.reset",
        "user.disabled",
        "user.enabled",
        "user.role_changed",
        "user.deleted",
    ];
    let received = receiver
        .wait_for(expected.len(), Duration::from_secs(20))
        .await;
    // Nothing more comes (no double sends).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let received_now = receiver.received().await;
    assert_eq!(received_now.len(), received.len());
    let mut got = types(&received);
    got.sort();
    let mut want: Vec<String> = expected.iter().map(|t| t.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    let mut ids: Vec<&str> = received.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), expected.len(), "one webhook-id per event");
    for delivery in &received {
        assert_eq!(delivery["verified_by"], json!([0]), "{delivery}");
        assert_eq!(delivery["content_type"], "application/json");
        let event = &delivery["body"];
        assert!(event["timestamp"].is_string());
        let user = &event["data"]["user"];
        assert_eq!(user["id"], user_id, "{event}");
        assert_eq!(user["email"], email);
        let keys: Vec<&str> = user
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "email",
                "name",
                "role",
                "email_verified",
                "disabled",
                "created_at",
                "updated_at"
            ]
        );
        // No key names a secret, and no secret is anywhere in the bytes.
        let raw = delivery["raw"].as_str().unwrap();
        for key in keys_of(event) {
            for word in ["password", "hash", "secret", "token"] {
                assert!(!key.contains(word), "{key} in {raw}");
            }
        }
        for secret in [
            PASSWORD,
            "AnotherPass456",
            "ThirdPass789",
            token.as_str(),
            "$2",
            &otp_secret,
        ] {
            assert!(!raw.contains(secret), "{secret} in {raw}");
        }
    }
    let find = |t: &str| {
        received
            .iter()
            .find(|r| r["body"]["type"] == t)
            .map(|r| r["body"].clone())
            .unwrap()
    };
    // The session is the access token's.
    let session = &find("session.created")["data"]["session"];
    assert_eq!(session["id"], decode_claims(&token)["sid"]);
    assert_eq!(session["amr"], json!(["pwd"]));
    assert_eq!(find("user.updated")["data"]["user"]["name"], "Life Cycle");
    assert_eq!(find("user.disabled")["data"]["user"]["disabled"], true);
    assert_eq!(find("user.role_changed")["data"]["user"]["role"], "admin");
    assert_eq!(
        find("user.email_verified")["data"]["user"]["email_verified"],
        true
    );
    // Once delivered, the outbox keeps no copy of the account's details.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_outbox WHERE body <> '' OR done_at IS NULL")
            .await,
        0
    );

    // The delivery log, over REST and GraphQL.
    let log = deliveries(&app, &admin, &id).await;
    assert_eq!(log.len(), expected.len());
    let keys: Vec<&str> = log[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "event_id",
            "type",
            "attempt",
            "status",
            "response_status",
            "created_at"
        ]
    );
    assert!(
        log.iter()
            .all(|d| d["status"] == "delivered" && d["response_status"] == 204)
    );
    let gql = app
        .graphql(
            Some(&admin),
            "query($id: ID!) { webhook(id: $id) { url events secret enabled } \
             webhookDeliveries(id: $id) { type attempt status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(gql["data"]["webhook"]["events"], json!(["*"]), "{gql}");
    assert_eq!(gql["data"]["webhook"]["secret"], Value::Null);
    assert_eq!(
        gql["data"]["webhookDeliveries"].as_array().unwrap().len(),
        expected.len()
    );
    // The list never shows the secret.
    let listed = body(
        send(
            &app,
            reqwest::Method::GET,
            "/api/admin/webhooks",
            &admin,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("secret").is_none());
}

async fn a_failed_delivery_is_retried_with_the_same_id(app: TestApp) {
    let receiver = Receiver::start();
    let (_, admin) = signed_in_admin(&app).await;
    let (id, secret) = create(
        &app,
        &admin,
        &format!("{}/in", receiver.url),
        json!(["user.created"]),
    )
    .await;
    receiver
        .control("/__secrets", json!({"secrets": [secret]}))
        .await;
    receiver
        .control("/__answer", json!({"statuses": [503]}))
        .await;
    assert_eq!(
        app.register("retry@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    // The first attempt answers 503; the next, about 5 s later, is taken.
    let received = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0]["answered"], 503);
    assert_eq!(received[1]["answered"], 204);
    assert_eq!(received[0]["id"], received[1]["id"]);
    assert_eq!(
        received[0]["raw"], received[1]["raw"],
        "byte-identical bodies"
    );
    assert_ne!(received[0]["signatures"], Value::Null);
    assert!(received.iter().all(|r| r["verified_by"] == json!([0])));
    let first: i64 = received[0]["timestamp"].as_str().unwrap().parse().unwrap();
    let second: i64 = received[1]["timestamp"].as_str().unwrap().parse().unwrap();
    assert!((4..=8).contains(&(second - first)), "{first} → {second}");
    let log = deliveries(&app, &admin, &id).await;
    assert_eq!(log[0]["attempt"], 2);
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[1]["attempt"], 1);
    assert_eq!(log[1]["status"], "failed");
    assert_eq!(log[1]["response_status"], 503);
    // Only the chosen type: the admin's and the user's logins sent nothing.
    assert_eq!(types(&received), ["user.created", "user.created"]);
}

async fn a_rotation_signs_with_both_secrets(app: TestApp) {
    let receiver = Receiver::start();
    let (_, admin) = signed_in_admin(&app).await;
    let (id, old) = create(&app, &admin, &format!("{}/in", receiver.url), json!(["*"])).await;
    let path = format!("/api/admin/webhooks/{id}/rotate-secret");
    let rotated = send(&app, reqwest::Method::POST, &path, &admin, None).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let new = body(rotated).await["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    receiver
        .control("/__secrets", json!({"secrets": [old, new]}))
        .await;
    assert_eq!(
        app.register("rotate@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let received = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        received[0]["verified_by"],
        json!([0, 1]),
        "{:?}",
        received[0]
    );
    assert_eq!(
        received[0]["signatures"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    // Over GraphQL too.
    let gql = app
        .graphql(
            Some(&admin),
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert!(
        gql["data"]["rotateWebhookSecret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
}

async fn gone_disables_the_endpoint(app: TestApp) {
    let receiver = Receiver::start();
    let (_, admin) = signed_in_admin(&app).await;
    let (id, _) = create(&app, &admin, &format!("{}/in", receiver.url), json!(["*"])).await;
    receiver
        .control("/__answer", json!({"statuses": [410]}))
        .await;
    assert_eq!(
        app.register("gone@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .count("SELECT COUNT(*) FROM webhooks WHERE enabled = false")
        .await
        == 0
    {
        assert!(Instant::now() < deadline, "not disabled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let path = format!("/api/admin/webhooks/{id}");
    let got = body(send(&app, reqwest::Method::GET, &path, &admin, None).await).await;
    assert_eq!(got["enabled"], false);
    // Nothing more is queued for it.
    assert_eq!(
        app.register("after@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_outbox WHERE done_at IS NULL")
            .await,
        0
    );
    // It can be removed, with its log.
    let deleted = send(&app, reqwest::Method::DELETE, &path, &admin, None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_deliveries").await,
        0
    );
}

async fn an_outage_delays_and_never_drops(app: TestApp) {
    // Nothing listens where the endpoint points.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_, admin) = signed_in_admin(&app).await;
    let (id, _) = create(
        &app,
        &admin,
        &format!("http://127.0.0.1:{port}/in"),
        json!(["user.created"]),
    )
    .await;
    assert_eq!(
        app.register("outage@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = deliveries(&app, &admin, &id).await;
        if !log.is_empty() || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["response_status"], Value::Null);
    // Still pending, due again later.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_outbox WHERE done_at IS NULL AND attempts = 1")
            .await,
        1
    );
}

/// A replica process on the test app's database, with private receivers allowed.
fn replica(app: &TestApp) -> ServerProcess {
    ServerProcess::start(&[
        ("DATABASE_URL", app.database_url.as_str()),
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
    ])
}

async fn register_at(base: &str, email: &str) {
    let registered = http_client()
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
}

async fn two_replicas_send_each_event_once(app: TestApp) {
    let receiver = Receiver::start();
    let other = replica(&app);
    let (_, admin) = signed_in_admin(&app).await;
    create(
        &app,
        &admin,
        &format!("{}/in", receiver.url),
        json!(["user.created"]),
    )
    .await;
    // Both workers poll the one outbox while events arrive through both.
    let registrations = (0..20).map(|i| {
        let base = if i % 2 == 0 {
            app.address.clone()
        } else {
            other.address.clone()
        };
        async move { register_at(&base, &format!("replica{i}@example.com")).await }
    });
    futures_util::future::join_all(registrations).await;
    receiver.wait_for(20, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.received().await;
    let mut ids: Vec<&str> = received.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(received.len(), 20, "each event once");
    assert_eq!(ids.len(), 20);
}

async fn a_killed_replica_loses_nothing(app: TestApp) {
    let receiver = Receiver::start();
    let doomed = replica(&app);
    let (_, admin) = signed_in_admin(&app).await;
    create(
        &app,
        &admin,
        &format!("{}/in", receiver.url),
        json!(["user.created"]),
    )
    .await;
    // The first attempt fails, so the event is still owed when the replica dies.
    receiver
        .control("/__answer", json!({"statuses": [503]}))
        .await;
    register_at(&doomed.address, "crash@example.com").await;
    doomed.signal("KILL");
    // The surviving replica (the test app) delivers it.
    let received = receiver.wait_for(2, Duration::from_secs(30)).await;
    assert!(
        received
            .iter()
            .any(|r| r["answered"] == 204
                && r["body"]["data"]["user"]["email"] == "crash@example.com"),
        "{received:?}"
    );
}
