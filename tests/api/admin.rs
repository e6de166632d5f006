//! Administration: the command-line bootstrap, the account list (cursors, search, filters),
//! disabling, the guard on every admin entry point, and the audit log.

use std::{collections::HashSet, io::Write, process::Stdio};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    helpers::{JWT_SECRET, PASSWORD, TestApp, body, expect_error, link_token},
    on_both_backends, on_both_backends_with,
};

on_both_backends!(
    the_command_line_creates_promotes_and_demotes_admins,
    pages_stay_whole_while_accounts_register,
    search_and_filters_find_the_right_accounts,
    disabling_ends_issued_tokens_at_once,
    admins_cannot_act_on_their_own_account,
    every_admin_entry_point_refuses_anonymous_and_non_admin_callers,
    admins_act_on_accounts_over_graphql,
    two_admins_disabling_each_other_at_once_leave_one_standing,
);
on_both_backends_with!(audit_settings; every_audit_action_is_written_once_without_secrets);
on_both_backends_with!(prune_every_second; old_audit_events_are_pruned);

const ADMIN_EMAIL: &str = "root@example.com";
const ADMIN_PASSWORD: &str = "Admin-Pass-123";

fn audit_settings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LOGIN_MAX_FAILURES", "2"),
        ("REFRESH_REUSE_GRACE_SECS", "0"),
    ]
}

fn prune_every_second() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SESSION_PRUNE_INTERVAL_SECS", "1"),
        ("AUDIT_RETENTION_DAYS", "1"),
    ]
}

/// Runs the binary's command line against the app's database, with `stdin` as its input.
fn cli(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nta-user-svc"))
        .args(args)
        .env_clear()
        .env("DATABASE_URL", &app.database_url)
        .env("JWT_SECRET", JWT_SECRET)
        .env("BCRYPT_COST", "4")
        .env("MAIL_DIR", app.mail_dir())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Creates the admin from the command line and logs in as them: `(id, token)`.
pub async fn signed_in_admin(app: &TestApp) -> (i64, String) {
    let out = cli(
        app,
        &["create-admin", "--email", ADMIN_EMAIL],
        &format!("{ADMIN_PASSWORD}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let tokens = app.tokens_with(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let me = body(app.account(&token).await).await;
    (me["id"].as_i64().unwrap(), token)
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    json: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(json) = json {
        request = request.json(&json);
    }
    request.send().await.unwrap()
}

/// Every page of `path` (a list answering `{items, next_cursor, total}`), calling `between`
/// after each page; the items in order.
async fn all_pages<F: AsyncFnMut()>(
    app: &TestApp,
    token: &str,
    path: &str,
    mut between: F,
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let separator = if path.contains('?') { '&' } else { '?' };
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{separator}cursor={c}"),
            None => path.to_owned(),
        };
        let response = app.get_auth(&url, token).await;
        assert_eq!(response.status(), StatusCode::OK);
        let page = body(response).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
        between().await;
    }
}

async fn the_command_line_creates_promotes_and_demotes_admins(app: TestApp) {
    let (admin_id, admin_token) = signed_in_admin(&app).await;
    let row = app
        .count(&format!(
            "SELECT COUNT(*) FROM users WHERE id = {admin_id} AND role = 'admin' AND email_verified"
        ))
        .await;
    assert_eq!(row, 1, "a verified admin");
    let list = app.get_auth("/api/admin/users", &admin_token).await;
    assert_eq!(list.status(), StatusCode::OK);

    // An existing account is promoted; no password is asked for, none is changed.
    let (user_id, user_token) = app.signed_up("later@example.com").await;
    let denied = app.get_auth("/api/admin/users", &user_token).await;
    expect_error(denied, StatusCode::FORBIDDEN, "Forbidden").await;
    let out = cli(&app, &["create-admin", "--email", "Later@Example.com"], "");
    assert!(out.status.success(), "{out:?}");
    let allowed = app.get_auth("/api/admin/users", &user_token).await;
    assert_eq!(allowed.status(), StatusCode::OK, "the role counts at once");
    app.tokens("later@example.com").await;

    let out = cli(
        &app,
        &["set-role", "--email", "later@example.com", "--role", "user"],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    let denied = app.get_auth("/api/admin/users", &user_token).await;
    expect_error(denied, StatusCode::FORBIDDEN, "Forbidden").await;

    // The password is never an argument; a weak one is refused with the reason; an unknown
    // email for set-role fails.
    let out = cli(
        &app,
        &[
            "create-admin",
            "--email",
            "x@example.com",
            "--password",
            "p",
        ],
        "",
    );
    assert!(!out.status.success());
    let out = cli(
        &app,
        &["create-admin", "--email", "weak@example.com"],
        "short\n",
    );
    assert!(!out.status.success());
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("at least 8 characters"), "{printed}");
    let out = cli(
        &app,
        &[
            "set-role",
            "--email",
            "nobody@example.com",
            "--role",
            "admin",
        ],
        "",
    );
    assert!(!out.status.success());

    // Nothing the command line printed holds the password.
    let out = cli(
        &app,
        &["create-admin", "--email", "second@example.com"],
        "Second-Admin-9\n",
    );
    assert!(out.status.success());
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains("Second-Admin-9"));
    }
    app.tokens_with("second@example.com", "Second-Admin-9")
        .await;
    let row = app
        .count(&format!(
            "SELECT COUNT(*) FROM users WHERE id = {user_id} AND role = 'user'"
        ))
        .await;
    assert_eq!(row, 1);
}

async fn pages_stay_whole_while_accounts_register(app: TestApp) {
    let (admin_id, token) = signed_in_admin(&app).await;
    let mut existing: HashSet<i64> = HashSet::from([admin_id]);
    for i in 0..249 {
        let registered = app
            .register(&format!("page{i:03}@example.com"), PASSWORD)
            .await;
        assert_eq!(registered.status(), StatusCode::CREATED);
        existing.insert(body(registered).await["id"].as_i64().unwrap());
    }
    assert_eq!(existing.len(), 250);

    let mut added = 0;
    let items = all_pages(&app, &token, "/api/admin/users?limit=37", async || {
        for _ in 0..3 {
            let email = format!("new{added}@example.com");
            added += 1;
            assert_eq!(
                app.register(&email, PASSWORD).await.status(),
                StatusCode::CREATED
            );
        }
    })
    .await;
    let ids: Vec<i64> = items.iter().map(|u| u["id"].as_i64().unwrap()).collect();
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no account twice");
    assert!(existing.is_subset(&unique), "every account of the start");
    assert_eq!(
        ids.len(),
        250,
        "the accounts added later come before the first cursor"
    );
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    let keys: Vec<&str> = items[0]
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
            "mfa_enabled",
            "created_at",
            "updated_at",
            "last_login_at"
        ]
    );

    // The same walk over GraphQL, with the total on every page.
    let query = "query($after: String) { users(first: 100, after: $after) { totalCount \
                 pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }";
    let mut after = Value::Null;
    let mut seen = Vec::new();
    loop {
        let page = app
            .graphql(Some(&token), query, json!({ "after": after }))
            .await;
        let users = &page["data"]["users"];
        assert_eq!(users["totalCount"], 250 + added, "{page}");
        for edge in users["edges"].as_array().unwrap() {
            seen.push(edge["node"]["id"].as_i64().unwrap());
        }
        if users["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = users["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len(), 250 + added);

    // Bounds and bad cursors are 400s naming the parameter; a non-integer limit a 422.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=not-a-cursor", "cursor"),
    ] {
        let response = app
            .get_auth(&format!("/api/admin/users?{query}"), &token)
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body(response).await["errors"][0]["field"], field);
    }
    let response = app.get_auth("/api/admin/users?limit=ten", &token).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = app.get_auth("/api/admin/audit?limit=5", &token).await;
    let cursor = body(response).await["next_cursor"].clone();
    let wrong_list = app
        .get_auth(
            &format!("/api/admin/users?cursor={}", cursor.as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(
        wrong_list.status(),
        StatusCode::BAD_REQUEST,
        "an audit cursor is no account cursor"
    );
}

async fn search_and_filters_find_the_right_accounts(app: TestApp) {
    let (_, token) = signed_in_admin(&app).await;
    for (email, name) in [
        ("alice.smith@example.com", "Alice Smith"),
        ("bob@example.org", "Robert SMITHSON"),
        ("carol@example.net", "Carol"),
        ("percent@example.com", "100% Dave"),
    ] {
        let registered = app
            .post_json(
                "/api/users/register",
                &json!({"email": email, "password": PASSWORD, "name": name}),
            )
            .await;
        assert_eq!(registered.status(), StatusCode::CREATED);
    }
    let emails = async |query: &str| -> (Vec<String>, i64) {
        let response = app
            .get_auth(&format!("/api/admin/users?{query}"), &token)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        let page = body(response).await;
        let mut emails: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect();
        emails.sort();
        (emails, page["total"].as_i64().unwrap())
    };
    // By name, any case; by email, any case; the total counts the matches only.
    let (found, total) = emails("q=smith").await;
    assert_eq!(found, ["alice.smith@example.com", "bob@example.org"]);
    assert_eq!(total, 2);
    assert_eq!(emails("q=EXAMPLE.ORG").await.0, ["bob@example.org"]);
    assert_eq!(emails("q=%20CaRoL%20").await.0, ["carol@example.net"]);
    // Wildcards are text.
    assert_eq!(emails("q=%25").await.0, ["percent@example.com"]);
    assert_eq!(emails("q=_").await.0, Vec::<String>::new());
    assert_eq!(emails("q=nobody").await, (vec![], 0));

    // Status and role.
    let bob = app
        .count("SELECT CAST(id AS BIGINT) FROM users WHERE email = 'bob@example.org'")
        .await;
    let disabled = send(
        &app,
        Method::POST,
        &format!("/api/admin/users/{bob}/disable"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(
        emails("status=disabled").await,
        (vec!["bob@example.org".into()], 1)
    );
    assert_eq!(emails("status=active").await.1, 4);
    assert_eq!(
        emails("role=admin").await,
        (vec![ADMIN_EMAIL.to_owned()], 1)
    );
    assert_eq!(emails("role=user&q=smith&status=active").await.1, 1);
    let bad = app.get_auth("/api/admin/users?status=gone", &token).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad = app.get_auth("/api/admin/users?role=root", &token).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // GraphQL: the same search, with enum filters.
    let page = app
        .graphql(
            Some(&token),
            "{ users(search: \"SMITH\", status: ACTIVE, role: USER) { totalCount edges { node { email name role disabled } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        page["data"]["users"],
        json!({"totalCount": 1, "edges": [{"node": {"email": "alice.smith@example.com", "name": "Alice Smith", "role": "USER", "disabled": false}}]}),
        "{page}"
    );
}

async fn disabling_ends_issued_tokens_at_once(app: TestApp) {
    let (_, admin_token) = signed_in_admin(&app).await;
    let (user_id, _) = app.signed_up("victim@example.com").await;
    let tokens = app.tokens("victim@example.com").await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(app.account(access).await.status(), StatusCode::OK);

    let disabled = send(
        &app,
        Method::POST,
        &format!("/api/admin/users/{user_id}/disable"),
        Some(&admin_token),
        None,
    )
    .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let user = body(disabled).await;
    assert_eq!(user["disabled"], true);
    assert_eq!(user["id"], user_id);

    // The token issued before is dead on the next request; refresh and login say why.
    expect_error(
        app.account(access).await,
        StatusCode::UNAUTHORIZED,
        "Not authenticated",
    )
    .await;
    let gql = app.graphql(Some(access), "{ me { id } }", json!({})).await;
    assert_eq!(gql["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    expect_error(
        app.refresh(refresh).await,
        StatusCode::FORBIDDEN,
        "Account disabled",
    )
    .await;
    expect_error(
        app.login("victim@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "Account disabled",
    )
    .await;
    // The wrong password still gets the usual answer: being disabled tells nothing.
    expect_error(
        app.login("victim@example.com", "wrong-password").await,
        StatusCode::UNAUTHORIZED,
        "Incorrect email or password",
    )
    .await;
    let live = app
        .count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE user_id = {user_id} AND revoked_at IS NULL"
        ))
        .await;
    assert_eq!(live, 0, "its sessions ended in the same change");
    let gql = app
        .graphql(
            Some(&admin_token),
            "query($id: Int!) { user(id: $id) { disabled sessions { id } } }",
            json!({ "id": user_id }),
        )
        .await;
    assert_eq!(
        gql["data"]["user"],
        json!({"disabled": true, "sessions": []})
    );

    // Enabled again, it logs in; the old tokens stay dead.
    let enabled = send(
        &app,
        Method::POST,
        &format!("/api/admin/users/{user_id}/enable"),
        Some(&admin_token),
        None,
    )
    .await;
    assert_eq!(body(enabled).await["disabled"], false);
    let again = app.tokens("victim@example.com").await;
    assert_eq!(
        app.account(again["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.account(access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Ending all sessions, then deleting the account with its photo folder.
    let ended = send(
        &app,
        Method::DELETE,
        &format!("/api/admin/users/{user_id}/sessions"),
        Some(&admin_token),
        None,
    )
    .await;
    assert_eq!(body(ended).await, json!({"sessions_ended": 1}));
    let folder = app.upload_dir().join(user_id.to_string());
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("old.png"), b"x").unwrap();
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/api/admin/users/{user_id}"),
        Some(&admin_token),
        None,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(!folder.exists(), "the photo files go too");
    let gone = app
        .count(&format!("SELECT COUNT(*) FROM users WHERE id = {user_id}"))
        .await;
    assert_eq!(gone, 0);
    expect_error(
        app.get_auth(&format!("/api/admin/users/{user_id}"), &admin_token)
            .await,
        StatusCode::NOT_FOUND,
        "User not found",
    )
    .await;
    expect_error(
        send(
            &app,
            Method::POST,
            &format!("/api/admin/users/{user_id}/disable"),
            Some(&admin_token),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "User not found",
    )
    .await;
    let registered = app.register("victim@example.com", PASSWORD).await;
    assert_eq!(
        registered.status(),
        StatusCode::CREATED,
        "the email is free"
    );

    // A session that outlived its account's disabling (a login racing it) does not work:
    // the token check itself refuses a disabled account.
    let racer = app.tokens("victim@example.com").await;
    let racer = racer["access_token"].as_str().unwrap();
    assert_eq!(app.account(racer).await.status(), StatusCode::OK);
    app.execute("UPDATE users SET disabled_at = updated_at WHERE email = 'victim@example.com'")
        .await;
    assert_eq!(app.account(racer).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.my_profile(racer).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn admins_cannot_act_on_their_own_account(app: TestApp) {
    let (admin_id, token) = signed_in_admin(&app).await;
    for (method, path, json) in [
        (
            Method::POST,
            format!("/api/admin/users/{admin_id}/disable"),
            None,
        ),
        (
            Method::POST,
            format!("/api/admin/users/{admin_id}/enable"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/admin/users/{admin_id}/role"),
            Some(json!({"role": "user"})),
        ),
        (
            Method::DELETE,
            format!("/api/admin/users/{admin_id}/sessions"),
            None,
        ),
        (Method::DELETE, format!("/api/admin/users/{admin_id}"), None),
    ] {
        let response = send(&app, method, &path, Some(&token), json).await;
        let body = expect_error(
            response,
            StatusCode::BAD_REQUEST,
            "Not allowed on your own account.",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "id", "{path}");
    }
    for mutation in [
        "disableUser(id: $id) { id }",
        "enableUser(id: $id) { id }",
        "setUserRole(id: $id, role: USER) { id }",
        "revokeUserSessions(id: $id)",
        "deleteUser(id: $id)",
    ] {
        let response = app
            .graphql(
                Some(&token),
                &format!("mutation($id: Int!) {{ {mutation} }}"),
                json!({ "id": admin_id }),
            )
            .await;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{mutation}"
        );
    }
    // Still an admin, still enabled, still signed in.
    let row = app
        .count(&format!(
            "SELECT COUNT(*) FROM users WHERE id = {admin_id} AND role = 'admin' AND disabled_at IS NULL"
        ))
        .await;
    assert_eq!(row, 1);
    assert_eq!(
        app.get_auth("/api/admin/users", &token).await.status(),
        StatusCode::OK
    );
}

async fn every_admin_entry_point_refuses_anonymous_and_non_admin_callers(app: TestApp) {
    let (admin_id, _) = signed_in_admin(&app).await;
    let (_, user_token) = app.signed_up("plain@example.com").await;
    let id = admin_id;
    let rest = [
        (Method::GET, "/api/admin/users".to_owned(), None),
        (Method::GET, format!("/api/admin/users/{id}"), None),
        (Method::POST, format!("/api/admin/users/{id}/disable"), None),
        (Method::POST, format!("/api/admin/users/{id}/enable"), None),
        (
            Method::PUT,
            format!("/api/admin/users/{id}/role"),
            Some(json!({"role": "user"})),
        ),
        (
            Method::DELETE,
            format!("/api/admin/users/{id}/sessions"),
            None,
        ),
        (Method::DELETE, format!("/api/admin/users/{id}"), None),
        (Method::GET, "/api/admin/audit".to_owned(), None),
    ];
    for (method, path, json) in rest {
        let anonymous = send(&app, method.clone(), &path, None, json.clone()).await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
        let forged = send(&app, method.clone(), &path, Some("not-a-jwt"), json.clone()).await;
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED, "{path}");
        let user = send(&app, method, &path, Some(&user_token), json).await;
        expect_error(user, StatusCode::FORBIDDEN, "Forbidden").await;
    }
    let graphql = [
        "{ users { totalCount } }".to_owned(),
        format!("{{ user(id: {id}) {{ id }} }}"),
        "{ auditEvents { totalCount } }".to_owned(),
        format!("mutation {{ disableUser(id: {id}) {{ id }} }}"),
        format!("mutation {{ enableUser(id: {id}) {{ id }} }}"),
        format!("mutation {{ setUserRole(id: {id}, role: USER) {{ id }} }}"),
        format!("mutation {{ revokeUserSessions(id: {id}) }}"),
        format!("mutation {{ deleteUser(id: {id}) }}"),
    ];
    for document in &graphql {
        let anonymous = app.graphql(None, document, json!({})).await;
        assert_eq!(
            anonymous["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{document}"
        );
        let user = app.graphql(Some(&user_token), document, json!({})).await;
        assert_eq!(
            user["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{document}"
        );
        assert_eq!(user["errors"][0]["message"], "Forbidden");
    }
    // Nothing changed: the admin is still an enabled admin.
    let row = app
        .count(&format!(
            "SELECT COUNT(*) FROM users WHERE id = {id} AND role = 'admin' AND disabled_at IS NULL"
        ))
        .await;
    assert_eq!(row, 1);
    // A user's own view needs only their token.
    let own = app
        .get_auth("/api/users/me/security-events", &user_token)
        .await;
    assert_eq!(own.status(), StatusCode::OK);
    let anonymous = send(
        &app,
        Method::GET,
        "/api/users/me/security-events",
        None,
        None,
    )
    .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn admins_act_on_accounts_over_graphql(app: TestApp) {
    let (_, token) = signed_in_admin(&app).await;
    let (user_id, user_token) = app.signed_up("member@example.com").await;
    let promoted = app
        .graphql(
            Some(&token),
            "mutation($id: Int!) { setUserRole(id: $id, role: ADMIN) { id role updatedAt } }",
            json!({ "id": user_id }),
        )
        .await;
    assert_eq!(
        promoted["data"]["setUserRole"]["role"], "ADMIN",
        "{promoted}"
    );
    // The new admin reads the list with the token they already had.
    let page = app
        .graphql(
            Some(&user_token),
            "{ users(first: 1) { edges { node { email } } } }",
            json!({}),
        )
        .await;
    assert!(page["errors"].is_null(), "{page}");
    let me = app
        .graphql(
            Some(&user_token),
            "{ me { role disabled lastLoginAt sessions { current } } }",
            json!({}),
        )
        .await;
    assert_eq!(me["data"]["me"]["role"], "ADMIN");
    assert_eq!(me["data"]["me"]["sessions"], json!([{"current": true}]));
    assert!(me["data"]["me"]["lastLoginAt"].is_string());

    let ended = app
        .graphql(
            Some(&token),
            "mutation($id: Int!) { revokeUserSessions(id: $id) }",
            json!({ "id": user_id }),
        )
        .await;
    assert_eq!(ended["data"]["revokeUserSessions"], 1);
    assert_eq!(
        app.account(&user_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let missing = app
        .graphql(Some(&token), "{ user(id: 999999) { id } }", json!({}))
        .await;
    assert_eq!(missing["data"]["user"], Value::Null);
    assert!(missing["errors"].is_null());
    let deleted = app
        .graphql(
            Some(&token),
            "mutation($id: Int!) { deleteUser(id: $id) }",
            json!({ "id": user_id }),
        )
        .await;
    assert_eq!(deleted["data"]["deleteUser"], true);
    let again = app
        .graphql(
            Some(&token),
            "mutation($id: Int!) { deleteUser(id: $id) }",
            json!({ "id": user_id }),
        )
        .await;
    assert_eq!(again["errors"][0]["extensions"]["code"], "NOT_FOUND");
}

/// Every action of the list, caused by a script whose acts are counted; then each is in the
/// log exactly as many times, with its actor and request id, and no secret anywhere in it.
async fn every_audit_action_is_written_once_without_secrets(app: TestApp) {
    let (admin_id, admin_token) = signed_in_admin(&app).await;
    let mut secrets: Vec<String> = vec![
        PASSWORD.into(),
        ADMIN_PASSWORD.into(),
        "Wrong-Pass-1".into(),
    ];

    // register, email_verified
    let registered = app.register("audited@example.com", PASSWORD).await;
    let user_id = body(registered).await["id"].as_i64().unwrap();
    let message = app.mail_to("audited@example.com", 1).await.remove(0);
    let verify_token = link_token(&message, "/account/verify-email");
    secrets.push(verify_token.clone());
    let verified = app
        .post_json("/api/auth/verify-email", &json!({ "token": verify_token }))
        .await;
    assert_eq!(verified.status(), StatusCode::NO_CONTENT);

    // login; a refresh reused after its (zero) grace: refresh_reuse
    let first = app.tokens("audited@example.com").await;
    let spent = first["refresh_token"].as_str().unwrap().to_owned();
    let renewed = body(app.refresh(&spent).await).await;
    secrets.extend([
        spent.clone(),
        first["access_token"].as_str().unwrap().into(),
        renewed["refresh_token"].as_str().unwrap().into(),
        renewed["access_token"].as_str().unwrap().into(),
    ]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.refresh(&spent).await.status(), StatusCode::UNAUTHORIZED);

    // login again; email_changed (with a request id of our own); password_changed
    let second = app.tokens("audited@example.com").await;
    let token = second["access_token"].as_str().unwrap().to_owned();
    secrets.push(token.clone());
    let changed = app
        .client
        .put(app.url("/api/users/profile"))
        .bearer_auth(&token)
        .header("x-request-id", "audit-email-change")
        .json(&json!({"email": "moved@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let new_password = "Changed-Pass-2";
    secrets.push(new_password.into());
    let password = app
        .put_auth(
            "/api/users/me/password",
            &token,
            &json!({"current_password": PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(password.status(), StatusCode::NO_CONTENT);

    // login a third time and end that session from the second: sessions_revoked
    let third = app.tokens_with("moved@example.com", new_password).await;
    secrets.push(third["access_token"].as_str().unwrap().into());
    let sessions = body(app.get_auth("/api/users/me/sessions", &token).await).await;
    let other = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = app
        .delete_auth(&format!("/api/users/me/sessions/{other}"), &token)
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);

    // The user's own view: only events about them, newest first.
    let own = body(
        app.get_auth("/api/users/me/security-events?limit=100", &token)
            .await,
    )
    .await;
    let own_items = own["items"].as_array().unwrap();
    assert!(
        own_items.iter().all(|e| e["subject_id"] == user_id),
        "{own}"
    );
    assert_eq!(own_items[0]["action"], "sessions_revoked");

    // logout
    assert_eq!(
        app.post_auth("/api/auth/logout", &token).await.status(),
        StatusCode::NO_CONTENT
    );

    // password_reset_requested, password_reset
    let asked = app
        .post_json(
            "/api/auth/forgot-password",
            &json!({"email": "moved@example.com"}),
        )
        .await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let messages = app.mail_to("moved@example.com", 2).await;
    let reset_token = link_token(messages.last().unwrap(), "/account/reset-password");
    secrets.push(reset_token.clone());
    let reset_password = "Reset-Pass-3";
    secrets.push(reset_password.into());
    let reset = app
        .post_json(
            "/api/auth/reset-password",
            &json!({"token": reset_token, "new_password": reset_password}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);

    // login_failed twice; the second locks the account (LOGIN_MAX_FAILURES=2)
    for _ in 0..2 {
        let failed = app.login("moved@example.com", "Wrong-Pass-1").await;
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    }
    // An unknown email is no account's event.
    app.login("nobody@example.com", "Wrong-Pass-1").await;

    // The admin's acts: user_disabled, user_enabled, role_changed, sessions_revoked,
    // user_deleted.
    let admin_request = |method: Method, path: String, json: Option<Value>| {
        let mut request = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(&admin_token)
            .header("x-request-id", "audit-admin-act");
        if let Some(json) = json {
            request = request.json(&json);
        }
        request.send()
    };
    for (method, path, json) in [
        (
            Method::POST,
            format!("/api/admin/users/{user_id}/disable"),
            None,
        ),
        (
            Method::POST,
            format!("/api/admin/users/{user_id}/enable"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/admin/users/{user_id}/role"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::DELETE,
            format!("/api/admin/users/{user_id}/sessions"),
            None,
        ),
        (Method::DELETE, format!("/api/admin/users/{user_id}"), None),
    ] {
        let response = admin_request(method, path.clone(), json).await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }

    // account_deleted: another account deletes itself.
    let (other_id, other_token) = app.signed_up("leaving@example.com").await;
    let left = app
        .client
        .delete(app.url("/api/users/me"))
        .bearer_auth(&other_token)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), StatusCode::NO_CONTENT);

    let events = all_pages(&app, &admin_token, "/api/admin/audit?limit=7", async || {}).await;
    let count = |action: &str, subject: i64| {
        events
            .iter()
            .filter(|e| e["action"] == action && e["subject_id"] == subject)
            .count()
    };
    let expected = [
        ("register", 1),
        ("email_verified", 1),
        ("login", 3),
        ("refresh_reuse", 1),
        ("email_changed", 1),
        ("password_changed", 1),
        ("sessions_revoked", 2),
        ("logout", 1),
        ("password_reset_requested", 1),
        ("password_reset", 1),
        ("login_failed", 2),
        ("account_locked", 1),
        ("user_disabled", 1),
        ("user_enabled", 1),
        ("role_changed", 1),
        ("user_deleted", 1),
        ("account_deleted", 0),
    ];
    for (action, times) in expected {
        assert_eq!(count(action, user_id), times, "{action}: {events:#?}");
    }
    assert_eq!(count("account_deleted", other_id), 1);
    assert_eq!(count("register", other_id), 1);
    let subjects: HashSet<i64> = events
        .iter()
        .filter_map(|e| e["subject_id"].as_i64())
        .collect();
    assert_eq!(
        subjects,
        HashSet::from([admin_id, user_id, other_id]),
        "no event for an unknown email"
    );

    // Who, from where, which request.
    let find = |action: &str| {
        events
            .iter()
            .find(|e| e["action"] == action && e["subject_id"] == user_id)
            .unwrap()
    };
    let disabled = find("user_disabled");
    assert_eq!(disabled["actor_id"], admin_id);
    assert_eq!(disabled["request_id"], "audit-admin-act");
    assert_eq!(disabled["ip"], "127.0.0.1");
    let role = find("role_changed");
    assert_eq!(role["details"], json!({"from": "user", "to": "admin"}));
    let email = find("email_changed");
    assert_eq!(email["actor_id"], user_id);
    assert_eq!(email["request_id"], "audit-email-change");
    assert_eq!(find("login_failed")["actor_id"], Value::Null);

    // Filters: by account and by action.
    let mine = body(
        app.get_auth(
            &format!("/api/admin/audit?user_id={user_id}&action=login&limit=100"),
            &admin_token,
        )
        .await,
    )
    .await;
    assert_eq!(mine["total"], 3);
    let unknown = app
        .get_auth("/api/admin/audit?action=teleported", &admin_token)
        .await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let gql = app
        .graphql(
            Some(&admin_token),
            "query($id: Int) { auditEvents(first: 100, userId: $id, action: ROLE_CHANGED) { totalCount edges { node { action actorId subjectId details } } } }",
            json!({ "id": user_id }),
        )
        .await;
    assert_eq!(gql["data"]["auditEvents"]["totalCount"], 1, "{gql}");
    assert_eq!(
        gql["data"]["auditEvents"]["edges"][0]["node"]["action"],
        "ROLE_CHANGED"
    );

    // No secret in any answer, nor in any row.
    let text = serde_json::to_string(&events).unwrap();
    let backend_rows = app
        .count("SELECT COUNT(*) FROM audit_events WHERE details LIKE '%$2%'")
        .await;
    assert_eq!(backend_rows, 0, "no bcrypt hash");
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret in the log: {secret}"
        );
        let rows = app
            .count(&format!(
                "SELECT COUNT(*) FROM audit_events WHERE details LIKE '%{secret}%' OR request_id LIKE '%{secret}%'"
            ))
            .await;
        assert_eq!(rows, 0);
    }
}

async fn old_audit_events_are_pruned(app: TestApp) {
    let (admin_id, _) = signed_in_admin(&app).await;
    let old = (chrono::Utc::now() - chrono::TimeDelta::days(2)).to_rfc3339();
    app.execute(&format!(
        "INSERT INTO audit_events (created_at, action, subject_id) VALUES ('{old}', 'login', {admin_id})"
    ))
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app
        .count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE created_at < '{}'",
            (chrono::Utc::now() - chrono::TimeDelta::days(1)).to_rfc3339()
        ))
        .await
        > 0
    {
        assert!(std::time::Instant::now() < deadline, "not pruned");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Recent events stay.
    assert!(app.count("SELECT COUNT(*) FROM audit_events").await >= 2);
}

async fn two_admins_disabling_each_other_at_once_leave_one_standing(app: TestApp) {
    let (first_id, _) = signed_in_admin(&app).await;
    let out = cli(
        &app,
        &["create-admin", "--email", "deputy@example.com"],
        &format!("{ADMIN_PASSWORD}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let deputy = app.tokens_with("deputy@example.com", ADMIN_PASSWORD).await;
    let second_id = body(app.account(deputy["access_token"].as_str().unwrap()).await).await["id"]
        .as_i64()
        .unwrap();
    for round in 0..5 {
        let first = app.tokens_with(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let second = app.tokens_with("deputy@example.com", ADMIN_PASSWORD).await;
        let disable = |token: &Value, id: i64| {
            app.client
                .post(app.url(&format!("/api/admin/users/{id}/disable")))
                .bearer_auth(token["access_token"].as_str().unwrap())
                .send()
        };
        let (a, b) = tokio::join!(disable(&first, second_id), disable(&second, first_id));
        let statuses = [a.unwrap().status(), b.unwrap().status()];
        let succeeded = statuses.iter().filter(|s| s.is_success()).count();
        assert_eq!(succeeded, 1, "round {round}: {statuses:?}");
        let disabled = app
            .count("SELECT COUNT(*) FROM users WHERE disabled_at IS NOT NULL")
            .await;
        assert_eq!(disabled, 1, "round {round}: one admin stays able to act");
        app.execute("UPDATE users SET disabled_at = NULL").await;
    }
}
