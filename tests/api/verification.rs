//! Email verification: the message sent at registration and on an email change, its link
//! (the API and the page it opens), resending, and the outbox it goes through.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, body, decoded, expect_error, link_token},
    on_both_backends,
};

on_both_backends!(
    registration_sends_a_verification_link_that_works_once,
    the_link_opens_a_page_that_confirms_the_address,
    a_new_message_voids_the_old_link_and_is_limited,
    a_changed_email_is_unverified_and_both_addresses_hear_of_it,
    an_expired_link_is_refused,
    graphql_verifies_too,
    sent_messages_leave_no_token_in_the_database,
);

/// The token of the first verification link in `message`.
fn verify_token(message: &str) -> String {
    link_token(message, "/account/verify-email")
}

async fn verified(app: &TestApp, token: &str) -> bool {
    body(app.account(token).await).await["email_verified"]
        .as_bool()
        .unwrap()
}

async fn verify(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/api/auth/verify-email", &json!({ "token": token }))
        .await
}

async fn registration_sends_a_verification_link_that_works_once(app: TestApp) {
    let (_, access) = app.signed_up("ann@example.com").await;
    let messages = app.mail_to("ann@example.com", 1).await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert!(
        message.contains("Subject: Confirm your email address"),
        "{message}"
    );
    assert!(message.contains("From: nta-user-svc <no-reply@localhost>"));
    assert!(message.contains("multipart/alternative"));
    assert!(message.contains("text/plain") && message.contains("text/html"));
    assert!(!verified(&app, &access).await);

    let token = verify_token(message);
    assert_eq!(token.len(), 43);
    let first = verify(&app, &token).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert!(verified(&app, &access).await);
    let again = expect_error(
        verify(&app, &token).await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired token.",
    )
    .await;
    assert_eq!(
        again["errors"],
        json!([{"field": "token", "message": "Invalid or expired token."}])
    );
    let missing = app.post_json("/api/auth/verify-email", &json!({})).await;
    let missing = expect_error(missing, StatusCode::BAD_REQUEST, "Token is required.").await;
    assert_eq!(missing["errors"][0]["field"], "token");
    expect_error(
        verify(&app, "made-up").await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired token.",
    )
    .await;
}

async fn the_link_opens_a_page_that_confirms_the_address(app: TestApp) {
    let (_, access) = app.signed_up("bo@example.com").await;
    let token = verify_token(&app.mail_to("bo@example.com", 1).await[0]);
    // Opening the link changes nothing: it shows a form.
    let page = app
        .client
        .get(app.url(&format!("/account/verify-email?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["cache-control"], "no-store");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && !policy.contains("script-src"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\" action=\"/account/verify-email\">"));
    assert!(html.contains(&token) && !html.contains("<script"));
    assert!(!verified(&app, &access).await);

    let submit = || {
        app.client
            .post(app.url("/account/verify-email"))
            .form(&[("token", token.as_str())])
            .send()
    };
    let done = submit().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(
        done.text()
            .await
            .unwrap()
            .contains("Email address confirmed")
    );
    assert!(verified(&app, &access).await);
    let twice = submit().await.unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    assert!(twice.text().await.unwrap().contains("That did not work"));
    let no_token = app
        .client
        .get(app.url("/account/verify-email"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::BAD_REQUEST);
    let css = app
        .client
        .get(app.url("/account/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

async fn a_new_message_voids_the_old_link_and_is_limited(app: TestApp) {
    let (_, access) = app.signed_up("cy@example.com").await;
    let first = verify_token(&app.mail_to("cy@example.com", 1).await[0]);
    let resend = app.post_auth("/api/users/me/verify-email", &access).await;
    assert_eq!(resend.status(), StatusCode::ACCEPTED);
    assert_eq!(
        body(resend).await,
        json!({"detail": "A verification message has been sent."})
    );
    let messages = app.mail_to("cy@example.com", 2).await;
    assert_eq!(messages.len(), 2);
    let second = verify_token(&messages[1]);
    assert_ne!(first, second);
    assert_eq!(verify(&app, &first).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(verify(&app, &second).await.status(), StatusCode::NO_CONTENT);
    expect_error(
        app.post_auth("/api/users/me/verify-email", &access).await,
        StatusCode::CONFLICT,
        "Email already verified",
    )
    .await;

    // At most three asked-for messages an hour.
    let (_, other) = app.signed_up("dee@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            app.post_auth("/api/users/me/verify-email", &other)
                .await
                .status(),
            StatusCode::ACCEPTED
        );
    }
    let limited = app.post_auth("/api/users/me/verify-email", &other).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    expect_error(
        app.client
            .post(app.url("/api/users/me/verify-email"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "Not authenticated",
    )
    .await;
}

async fn a_changed_email_is_unverified_and_both_addresses_hear_of_it(app: TestApp) {
    let (_, access) = app.signed_up("ed@example.com").await;
    let original = verify_token(&app.mail_to("ed@example.com", 1).await[0]);
    assert_eq!(
        verify(&app, &original).await.status(),
        StatusCode::NO_CONTENT
    );
    let second_link_for_old = {
        // A fresh link for the old address, sent before the change.
        app.execute("UPDATE users SET email_verified = FALSE").await;
        assert_eq!(
            app.post_auth("/api/users/me/verify-email", &access)
                .await
                .status(),
            StatusCode::ACCEPTED
        );
        verify_token(&app.mail_to("ed@example.com", 2).await[1])
    };
    let changed = app
        .update_account(&access, &json!({"email": "edna@example.com"}))
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let changed = body(changed).await;
    assert_eq!(changed["email"], "edna@example.com");
    assert_eq!(changed["email_verified"], false);

    let notice = app.mail_to("ed@example.com", 3).await;
    assert_eq!(notice.len(), 3);
    let notice = decoded(&notice[2]);
    assert!(
        notice.contains("Subject: Your email address was changed"),
        "{notice}"
    );
    assert!(notice.contains("edna@example.com"));
    // The old address's link no longer verifies anything; the new address's does.
    assert_eq!(
        verify(&app, &second_link_for_old).await.status(),
        StatusCode::BAD_REQUEST
    );
    let new_link = verify_token(&app.mail_to("edna@example.com", 1).await[0]);
    assert_eq!(
        verify(&app, &new_link).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(verified(&app, &access).await);
    // Setting the same address again is no change.
    let same = app
        .update_account(&access, &json!({"email": "EDNA@example.com"}))
        .await;
    assert_eq!(body(same).await["email_verified"], true);
}

async fn an_expired_link_is_refused(app: TestApp) {
    let (_, access) = app.signed_up("fay@example.com").await;
    let token = verify_token(&app.mail_to("fay@example.com", 1).await[0]);
    app.execute("UPDATE account_tokens SET expires_at = '2000-01-01T00:00:00+00:00'")
        .await;
    expect_error(
        verify(&app, &token).await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired token.",
    )
    .await;
    assert!(!verified(&app, &access).await);
}

async fn graphql_verifies_too(app: TestApp) {
    let (_, access) = app.signed_up("gus@example.com").await;
    let token = verify_token(&app.mail_to("gus@example.com", 1).await[0]);
    let me = app
        .graphql(Some(&access), "{ me { email emailVerified } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["emailVerified"], false);
    let bad = app
        .graphql(None, "mutation { verifyEmail(token: \"nope\") }", json!({}))
        .await;
    assert_eq!(bad["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(
        bad["errors"][0]["extensions"]["errors"],
        json!([{"field": "token", "message": "Invalid or expired token."}])
    );
    let resend = app
        .graphql(
            Some(&access),
            "mutation { requestEmailVerification }",
            json!({}),
        )
        .await;
    assert_eq!(resend["data"]["requestEmailVerification"], true);
    let newest = verify_token(&app.mail_to("gus@example.com", 2).await[1]);
    assert_ne!(newest, token);
    let ok = app
        .graphql(
            None,
            "mutation($t: String!) { verifyEmail(token: $t) }",
            json!({ "t": newest }),
        )
        .await;
    assert_eq!(ok["data"]["verifyEmail"], true, "{ok}");
    let me = app
        .graphql(Some(&access), "{ me { emailVerified } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["emailVerified"], true);
    let again: Value = app
        .graphql(
            Some(&access),
            "mutation { requestEmailVerification }",
            json!({}),
        )
        .await;
    assert_eq!(again["errors"][0]["extensions"]["code"], "CONFLICT");
}

async fn sent_messages_leave_no_token_in_the_database(app: TestApp) {
    app.register("hal@example.com", PASSWORD).await;
    let token = verify_token(&app.mail_to("hal@example.com", 1).await[0]);
    // The row is marked sent once the file is written; give the worker a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while app
        .count("SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL")
        .await
        > 0
    {
        assert!(std::time::Instant::now() < deadline, "never marked sent");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM mail_outbox WHERE text_body LIKE '%{token}%' OR html_body LIKE '%{token}%'"
        ))
        .await,
        0
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM account_tokens WHERE token_hash = '{token}'"
        ))
        .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM mail_outbox WHERE recipient = 'hal@example.com' AND attempts = 1"
        )
        .await,
        1
    );
}
