//! Health, request ids, headers, fallbacks and graceful shutdown.

use std::time::Duration;

use reqwest::StatusCode;

use crate::{
    helpers::{Backend, PASSWORD, TestApp, body, spawn_app_with},
    on_both_backends,
};

on_both_backends!(
    health_and_readiness_answer,
    request_ids_are_generated_or_echoed,
    responses_carry_nosniff,
    unknown_paths_are_json_404s,
);

async fn health_and_readiness_answer(app: TestApp) {
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(body(health).await["status"], "ok");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(body(ready).await["status"], "ready");
}

async fn request_ids_are_generated_or_echoed(app: TestApp) {
    let generated = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
}

async fn responses_carry_nosniff(app: TestApp) {
    for path in ["/healthz", "/api/users/profile", "/graphql", "/nowhere"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
    }
}

async fn unknown_paths_are_json_404s(app: TestApp) {
    let response = app
        .client
        .get(app.url("/api/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(response).await["detail"], "Not Found");
    let wrong_method = app
        .client
        .delete(app.url("/api/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// A login at bcrypt cost 12 takes a few hundred milliseconds: shut down while it runs, and
/// it still completes; the listener then refuses new connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut app = spawn_app_with(Backend::Sqlite, &[("BCRYPT_COST", "12")]).await;
    app.signed_up("slow@example.com").await;
    let (client, url) = (app.client.clone(), app.url("/api/auth/login"));
    let in_flight = tokio::spawn(async move {
        let body = serde_json::json!({"email": "slow@example.com", "password": PASSWORD});
        client
            .post(url)
            .json(&body)
            .send()
            .await
            .map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    app.shut_down();
    assert_eq!(in_flight.await.unwrap().unwrap(), StatusCode::OK);
    let server = app.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
    let fresh = crate::helpers::http_client();
    assert!(fresh.get(app.url("/healthz")).send().await.is_err());
}
