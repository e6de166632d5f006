//! Two-factor authentication (SPEC §14) on both APIs and both databases, with codes from an
//! independent TOTP implementation (PyPI `pyotp`, as an authenticator app would compute them).

use std::{process::Command, sync::OnceLock};

use reqwest::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use sha2::Digest;

use crate::{
    admin::signed_in_admin,
    helpers::{PASSWORD, TestApp, body, decode_claims, expect_error, python_with},
    on_both_backends, on_both_backends_with,
    process::ServerProcess,
};

on_both_backends!(
    totp_over_rest_from_enrolment_to_removal,
    totp_over_graphql_from_enrolment_to_removal,
    twenty_parallel_verifies_of_one_code_open_one_session,
    five_wrong_codes_void_the_mfa_token,
    an_expired_or_unknown_mfa_token_is_refused,
    an_admin_reset_is_the_way_back,
    right_passwords_keep_few_second_steps,
);
on_both_backends_with!(sealed; secrets_are_sealed_and_codes_hashed_at_rest);
on_both_backends_with!(three_failures; wrong_codes_lock_the_account_like_wrong_passwords);
on_both_backends_with!(three_failures; the_right_password_alone_resets_nothing);
on_both_backends_with!(prune_every_second; expired_second_steps_are_pruned);

fn prune_every_second() -> Vec<(&'static str, &'static str)> {
    vec![("SESSION_PRUNE_INTERVAL_SECS", "1")]
}

fn sealed() -> Vec<(&'static str, &'static str)> {
    vec![(
        "MFA_ENCRYPTION_KEY",
        "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
    )]
}

fn three_failures() -> Vec<(&'static str, &'static str)> {
    vec![("LOGIN_MAX_FAILURES", "3")]
}

/// The code an authenticator app shows for `secret`, `steps` time steps from now (pyotp).
pub(crate) fn code(secret: &str, steps: i64) -> String {
    static PYTHON: OnceLock<std::path::PathBuf> = OnceLock::new();
    let python = PYTHON
        .get_or_init(|| python_with("OTP_TEST_PYTHON", "pyotp-venv", "pyotp", "pyotp==2.9.0"));
    let out = Command::new(python)
        .args([
            "-c",
            "import pyotp, sys, time; \
             print(pyotp.TOTP(sys.argv[1]).at(time.time() + 30 * int(sys.argv[2])))",
            secret,
            &steps.to_string(),
        ])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{out:?}");
    let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(code.len(), 6, "{code}");
    code
}

/// A signed-up account's access token.
async fn signed_up(app: &TestApp, email: &str) -> String {
    assert_eq!(
        app.register(email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    token_of(&app.tokens(email).await)
}

/// The `recovery_codes` of an answer.
fn recovery_codes(body: Value) -> Vec<String> {
    body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

fn token_of(tokens: &Value) -> String {
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, json: Value) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).json(&json);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Enrols and confirms TOTP over REST: `(secret, the confirmation's code, recovery codes)`.
pub(crate) async fn enrolled(app: &TestApp, token: &str) -> (String, String, Vec<String>) {
    let started = post(
        app,
        "/api/users/me/mfa/totp",
        Some(token),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(started.status(), StatusCode::OK);
    let secret = body(started).await["secret"].as_str().unwrap().to_owned();
    let confirmation = code(&secret, 0);
    let confirmed = post(
        app,
        "/api/users/me/mfa/totp/confirm",
        Some(token),
        json!({"code": confirmation}),
    )
    .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let codes = recovery_codes(body(confirmed).await);
    (secret, confirmation, codes)
}

/// A login of an account with TOTP on: its `mfa_token` (asserting the 403's whole body).
async fn mfa_token(app: &TestApp, email: &str) -> String {
    let login = app.login(email, PASSWORD).await;
    assert_eq!(login.status(), StatusCode::FORBIDDEN);
    let body = body(login).await;
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["detail", "mfa_token", "mfa_methods", "mfa_expires_in"]
    );
    assert_eq!(body["detail"], "Two-factor authentication required");
    assert_eq!(body["mfa_methods"], json!(["totp", "recovery_code"]));
    assert_eq!(body["mfa_expires_in"], 300);
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, mfa_token: &str, code: &str) -> reqwest::Response {
    post(
        app,
        "/api/auth/mfa/verify",
        None,
        json!({"mfa_token": mfa_token, "code": code}),
    )
    .await
}

async fn live_sessions(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL")
        .await
}

async fn totp_over_rest_from_enrolment_to_removal(app: TestApp) {
    let email = "two@example.com";
    let token = signed_up(&app, email).await;
    let other_device = token_of(&app.tokens(email).await);
    let status = body(app.get_auth("/api/users/me/mfa", &token).await).await;
    assert_eq!(
        status,
        json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0})
    );
    // Nothing pending yet; a wrong password starts nothing.
    expect_error(
        post(
            &app,
            "/api/users/me/mfa/totp/confirm",
            Some(&token),
            json!({"code": "123456"}),
        )
        .await,
        StatusCode::CONFLICT,
        "No enrollment in progress",
    )
    .await;
    let wrong = expect_error(
        post(
            &app,
            "/api/users/me/mfa/totp",
            Some(&token),
            json!({"password": "WrongPass123"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "Password is incorrect.",
    )
    .await;
    assert_eq!(wrong["errors"][0]["field"], "password");

    // A second start replaces the first secret.
    let first = body(
        post(
            &app,
            "/api/users/me/mfa/totp",
            Some(&token),
            json!({"password": PASSWORD}),
        )
        .await,
    )
    .await;
    let started = body(
        post(
            &app,
            "/api/users/me/mfa/totp",
            Some(&token),
            json!({"password": PASSWORD}),
        )
        .await,
    )
    .await;
    let secret = started["secret"].as_str().unwrap().to_owned();
    assert_ne!(first["secret"], started["secret"]);
    assert_eq!(secret.len(), 32, "160 bits of base32");
    assert_eq!(
        started["otpauth_uri"],
        format!(
            "otpauth://totp/nta-user-svc:two%40example.com?secret={secret}\
             &issuer=nta-user-svc&algorithm=SHA1&digits=6&period=30"
        )
    );
    expect_error(
        post(
            &app,
            "/api/users/me/mfa/totp/confirm",
            Some(&token),
            json!({"code": code(first["secret"].as_str().unwrap(), 0)}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "Invalid code.",
    )
    .await;
    assert_eq!(
        body(app.get_auth("/api/users/me/mfa", &token).await).await["totp"],
        false
    );
    let confirmation = code(&secret, 0);
    let confirmed = post(
        &app,
        "/api/users/me/mfa/totp/confirm",
        Some(&token),
        json!({"code": confirmation}),
    )
    .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let codes: Vec<String> = recovery_codes(body(confirmed).await);
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() >= 10));
    // Turning it on ended the other device's session, not this one.
    assert_eq!(
        app.account(&other_device).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        body(app.get_auth("/api/users/me/mfa", &token).await).await,
        json!({"totp": true, "recovery_codes_left": 10, "passkeys": 0})
    );
    expect_error(
        post(
            &app,
            "/api/users/me/mfa/totp",
            Some(&token),
            json!({"password": PASSWORD}),
        )
        .await,
        StatusCode::CONFLICT,
        "Two-factor authentication is already enabled",
    )
    .await;

    // The right password opens nothing yet; /api/auth/token says the same.
    let sessions = live_sessions(&app).await;
    let challenge = mfa_token(&app, email).await;
    let form = app
        .client
        .post(app.url("/api/auth/token"))
        .form(&[("username", email), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::FORBIDDEN);
    assert!(body(form).await["mfa_token"].is_string());
    assert_eq!(live_sessions(&app).await, sessions);
    // The confirmation's code is spent; a code from three steps ago is too old.
    for refused in [confirmation.clone(), code(&secret, -3)] {
        let wrong = expect_error(
            verify(&app, &challenge, &refused).await,
            StatusCode::BAD_REQUEST,
            "Invalid code.",
        )
        .await;
        assert_eq!(wrong["errors"][0]["field"], "code");
    }
    let fresh = code(&secret, 1);
    let signed_in = verify(&app, &challenge, &fresh).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let tokens = body(signed_in).await;
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(
        decode_claims(tokens["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp"])
    );
    assert_eq!(live_sessions(&app).await, sessions + 1);
    // Refresh keeps the session's amr.
    let refreshed = body(app.refresh(tokens["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(
        decode_claims(refreshed["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp"])
    );
    // The token is spent; the same code in a new login is a replay.
    expect_error(
        verify(&app, &challenge, &fresh).await,
        StatusCode::UNAUTHORIZED,
        "Invalid MFA token",
    )
    .await;
    let again = mfa_token(&app, email).await;
    expect_error(
        verify(&app, &again, &fresh).await,
        StatusCode::BAD_REQUEST,
        "Invalid code.",
    )
    .await;

    // A recovery code, typed any way a person would, works once.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let by_code = verify(&app, &again, &typed).await;
    assert_eq!(by_code.status(), StatusCode::OK);
    let tokens = body(by_code).await;
    assert_eq!(
        decode_claims(tokens["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "rc"])
    );
    let third = mfa_token(&app, email).await;
    expect_error(
        verify(&app, &third, &codes[0]).await,
        StatusCode::BAD_REQUEST,
        "Invalid code.",
    )
    .await;
    assert_eq!(
        body(app.get_auth("/api/users/me/mfa", &token).await).await["recovery_codes_left"],
        9
    );

    // New codes void the old ones.
    expect_error(
        post(
            &app,
            "/api/users/me/mfa/recovery-codes",
            Some(&token),
            json!({"password": "nope-nope"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "Password is incorrect.",
    )
    .await;
    let renewed = post(
        &app,
        "/api/users/me/mfa/recovery-codes",
        Some(&token),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(renewed.status(), StatusCode::OK);
    let renewed: Vec<String> = recovery_codes(body(renewed).await);
    assert_eq!(renewed.len(), 10);
    expect_error(
        verify(&app, &third, &codes[1]).await,
        StatusCode::BAD_REQUEST,
        "Invalid code.",
    )
    .await;

    // Off with the password and a code; a wrong code changes nothing.
    let off = |code: String| {
        app.client
            .delete(app.url("/api/users/me/mfa/totp"))
            .bearer_auth(&token)
            .json(&json!({"password": PASSWORD, "code": code}))
            .send()
    };
    let wrong = expect_error(
        off("000000".into()).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "Invalid code.",
    )
    .await;
    assert_eq!(wrong["errors"][0]["field"], "code");
    assert_eq!(
        off(renewed[3].clone()).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        body(app.get_auth("/api/users/me/mfa", &token).await).await,
        json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0})
    );
    // The owner heard of both changes (after the verification message).
    let mails = app.mail_to(email, 3).await;
    assert_eq!(mails.len(), 3);
    assert!(
        mails[1].contains("Subject: Two-factor authentication was turned on"),
        "{}",
        mails[1]
    );
    assert!(
        mails[2].contains("Subject: Two-factor authentication was turned off"),
        "{}",
        mails[2]
    );
    assert!(!mails[1].contains(&secret));
    let plain = app.tokens(email).await;
    assert_eq!(
        decode_claims(plain["access_token"].as_str().unwrap())["amr"],
        json!(["pwd"])
    );
    expect_error(
        post(
            &app,
            "/api/users/me/mfa/recovery-codes",
            Some(&token),
            json!({"password": PASSWORD}),
        )
        .await,
        StatusCode::CONFLICT,
        "Two-factor authentication is not enabled",
    )
    .await;
    let actions: Vec<String> = body(
        app.get_auth("/api/users/me/security-events?limit=100", &token)
            .await,
    )
    .await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for action in [
        "mfa_enabled",
        "mfa_failed",
        "recovery_code_used",
        "recovery_codes_regenerated",
        "mfa_disabled",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

async fn totp_over_graphql_from_enrolment_to_removal(app: TestApp) {
    let email = "graph@example.com";
    let token = signed_up(&app, email).await;
    let started = app
        .graphql(
            Some(&token),
            "mutation($p: String!) { startTotpEnrollment(password: $p) { secret otpauthUri } }",
            json!({"p": PASSWORD}),
        )
        .await;
    let secret = started["data"]["startTotpEnrollment"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        started["data"]["startTotpEnrollment"]["otpauthUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/nta-user-svc:graph%40example.com?secret=")
    );
    let wrong = app
        .graphql(
            Some(&token),
            "mutation($c: String!) { confirmTotpEnrollment(code: $c) { codes } }",
            json!({"c": "12345x"}),
        )
        .await;
    assert_eq!(wrong["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let confirmed = app
        .graphql(
            Some(&token),
            "mutation($c: String!) { confirmTotpEnrollment(code: $c) { codes } }",
            json!({"c": code(&secret, 0)}),
        )
        .await;
    let codes = confirmed["data"]["confirmTotpEnrollment"]["codes"].clone();
    assert_eq!(codes.as_array().unwrap().len(), 10, "{confirmed}");
    let status = app
        .graphql(
            Some(&token),
            "{ myMfa { totp recoveryCodesLeft passkeys } me { mfaEnabled } }",
            json!({}),
        )
        .await;
    assert_eq!(
        status["data"],
        json!({"myMfa": {"totp": true, "recoveryCodesLeft": 10, "passkeys": 0}, "me": {"mfaEnabled": true}})
    );

    let login = app
        .graphql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            json!({"i": {"email": email, "password": PASSWORD}}),
        )
        .await;
    assert_eq!(login["data"], Value::Null);
    let error = &login["errors"][0];
    assert_eq!(error["message"], "Two-factor authentication required");
    assert_eq!(error["extensions"]["code"], "MFA_REQUIRED");
    assert_eq!(
        error["extensions"]["mfaMethods"],
        json!(["totp", "recovery_code"])
    );
    assert_eq!(error["extensions"]["mfaExpiresIn"], 300);
    let mfa_token = error["extensions"]["mfaToken"].as_str().unwrap();
    let verified = app
        .graphql(
            None,
            "mutation($i: VerifyMfaInput!) { verifyMfa(input: $i) { accessToken user { email mfaEnabled } } }",
            json!({"i": {"mfaToken": mfa_token, "code": code(&secret, 1)}}),
        )
        .await;
    assert_eq!(
        verified["data"]["verifyMfa"]["user"],
        json!({"email": email, "mfaEnabled": true}),
        "{verified}"
    );
    let access = verified["data"]["verifyMfa"]["accessToken"]
        .as_str()
        .unwrap();
    assert_eq!(decode_claims(access)["amr"], json!(["pwd", "otp"]));

    let regenerated = app
        .graphql(
            Some(access),
            "mutation($p: String!) { regenerateRecoveryCodes(password: $p) { codes } }",
            json!({"p": PASSWORD}),
        )
        .await;
    let new_codes = regenerated["data"]["regenerateRecoveryCodes"]["codes"].clone();
    assert_eq!(new_codes.as_array().unwrap().len(), 10);
    assert_ne!(new_codes, codes);
    let disabled = app
        .graphql(
            Some(access),
            "mutation($i: DisableTotpInput!) { disableTotp(input: $i) }",
            json!({"i": {"password": PASSWORD, "code": new_codes[0]}}),
        )
        .await;
    assert_eq!(disabled["data"]["disableTotp"], true, "{disabled}");
    let me = app
        .graphql(Some(access), "{ me { mfaEnabled } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["mfaEnabled"], false);
}

async fn twenty_parallel_verifies_of_one_code_open_one_session(app: TestApp) {
    let email = "race@example.com";
    let token = signed_up(&app, email).await;
    let (secret, _, _) = enrolled(&app, &token).await;
    // Four logins, five attempts each, all with the same (valid) code at once.
    let mut challenges = Vec::new();
    for _ in 0..4 {
        challenges.push(mfa_token(&app, email).await);
    }
    let sessions = live_sessions(&app).await;
    let code = code(&secret, 1);
    let attempts = (0..20).map(|i| {
        let challenge = challenges[i % 4].clone();
        let (app, code) = (&app, &code);
        async move { verify(app, &challenge, code).await.status() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let opened = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(opened, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
        .contains(s)),
        "{statuses:?}"
    );
    assert_eq!(live_sessions(&app).await, sessions + 1);
}

async fn five_wrong_codes_void_the_mfa_token(app: TestApp) {
    let email = "five@example.com";
    let token = signed_up(&app, email).await;
    let (secret, _, codes) = enrolled(&app, &token).await;
    let challenge = mfa_token(&app, email).await;
    for wrong in ["000000", "111111", "222222", "333333", "nope-nope-nope"] {
        expect_error(
            verify(&app, &challenge, wrong).await,
            StatusCode::BAD_REQUEST,
            "Invalid code.",
        )
        .await;
    }
    // Void now, even for right codes; a new login gets a new token.
    expect_error(
        verify(&app, &challenge, &code(&secret, 1)).await,
        StatusCode::UNAUTHORIZED,
        "Invalid MFA token",
    )
    .await;
    expect_error(
        verify(&app, &challenge, &codes[0]).await,
        StatusCode::UNAUTHORIZED,
        "Invalid MFA token",
    )
    .await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM recovery_codes WHERE used_at IS NOT NULL")
            .await,
        0
    );
    let again = mfa_token(&app, email).await;
    assert_eq!(
        verify(&app, &again, &codes[0]).await.status(),
        StatusCode::OK
    );
}

async fn an_expired_or_unknown_mfa_token_is_refused(app: TestApp) {
    let email = "late@example.com";
    let token = signed_up(&app, email).await;
    let (secret, _, _) = enrolled(&app, &token).await;
    let challenge = mfa_token(&app, email).await;
    app.execute("UPDATE mfa_challenges SET expires_at = created_at")
        .await;
    expect_error(
        verify(&app, &challenge, &code(&secret, 1)).await,
        StatusCode::UNAUTHORIZED,
        "Invalid MFA token",
    )
    .await;
    expect_error(
        verify(&app, "not-a-token", "123456").await,
        StatusCode::UNAUTHORIZED,
        "Invalid MFA token",
    )
    .await;
    let huge = "x".repeat(10_000);
    expect_error(
        verify(&app, &huge, "123456").await,
        StatusCode::UNAUTHORIZED,
        "Invalid MFA token",
    )
    .await;
    let missing = expect_error(
        post(
            &app,
            "/api/auth/mfa/verify",
            None,
            json!({"code": "123456"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "MFA token is required.",
    )
    .await;
    assert_eq!(missing["errors"][0]["field"], "mfa_token");
    let typed = post(
        &app,
        "/api/auth/mfa/verify",
        None,
        json!({"mfa_token": 5, "code": "1"}),
    )
    .await;
    assert_eq!(typed.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn expired_second_steps_are_pruned(app: TestApp) {
    let email = "prune@example.com";
    let token = signed_up(&app, email).await;
    enrolled(&app, &token).await;
    let kept = mfa_token(&app, email).await;
    mfa_token(&app, email).await;
    // The other one ran out a while ago; the live one stays.
    let kept_hash: String = sha2::Sha256::digest(kept.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    app.execute(&format!(
        "UPDATE mfa_challenges SET expires_at = created_at WHERE token_hash <> '{kept_hash}'"
    ))
    .await;
    let mut left = 2;
    for _ in 0..50 {
        left = app.count("SELECT COUNT(*) FROM mfa_challenges").await;
        if left == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 1);
    assert_eq!(
        verify(&app, &kept, "000000").await.status(),
        StatusCode::BAD_REQUEST
    );
}

async fn wrong_codes_lock_the_account_like_wrong_passwords(app: TestApp) {
    let email = "locked@example.com";
    let token = signed_up(&app, email).await;
    let (secret, _, _) = enrolled(&app, &token).await;
    let challenge = mfa_token(&app, email).await;
    for wrong in ["000000", "111111", "222222"] {
        expect_error(
            verify(&app, &challenge, wrong).await,
            StatusCode::BAD_REQUEST,
            "Invalid code.",
        )
        .await;
    }
    // Locked: the right code and the right password are both 429 now.
    let locked = verify(&app, &challenge, &code(&secret, 1)).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().contains_key("retry-after"));
    assert_eq!(
        app.login(email, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let failed = app
        .count("SELECT COUNT(*) FROM audit_events WHERE action = 'mfa_failed'")
        .await;
    assert_eq!(failed, 3);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'account_locked'")
            .await,
        1
    );
}

async fn the_right_password_alone_resets_nothing(app: TestApp) {
    let email = "partial@example.com";
    let token = signed_up(&app, email).await;
    enrolled(&app, &token).await;
    for _ in 0..2 {
        assert_eq!(
            app.login(email, "WrongPass123").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Right passwords, the second step never taken: neither a failure nor a reset.
    for _ in 0..4 {
        mfa_token(&app, email).await;
    }
    // A wrong password says nothing of the second factor.
    let wrong = expect_error(
        app.login(email, "WrongPass123").await,
        StatusCode::UNAUTHORIZED,
        "Incorrect email or password",
    )
    .await;
    assert!(wrong.get("mfa_token").is_none());
    assert_eq!(
        app.login(email, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn an_admin_reset_is_the_way_back(app: TestApp) {
    let (_, admin) = signed_in_admin(&app).await;
    let email = "lostphone@example.com";
    let token = signed_up(&app, email).await;
    enrolled(&app, &token).await;
    let me = body(app.account(&token).await).await;
    let id = me["id"].as_i64().unwrap();
    let item = body(
        app.get_auth(&format!("/api/admin/users/{id}"), &admin)
            .await,
    )
    .await;
    assert_eq!(item["mfa_enabled"], true);
    // Not for the user themself, nor for an unknown account.
    assert_eq!(
        post(
            &app,
            &format!("/api/admin/users/{id}/mfa/reset"),
            Some(&token),
            json!({})
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(
            &app,
            "/api/admin/users/999999/mfa/reset",
            Some(&admin),
            json!({})
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    let reset = post(
        &app,
        &format!("/api/admin/users/{id}/mfa/reset"),
        Some(&admin),
        json!({}),
    )
    .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.account(&token).await.status(), StatusCode::UNAUTHORIZED);
    let item = body(
        app.get_auth(&format!("/api/admin/users/{id}"), &admin)
            .await,
    )
    .await;
    assert_eq!(item["mfa_enabled"], false);
    let tokens = app.tokens(email).await;
    assert_eq!(
        decode_claims(tokens["access_token"].as_str().unwrap())["amr"],
        json!(["pwd"])
    );
    for table in ["user_totp", "recovery_codes"] {
        assert_eq!(
            app.count(&format!("SELECT COUNT(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    let graphql = app
        .graphql(
            Some(&admin),
            "mutation($id: Int!) { resetUserMfa(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(graphql["data"]["resetUserMfa"], true);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'mfa_reset'")
            .await,
        2
    );
}

async fn secrets_are_sealed_and_codes_hashed_at_rest(app: TestApp) {
    let email = "sealed@example.com";
    let token = signed_up(&app, email).await;
    let (secret, _, codes) = enrolled(&app, &token).await;
    let stored = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            "SELECT secret FROM user_totp",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "secret")
        .unwrap();
    assert!(stored.starts_with("v1:"), "{stored}");
    assert!(!stored.contains(&secret));
    for code in &codes {
        let plain = code.replace('-', "");
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM recovery_codes WHERE code_hash IN ('{code}', '{plain}')"
            ))
            .await,
            0
        );
    }
    // And the sealed secret still checks codes.
    let challenge = mfa_token(&app, email).await;
    assert_eq!(
        verify(&app, &challenge, &code(&secret, 1)).await.status(),
        StatusCode::OK
    );
}

/// The secret, the codes and the mfa_token appear in no log line (at debug) and no audit
/// entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_codes_never_reach_a_log_or_the_audit() {
    let server = ServerProcess::start(&[("RUST_LOG", "debug")]);
    let client = crate::helpers::http_client();
    let email = "quiet@example.com";
    let token = crate::process::token_on(&server, email).await;
    let call = |path: &str, json: Value, bearer: Option<&str>| {
        let mut request = client.post(server.url(path)).json(&json);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer.to_owned());
        }
        request.send()
    };
    let started = call(
        "/api/users/me/mfa/totp",
        json!({"password": PASSWORD}),
        Some(&token),
    )
    .await
    .unwrap();
    let secret = body(started).await["secret"].as_str().unwrap().to_owned();
    let confirmation = code(&secret, 0);
    let confirmed = call(
        "/api/users/me/mfa/totp/confirm",
        json!({"code": confirmation}),
        Some(&token),
    )
    .await
    .unwrap();
    let codes = body(confirmed).await["recovery_codes"].clone();
    let login = call(
        "/api/auth/login",
        json!({"email": email, "password": PASSWORD}),
        None,
    )
    .await
    .unwrap();
    let challenge = body(login).await["mfa_token"].as_str().unwrap().to_owned();
    let fresh = code(&secret, 1);
    let wrong = call(
        "/api/auth/mfa/verify",
        json!({"mfa_token": challenge, "code": "000000"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let ok = call(
        "/api/auth/mfa/verify",
        json!({"mfa_token": challenge, "code": fresh}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let access = body(ok).await["access_token"].as_str().unwrap().to_owned();
    let events = client
        .get(server.url("/api/users/me/security-events?limit=100"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    let events = body(events).await.to_string();
    let log = server.log().join("\n");
    assert!(
        log.contains("two-factor authentication enabled"),
        "the log was read"
    );
    let mut secrets = vec![secret.clone(), challenge.clone(), confirmation, fresh];
    secrets.extend(
        codes
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned()),
    );
    for secret in secrets {
        assert!(!log.contains(&secret), "{secret} in the log");
        assert!(!events.contains(&secret), "{secret} in the audit");
    }
}

async fn right_passwords_keep_few_second_steps(app: TestApp) {
    let email = "steps@example.com";
    let token = signed_up(&app, email).await;
    let (secret, _, _) = enrolled(&app, &token).await;
    let mut tokens = Vec::new();
    for _ in 0..15 {
        tokens.push(mfa_token(&app, email).await);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM mfa_challenges").await, 10);
    // The oldest are gone; the newest works.
    expect_error(
        verify(&app, &tokens[0], &code(&secret, 1)).await,
        StatusCode::UNAUTHORIZED,
        "Invalid MFA token",
    )
    .await;
    assert_eq!(
        verify(&app, &tokens[14], &code(&secret, 1)).await.status(),
        StatusCode::OK
    );
}
