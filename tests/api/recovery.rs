//! Password recovery: the forgot-password request (the same answer for every email), the
//! reset link (the API and its page), its limits, and `REQUIRE_VERIFIED_EMAIL`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::{PASSWORD, TestApp, body, decoded, expect_error, link_token},
    on_both_backends, on_both_backends_with,
};

on_both_backends!(
    forgot_password_answers_the_same_for_every_email,
    a_reset_link_works_once_and_ends_every_session,
    an_expired_reset_link_is_refused,
    the_reset_page_sets_a_new_password,
    graphql_resets_too,
);
on_both_backends_with!(two_failures; a_reset_clears_the_lockout);
on_both_backends_with!(five_per_hour; recovery_requests_are_limited);
on_both_backends_with!(verified_only; unverified_accounts_cannot_log_in);

fn two_failures() -> Vec<(&'static str, &'static str)> {
    vec![("LOGIN_MAX_FAILURES", "2")]
}

fn five_per_hour() -> Vec<(&'static str, &'static str)> {
    vec![("RECOVERY_PER_IP_PER_HOUR", "5")]
}

fn verified_only() -> Vec<(&'static str, &'static str)> {
    vec![("REQUIRE_VERIFIED_EMAIL", "true")]
}

const SENT: &str = "If the account exists, a message has been sent.";
const NEW_PASSWORD: &str = "EvenStronger456";

async fn forgot(app: &TestApp, email: &str) -> reqwest::Response {
    app.post_json("/api/auth/forgot-password", &json!({ "email": email }))
        .await
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/auth/reset-password",
        &json!({ "token": token, "new_password": password }),
    )
    .await
}

/// Asks for a reset of `email` and returns the token of the link that arrives (the
/// registration's verification message is the first one).
async fn reset_token(app: &TestApp, email: &str) -> String {
    app.mail_delivered().await;
    let before = app.mail_to(email, 0).await.len();
    assert_eq!(forgot(app, email).await.status(), StatusCode::ACCEPTED);
    let messages = app.mail_to(email, before + 1).await;
    assert_eq!(messages.len(), before + 1);
    link_token(&messages[before], "/account/reset-password")
}

async fn forgot_password_answers_the_same_for_every_email(app: TestApp) {
    app.signed_up("ann@example.com").await;
    app.mail_delivered().await;
    // The quickest of three answers for a known and an unknown email (the quickest, as the
    // machine runs other tests at the same time).
    let mut quickest = Vec::new();
    for email in ["ann@example.com", "nobody@example.com"] {
        let mut times = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let answer = forgot(&app, email).await;
            times.push(started.elapsed());
            assert_eq!(answer.status(), StatusCode::ACCEPTED);
            assert_eq!(body(answer).await, json!({ "detail": SENT }));
        }
        quickest.push(*times.iter().min().unwrap());
    }
    assert!(
        quickest.iter().all(|t| *t >= Duration::from_millis(240)),
        "{quickest:?}"
    );
    assert!(
        quickest[0].abs_diff(quickest[1]) < Duration::from_millis(100),
        "{quickest:?}"
    );
    // Three reset messages for the account (after its verification message), none for the
    // stranger.
    let messages = app.mail_to("ann@example.com", 4).await;
    assert_eq!(messages.len(), 4);
    let reset = decoded(&messages[3]);
    assert!(reset.contains("Subject: Reset your password"), "{reset}");
    assert!(reset.contains("text/plain") && reset.contains("text/html"));
    assert!(app.mail_to("nobody@example.com", 0).await.is_empty());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM mail_outbox WHERE recipient = 'nobody@example.com'")
            .await,
        0
    );
    let missing = app.post_json("/api/auth/forgot-password", &json!({})).await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
}

async fn a_reset_link_works_once_and_ends_every_session(app: TestApp) {
    let (_, access) = app.signed_up("bo@example.com").await;
    let other = app.tokens("bo@example.com").await;
    let token = reset_token(&app, "bo@example.com").await;
    let weak = reset(&app, &token, "short").await;
    let weak = expect_error(
        weak,
        StatusCode::BAD_REQUEST,
        "Password must be at least 8 characters long.",
    )
    .await;
    assert_eq!(weak["errors"][0]["field"], "new_password");
    // A weak password did not spend the link.
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    let again = expect_error(
        reset(&app, &token, NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired token.",
    )
    .await;
    assert_eq!(again["errors"][0]["field"], "token");
    for token in [access.as_str(), other["access_token"].as_str().unwrap()] {
        assert_eq!(app.account(token).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.refresh(other["refresh_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    expect_error(
        app.login("bo@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "Incorrect email or password",
    )
    .await;
    let fresh = app.tokens_with("bo@example.com", NEW_PASSWORD).await;
    let account = body(app.account(fresh["access_token"].as_str().unwrap()).await).await;
    assert_eq!(
        account["email_verified"], true,
        "the link reached the address"
    );
    expect_error(
        reset(&app, "made-up", NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired token.",
    )
    .await;
}

async fn an_expired_reset_link_is_refused(app: TestApp) {
    app.signed_up("cy@example.com").await;
    let token = reset_token(&app, "cy@example.com").await;
    app.execute(
        "UPDATE account_tokens SET expires_at = '2000-01-01T00:00:00+00:00' WHERE purpose = 'reset'",
    )
    .await;
    expect_error(
        reset(&app, &token, NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired token.",
    )
    .await;
    // A newer request voids the older link.
    let first = reset_token(&app, "cy@example.com").await;
    let second = reset_token(&app, "cy@example.com").await;
    assert_eq!(
        reset(&app, &first, NEW_PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        reset(&app, &second, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
}

async fn a_reset_clears_the_lockout(app: TestApp) {
    app.signed_up("dee@example.com").await;
    for _ in 0..2 {
        app.login("dee@example.com", "WrongPass999").await;
    }
    assert_eq!(
        app.login("dee@example.com", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let token = reset_token(&app, "dee@example.com").await;
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.login("dee@example.com", NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn recovery_requests_are_limited(app: TestApp) {
    app.signed_up("ed@example.com").await;
    app.mail_to("ed@example.com", 1).await;
    // Per email: three messages an hour; the fourth request is answered alike, unsent.
    for _ in 0..4 {
        let answer = forgot(&app, "ed@example.com").await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.mail_to("ed@example.com", 5).await.len(), 4);
    // Per address: five requests an hour, then 429.
    assert_eq!(
        forgot(&app, "x@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    let limited = forgot(&app, "y@example.com").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
}

async fn the_reset_page_sets_a_new_password(app: TestApp) {
    app.signed_up("fay@example.com").await;
    let token = reset_token(&app, "fay@example.com").await;
    let page = app
        .client
        .get(app.url(&format!("/account/reset-password?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!policy.contains("script-src"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains("action=\"/account/reset-password\""));
    assert!(html.contains("type=\"password\"") && !html.contains("<script"));
    let submit = |new: &str, confirm: &str| {
        app.client
            .post(app.url("/account/reset-password"))
            .form(&[
                ("token", token.as_str()),
                ("new_password", new),
                ("confirm_password", confirm),
            ])
            .send()
    };
    let differ = submit(NEW_PASSWORD, "Something-else-1").await.unwrap();
    assert_eq!(differ.status(), StatusCode::BAD_REQUEST);
    assert!(
        differ
            .text()
            .await
            .unwrap()
            .contains("The two passwords differ.")
    );
    let weak = submit("short", "short").await.unwrap();
    assert_eq!(weak.status(), StatusCode::BAD_REQUEST);
    let weak = weak.text().await.unwrap();
    assert!(weak.contains("at least 8 characters") && weak.contains(&token));
    let done = submit(NEW_PASSWORD, NEW_PASSWORD).await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("Password changed"));
    assert_eq!(
        app.login("fay@example.com", NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    let twice = submit(NEW_PASSWORD, NEW_PASSWORD).await.unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    assert!(twice.text().await.unwrap().contains("That did not work"));
}

async fn graphql_resets_too(app: TestApp) {
    app.signed_up("gus@example.com").await;
    app.mail_to("gus@example.com", 1).await;
    let asked = app
        .graphql(
            None,
            "mutation { a: forgotPassword(email: \"gus@example.com\") b: forgotPassword(email: \"none@example.com\") }",
            json!({}),
        )
        .await;
    assert_eq!(asked["data"], json!({"a": true, "b": true}));
    let token = link_token(
        &app.mail_to("gus@example.com", 2).await[1],
        "/account/reset-password",
    );
    let bad = app
        .graphql(
            None,
            "mutation { resetPassword(input: {token: \"nope\", newPassword: \"EvenStronger456\"}) }",
            json!({}),
        )
        .await;
    assert_eq!(bad["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let done = app
        .graphql(
            None,
            "mutation($t: String!) { resetPassword(input: {token: $t, newPassword: \"EvenStronger456\"}) }",
            json!({ "t": token }),
        )
        .await;
    assert_eq!(done["data"]["resetPassword"], true, "{done}");
    assert_eq!(
        app.login("gus@example.com", NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn unverified_accounts_cannot_log_in(app: TestApp) {
    app.register("hal@example.com", PASSWORD).await;
    expect_error(
        app.login("hal@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "Email not verified",
    )
    .await;
    // A wrong password is still a 401: the 403 tells only the password's owner.
    assert_eq!(
        app.login("hal@example.com", "WrongPass999").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let gql = app
        .graphql(
            None,
            "mutation { login(input: {email: \"hal@example.com\", password: \"StrongPass123\"}) { accessToken } }",
            json!({}),
        )
        .await;
    assert_eq!(gql["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let token = link_token(
        &app.mail_to("hal@example.com", 1).await[0],
        "/account/verify-email",
    );
    assert_eq!(
        app.post_json("/api/auth/verify-email", &json!({ "token": token }))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.login("hal@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}
