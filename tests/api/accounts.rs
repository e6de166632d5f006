//! Registration, login and the account view over REST (SPEC §4–§7).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    helpers::{PASSWORD, TestApp, body, decode_claims, expect_error, sign, unsigned},
    on_both_backends,
};

on_both_backends!(
    register_returns_201_with_the_account_and_no_secrets,
    register_creates_the_user_and_an_empty_profile_with_a_bcrypt_hash,
    users_register_alias_accepts_a_name,
    emails_are_stored_trimmed_and_lower_cased,
    duplicate_email_in_any_case_is_409,
    parallel_registrations_of_one_email_give_one_201,
    invalid_registrations_are_400_naming_each_field,
    passwords_over_72_bytes_are_refused_not_truncated,
    wrong_json_types_are_422_and_broken_json_400_and_non_json_415,
    login_returns_a_bearer_token_with_the_documented_claims,
    login_accepts_the_oauth2_password_form,
    wrong_password_and_unknown_email_get_the_same_401,
    login_without_fields_is_400,
    account_view_needs_a_valid_token,
    tokens_of_deleted_users_are_401,
    account_update_changes_email_and_name,
    account_update_refuses_other_fields_and_changes_nothing,
    account_update_to_a_taken_email_is_409,
    account_update_null_clears_the_name_and_absent_keeps_it,
    account_update_validates_like_registration,
);

async fn register_returns_201_with_the_account_and_no_secrets(app: TestApp) {
    let response = app.register("alice@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = body(response).await;
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["id", "email", "created_at"]);
    assert!(body["id"].as_i64().unwrap() > 0);
    assert_eq!(body["email"], "alice@example.com");
    let created = body["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );
    assert!(created.ends_with('Z'), "{created}");
}

async fn register_creates_the_user_and_an_empty_profile_with_a_bcrypt_hash(app: TestApp) {
    let (id, _) = app.signed_up("bob@example.com").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM profiles WHERE user_id = {id} AND name IS NULL AND phone IS NULL"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE password_hash LIKE '$2b$04$%'")
            .await,
        1,
        "the password is stored as a bcrypt hash at the configured cost"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM users WHERE password_hash = '{PASSWORD}'"
        ))
        .await,
        0
    );
}

async fn users_register_alias_accepts_a_name(app: TestApp) {
    let response = app
        .post_json(
            "/api/users/register",
            &json!({"email": "carol@example.com", "password": PASSWORD, "name": "Carol"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let login = body(app.login("carol@example.com", PASSWORD).await).await;
    let token = login["access_token"].as_str().unwrap();
    let account = body(app.account(token).await).await;
    assert_eq!(account["name"], "Carol");
    assert_eq!(account["email"], "carol@example.com");
}

async fn emails_are_stored_trimmed_and_lower_cased(app: TestApp) {
    let response = app.register("  Dave@Example.COM ", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(body(response).await["email"], "dave@example.com");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE email = 'dave@example.com'")
            .await,
        1
    );
    assert_eq!(
        app.login("DAVE@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn duplicate_email_in_any_case_is_409(app: TestApp) {
    app.signed_up("erin@example.com").await;
    let again = app.register("ERIN@Example.com", "AnotherPass123").await;
    expect_error(again, StatusCode::CONFLICT, "Email already registered.").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
}

async fn parallel_registrations_of_one_email_give_one_201(app: TestApp) {
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (client, url) = (app.client.clone(), app.url("/api/auth/register"));
        attempts.spawn(async move {
            let body = json!({"email": "race@example.com", "password": PASSWORD});
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let statuses = attempts.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM profiles").await, 1);
}

async fn invalid_registrations_are_400_naming_each_field(app: TestApp) {
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            "email",
            "Invalid email format.",
        ),
        (
            json!({"email": "frank@example.com", "password": "short"}),
            "password",
            "Password must be at least 8 characters long.",
        ),
        (json!({"password": PASSWORD}), "email", "Email is required."),
        (
            json!({"email": "frank@example.com"}),
            "password",
            "Password is required.",
        ),
        (
            json!({"email": "", "password": PASSWORD}),
            "email",
            "Email is required.",
        ),
        (
            json!({"email": null, "password": PASSWORD}),
            "email",
            "Email is required.",
        ),
        (
            json!({"email": format!("{}@example.com", "a".repeat(250)), "password": PASSWORD}),
            "email",
            "Email must be at most 254 characters.",
        ),
    ];
    for (request, field, message) in cases {
        let response = app.post_json("/api/auth/register", &request).await;
        let body = expect_error(response, StatusCode::BAD_REQUEST, message).await;
        assert_eq!(body["errors"][0]["field"], field, "{request}");
        assert_eq!(body["errors"][0]["message"], message);
    }
    // Several problems at once are all listed.
    let response = app
        .post_json(
            "/api/auth/register",
            &json!({"email": "x", "password": "y"}),
        )
        .await;
    let body = expect_error(response, StatusCode::BAD_REQUEST, "Invalid email format.").await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn passwords_over_72_bytes_are_refused_not_truncated(app: TestApp) {
    let long = "p".repeat(73);
    let response = app.register("gina@example.com", &long).await;
    let body = expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "Password must be at most 72 bytes long.",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "password");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);

    // Exactly 72 bytes is fine, and a longer password sharing its first 72 bytes is wrong.
    let exact = "p".repeat(72);
    assert_eq!(
        app.register("gina@example.com", &exact).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.login("gina@example.com", &exact).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login("gina@example.com", &"p".repeat(80))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn wrong_json_types_are_422_and_broken_json_400_and_non_json_415(app: TestApp) {
    let response = app
        .post_json(
            "/api/auth/register",
            &json!({"email": 42, "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = body(response).await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "email"]));
    assert!(body["detail"][0]["msg"].is_string());

    let response = app
        .post_json("/api/auth/register", &json!(["a", "list"]))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let response = app
        .send_raw(
            Method::POST,
            "/api/auth/register",
            "application/json",
            "{\"email\": ",
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let broken = self::body(response).await;
    assert!(
        broken["detail"]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON"),
        "{broken}"
    );

    let response = app
        .send_raw(
            Method::POST,
            "/api/auth/register",
            "text/plain",
            "email=a&password=b",
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(self::body(response).await["detail"].is_string());
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn login_returns_a_bearer_token_with_the_documented_claims(app: TestApp) {
    let (id, _) = app.signed_up("hana@example.com").await;
    let response = app.login("hana@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = body(response).await;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 24 * 3600);
    let token = body["access_token"].as_str().unwrap();
    let claims = decode_claims(token);
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["user_id"], id);
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 24 * 3600);
    assert_eq!(app.account(token).await.status(), StatusCode::OK);
}

async fn login_accepts_the_oauth2_password_form(app: TestApp) {
    app.signed_up("ivan@example.com").await;
    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .form(&[
            ("grant_type", "password"),
            ("username", "ivan@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await["token_type"], "bearer");

    let wrong = app
        .client
        .post(app.url("/api/auth/login"))
        .form(&[
            ("username", "ivan@example.com"),
            ("password", "WrongPass123"),
        ])
        .send()
        .await
        .unwrap();
    expect_error(
        wrong,
        StatusCode::UNAUTHORIZED,
        "Incorrect email or password",
    )
    .await;
}

async fn wrong_password_and_unknown_email_get_the_same_401(app: TestApp) {
    app.signed_up("jack@example.com").await;
    let wrong_password = app.login("jack@example.com", "WrongPass123").await;
    let unknown_email = app.login("nobody@example.com", PASSWORD).await;
    for response in [wrong_password, unknown_email] {
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body = expect_error(
            response,
            StatusCode::UNAUTHORIZED,
            "Incorrect email or password",
        )
        .await;
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    }
}

async fn login_without_fields_is_400(app: TestApp) {
    let response = app.post_json("/api/auth/login", &json!({})).await;
    let body = expect_error(response, StatusCode::BAD_REQUEST, "Email is required.").await;
    let fields: Vec<_> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert_eq!(fields, [json!("email"), json!("password")]);
}

async fn account_view_needs_a_valid_token(app: TestApp) {
    let (id, token) = app.signed_up("kim@example.com").await;
    let ok = body(app.account(&token).await).await;
    let keys: Vec<&str> = ok.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "email",
            "email_verified",
            "name",
            "created_at",
            "updated_at"
        ]
    );
    assert_eq!(ok["id"], id);

    let no_token = app
        .client
        .get(app.url("/api/users/profile"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    expect_error(no_token, StatusCode::UNAUTHORIZED, "Not authenticated").await;

    // Each forgery names the live session, so only the stated flaw refuses it.
    let sid = decode_claims(&token)["sid"].clone();
    let now = chrono::Utc::now().timestamp();
    let claims = |iat: i64, exp: Option<i64>| {
        let mut c = json!({"sub": id.to_string(), "user_id": id, "sid": sid, "iat": iat});
        if let Some(exp) = exp {
            c["exp"] = json!(exp);
        }
        c
    };
    assert_eq!(
        app.account(&sign(claims(now, Some(now + 60)), "HS256"))
            .await
            .status(),
        StatusCode::OK
    );
    let forged = [
        "garbage".to_owned(),
        format!("{token}x"),
        sign(claims(now - 300, Some(now - 120)), "HS256"),
        sign(claims(now, None), "HS256"),
        sign(claims(now, Some(now + 60)), "HS512"),
        unsigned(claims(now, Some(now + 60))),
        // No session at all.
        sign(
            json!({"sub": id.to_string(), "user_id": id, "iat": now, "exp": now + 60}),
            "HS256",
        ),
    ];
    for bad in forged {
        let response = app.account(&bad).await;
        expect_error(response, StatusCode::UNAUTHORIZED, "Not authenticated").await;
    }
    let scheme = app
        .client
        .get(app.url("/api/users/profile"))
        .header("authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(scheme.status(), StatusCode::UNAUTHORIZED);
}

async fn tokens_of_deleted_users_are_401(app: TestApp) {
    let (id, token) = app.signed_up("lee@example.com").await;
    app.execute(&format!("DELETE FROM profiles WHERE user_id = {id}"))
        .await;
    app.execute(&format!("DELETE FROM users WHERE id = {id}"))
        .await;
    let response = app.account(&token).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "Not authenticated").await;
}

async fn account_update_changes_email_and_name(app: TestApp) {
    let (_, token) = app.signed_up("mia@example.com").await;
    let before = body(app.account(&token).await).await;
    let response = app
        .update_account(
            &token,
            &json!({"email": "Mia.New@Example.com", "name": "Mia"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let after = body(response).await;
    assert_eq!(after["email"], "mia.new@example.com");
    assert_eq!(after["name"], "Mia");
    assert_eq!(after["created_at"], before["created_at"]);
    assert_ne!(after["updated_at"], before["updated_at"]);
    assert_eq!(body(app.account(&token).await).await, after);

    assert_eq!(
        app.login("mia.new@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login("mia@example.com", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn account_update_refuses_other_fields_and_changes_nothing(app: TestApp) {
    let (_, token) = app.signed_up("ned@example.com").await;
    for body in [
        json!({"password": "NewPass12345"}),
        json!({"name": "Ned", "phone": "+100200300"}),
        json!({"email": "other@example.com", "id": 99}),
    ] {
        let response = app.update_account(&token, &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error = self::body(response).await;
        assert!(
            error["detail"].as_str().unwrap().contains("Unknown field"),
            "{error}"
        );
    }
    let account = body(app.account(&token).await).await;
    assert_eq!(account["email"], "ned@example.com");
    assert_eq!(account["name"], json!(null));
    assert_eq!(
        app.login("ned@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );

    let response = app.update_account(&token, &json!({"name": 7})).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let unauthenticated = app
        .client
        .put(app.url("/api/users/profile"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

async fn account_update_to_a_taken_email_is_409(app: TestApp) {
    app.signed_up("olga@example.com").await;
    let (_, token) = app.signed_up("pete@example.com").await;
    let response = app
        .update_account(&token, &json!({"email": "OLGA@example.com"}))
        .await;
    expect_error(response, StatusCode::CONFLICT, "Email already registered.").await;
    let account = body(app.account(&token).await).await;
    assert_eq!(account["email"], "pete@example.com");
}

async fn account_update_null_clears_the_name_and_absent_keeps_it(app: TestApp) {
    let (_, token) = app.signed_up("quinn@example.com").await;
    app.update_account(&token, &json!({"name": "Quinn"})).await;
    let kept = body(
        app.update_account(&token, &json!({"email": "q@example.com"}))
            .await,
    )
    .await;
    assert_eq!(kept["name"], "Quinn");
    let cleared = body(app.update_account(&token, &json!({"name": null})).await).await;
    assert_eq!(cleared["name"], json!(null));
    assert_eq!(cleared["email"], "q@example.com");
    let unchanged = app.update_account(&token, &json!({})).await;
    assert_eq!(unchanged.status(), StatusCode::OK);
}

async fn account_update_validates_like_registration(app: TestApp) {
    let (_, token) = app.signed_up("rita@example.com").await;
    let cases = [
        (json!({"email": "nope"}), "email", "Invalid email format."),
        (json!({"email": null}), "email", "Email cannot be null."),
        (
            json!({"name": "n".repeat(101)}),
            "name",
            "Name must be at most 100 characters.",
        ),
    ];
    for (request, field, message) in cases {
        let response = app.update_account(&token, &request).await;
        let body = expect_error(response, StatusCode::BAD_REQUEST, message).await;
        assert_eq!(body["errors"][0]["field"], field);
    }
    let account = body(app.account(&token).await).await;
    assert_eq!(account["email"], "rita@example.com");
}
