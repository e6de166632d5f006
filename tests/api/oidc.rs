//! Sign-in with an external OpenID provider (SPEC §16) on both APIs and both databases,
//! against a real provider: npm `oidc-provider` (OpenID certified), run from
//! `tests/oidc/provider.mjs` on 127.0.0.1. Each flow is followed as a browser would: our
//! authorize redirect, the provider's login form (with its cookies), its redirect to our
//! callback, our redirect back to the front end.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::{Mutex, OnceLock},
};

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, body, decode_claims, expect_error, http_client_builder},
    mfa::{code, enrolled},
    on_both_backends_with,
};

on_both_backends_with!(
    oidc;
    a_new_account_signs_in_and_comes_back,
    linking_by_email_needs_both_sides_verified,
    bad_id_tokens_create_nothing,
    state_and_redirects_are_checked,
    a_totp_account_takes_a_second_step,
    linking_from_a_signed_in_session,
    a_disabled_account_is_sent_back,
);
on_both_backends_with!(oidc_down; a_provider_that_is_down_sends_the_browser_back);

/// Where the front end gets the browser back (never fetched: the test reads the `Location`).
const FRONT_END: &str = "http://127.0.0.1:8000/signed-in";

/// The provider's folder: its script, and its packages (installed from npm on first use).
fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// The test provider's issuer; started once for the whole run (its stdin is held here: when
/// the tests end, it ends).
fn issuer() -> &'static str {
    type Held = (Child, ChildStdin, BufReader<ChildStdout>);
    static PROVIDER: OnceLock<(String, Mutex<Held>)> = OnceLock::new();
    let (issuer, _) = PROVIDER.get_or_init(|| {
        let dir = provider_dir();
        if !dir.join("node_modules/oidc-provider").exists() {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .expect("npm runs (install Node.js)");
            assert!(status.success(), "npm ci in tests/oidc failed");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        // Held open for the provider's later writes (a closed pipe would end it).
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let issuer = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the provider did not start: {line:?}"))
            .trim()
            .to_owned();
        (issuer, Mutex::new((child, stdin, stdout)))
    });
    issuer
}

fn oidc() -> Vec<(&'static str, &'static str)> {
    vec![
        ("OIDC_PROVIDERS", "test"),
        ("OIDC_TEST_ISSUER", issuer()),
        ("OIDC_TEST_CLIENT_ID", "nta-test"),
        ("OIDC_TEST_CLIENT_SECRET", "nta-test-secret"),
        ("OIDC_TEST_DISPLAY_NAME", "Test IdP"),
    ]
}

fn oidc_down() -> Vec<(&'static str, &'static str)> {
    vec![
        ("OIDC_PROVIDERS", "test"),
        // Nothing listens there.
        ("OIDC_TEST_ISSUER", "http://127.0.0.1:9"),
        ("OIDC_TEST_CLIENT_ID", "nta-test"),
        ("OIDC_TEST_CLIENT_SECRET", "nta-test-secret"),
    ]
}

/// What the provider says about `sub` (and how it spoils the ID token, if it does).
async fn provider_account(sub: &str, email: &str, email_verified: bool, tamper: Option<&str>) {
    let mut account = json!({"sub": sub, "email": email, "email_verified": email_verified, "name": format!("Person {sub}")});
    if let Some(mode) = tamper {
        account["tamper"] = json!(mode);
    }
    let sent = http_client_builder()
        .build()
        .unwrap()
        .post(format!("{}/__test/accounts", issuer()))
        .json(&account)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::NO_CONTENT);
}

/// A browser: follows no redirect by itself, keeps the provider's cookies.
struct Browser {
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            client: http_client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = if cookie.is_empty() {
            request
        } else {
            request.header(header::COOKIE, cookie)
        };
        let response = request.send().await.unwrap();
        for set in response.headers().get_all(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        response
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let request = self.client.get(url);
        self.send(request).await
    }

    /// At the provider's authorization URL: signs in as `sub` (or declines), and returns
    /// the provider's redirect to our callback.
    async fn at_provider(&mut self, authorize_url: &str, sub: Option<&str>) -> String {
        let to_login = self.get(authorize_url).await;
        assert_eq!(to_login.status(), StatusCode::SEE_OTHER, "{authorize_url}");
        let login = absolute(location(&to_login));
        let form = self.get(&login).await;
        assert_eq!(form.status(), StatusCode::OK);
        let page = form.text().await.unwrap();
        assert!(page.contains("/login"), "{page}");
        let request = match sub {
            Some(sub) => self
                .client
                .post(format!("{login}/login"))
                .form(&[("login", sub)]),
            None => self.client.post(format!("{login}/abort")),
        };
        let resumed = self.send(request).await;
        assert_eq!(resumed.status(), StatusCode::SEE_OTHER);
        let resume = absolute(location(&resumed));
        let back = self.get(&resume).await;
        assert_eq!(back.status(), StatusCode::SEE_OTHER, "{resume}");
        location(&back).to_owned()
    }

    /// Our callback, reached on the test app (the provider sends the browser to `PUBLIC_URL`).
    async fn callback(&mut self, app: &TestApp, provider_redirect: &str) -> reqwest::Response {
        let path = provider_redirect
            .find("/api/auth/oidc/")
            .map(|i| &provider_redirect[i..])
            .unwrap_or_else(|| panic!("not our callback: {provider_redirect}"));
        assert!(
            provider_redirect.starts_with("http://127.0.0.1:8000/api/auth/oidc/test/callback?"),
            "{provider_redirect}"
        );
        self.get(&app.url(path)).await
    }

    /// The whole round trip of a sign-in as `sub`: the front end's URL it ends on.
    async fn sign_in(&mut self, app: &TestApp, sub: &str) -> String {
        let start = self.get(&authorize_path(app, FRONT_END)).await;
        assert_eq!(start.status(), StatusCode::FOUND);
        let provider_redirect = self.at_provider(location(&start), Some(sub)).await;
        let back = self.callback(app, &provider_redirect).await;
        assert_eq!(back.status(), StatusCode::FOUND);
        location(&back).to_owned()
    }
}

fn authorize_path(app: &TestApp, redirect_to: &str) -> String {
    let mut url = reqwest::Url::parse(&app.url("/api/auth/oidc/test/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("redirect_to", redirect_to);
    url.into()
}

fn location(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get(header::LOCATION)
        .unwrap_or_else(|| panic!("no Location in a {}", response.status()))
        .to_str()
        .unwrap()
}

fn absolute(location: &str) -> String {
    if location.starts_with('/') {
        format!("{}{location}", issuer())
    } else {
        location.to_owned()
    }
}

/// The one query parameter `key` of the front end's URL `url` (asserting it is there and
/// that the URL is under the front end's).
fn param(url: &str, key: &str) -> String {
    assert!(url.starts_with(FRONT_END), "{url}");
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {key} in {url}"))
}

async fn exchange(app: &TestApp, code: &str) -> reqwest::Response {
    app.post_json("/api/auth/oidc/exchange", &json!({"code": code}))
        .await
}

fn token_of(tokens: &Value) -> String {
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn a_new_account_signs_in_and_comes_back(app: TestApp) {
    let sub = "new-person";
    let email = "new.person@example.com";
    provider_account(sub, email, true, None).await;

    // The providers, on both APIs.
    let listed = app.get("/api/auth/oidc/providers").await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(
        body(listed).await,
        json!([{"name": "test", "display_name": "Test IdP"}])
    );
    let gql = app
        .graphql(None, "{ oidcProviders { name displayName } }", json!({}))
        .await;
    assert_eq!(
        gql["data"]["oidcProviders"],
        json!([{"name": "test", "displayName": "Test IdP"}])
    );

    // The authorize redirect: code flow, PKCE S256, state and nonce, our redirect URI.
    let mut browser = Browser::new();
    let start = browser.get(&authorize_path(&app, FRONT_END)).await;
    assert_eq!(start.status(), StatusCode::FOUND);
    let authorize = reqwest::Url::parse(location(&start)).unwrap();
    assert!(authorize.as_str().starts_with(issuer()), "{authorize}");
    let query: HashMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], "nta-test");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(
        query["redirect_uri"],
        "http://127.0.0.1:8000/api/auth/oidc/test/callback"
    );
    assert!(query["scope"].split(' ').any(|s| s == "email"));
    assert!(query["state"].len() >= 22 && query["nonce"].len() >= 22);

    // Through the provider's login and back: a code for the front end.
    let provider_redirect = browser.at_provider(authorize.as_str(), Some(sub)).await;
    let back = browser.callback(&app, &provider_redirect).await;
    assert_eq!(back.status(), StatusCode::FOUND);
    let code = param(location(&back), "code");

    let signed_in = exchange(&app, &code).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let tokens = body(signed_in).await;
    assert_eq!(tokens["token_type"], "bearer");
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(decode_claims(&token_of(&tokens))["amr"], json!(["oidc"]));
    // A code works once.
    let replayed = exchange(&app, &code).await;
    let replayed = expect_error(
        replayed,
        StatusCode::BAD_REQUEST,
        "Invalid or expired code.",
    )
    .await;
    assert_eq!(replayed["errors"][0]["field"], "code");
    // The provider's callback URL twice: the state is spent.
    let again = browser.callback(&app, &provider_redirect).await;
    expect_error(
        again,
        StatusCode::BAD_REQUEST,
        "Invalid or expired sign-in attempt",
    )
    .await;

    // A new account: no password, the address verified as the provider said, named.
    let token = token_of(&tokens);
    let me = body(app.account(&token).await).await;
    assert_eq!(me["email"], email);
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["name"], "Person new-person");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE password_hash = ''")
            .await,
        1
    );
    // Password login fails as any wrong password does.
    expect_error(
        app.login(email, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "Incorrect email or password",
    )
    .await;

    // Its identity, on both APIs.
    let identities = body(app.get_auth("/api/users/me/identities", &token).await).await;
    assert_eq!(identities.as_array().unwrap().len(), 1);
    assert_eq!(identities[0]["provider"], "test");
    assert_eq!(identities[0]["subject"], sub);
    assert_eq!(identities[0]["email"], email);
    assert!(identities[0]["linked_at"].is_string());
    let gql = app
        .graphql(
            Some(&token),
            "{ myIdentities { provider subject } }",
            json!({}),
        )
        .await;
    assert_eq!(
        gql["data"]["myIdentities"],
        json!([{"provider": "test", "subject": sub}])
    );

    // A returning person: the same account, found by the identity; over GraphQL this time.
    let returned = param(&Browser::new().sign_in(&app, sub).await, "code");
    let gql = app
        .graphql(
            None,
            "mutation($code: String!) { exchangeOidcCode(code: $code) { accessToken user { email } } }",
            json!({"code": returned}),
        )
        .await;
    assert_eq!(
        gql["data"]["exchangeOidcCode"]["user"]["email"], email,
        "{gql}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM user_identities").await, 1);

    // Its only way in cannot go.
    let refused = app
        .delete_auth("/api/users/me/identities/test", &token)
        .await;
    expect_error(
        refused,
        StatusCode::CONFLICT,
        "Cannot remove your last way to sign in",
    )
    .await;
    let gql = app
        .graphql(
            Some(&token),
            "mutation { unlinkIdentity(provider: \"test\") }",
            json!({}),
        )
        .await;
    assert_eq!(gql["errors"][0]["extensions"]["code"], "CONFLICT", "{gql}");
    assert_eq!(app.count("SELECT COUNT(*) FROM user_identities").await, 1);
    // The audit has the registration and the link.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'identity_linked'")
            .await,
        1
    );
    // Nothing secret reached the front end's URL but the one-time code.
    assert!(!location(&back).contains("state="));
}

async fn linking_by_email_needs_both_sides_verified(app: TestApp) {
    // The local address is not verified, the provider's is: not the same person for sure.
    let email = "ada@example.com";
    assert_eq!(
        app.register(email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    provider_account("ada-1", email, true, None).await;
    let back = Browser::new().sign_in(&app, "ada-1").await;
    assert_eq!(param(&back, "error"), "account_exists");

    // The local address is verified, the provider's claim is not: the takeover attempt.
    app.execute("UPDATE users SET email_verified = true").await;
    provider_account("ada-2", email, false, None).await;
    let back = Browser::new().sign_in(&app, "ada-2").await;
    assert_eq!(param(&back, "error"), "account_exists");
    assert_eq!(app.count("SELECT COUNT(*) FROM user_identities").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);

    // Both verified: the identity joins the account, which keeps its password.
    provider_account("ada-3", email, true, None).await;
    let code = param(&Browser::new().sign_in(&app, "ada-3").await, "code");
    let tokens = body(exchange(&app, &code).await).await;
    let me = body(app.account(&token_of(&tokens)).await).await;
    assert_eq!(me["email"], email);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.login(email, PASSWORD).await.status(), StatusCode::OK);
    // With a password, the identity may go.
    let token = token_of(&tokens);
    let unlinked = app
        .delete_auth("/api/users/me/identities/test", &token)
        .await;
    assert_eq!(unlinked.status(), StatusCode::NO_CONTENT);
    let gone = app
        .delete_auth("/api/users/me/identities/test", &token)
        .await;
    expect_error(gone, StatusCode::NOT_FOUND, "Identity not found").await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'identity_unlinked'")
            .await,
        1
    );
}

async fn bad_id_tokens_create_nothing(app: TestApp) {
    for mode in ["nonce", "aud", "iss", "signature", "none", "key"] {
        let sub = format!("tampered-{mode}");
        provider_account(&sub, &format!("{sub}@example.com"), true, Some(mode)).await;
        let back = Browser::new().sign_in(&app, &sub).await;
        assert_eq!(param(&back, "error"), "provider_error", "{mode}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM user_identities").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM account_tokens").await,
        0,
        "no exchange code"
    );
}

async fn state_and_redirects_are_checked(app: TestApp) {
    // Unknown provider; a redirect off the allow-list (default: PUBLIC_URL), or a look-alike.
    let unknown = app
        .get("/api/auth/oidc/nobody/authorize?redirect_to=http://127.0.0.1:8000/")
        .await;
    expect_error(unknown, StatusCode::NOT_FOUND, "Provider not found").await;
    let unknown = app.get("/api/auth/oidc/nobody/authorize").await;
    expect_error(unknown, StatusCode::NOT_FOUND, "Provider not found").await;
    for bad in [
        "https://evil.example/",
        "http://127.0.0.1:8000.evil.example/",
        "http://127.0.0.1:8001/",
        "//evil.example/",
        "",
    ] {
        let refused = app
            .client
            .get(authorize_path(&app, bad))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body(refused).await["errors"][0]["field"], "redirect_to");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM oidc_flows").await, 0);

    // A state never issued, or none: nowhere to go back to.
    let forged = app
        .get("/api/auth/oidc/test/callback?code=x&state=forged")
        .await;
    expect_error(
        forged,
        StatusCode::BAD_REQUEST,
        "Invalid or expired sign-in attempt",
    )
    .await;
    let none = app.get("/api/auth/oidc/test/callback?code=x").await;
    expect_error(
        none,
        StatusCode::BAD_REQUEST,
        "Invalid or expired sign-in attempt",
    )
    .await;

    // A state for another provider's callback does not count either.
    provider_account("state-person", "state@example.com", true, None).await;
    let mut browser = Browser::new();
    let start = browser.get(&authorize_path(&app, FRONT_END)).await;
    let provider_redirect = browser
        .at_provider(location(&start), Some("state-person"))
        .await;
    let tampered = provider_redirect.replace("state=", "state=x");
    let refused = browser.callback(&app, &tampered).await;
    expect_error(
        refused,
        StatusCode::BAD_REQUEST,
        "Invalid or expired sign-in attempt",
    )
    .await;
    // The real one still works once.
    let back = browser.callback(&app, &provider_redirect).await;
    assert!(param(location(&back), "code").len() >= 40);

    // The person declines at the provider.
    let mut browser = Browser::new();
    let start = browser.get(&authorize_path(&app, FRONT_END)).await;
    let declined = browser.at_provider(location(&start), None).await;
    let back = browser.callback(&app, &declined).await;
    assert_eq!(param(location(&back), "error"), "access_denied");

    // Bad exchange codes.
    for bad in ["", "nope", &"x".repeat(300)] {
        let refused = exchange(&app, bad).await;
        let refused =
            expect_error(refused, StatusCode::BAD_REQUEST, "Invalid or expired code.").await;
        assert_eq!(refused["errors"][0]["field"], "code");
    }
}

async fn a_totp_account_takes_a_second_step(app: TestApp) {
    let email = "two.step@example.com";
    assert_eq!(
        app.register(email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    app.execute("UPDATE users SET email_verified = true").await;
    let token = token_of(&app.tokens(email).await);
    let (secret, _, _) = enrolled(&app, &token).await;

    provider_account("two-step", email, true, None).await;
    let code_for_exchange = param(&Browser::new().sign_in(&app, "two-step").await, "code");
    let refused = exchange(&app, &code_for_exchange).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused = body(refused).await;
    assert_eq!(refused["detail"], "Two-factor authentication required");
    let mfa_token = refused["mfa_token"].as_str().unwrap();
    let verified = app
        .post_json(
            "/api/auth/mfa/verify",
            &json!({"mfa_token": mfa_token, "code": code(&secret, 1)}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
    let tokens = body(verified).await;
    assert_eq!(
        decode_claims(&token_of(&tokens))["amr"],
        json!(["oidc", "otp"])
    );
}

async fn linking_from_a_signed_in_session(app: TestApp) {
    let email = "linker@example.com";
    assert_eq!(
        app.register(email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let token = token_of(&app.tokens(email).await);
    // The provider knows the person by another address: linking does not care.
    provider_account("linker", "linker@elsewhere.example", false, None).await;

    let started = app
        .client
        .post(app.url("/api/users/me/identities/test"))
        .bearer_auth(&token)
        .json(&json!({"redirect_to": FRONT_END}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::OK);
    let authorize_url = body(started).await["authorize_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut browser = Browser::new();
    let provider_redirect = browser.at_provider(&authorize_url, Some("linker")).await;
    let back = browser.callback(&app, &provider_redirect).await;
    assert_eq!(param(location(&back), "linked"), "test");
    let identities = body(app.get_auth("/api/users/me/identities", &token).await).await;
    assert_eq!(identities[0]["subject"], "linker");
    assert_eq!(identities[0]["email"], "linker@elsewhere.example");
    // The owner hears of it.
    let notices = app.mail_to(email, 2).await;
    assert!(
        notices
            .iter()
            .any(|m| m.contains("A sign-in provider was linked to your account")),
        "{notices:?}"
    );
    // Signing in with it now reaches this account.
    let code = param(&Browser::new().sign_in(&app, "linker").await, "code");
    let tokens = body(exchange(&app, &code).await).await;
    assert_eq!(
        body(app.account(&token_of(&tokens)).await).await["email"],
        email
    );

    // Another account cannot link the same identity; over GraphQL this time.
    let other = "other@example.com";
    assert_eq!(
        app.register(other, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let other_token = token_of(&app.tokens(other).await);
    let gql = app
        .graphql(
            Some(&other_token),
            "mutation($to: String!) { linkIdentity(provider: \"test\", redirectTo: $to) }",
            json!({"to": FRONT_END}),
        )
        .await;
    let authorize_url = gql["data"]["linkIdentity"].as_str().unwrap().to_owned();
    let mut browser = Browser::new();
    let provider_redirect = browser.at_provider(&authorize_url, Some("linker")).await;
    let back = browser.callback(&app, &provider_redirect).await;
    assert_eq!(param(location(&back), "error"), "identity_in_use");
    assert_eq!(app.count("SELECT COUNT(*) FROM user_identities").await, 1);

    // Linking needs a token, a known provider and an allowed redirect.
    let anonymous = app
        .post_json(
            "/api/users/me/identities/test",
            &json!({"redirect_to": FRONT_END}),
        )
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let unknown = app
        .client
        .post(app.url("/api/users/me/identities/nobody"))
        .bearer_auth(&token)
        .json(&json!({"redirect_to": FRONT_END}))
        .send()
        .await
        .unwrap();
    expect_error(unknown, StatusCode::NOT_FOUND, "Provider not found").await;
}

async fn a_disabled_account_is_sent_back(app: TestApp) {
    provider_account("disabled-person", "disabled@example.com", true, None).await;
    let code = param(
        &Browser::new().sign_in(&app, "disabled-person").await,
        "code",
    );
    assert_eq!(exchange(&app, &code).await.status(), StatusCode::OK);
    app.execute("UPDATE users SET disabled_at = created_at")
        .await;
    let back = Browser::new().sign_in(&app, "disabled-person").await;
    assert_eq!(param(&back, "error"), "account_disabled");
}

async fn a_provider_that_is_down_sends_the_browser_back(app: TestApp) {
    let started = std::time::Instant::now();
    let response = Browser::new().get(&authorize_path(&app, FRONT_END)).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(param(location(&response), "error"), "provider_error");
    assert!(started.elapsed() < std::time::Duration::from_secs(11));
    assert_eq!(app.count("SELECT COUNT(*) FROM oidc_flows").await, 0);
}
