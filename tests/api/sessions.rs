//! Sessions: refresh rotation and reuse, logout, the list of sessions, password change and
//! account deletion, on both APIs and both databases.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, body, decode_claims, expect_error, image_bytes},
    on_both_backends, on_both_backends_with,
    process::ServerProcess,
};

on_both_backends!(
    login_opens_a_session_and_refresh_rotates_its_token,
    a_refresh_token_is_stored_only_as_a_hash,
    two_refreshes_a_second_apart_both_succeed_and_the_session_lives,
    refresh_input_errors,
    logout_ends_the_session_on_every_path,
    logout_all_ends_every_session,
    sessions_are_listed_and_ended_one_by_one,
    an_expired_session_is_refused,
    password_change_ends_the_other_sessions_only,
    account_deletion_leaves_no_row_and_no_file,
    the_graphql_api_has_every_session_operation,
    a_second_replica_refuses_an_ended_session_at_once,
);
on_both_backends_with!(short_grace;
    a_reuse_after_the_grace_window_ends_the_session,
    concurrent_refreshes_leave_at_most_one_live_chain,
);
on_both_backends_with!(one_day_sessions; sessions_never_outlive_their_absolute_cap);
on_both_backends_with!(two_failures; wrong_current_passwords_count_toward_the_lockout);
on_both_backends_with!(three_per_minute; refreshes_count_toward_the_address_login_limit);
on_both_backends_with!(prune_every_second; ended_sessions_and_old_tokens_are_pruned);

fn short_grace() -> Vec<(&'static str, &'static str)> {
    vec![("REFRESH_REUSE_GRACE_SECS", "2")]
}

fn one_day_sessions() -> Vec<(&'static str, &'static str)> {
    vec![("SESSION_MAX_DAYS", "1"), ("REFRESH_TOKEN_DAYS", "30")]
}

fn two_failures() -> Vec<(&'static str, &'static str)> {
    vec![("LOGIN_MAX_FAILURES", "2")]
}

fn three_per_minute() -> Vec<(&'static str, &'static str)> {
    vec![("LOGIN_PER_IP_PER_MINUTE", "3")]
}

fn prune_every_second() -> Vec<(&'static str, &'static str)> {
    vec![("SESSION_PRUNE_INTERVAL_SECS", "1")]
}

const DAY: i64 = 24 * 3600;

/// Registers `email` and logs in: `(user id, login body)`.
async fn signed_in(app: &TestApp, email: &str) -> (i64, Value) {
    let (id, _) = app.signed_up(email).await;
    (id, app.tokens(email).await)
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

fn refresh_token(tokens: &Value) -> &str {
    tokens["refresh_token"].as_str().unwrap()
}

fn sid(tokens: &Value) -> String {
    decode_claims(access(tokens))["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An RFC 3339 time `secs` from now, in the form the app writes (so SQLite compares it as
/// the app's own values).
fn time_from_now(secs: i64) -> String {
    (Utc::now() + chrono::TimeDelta::seconds(secs)).to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

async fn live_token_count(app: &TestApp, session: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM refresh_tokens WHERE session_id = '{session}' AND spent_at IS NULL"
    ))
    .await
}

async fn login_opens_a_session_and_refresh_rotates_its_token(app: TestApp) {
    let (id, login) = signed_in(&app, "ann@example.com").await;
    let keys: Vec<&str> = login
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "refresh_expires_in"
        ]
    );
    assert_eq!(login["token_type"], "bearer");
    let refresh = refresh_token(&login);
    assert_eq!(refresh.len(), 43);
    assert!(
        refresh
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    let ttl = login["refresh_expires_in"].as_i64().unwrap();
    assert!((30 * DAY - 5..=30 * DAY).contains(&ttl), "{ttl}");
    let claims = decode_claims(access(&login));
    let session = sid(&login);
    assert_eq!(claims["user_id"], id);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE id = '{session}' AND user_id = {id} AND revoked_at IS NULL"
        ))
        .await,
        1
    );

    let renewed = app.refresh(refresh).await;
    assert_eq!(renewed.status(), StatusCode::OK);
    assert_eq!(renewed.headers()["cache-control"], "no-store");
    let renewed = body(renewed).await;
    assert_ne!(refresh_token(&renewed), refresh);
    assert_ne!(access(&renewed), access(&login));
    assert_eq!(sid(&renewed), session, "the same session goes on");
    // Both access tokens belong to the live session.
    for token in [access(&login), access(&renewed)] {
        assert_eq!(app.account(token).await.status(), StatusCode::OK);
    }
    assert_eq!(live_token_count(&app, &session).await, 1);
    let next = app.refresh(refresh_token(&renewed)).await;
    assert_eq!(next.status(), StatusCode::OK);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM refresh_tokens WHERE session_id = '{session}'"
        ))
        .await,
        3
    );
    assert_eq!(live_token_count(&app, &session).await, 1);
}

async fn a_refresh_token_is_stored_only_as_a_hash(app: TestApp) {
    let (_, login) = signed_in(&app, "bo@example.com").await;
    let token = refresh_token(&login);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM refresh_tokens WHERE token_hash LIKE '%{token}%'"
        ))
        .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refresh_tokens WHERE LENGTH(token_hash) = 64")
            .await,
        app.count("SELECT COUNT(*) FROM refresh_tokens").await
    );
}

async fn two_refreshes_a_second_apart_both_succeed_and_the_session_lives(app: TestApp) {
    let (_, login) = signed_in(&app, "cy@example.com").await;
    let first = app.refresh(refresh_token(&login)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first = body(first).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The other tab, with the same token a second later.
    let second = app.refresh(refresh_token(&login)).await;
    assert_eq!(second.status(), StatusCode::OK);
    let second = body(second).await;
    assert_eq!(sid(&second), sid(&login));
    assert_ne!(refresh_token(&second), refresh_token(&first));
    for tokens in [&login, &first, &second] {
        assert_eq!(app.account(access(tokens)).await.status(), StatusCode::OK);
    }
    // One chain: the latest token carries on.
    assert_eq!(live_token_count(&app, &sid(&login)).await, 1);
    let third = app.refresh(refresh_token(&second)).await;
    assert_eq!(third.status(), StatusCode::OK);
    assert_eq!(
        app.account(access(&body(third).await)).await.status(),
        StatusCode::OK
    );
}

async fn a_reuse_after_the_grace_window_ends_the_session(app: TestApp) {
    let (_, login) = signed_in(&app, "di@example.com").await;
    let renewed = body(app.refresh(refresh_token(&login)).await).await;
    assert_eq!(app.account(access(&renewed)).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The stolen token, replayed after the grace window.
    expect_error(
        app.refresh(refresh_token(&login)).await,
        StatusCode::UNAUTHORIZED,
        "Invalid refresh token",
    )
    .await;
    // The whole session is gone: its access tokens and its newest refresh token too.
    for tokens in [&login, &renewed] {
        expect_error(
            app.account(access(tokens)).await,
            StatusCode::UNAUTHORIZED,
            "Not authenticated",
        )
        .await;
    }
    expect_error(
        app.refresh(refresh_token(&renewed)).await,
        StatusCode::UNAUTHORIZED,
        "Invalid refresh token",
    )
    .await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE id = '{}' AND revoked_at IS NOT NULL",
            sid(&login)
        ))
        .await,
        1
    );
    // A login opens a new session as usual.
    let again = app.tokens("di@example.com").await;
    assert_eq!(app.account(access(&again)).await.status(), StatusCode::OK);
}

async fn concurrent_refreshes_leave_at_most_one_live_chain(app: TestApp) {
    let (_, login) = signed_in(&app, "ed@example.com").await;
    let session = sid(&login);
    let token = refresh_token(&login).to_owned();
    let answers = futures_util::future::join_all((0..20).map(|_| {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/api/auth/refresh"),
            token.clone(),
        );
        async move {
            let response = client
                .post(url)
                .json(&json!({ "refresh_token": token }))
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, body(response).await)
        }
    }))
    .await;
    let issued: Vec<String> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| refresh_token(body).to_owned())
        .collect();
    for (status, body) in &answers {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::UNAUTHORIZED,
            "{status}: {body}"
        );
    }
    assert!(!issued.is_empty());
    let unique: std::collections::BTreeSet<&String> = issued.iter().collect();
    assert_eq!(unique.len(), issued.len(), "every pair is new");
    // Alive with exactly one live token, or revoked with none usable.
    let alive = app
        .count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE id = '{session}' AND revoked_at IS NULL"
        ))
        .await;
    assert_eq!(live_token_count(&app, &session).await, alive);
    // Past the grace window, at most one of the issued tokens still refreshes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut working = 0;
    for token in &issued {
        if app.refresh(token).await.status() == StatusCode::OK {
            working += 1;
        }
    }
    assert!(working <= 1, "{working} chains");
}

async fn refresh_input_errors(app: TestApp) {
    expect_error(
        app.refresh("not-a-token").await,
        StatusCode::UNAUTHORIZED,
        "Invalid refresh token",
    )
    .await;
    let missing = app.post_json("/api/auth/refresh", &json!({})).await;
    let missing = expect_error(
        missing,
        StatusCode::BAD_REQUEST,
        "Refresh token is required.",
    )
    .await;
    assert_eq!(missing["errors"][0]["field"], "refresh_token");
    let typed = app
        .post_json("/api/auth/refresh", &json!({"refresh_token": 5}))
        .await;
    assert_eq!(typed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // An access token is not a refresh token.
    let (_, login) = signed_in(&app, "fay@example.com").await;
    expect_error(
        app.refresh(access(&login)).await,
        StatusCode::UNAUTHORIZED,
        "Invalid refresh token",
    )
    .await;
}

async fn logout_ends_the_session_on_every_path(app: TestApp) {
    let (_, login) = signed_in(&app, "gus@example.com").await;
    let other = app.tokens("gus@example.com").await;
    let token = access(&login);
    let logout = app.post_auth("/api/auth/logout", token).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(logout.text().await.unwrap(), "");
    for path in [
        "/api/users/profile",
        "/api/users/me/profile",
        "/api/users/me/sessions",
        "/api/profiles/1",
    ] {
        let response = app.get_auth(path, token).await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{path}");
        expect_error(response, StatusCode::UNAUTHORIZED, "Not authenticated").await;
    }
    expect_error(
        app.update_my_profile(token, &json!({"bio": "x"})).await,
        StatusCode::UNAUTHORIZED,
        "Not authenticated",
    )
    .await;
    let me = app.graphql(Some(token), "{ me { id } }", json!({})).await;
    assert_eq!(me["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    expect_error(
        app.refresh(refresh_token(&login)).await,
        StatusCode::UNAUTHORIZED,
        "Invalid refresh token",
    )
    .await;
    expect_error(
        app.post_auth("/api/auth/logout", token).await,
        StatusCode::UNAUTHORIZED,
        "Not authenticated",
    )
    .await;
    // The other session is untouched.
    assert_eq!(app.account(access(&other)).await.status(), StatusCode::OK);
    expect_error(
        app.client
            .post(app.url("/api/auth/logout"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "Not authenticated",
    )
    .await;
}

async fn logout_all_ends_every_session(app: TestApp) {
    let (_, first) = signed_in(&app, "hal@example.com").await;
    let second = app.tokens("hal@example.com").await;
    let (_, bystander) = signed_in(&app, "ivy@example.com").await;
    let answer = app.post_auth("/api/auth/logout-all", access(&second)).await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    for tokens in [&first, &second] {
        assert_eq!(
            app.account(access(tokens)).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(refresh_token(tokens)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.account(access(&bystander)).await.status(),
        StatusCode::OK
    );
}

async fn sessions_are_listed_and_ended_one_by_one(app: TestApp) {
    let login_as = |agent: &'static str| {
        app.client
            .post(app.url("/api/auth/login"))
            .header("user-agent", agent)
            .json(&json!({"email": "jo@example.com", "password": PASSWORD}))
            .send()
    };
    app.signed_up("jo@example.com").await;
    let phone = body(login_as("Phone/1.0").await.unwrap()).await;
    let laptop = body(login_as("Laptop/2.0").await.unwrap()).await;
    let list = app
        .get_auth("/api/users/me/sessions", access(&laptop))
        .await;
    assert_eq!(list.status(), StatusCode::OK);
    let list = body(list).await;
    let sessions = list.as_array().unwrap();
    // Both from the signed_up login (no agent) and the two above.
    assert_eq!(sessions.len(), 3, "{list}");
    let keys: Vec<&str> = sessions[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "created_at",
            "last_used_at",
            "expires_at",
            "user_agent",
            "ip",
            "current"
        ]
    );
    assert_eq!(sessions[0]["id"], sid(&laptop), "most recent first");
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["user_agent"], "Laptop/2.0");
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    assert_eq!(sessions[1]["id"], sid(&phone));
    assert_eq!(sessions[1]["current"], false);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);

    // A refresh makes the phone's session the most recently used.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let phone = body(app.refresh(refresh_token(&phone)).await).await;
    let list = body(
        app.get_auth("/api/users/me/sessions", access(&laptop))
            .await,
    )
    .await;
    assert_eq!(list[0]["id"], sid(&phone));
    assert_eq!(list[0]["current"], false);

    // Ending the phone's session from the laptop.
    let path = format!("/api/users/me/sessions/{}", sid(&phone));
    assert_eq!(
        app.delete_auth(&path, access(&laptop)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.account(access(&phone)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    expect_error(
        app.delete_auth(&path, access(&laptop)).await,
        StatusCode::NOT_FOUND,
        "Session not found",
    )
    .await;
    let list = body(
        app.get_auth("/api/users/me/sessions", access(&laptop))
            .await,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // Another user's session, an unknown id and a malformed one are all "not found".
    let (_, stranger) = signed_in(&app, "kay@example.com").await;
    for id in [
        sid(&stranger),
        uuid::Uuid::new_v4().to_string(),
        "not-a-session".to_owned(),
    ] {
        expect_error(
            app.delete_auth(&format!("/api/users/me/sessions/{id}"), access(&laptop))
                .await,
            StatusCode::NOT_FOUND,
            "Session not found",
        )
        .await;
    }
    assert_eq!(
        app.account(access(&stranger)).await.status(),
        StatusCode::OK
    );

    // Ending one's own session is logging out.
    let own = format!("/api/users/me/sessions/{}", sid(&laptop));
    assert_eq!(
        app.delete_auth(&own, access(&laptop)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.account(access(&laptop)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn an_expired_session_is_refused(app: TestApp) {
    let (_, login) = signed_in(&app, "lu@example.com").await;
    app.execute(&format!(
        "UPDATE sessions SET expires_at = '{}' WHERE id = '{}'",
        time_from_now(-1),
        sid(&login)
    ))
    .await;
    // The access token itself has hours left; its session does not.
    expect_error(
        app.account(access(&login)).await,
        StatusCode::UNAUTHORIZED,
        "Not authenticated",
    )
    .await;
    expect_error(
        app.refresh(refresh_token(&login)).await,
        StatusCode::UNAUTHORIZED,
        "Invalid refresh token",
    )
    .await;
}

async fn sessions_never_outlive_their_absolute_cap(app: TestApp) {
    let (_, login) = signed_in(&app, "max@example.com").await;
    let ttl = login["refresh_expires_in"].as_i64().unwrap();
    assert!((DAY - 5..=DAY).contains(&ttl), "{ttl}");
    // Twenty-three hours into the session, a refresh gets the last hour only.
    app.execute(&format!(
        "UPDATE sessions SET created_at = '{}' WHERE id = '{}'",
        time_from_now(-23 * 3600),
        sid(&login)
    ))
    .await;
    let renewed = body(app.refresh(refresh_token(&login)).await).await;
    let ttl = renewed["refresh_expires_in"].as_i64().unwrap();
    assert!((3600 - 5..=3600).contains(&ttl), "{ttl}");
}

async fn password_change_ends_the_other_sessions_only(app: TestApp) {
    let (_, here) = signed_in(&app, "ned@example.com").await;
    let elsewhere = app.tokens("ned@example.com").await;
    let change = |current: &str, new: &str| {
        let body = json!({"current_password": current, "new_password": new});
        let request = app
            .client
            .put(app.url("/api/users/me/password"))
            .bearer_auth(access(&here))
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    let wrong = expect_error(
        change("WrongPass999", "NewStrong456").await,
        StatusCode::BAD_REQUEST,
        "Current password is incorrect.",
    )
    .await;
    assert_eq!(
        wrong["errors"],
        json!([{"field": "current_password", "message": "Current password is incorrect."}])
    );
    let weak = expect_error(
        change(PASSWORD, "short").await,
        StatusCode::BAD_REQUEST,
        "Password must be at least 8 characters long.",
    )
    .await;
    assert_eq!(weak["errors"][0]["field"], "new_password");
    // Nothing changed so far.
    assert_eq!(
        app.account(access(&elsewhere)).await.status(),
        StatusCode::OK
    );

    let changed = change(PASSWORD, "NewStrong456").await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.account(access(&here)).await.status(), StatusCode::OK);
    assert_eq!(
        app.account(access(&elsewhere)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(refresh_token(&elsewhere)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(refresh_token(&here)).await.status(),
        StatusCode::OK
    );
    expect_error(
        app.login("ned@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "Incorrect email or password",
    )
    .await;
    assert_eq!(
        app.login("ned@example.com", "NewStrong456").await.status(),
        StatusCode::OK
    );
}

async fn wrong_current_passwords_count_toward_the_lockout(app: TestApp) {
    let (_, login) = signed_in(&app, "ola@example.com").await;
    for _ in 0..2 {
        let wrong = app
            .put_auth(
                "/api/users/me/password",
                access(&login),
                &json!({"current_password": "WrongPass999", "new_password": "NewStrong456"}),
            )
            .await;
        assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    }
    // Locked: even the right password is refused, at login and here.
    let locked = app.login("ola@example.com", PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().contains_key("retry-after"));
    let right = app
        .put_auth(
            "/api/users/me/password",
            access(&login),
            &json!({"current_password": PASSWORD, "new_password": "NewStrong456"}),
        )
        .await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    let delete = app
        .client
        .delete(app.url("/api/users/me"))
        .bearer_auth(access(&login))
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
}

async fn account_deletion_leaves_no_row_and_no_file(app: TestApp) {
    let (id, login) = signed_in(&app, "pia@example.com").await;
    let second = app.tokens("pia@example.com").await;
    let (_, bystander) = signed_in(&app, "quin@example.com").await;
    let photo = image_bytes(32, 32, image::ImageFormat::Png);
    let uploaded = app
        .upload_rest(access(&login), photo, "me.png", "image/png")
        .await;
    assert_eq!(uploaded.status(), StatusCode::OK);
    assert_eq!(app.stored_files().len(), 1);
    let delete = |password: &str| {
        app.client
            .delete(app.url("/api/users/me"))
            .bearer_auth(access(&login))
            .json(&json!({ "password": password }))
            .send()
    };
    let wrong = expect_error(
        delete("WrongPass999").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "Password is incorrect.",
    )
    .await;
    assert_eq!(
        wrong["errors"],
        json!([{"field": "password", "message": "Password is incorrect."}])
    );
    let missing = app
        .client
        .delete(app.url("/api/users/me"))
        .bearer_auth(access(&login))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM users WHERE id = {id}"))
            .await,
        1
    );

    let deleted = delete(PASSWORD).await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    for table in [
        "users WHERE id",
        "profiles WHERE user_id",
        "sessions WHERE user_id",
    ] {
        assert_eq!(
            app.count(&format!("SELECT COUNT(*) FROM {table} = {id}"))
                .await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM refresh_tokens WHERE session_id IN ('{}', '{}')",
            sid(&login),
            sid(&second)
        ))
        .await,
        0
    );
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
    assert!(!app.upload_dir().join(id.to_string()).exists());
    for tokens in [&login, &second] {
        expect_error(
            app.account(access(tokens)).await,
            StatusCode::UNAUTHORIZED,
            "Not authenticated",
        )
        .await;
        assert_eq!(
            app.refresh(refresh_token(tokens)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Others are untouched, and the email is free again.
    assert_eq!(
        app.account(access(&bystander)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.register("PIA@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

async fn the_graphql_api_has_every_session_operation(app: TestApp) {
    app.signed_up("ray@example.com").await;
    let login = app
        .graphql(
            None,
            "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken \
             refreshExpiresIn user { email } } }",
            json!({"input": {"email": "ray@example.com", "password": PASSWORD}}),
        )
        .await;
    let login = &login["data"]["login"];
    assert_eq!(login["user"]["email"], "ray@example.com");
    let token = login["accessToken"].as_str().unwrap();
    let refresh = "mutation($t: String!) { refresh(input: {refreshToken: $t}) { accessToken \
                   refreshToken expiresIn refreshExpiresIn tokenType user { id } } }";
    let renewed = app
        .graphql(None, refresh, json!({"t": login["refreshToken"]}))
        .await;
    let renewed = &renewed["data"]["refresh"];
    assert_eq!(renewed["tokenType"], "bearer");
    let token2 = renewed["accessToken"].as_str().unwrap();
    assert_ne!(token2, token);
    let bad = app.graphql(None, refresh, json!({"t": "nope"})).await;
    assert_eq!(bad["errors"][0]["message"], "Invalid refresh token");
    assert_eq!(bad["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    let other = app.tokens("ray@example.com").await;
    let sessions = app
        .graphql(
            Some(token2),
            "{ mySessions { id createdAt lastUsedAt expiresAt userAgent ip current } }",
            json!({}),
        )
        .await;
    let sessions = sessions["data"]["mySessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions[0]["id"], sid(&other));
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let revoke = app
        .graphql(
            Some(token2),
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({"id": sid(&other)}),
        )
        .await;
    assert_eq!(revoke["data"]["revokeSession"], true);
    let again = app
        .graphql(
            Some(token2),
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({"id": sid(&other)}),
        )
        .await;
    assert_eq!(again["errors"][0]["extensions"]["code"], "NOT_FOUND");
    assert_eq!(again["errors"][0]["message"], "Session not found");

    let wrong = app
        .graphql(
            Some(token2),
            "mutation { changePassword(input: {currentPassword: \"WrongPass999\", newPassword: \"NewStrong456\"}) }",
            json!({}),
        )
        .await;
    assert_eq!(wrong["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(
        wrong["errors"][0]["extensions"]["errors"],
        json!([{"field": "current_password", "message": "Current password is incorrect."}])
    );
    let changed = app
        .graphql(
            Some(token2),
            "mutation($p: String!) { changePassword(input: {currentPassword: $p, newPassword: \"NewStrong456\"}) }",
            json!({"p": PASSWORD}),
        )
        .await;
    assert_eq!(changed["data"]["changePassword"], true, "{changed}");

    let third = app
        .graphql(
            None,
            "mutation { login(input: {email: \"ray@example.com\", password: \"NewStrong456\"}) { accessToken } }",
            json!({}),
        )
        .await;
    let token3 = third["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let everywhere = app
        .graphql(Some(&token3), "mutation { logoutAll }", json!({}))
        .await;
    assert_eq!(everywhere["data"]["logoutAll"], 2, "{everywhere}");
    let gone = app.graphql(Some(token2), "{ me { id } }", json!({})).await;
    assert_eq!(gone["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    let fresh = app
        .graphql(
            None,
            "mutation { login(input: {email: \"ray@example.com\", password: \"NewStrong456\"}) { accessToken } }",
            json!({}),
        )
        .await;
    let token4 = fresh["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = app
        .graphql(Some(&token4), "mutation { logout }", json!({}))
        .await;
    assert_eq!(out["data"]["logout"], true);
    let out = app
        .graphql(Some(&token4), "mutation { logout }", json!({}))
        .await;
    assert_eq!(out["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    let last = app.tokens_with("ray@example.com", "NewStrong456").await;
    let deleted = app
        .graphql(
            Some(access(&last)),
            "mutation { deleteAccount(input: {password: \"NewStrong456\"}) }",
            json!({}),
        )
        .await;
    assert_eq!(deleted["data"]["deleteAccount"], true, "{deleted}");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

/// Whatever a replica keeps, a session ended on another (logout, a password change, the
/// account disabled) is refused on its very next request, and the live ones still work.
async fn a_second_replica_refuses_an_ended_session_at_once(app: TestApp) {
    let replica = ServerProcess::start(&[("DATABASE_URL", app.database_url.as_str())]);
    let on_replica = |token: String, path: &'static str| {
        app.client.get(replica.url(path)).bearer_auth(token).send()
    };
    let status = |response: reqwest::Response| response.status();
    let paths = ["/api/users/profile", "/api/users/me/profile"];

    let (_, login) = signed_in(&app, "sam@example.com").await;
    let token = access(&login).to_owned();
    let profile = app
        .put_auth("/api/profiles/me", &token, &json!({"name": "Sam"}))
        .await;
    assert!(profile.status().is_success(), "{}", profile.status());
    for path in paths {
        assert_eq!(
            status(on_replica(token.clone(), path).await.unwrap()),
            StatusCode::OK
        );
    }
    assert_eq!(
        app.post_auth("/api/auth/logout", &token).await.status(),
        StatusCode::NO_CONTENT
    );
    for path in paths {
        assert_eq!(
            status(on_replica(token.clone(), path).await.unwrap()),
            StatusCode::UNAUTHORIZED,
            "{path} after a logout"
        );
    }

    // A password change ends every other session of the account.
    let (_, first) = signed_in(&app, "pat@example.com").await;
    let other = app.tokens("pat@example.com").await;
    let other = access(&other).to_owned();
    assert_eq!(
        status(on_replica(other.clone(), paths[0]).await.unwrap()),
        StatusCode::OK
    );
    let changed = app
        .put_auth(
            "/api/users/me/password",
            access(&first),
            &json!({"current_password": PASSWORD, "new_password": "NewStrong456"}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        status(on_replica(other, paths[0]).await.unwrap()),
        StatusCode::UNAUTHORIZED,
        "another session after a password change"
    );

    // Disabling the account ends all of its sessions.
    let (_, admin) = crate::admin::signed_in_admin(&app).await;
    let (victim_id, victim) = signed_in(&app, "vic@example.com").await;
    let victim = access(&victim).to_owned();
    assert_eq!(
        status(on_replica(victim.clone(), paths[0]).await.unwrap()),
        StatusCode::OK
    );
    let disabled = app
        .client
        .post(app.url(&format!("/api/admin/users/{victim_id}/disable")))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(
        status(on_replica(victim, paths[0]).await.unwrap()),
        StatusCode::UNAUTHORIZED,
        "a disabled account's session"
    );
}

async fn refreshes_count_toward_the_address_login_limit(app: TestApp) {
    for _ in 0..3 {
        assert_eq!(
            app.refresh("guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = app.refresh("guess").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    // The same counter as logins.
    assert_eq!(
        app.login("nobody@example.com", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn ended_sessions_and_old_tokens_are_pruned(app: TestApp) {
    let (_, ended) = signed_in(&app, "tia@example.com").await;
    let live = app.tokens("tia@example.com").await;
    let renewed = body(app.refresh(refresh_token(&live)).await).await;
    assert_eq!(
        app.post_auth("/api/auth/logout", access(&ended))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    // The spent token of the live session, made as if 31 days ago.
    app.execute(&format!(
        "UPDATE refresh_tokens SET created_at = '{}' WHERE session_id = '{}' AND spent_at IS NOT NULL",
        time_from_now(-31 * DAY),
        sid(&live)
    ))
    .await;
    let ended_rows = format!("SELECT COUNT(*) FROM sessions WHERE id = '{}'", sid(&ended));
    let spent_rows = "SELECT COUNT(*) FROM refresh_tokens WHERE spent_at IS NOT NULL";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (sessions, tokens) = (app.count(&ended_rows).await, app.count(spent_rows).await);
        if sessions == 0 && tokens == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{sessions} ended sessions, {tokens} old tokens left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The live sessions (this one and the sign-up's) stay, each with its live token.
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM refresh_tokens").await, 2);
    assert_eq!(app.account(access(&renewed)).await.status(), StatusCode::OK);
    assert_eq!(
        app.refresh(refresh_token(&renewed)).await.status(),
        StatusCode::OK
    );
}
