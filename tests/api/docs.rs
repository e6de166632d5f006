//! What clients discover: the OpenAPI document, Swagger UI and GraphiQL.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, PASSWORD, TestApp, body, spawn_app},
    on_both_backends,
};

on_both_backends!(documented_schemas_match_the_real_responses);

fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {schema}"))
        .keys()
        .cloned()
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

async fn openapi(app: &TestApp) -> Value {
    body(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_rest_path() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = openapi(&app).await;
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(&nta_user_svc::rest::openapi_json()).unwrap()
    );
    assert_eq!(doc["openapi"], "3.1.0");
    let expected = [
        ("post", "/api/auth/register"),
        ("post", "/api/users/register"),
        ("post", "/api/auth/login"),
        ("post", "/api/auth/token"),
        ("post", "/api/auth/refresh"),
        ("post", "/api/auth/logout"),
        ("post", "/api/auth/logout-all"),
        ("post", "/api/auth/verify-email"),
        ("post", "/api/users/me/verify-email"),
        ("get", "/api/users/profile"),
        ("put", "/api/users/profile"),
        ("post", "/api/profiles"),
        ("get", "/api/users/me/profile"),
        ("get", "/api/profiles/{user_id}"),
        ("put", "/api/profiles/me"),
        ("delete", "/api/profiles/me"),
        ("post", "/api/profiles/me/photo"),
        ("delete", "/api/profiles/me/photo"),
        ("put", "/api/users/me/password"),
        ("delete", "/api/users/me"),
        ("get", "/api/users/me/sessions"),
        ("delete", "/api/users/me/sessions/{id}"),
        ("get", "/api/users/me/security-events"),
        ("get", "/api/admin/users"),
        ("get", "/api/admin/users/{id}"),
        ("post", "/api/admin/users/{id}/disable"),
        ("post", "/api/admin/users/{id}/enable"),
        ("put", "/api/admin/users/{id}/role"),
        ("delete", "/api/admin/users/{id}/sessions"),
        ("delete", "/api/admin/users/{id}"),
        ("get", "/api/admin/audit"),
        ("get", "/uploads/{user_id}/{file}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
    ];
    for (method, path) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["tags"][0].is_string(), "{method} {path} has no tag");
        assert!(op["summary"].is_string(), "{method} {path} has no summary");
        let anonymous = [
            "/api/auth/register",
            "/api/users/register",
            "/api/auth/login",
            "/api/auth/token",
            "/api/auth/refresh",
            "/api/auth/verify-email",
        ];
        let needs_token = path.starts_with("/api/") && !anonymous.contains(&path);
        assert_eq!(op["security"].is_array(), needs_token, "{method} {path}");
        if needs_token {
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path} documents no 401"
            );
        }
        for status in ["405", "500", "503"] {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path}: no {status}"
            );
        }
        if op["requestBody"]["content"]["application/json"].is_object() {
            for status in ["413", "415"] {
                assert!(
                    op["responses"][status].is_object(),
                    "{method} {path}: no {status}"
                );
            }
        }
    }
    assert_eq!(doc["servers"][0]["url"], "/");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        schemes["oauth2"]["flows"]["password"]["tokenUrl"],
        "/api/auth/token"
    );
    // One body type per path: generators mishandle a required body with two.
    let login = &doc["paths"]["/api/auth/login"]["post"]["requestBody"]["content"];
    assert_eq!(login.as_object().unwrap().len(), 1);
    let token = &doc["paths"]["/api/auth/token"]["post"]["requestBody"]["content"];
    assert!(token["application/x-www-form-urlencoded"].is_object());
    for status in ["415", "422", "429"] {
        let login = &doc["paths"]["/api/auth/login"]["post"]["responses"];
        assert!(login[status].is_object(), "login documents no {status}");
    }
    // Keys that are always present (null or not) are required.
    let profile = &doc["components"]["schemas"]["ProfileOut"];
    assert_eq!(
        profile["required"].as_array().unwrap().len(),
        profile["properties"].as_object().unwrap().len()
    );
    let photo = &doc["paths"]["/uploads/{user_id}/{file}"]["get"]["responses"]["200"];
    assert_eq!(photo["content"]["image/png"]["schema"]["format"], "binary");
    assert!(photo["headers"]["ETag"].is_object());
    let errors = &doc["paths"]["/api/auth/register"]["post"]["responses"];
    for status in ["201", "400", "409", "415", "422"] {
        assert!(errors[status].is_object(), "register documents no {status}");
    }
    assert_eq!(
        errors["409"]["content"]["application/json"]["example"],
        json!({"detail": "Email already registered."})
    );
}

async fn documented_schemas_match_the_real_responses(app: TestApp) {
    let doc = openapi(&app).await;
    let created = body(app.register("doc@example.com", PASSWORD).await).await;
    assert_eq!(keys(&created), properties(&doc, "UserCreated"));
    let token = body(app.login("doc@example.com", PASSWORD).await).await;
    assert_eq!(keys(&token), properties(&doc, "Token"));
    let bearer = token["access_token"].as_str().unwrap();
    let renewed = body(app.refresh(token["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(keys(&renewed), properties(&doc, "Token"));
    let sessions = body(app.get_auth("/api/users/me/sessions", bearer).await).await;
    assert_eq!(keys(&sessions[0]), properties(&doc, "SessionOut"));
    let account = body(app.account(bearer).await).await;
    assert_eq!(keys(&account), properties(&doc, "UserOut"));
    let mine = body(app.my_profile(bearer).await).await;
    assert_eq!(keys(&mine), properties(&doc, "ProfileOut"));
    let id = created["id"].as_i64().unwrap();
    let public = body(app.get_auth(&format!("/api/profiles/{id}"), bearer).await).await;
    assert_eq!(keys(&public), properties(&doc, "ProfilePublic"));
    let (_, admin) = crate::admin::signed_in_admin(&app).await;
    let users = body(app.get_auth("/api/admin/users?limit=1", &admin).await).await;
    assert_eq!(keys(&users), properties(&doc, "AdminUserPage"));
    assert_eq!(keys(&users["items"][0]), properties(&doc, "AdminUserOut"));
    let events = body(app.get_auth("/api/admin/audit?limit=1", &admin).await).await;
    assert_eq!(keys(&events), properties(&doc, "AuditEventPage"));
    assert_eq!(keys(&events["items"][0]), properties(&doc, "AuditEventOut"));
    let ended = app
        .client
        .delete(app.url(&format!("/api/admin/users/{id}/sessions")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(keys(&body(ended).await), properties(&doc, "SessionsEnded"));
    let invalid = body(app.register("nope", PASSWORD).await).await;
    assert_eq!(keys(&invalid), properties(&doc, "ValidationErrorBody"));
    assert_eq!(
        keys(&invalid["errors"][0]),
        properties(&doc, "FieldErrorBody")
    );
    let conflict = body(app.register("doc@example.com", PASSWORD).await).await;
    assert_eq!(keys(&conflict), properties(&doc, "ErrorBody"));
    let wrong_type = body(
        app.post_json("/api/auth/register", &json!({"email": 1}))
            .await,
    )
    .await;
    assert_eq!(keys(&wrong_type), properties(&doc, "TypeErrorBody"));
    assert_eq!(
        keys(&wrong_type["detail"][0]),
        properties(&doc, "TypeErrorItem")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_is_served_from_the_binary() {
    let app = spawn_app(Backend::Sqlite).await;
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js"));
    assert!(
        !html.contains("https://"),
        "the page loads nothing from the internet"
    );
    let bundle = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    let init = init.text().await.unwrap();
    assert!(init.contains("\"url\": \"/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_loads_its_assets_from_the_binary() {
    let app = spawn_app(Backend::Sqlite).await;
    let page = app
        .client
        .get(app.url("/graphql"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("src=\"/graphiql/graphiql.min.js\""));
    assert!(!page.contains("unpkg.com"));
    for (name, content_type, bytes) in nta_user_svc::graphql::graphiql::ASSETS {
        let response = app
            .client
            .get(app.url(&format!("/graphiql/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(response.headers()["content-type"], content_type);
        assert_eq!(response.bytes().await.unwrap(), bytes);
    }
    for other in [
        "/graphiql/secret.txt",
        "/graphiql/..%2FCargo.toml",
        "/graphiql/LICENSES.txt",
    ] {
        let response = app.client.get(app.url(other)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{other}");
    }
}

/// The OAuth2 token endpoint that the document names takes the password form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_path_takes_the_oauth2_form() {
    let app = spawn_app(Backend::Sqlite).await;
    app.signed_up("oauth@example.com").await;
    let response = app
        .client
        .post(app.url("/api/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "oauth@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token = body(response).await;
    assert_eq!(token["token_type"], "bearer");
    assert!(token["access_token"].is_string());
}

/// A profile field lives in the entity, the GraphQL `Profile` and `ProfileInput`, and the
/// OpenAPI `ProfileOut`, `ProfilePublic` and `ProfileBody`: adding it to one and forgetting
/// another fails here.
#[test]
fn a_profile_field_is_everywhere_a_profile_is() {
    use sea_orm::{IdenStatic, Iterable};
    let set = |names: Vec<String>| names.into_iter().collect::<BTreeSet<String>>();
    let camel = |name: &str| {
        let mut parts = name.split('_');
        let first = parts.next().unwrap_or_default().to_owned();
        parts.fold(first, |mut out, part| {
            out.push_str(&part[..1].to_uppercase());
            out.push_str(&part[1..]);
            out
        })
    };
    let columns = set(nta_user_svc::entities::profile::Column::iter()
        .map(|c| c.as_str().to_owned())
        .collect());
    let doc: Value = serde_json::from_str(&nta_user_svc::rest::openapi_json()).unwrap();
    let properties = |schema: &str| {
        set(doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect())
    };
    let mut with_email = columns.clone();
    with_email.insert("email".into());
    assert_eq!(properties("ProfileOut"), with_email);
    assert_eq!(properties("ProfilePublic"), columns);

    let sdl = nta_user_svc::graphql::sdl();
    let fields_of = |kind_and_name: &str| {
        let start = sdl.find(&format!("{kind_and_name} {{")).unwrap();
        let block = &sdl[start..start + sdl[start..].find("\n}").unwrap()];
        // Field lines, outside the `"""` description blocks and argument lists.
        let (mut in_description, mut in_arguments) = (false, false);
        let mut fields = Vec::new();
        for line in block.lines().skip(1).map(str::trim) {
            if line.starts_with("\"\"\"") {
                let one_line = line.len() > 3 && line.ends_with("\"\"\"");
                in_description ^= !one_line;
            } else if in_description || line.is_empty() || line.starts_with('"') {
            } else if in_arguments {
                in_arguments = !line.starts_with(')');
            } else {
                fields.push(line.split([':', '(']).next().unwrap().to_owned());
                in_arguments = line.ends_with('(');
            }
        }
        set(fields)
    };
    let mut graphql = set(with_email.iter().map(|n| camel(n)).collect());
    // Computed from the columns: the owner's account, and the photo's (or a variant's) URL.
    graphql.extend(["user".into(), "photoUrl".into()]);
    assert_eq!(fields_of("type Profile"), graphql);
    // The editable fields: the same in GraphQL's input and REST's body.
    let editable = properties("ProfileBody");
    assert_eq!(
        fields_of("input ProfileInput"),
        set(editable.iter().map(|n| camel(n)).collect())
    );
    assert!(editable.is_subset(&columns));
}

/// How many places a profile field is declared in: a ratchet on the cost of adding one.
/// Each editable field (`hobby`, say) stands in the entity, the domain's one list of fields,
/// and the GraphQL types (output, input and their conversions); the services write each field
/// into the column of its name, and REST derives its body, answers, OpenAPI schemas and field
/// lists from the GraphQL types. With its migration (a file and its line in the list) that is
/// 8 edits in 5 files; the count may only go down.
#[test]
fn a_new_profile_field_costs_at_most_eight_edits() {
    const MOST_LINES_IN_SRC: usize = 6;
    const MOST_FILES_IN_SRC: usize = 3;
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    // Code only: no test module, comment or string literal (examples name the fields too).
    let code: Vec<(String, Vec<String>)> = files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let lines = text
                .lines()
                .map(|line| line.split("//").next().unwrap_or_default())
                .map(|line| {
                    let mut out = String::new();
                    let mut quoted = false;
                    for c in line.chars() {
                        if c == '"' {
                            quoted = !quoted;
                        } else if !quoted {
                            out.push(c);
                        }
                    }
                    out
                })
                .collect();
            (path.display().to_string(), lines)
        })
        .collect();
    let is_word = |line: &str, word: &str| {
        line.match_indices(word).any(|(at, _)| {
            let before = line[..at].chars().last();
            let after = line[at + word.len()..].chars().next();
            let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            !ident(before) && !ident(after)
        })
    };
    // Two plain text fields whose names mean nothing else in the code (`name` is also the
    // account's, `location` an object's in the photo store, `bio` is in GraphiQL's example
    // query, `phone` has a rule of its own).
    for field in ["hobby", "occupation"] {
        let places: Vec<(String, usize)> = code
            .iter()
            .map(|(file, lines)| {
                let n = lines.iter().filter(|line| is_word(line, field)).count();
                (file.clone(), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let lines: usize = places.iter().map(|(_, n)| n).sum();
        assert!(
            lines <= MOST_LINES_IN_SRC && places.len() <= MOST_FILES_IN_SRC,
            "`{field}` is declared in {lines} lines of {} files: {places:?}",
            places.len()
        );
    }
}

/// The document is as strict as the server: bounds, choices and refused extra fields are in
/// it, so a generated client refuses what the server would.
#[test]
fn the_openapi_document_is_as_exact_as_the_server() {
    let doc: Value = serde_json::from_str(&nta_user_svc::rest::openapi_json()).unwrap();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["RegisterBody"]["properties"]["password"]["minLength"],
        8
    );
    assert_eq!(
        schemas["RegisterBody"]["properties"]["email"]["maxLength"],
        254
    );
    assert_eq!(
        schemas["LoginBody"]["properties"]["password"]["maxLength"],
        128
    );
    assert_eq!(
        schemas["ResetBody"]["properties"]["new_password"]["minLength"],
        8
    );
    assert_eq!(schemas["ProfileBody"]["additionalProperties"], false);
    assert_eq!(schemas["UpdateAccountBody"]["additionalProperties"], false);
    assert_eq!(
        schemas["UpdateAccountBody"]["properties"]["email"]["type"],
        "string"
    );
    assert_eq!(
        schemas["RoleBody"]["properties"]["role"]["enum"],
        json!(["user", "admin"])
    );
    let parameter = |path: &str, name: &str| {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]
            .clone()
    };
    let limit = parameter("/api/admin/users", "limit");
    assert_eq!(
        (limit["minimum"].clone(), limit["maximum"].clone()),
        (json!(1), json!(100))
    );
    assert_eq!(
        parameter("/api/admin/users", "status")["enum"],
        json!(["active", "disabled"])
    );
    assert_eq!(
        parameter("/uploads/{user_id}/{file}", "size")["enum"],
        json!([64, 256])
    );
    let actions = parameter("/api/admin/audit", "action")["enum"].clone();
    assert!(
        actions.as_array().unwrap().contains(&json!("login_failed")),
        "{actions}"
    );
}

/// The free-text patterns of the document take exactly what the server takes: whitespace of
/// any kind around the text (trimmed), at most the field's length in between, no control
/// character (the bio keeps tabs and line breaks).
#[tokio::test]
async fn the_free_text_patterns_take_what_the_server_takes() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = openapi(&app).await;
    app.register("text@example.com", PASSWORD).await;
    let token = body(app.login("text@example.com", PASSWORD).await).await;
    let bearer = token["access_token"].as_str().unwrap();
    let hundred = "a".repeat(100);
    let thousand = "b".repeat(1000);
    let samples = [
        ("name", "Ada".to_owned()),
        ("name", " \tAda\n".to_owned()),
        ("name", "\u{85}Ada\u{3000}\u{a0}".to_owned()),
        ("name", "Ada Lovelace\u{ad}".to_owned()),
        ("name", hundred.clone()),
        ("name", format!(" {hundred}\n\u{2028}")),
        ("name", format!("{hundred}a")),
        ("name", "A\u{1}da".into()),
        ("name", "A\nda".into()),
        ("name", "\u{1}Ada".into()),
        ("name", "Ada\u{1c}".into()),
        ("name", "Ada\u{7f}".into()),
        ("location", "\u{85}0\u{85}\u{85}".into()),
        ("bio", "two\nlines\tand a tab\r\n".into()),
        ("bio", format!("\n{thousand}\n")),
        ("bio", format!("{thousand}b")),
        ("bio", "nul\u{0}".into()),
        ("bio", "bell\u{7}".into()),
    ];
    let schema = &doc["components"]["schemas"]["ProfileBody"]["properties"];
    for (field, text) in samples {
        let pattern = schema[field]["pattern"].as_str().unwrap();
        let documented = regex::Regex::new(pattern).unwrap().is_match(&text);
        let status = app
            .update_my_profile(bearer, &json!({ field: text }))
            .await
            .status();
        assert!(
            status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
            "{field} {text:?}: {status}"
        );
        assert_eq!(
            documented,
            status == StatusCode::OK,
            "{field} {text:?}: the pattern says {documented}, the server {status}"
        );
    }
}
