//! Abuse resistance (SPEC §6, §6a): rate limits, GraphQL limits, transport hardening.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    helpers::{
        Backend, PASSWORD, TestApp, body, decode_claims, expect_error, expect_too_large, sign,
        spawn_app_with,
    },
    on_both_backends, on_both_backends_with,
};

fn strict_limits() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LOGIN_MAX_FAILURES", "3"),
        ("LOGIN_WINDOW_SECS", "2"),
        ("LOGIN_PER_IP_PER_MINUTE", "20"),
        ("REGISTER_PER_IP_PER_MINUTE", "4"),
    ]
}

on_both_backends_with!(strict_limits;
    failed_logins_lock_the_account_until_the_window_passes,
    graphql_and_rest_share_the_login_counters,
    aliased_and_batched_logins_all_count,
    every_login_attempt_counts_per_address,
    registrations_are_limited_per_address,
);

on_both_backends!(
    abusive_documents_are_refused_before_execution,
    oversized_bodies_are_413_and_the_server_keeps_answering,
    tampered_tokens_are_401,
    api_responses_are_not_cached,
);

const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { accessToken } }";

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

async fn failed_logins_lock_the_account_until_the_window_passes(app: TestApp) {
    app.signed_up("alice@example.com").await;
    for _ in 0..3 {
        let wrong = app.login("alice@example.com", "WrongPass123").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    // Locked: even the right password is refused, with a Retry-After.
    let locked = app.login("alice@example.com", PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert!(body(locked).await["detail"].is_string());
    // Another account is not locked.
    app.signed_up("bob@example.com").await;

    tokio::time::sleep(Duration::from_secs(retry) + Duration::from_millis(200)).await;
    assert_eq!(
        app.login("alice@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn graphql_and_rest_share_the_login_counters(app: TestApp) {
    app.signed_up("carol@example.com").await;
    let wrong = json!({"input": {"email": "carol@example.com", "password": "WrongPass123"}});
    // Two failures over GraphQL, one over REST: the limit of three is reached.
    for _ in 0..2 {
        let response = app.graphql(None, LOGIN, wrong.clone()).await;
        assert_eq!(code(&response), "UNAUTHENTICATED");
    }
    app.login("carol@example.com", "WrongPass123").await;
    let right = json!({"input": {"email": "carol@example.com", "password": PASSWORD}});
    let response = app.graphql(None, LOGIN, right).await;
    assert_eq!(code(&response), "RATE_LIMITED");
    let retry = response["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!((1..=2).contains(&retry), "{response}");
    assert_eq!(
        app.login("carol@example.com", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn aliased_and_batched_logins_all_count(app: TestApp) {
    app.signed_up("dave@example.com").await;
    // Five aliases in one document: the first three fail, the rest meet the lock.
    let aliases: String = (0..5)
        .map(|i| format!("a{i}: login(input: {{email: \"dave@example.com\", password: \"WrongPass{i}\"}}) {{ tokenType }} "))
        .collect();
    let response = app
        .graphql(None, &format!("mutation {{ {aliases} }}"), json!({}))
        .await;
    let codes: Vec<&str> = response["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["extensions"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "UNAUTHENTICATED",
            "UNAUTHENTICATED",
            "UNAUTHENTICATED",
            "RATE_LIMITED",
            "RATE_LIMITED"
        ]
    );

    // A batch of logins for another account: each operation counts.
    app.signed_up("erin@example.com").await;
    let op = json!({"query": LOGIN, "variables": {"input": {"email": "erin@example.com", "password": "Nope12345"}}});
    let batch = Value::Array(vec![op; 5]);
    let response = body(
        app.client
            .post(app.url("/graphql"))
            .json(&batch)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let codes: Vec<&str> = response.as_array().unwrap().iter().map(code).collect();
    assert_eq!(
        codes,
        [
            "UNAUTHENTICATED",
            "UNAUTHENTICATED",
            "UNAUTHENTICATED",
            "RATE_LIMITED",
            "RATE_LIMITED"
        ]
    );

    // 200 aliased logins are refused whole, before a single password is checked.
    let many: String = (0..200)
        .map(|i| format!("a{i}: login(input: {{email: \"x{i}@example.com\", password: \"{PASSWORD}\"}}) {{ tokenType }} "))
        .collect();
    let started = Instant::now();
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({"query": format!("mutation {{ {many} }}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        body(response).await["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aliases")
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

async fn every_login_attempt_counts_per_address(app: TestApp) {
    let (_, _) = app.signed_up("fay@example.com").await; // one attempt
    for i in 0..19 {
        let response = app.login(&format!("nobody{i}@example.com"), PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // 20 attempts used, right or wrong: the 21st is refused whatever it holds.
    let refused = app.login("fay@example.com", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let graphql = app
        .graphql(
            None,
            LOGIN,
            json!({"input": {"email": "fay@example.com", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(code(&graphql), "RATE_LIMITED");
}

async fn registrations_are_limited_per_address(app: TestApp) {
    for i in 0..4 {
        assert_eq!(
            app.register(&format!("u{i}@example.com"), PASSWORD)
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    let refused = app.register("u5@example.com", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 4);
}

async fn abusive_documents_are_refused_before_execution(app: TestApp) {
    let (_, token) = app.signed_up("gus@example.com").await;
    // Depth 50: our own types do not nest that deep, introspection's do.
    let nested = format!(
        "{{ __schema {{ types {{ {} name {} }} }} }}",
        "fields { type { ofType { ".repeat(12),
        "} } } ".repeat(12)
    );
    let wide: String = (0..5000).map(|_| "id ").collect();
    for document in [nested, format!("{{ me {{ {wide} }} }}")] {
        let started = Instant::now();
        let response = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .json(&json!({"query": document}))
            .send()
            .await
            .unwrap();
        // Refused by our shape check (400) or by async-graphql's validation (200 with errors).
        assert!(matches!(response.status().as_u16(), 200 | 400));
        let response = body(response).await;
        assert!(response["data"].is_null(), "{response}");
        assert!(response["errors"][0]["message"].is_string());
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    // GraphiQL's introspection query still passes.
    let introspection = include_str!("introspection.graphql");
    let response = app.graphql(None, introspection, json!({})).await;
    assert!(response["errors"].is_null(), "{response}");
    assert!(
        response["data"]["__schema"]["types"]
            .as_array()
            .unwrap()
            .len()
            > 10
    );
}

async fn oversized_bodies_are_413_and_the_server_keeps_answering(app: TestApp) {
    let huge = format!(
        "{{\"query\": \"{{ me {{ id }} }}\", \"pad\": \"{}\"}}",
        "x".repeat(5 * 1024 * 1024)
    );
    for path in ["/graphql", "/api/auth/register"] {
        let sent = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await;
        if let Some(body) = expect_too_large(sent).await {
            assert!(
                body["detail"].is_string() || code(&body) == "PAYLOAD_TOO_LARGE",
                "{body}"
            );
        }
    }
    // Just under the JSON limit is read (and refused for what it says, not its size).
    let under = format!(
        "{{\"email\": \"a@b.co\", \"password\": \"{}\"}}",
        "x".repeat(1000 * 1000)
    );
    let response = app
        .send_raw(
            Method::POST,
            "/api/auth/register",
            "application/json",
            under,
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

async fn tampered_tokens_are_401(app: TestApp) {
    let (id, token) = app.signed_up("hal@example.com").await;
    let (other, _) = app.signed_up("ida@example.com").await;
    // The payload changed to another user, the signature kept.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = decode_claims(&token);
    claims["sub"] = json!(other.to_string());
    claims["user_id"] = json!(other);
    use base64::Engine;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = parts.join(".");
    expect_error(
        app.account(&tampered).await,
        StatusCode::UNAUTHORIZED,
        "Not authenticated",
    )
    .await;
    // Signed correctly but with `sub` and `user_id` disagreeing.
    let sid = decode_claims(&token)["sid"].clone();
    let now = chrono::Utc::now().timestamp();
    let mixed = sign(
        json!({"sub": other.to_string(), "user_id": id, "sid": sid, "iat": now, "exp": now + 60}),
        "HS256",
    );
    expect_error(
        app.account(&mixed).await,
        StatusCode::UNAUTHORIZED,
        "Not authenticated",
    )
    .await;
    // Within the leeway an expired token still works; past it, not.
    let recent = sign(
        json!({"sub": id.to_string(), "user_id": id, "sid": sid, "iat": now - 100, "exp": now - 5}),
        "HS256",
    );
    assert_eq!(app.account(&recent).await.status(), StatusCode::OK);
    let stale = sign(
        json!({"sub": id.to_string(), "user_id": id, "sid": sid, "iat": now - 100, "exp": now - 31}),
        "HS256",
    );
    assert_eq!(app.account(&stale).await.status(), StatusCode::UNAUTHORIZED);
}

async fn api_responses_are_not_cached(app: TestApp) {
    let (_, token) = app.signed_up("jo@example.com").await;
    let login = app.login("jo@example.com", PASSWORD).await;
    assert_eq!(login.headers()["cache-control"], "no-store");
    let profile = app.my_profile(&token).await;
    assert_eq!(profile.headers()["cache-control"], "no-store");
    let graphql = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(graphql.headers()["cache-control"], "no-store");
    assert_eq!(graphql.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_configured_origins() {
    let app = spawn_app_with(Backend::Sqlite, &[("CORS_ORIGINS", "https://app.example")]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    // Apollo Client's headers and the request id may be sent; what a front end must read is
    // exposed; there are no credentials (cookies) to allow.
    let apollo = app
        .client
        .request(Method::OPTIONS, app.url("/graphql"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,apollographql-client-name,\
             apollographql-client-version,apollo-require-preflight,x-request-id",
        )
        .send()
        .await
        .unwrap();
    assert!(apollo.status().is_success());
    let allowed_headers = apollo.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "authorization",
        "content-type",
        "apollographql-client-name",
        "apollographql-client-version",
        "apollo-require-preflight",
        "x-request-id",
    ] {
        assert!(allowed_headers.contains(name), "{name}: {allowed_headers}");
    }
    assert!(
        !apollo
            .headers()
            .contains_key("access-control-allow-credentials")
    );
    let limited = app
        .client
        .post(app.url("/api/auth/login"))
        .header("origin", "https://app.example")
        .json(&serde_json::json!({"email": "nobody@example.com", "password": "wrong-pass"}))
        .send()
        .await
        .unwrap();
    let exposed = limited.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["x-request-id", "retry-after", "etag", "www-authenticate"] {
        assert!(exposed.contains(name), "{name}: {exposed}");
    }
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let simple = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!simple.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_and_suggestions_can_be_switched_off() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("GRAPHQL_INTROSPECTION", "false"),
            ("GRAPHQL_SUGGESTIONS", "false"),
        ],
    )
    .await;
    let response = app
        .graphql(
            None,
            "{ __schema { types { name } } __type(name: \"User\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        response["data"],
        json!({"__schema": null, "__type": null}),
        "{response}"
    );
    let response = app.graphql(None, "{ mee { id } }", json!({})).await;
    let message = response["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("Did you mean"), "{message}");
    // REST, which runs fixed operations, is unaffected.
    let (_, token) = app.signed_up("kai@example.com").await;
    assert_eq!(app.account(&token).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let limits = [("LOGIN_PER_IP_PER_MINUTE", "2")];
    let login = |app: &TestApp, xff: &'static str| {
        app.client
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", xff)
            .json(&json!({"email": "nobody@example.com", "password": PASSWORD}))
            .send()
    };
    // Not trusted: X-Forwarded-For is ignored, all attempts are 127.0.0.1's.
    let direct = spawn_app_with(Backend::Sqlite, &limits).await;
    for xff in ["1.1.1.1", "2.2.2.2"] {
        assert_eq!(
            login(&direct, xff).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&direct, "3.3.3.3").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // Behind a trusted proxy: each forwarded client has its own count.
    let proxied = spawn_app_with(
        Backend::Sqlite,
        &[limits[0], ("TRUSTED_PROXIES", "127.0.0.1")],
    )
    .await;
    for _ in 0..2 {
        assert_eq!(
            login(&proxied, "1.1.1.1").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&proxied, "1.1.1.1").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login(&proxied, "9.9.9.9, 2.2.2.2").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_does_not_stop_the_service() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("LOGIN_MAX_FAILURES", "2"),
        ],
    )
    .await;
    let started = Instant::now();
    app.signed_up("lee@example.com").await;
    for _ in 0..2 {
        assert_eq!(
            app.login("lee@example.com", "WrongPass123").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Counted locally meanwhile: the limit still holds.
    assert_eq!(
        app.login("lee@example.com", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Two replicas on one database and one Redis: failures spread over both meet one limit.
#[cfg_attr(not(redis_tests), ignore = "set TEST_REDIS_URL to run against Redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_limits_through_redis() {
    let redis = std::env::var("TEST_REDIS_URL").expect("TEST_REDIS_URL");
    let prefix = format!("test-{}:", uuid::Uuid::new_v4().simple());
    let a = spawn_app_with(
        Backend::Sqlite,
        &[
            ("REDIS_URL", &redis),
            ("REDIS_KEY_PREFIX", &prefix),
            ("LOGIN_MAX_FAILURES", "4"),
        ],
    )
    .await;
    // The second replica uses the first one's database.
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        a.upload_dir().parent().unwrap().join("test.db").display()
    );
    let b = spawn_app_with(
        Backend::Sqlite,
        &[
            ("REDIS_URL", &redis),
            ("REDIS_KEY_PREFIX", &prefix),
            ("LOGIN_MAX_FAILURES", "4"),
            ("DATABASE_URL", &database_url),
        ],
    )
    .await;
    a.signed_up("max@example.com").await;
    assert_eq!(
        b.login("max@example.com", PASSWORD).await.status(),
        StatusCode::OK,
        "one database"
    );
    for replica in [&a, &b, &a, &b] {
        assert_eq!(
            replica
                .login("max@example.com", "WrongPass123")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Two failures on each replica; alone neither would lock. Together they do, on both.
    assert_eq!(
        a.login("max@example.com", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        b.login("max@example.com", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}
