//! The GraphQL API and its parity with REST.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, body},
    on_both_backends,
};

on_both_backends!(
    register_login_and_me_work_in_graphql,
    rest_and_graphql_see_the_same_accounts,
    graphql_errors_carry_the_code_table,
    update_me_keeps_absent_fields_and_clears_nulls,
    get_runs_queries_but_refuses_mutations,
    post_must_be_json,
    batches_run_up_to_ten_operations,
    graphiql_is_served_to_browsers,
);

const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { id email name createdAt updatedAt } }";
const LOGIN: &str =
    "mutation($input: LoginInput!) { login(input: $input) { accessToken tokenType expiresIn } }";
const ME: &str = "{ me { id email name createdAt updatedAt } }";

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

async fn gql_login(app: &TestApp, email: &str) -> String {
    let response = app
        .graphql(
            None,
            LOGIN,
            json!({"input": {"email": email, "password": PASSWORD}}),
        )
        .await;
    response["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn register_login_and_me_work_in_graphql(app: TestApp) {
    let input = json!({"input": {"email": "Ann@Example.com", "password": PASSWORD, "name": "Ann"}});
    let registered = app.graphql(None, REGISTER, input).await;
    assert!(registered["errors"].is_null(), "{registered}");
    let user = &registered["data"]["register"];
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["name"], "Ann");

    let login = app
        .graphql(
            None,
            LOGIN,
            json!({"input": {"email": "ann@example.com", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(login["data"]["login"]["tokenType"], "bearer");
    assert_eq!(login["data"]["login"]["expiresIn"], 86400);
    let token = login["data"]["login"]["accessToken"].as_str().unwrap();

    let me = app.graphql(Some(token), ME, json!({})).await;
    assert_eq!(me["data"]["me"], *user);
}

async fn rest_and_graphql_see_the_same_accounts(app: TestApp) {
    // Registered over REST, read over GraphQL.
    let (id, token) = app.signed_up("bea@example.com").await;
    let rest = body(app.account(&token).await).await;
    let me = app.graphql(Some(&token), ME, json!({})).await;
    let me = &me["data"]["me"];
    assert_eq!(me["id"], id);
    assert_eq!(me["email"], rest["email"]);
    assert_eq!(me["createdAt"], rest["created_at"]);
    assert_eq!(me["updatedAt"], rest["updated_at"]);

    // Registered over GraphQL, logged in and read over REST.
    let input = json!({"input": {"email": "cid@example.com", "password": PASSWORD, "name": "Cid"}});
    app.graphql(None, REGISTER, input).await;
    let login = body(app.login("cid@example.com", PASSWORD).await).await;
    let token = login["access_token"].as_str().unwrap();
    let account = body(app.account(token).await).await;
    assert_eq!(account["name"], "Cid");

    // A token from GraphQL works on REST and the other way round.
    let gql_token = gql_login(&app, "cid@example.com").await;
    assert_eq!(app.account(&gql_token).await.status(), StatusCode::OK);
}

async fn graphql_errors_carry_the_code_table(app: TestApp) {
    let anonymous = app.graphql(None, ME, json!({})).await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED");
    assert_eq!(anonymous["errors"][0]["message"], "Not authenticated");
    assert!(anonymous["data"].is_null());

    let invalid = app
        .graphql(
            None,
            REGISTER,
            json!({"input": {"email": "bad", "password": "short"}}),
        )
        .await;
    assert_eq!(code(&invalid), "BAD_USER_INPUT");
    assert_eq!(invalid["errors"][0]["message"], "Invalid email format.");
    let fields = &invalid["errors"][0]["extensions"]["errors"];
    assert_eq!(
        fields[0],
        json!({"field": "email", "message": "Invalid email format."})
    );
    assert_eq!(fields[1]["field"], "password");

    app.signed_up("dan@example.com").await;
    let duplicate = app
        .graphql(
            None,
            REGISTER,
            json!({"input": {"email": "DAN@example.com", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(code(&duplicate), "CONFLICT");
    assert_eq!(
        duplicate["errors"][0]["message"],
        "Email already registered."
    );

    let wrong = app
        .graphql(
            None,
            LOGIN,
            json!({"input": {"email": "dan@example.com", "password": "WrongPass123"}}),
        )
        .await;
    assert_eq!(code(&wrong), "UNAUTHENTICATED");
    assert_eq!(wrong["errors"][0]["message"], "Incorrect email or password");
}

async fn update_me_keeps_absent_fields_and_clears_nulls(app: TestApp) {
    let (_, token) = app.signed_up("eve@example.com").await;
    let update = "mutation($input: UpdateMeInput!) { updateMe(input: $input) { email name } }";
    let named = app
        .graphql(Some(&token), update, json!({"input": {"name": "Eve"}}))
        .await;
    assert_eq!(
        named["data"]["updateMe"],
        json!({"email": "eve@example.com", "name": "Eve"})
    );
    let moved = app
        .graphql(
            Some(&token),
            update,
            json!({"input": {"email": "eve2@example.com"}}),
        )
        .await;
    assert_eq!(
        moved["data"]["updateMe"],
        json!({"email": "eve2@example.com", "name": "Eve"})
    );
    let cleared = app
        .graphql(Some(&token), update, json!({"input": {"name": null}}))
        .await;
    assert_eq!(cleared["data"]["updateMe"]["name"], json!(null));
    let unknown = app
        .graphql(
            Some(&token),
            update,
            json!({"input": {"password": "NewPass12345"}}),
        )
        .await;
    assert!(unknown["errors"][0]["message"].is_string(), "{unknown}");
    assert_eq!(
        app.login("eve2@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn get_runs_queries_but_refuses_mutations(app: TestApp) {
    let (_, token) = app.signed_up("fay@example.com").await;
    let query = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ me { email } }")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), StatusCode::OK);
    assert_eq!(body(query).await["data"]["me"]["email"], "fay@example.com");

    let mutation = format!(
        "mutation {{ register(input: {{email: \"gus@example.com\", password: \"{PASSWORD}\"}}) {{ id }} }}"
    );
    let refused = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", mutation.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.headers()["allow"], "POST");
    assert!(body(refused).await["errors"][0]["message"].is_string());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE email = 'gus@example.com'")
            .await,
        0
    );
}

async fn post_must_be_json(app: TestApp) {
    let mutation = format!(
        "{{\"query\": \"mutation {{ register(input: {{email: \\\"hal@example.com\\\", password: \\\"{PASSWORD}\\\"}}) {{ id }} }}\"}}"
    );
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let response = app
            .send_raw(Method::POST, "/graphql", content_type, mutation.clone())
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    let accepted = app
        .send_raw(Method::POST, "/graphql", "application/json", mutation)
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);

    let broken = app
        .send_raw(Method::POST, "/graphql", "application/json", "{")
        .await;
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&body(broken).await), "BAD_USER_INPUT");
}

async fn batches_run_up_to_ten_operations(app: TestApp) {
    let (_, token) = app.signed_up("ida@example.com").await;
    let batch = |n: usize| Value::Array(vec![json!({"query": "{ me { email } }"}); n]);
    let ten = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&batch(10))
        .send()
        .await
        .unwrap();
    assert_eq!(ten.status(), StatusCode::OK);
    let ten = body(ten).await;
    assert_eq!(ten.as_array().unwrap().len(), 10);
    assert_eq!(ten[9]["data"]["me"]["email"], "ida@example.com");

    let eleven = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&batch(11))
        .send()
        .await
        .unwrap();
    assert_eq!(eleven.status(), StatusCode::BAD_REQUEST);
    assert!(
        body(eleven).await["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 10")
    );
}

async fn graphiql_is_served_to_browsers(app: TestApp) {
    let page = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );
}

/// The codes Apollo Server gives, which clients switch on: two operations of one name are a
/// validation failure (not a parse failure), and a variable that is missing or of the wrong
/// type is the client's input (`BAD_USER_INPUT`); a literal of the wrong type stays a
/// validation failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_and_variable_errors_carry_apollos_codes() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let (_, token) = app.signed_up("codes@example.com").await;
    let duplicate = app
        .graphql(
            None,
            "query A { __typename } query A { __typename }",
            json!({}),
        )
        .await;
    assert_eq!(code(&duplicate), "GRAPHQL_VALIDATION_FAILED", "{duplicate}");
    let missing = app
        .graphql(
            Some(&token),
            "query($id: Int!) { profile(userId: $id) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&missing), "BAD_USER_INPUT", "{missing}");
    let mistyped = app
        .graphql(
            Some(&token),
            "query($id: Int!) { profile(userId: $id) { id } }",
            json!({"id": "x"}),
        )
        .await;
    assert_eq!(code(&mistyped), "BAD_USER_INPUT", "{mistyped}");
    let nested = app
        .graphql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            json!({"i": {"email": 5, "password": "x"}}),
        )
        .await;
    assert_eq!(code(&nested), "BAD_USER_INPUT", "{nested}");
    let literal = app
        .graphql(Some(&token), "{ profile(userId: \"x\") { id } }", json!({}))
        .await;
    assert_eq!(code(&literal), "GRAPHQL_VALIDATION_FAILED", "{literal}");
}
