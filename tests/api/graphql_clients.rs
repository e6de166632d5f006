//! What real GraphQL clients rely on: the GraphQL-over-HTTP media type and status codes, a
//! code on every error, and answers a normalising cache (Apollo's `InMemoryCache`) can keep
//! current: one type per row, mutations that return what they changed.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, body},
    on_both_backends,
};

on_both_backends!(
    graphql_response_json_is_honoured,
    plain_json_clients_keep_their_answers,
    login_carries_the_user,
    the_account_changes_when_its_name_changes_on_the_profile,
    one_profile_type_whichever_field_returns_it,
    misspelt_fields_and_types_get_a_hint,
);

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

async fn post(app: &TestApp, accept: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/graphql"))
        .header("accept", accept)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn graphql_response_json_is_honoured(app: TestApp) {
    let accept = "application/graphql-response+json, application/json;q=0.9";
    let ok = post(&app, accept, json!({"query": "{ __typename }"})).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["content-type"], GRAPHQL_RESPONSE);
    assert_eq!(body(ok).await, json!({"data": {"__typename": "Query"}}));

    for (query, code) in [
        ("{ me { id", "GRAPHQL_PARSE_FAILED"),
        ("{ me { idd } }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
    ] {
        let refused = post(&app, accept, json!({"query": query})).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(refused.headers()["content-type"], GRAPHQL_RESPONSE);
        let refused = body(refused).await;
        assert!(refused.get("data").is_none(), "{refused}");
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], code,
            "{refused}"
        );
    }
    // An error while executing is still a 200 with `data`.
    let executed = post(&app, accept, json!({"query": "{ me { id } }"})).await;
    assert_eq!(executed.status(), StatusCode::OK);
    let executed = body(executed).await;
    assert_eq!(executed["data"], Value::Null);
    assert_eq!(
        executed["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    // Errors refused before reading the document use the media type too.
    let too_many: Vec<Value> = (0..11)
        .map(|_| json!({"query": "{ __typename }"}))
        .collect();
    let refused = post(&app, accept, Value::Array(too_many)).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.headers()["content-type"], GRAPHQL_RESPONSE);
    assert!(body(refused).await.get("data").is_none());
}

async fn plain_json_clients_keep_their_answers(app: TestApp) {
    for query in ["{ me { id", "{ me { idd } }"] {
        let response = post(&app, "application/json", json!({"query": query})).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/json");
        let response = body(response).await;
        assert_eq!(response["data"], Value::Null);
        assert!(
            response["errors"][0]["extensions"]["code"].is_string(),
            "{response}"
        );
    }
}

async fn login_carries_the_user(app: TestApp) {
    let (id, _) = app.signed_up("payload@example.com").await;
    let login = app
        .graphql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken user { id email } } }",
            json!({"i": {"email": "payload@example.com", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(
        login["data"]["login"]["user"],
        json!({"id": id, "email": "payload@example.com"})
    );
}

async fn the_account_changes_when_its_name_changes_on_the_profile(app: TestApp) {
    let (_, token) = app.signed_up("touch@example.com").await;
    let token = Some(token.as_str());
    let me = "{ me { name updatedAt } }";
    let before = app.graphql(token, me, json!({})).await["data"]["me"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let updated = app
        .graphql(
            token,
            "mutation { updateProfile(input: {name: \"Tess\"}) { name user { name updatedAt } } }",
            json!({}),
        )
        .await;
    let user = &updated["data"]["updateProfile"]["user"];
    assert_eq!(user["name"], "Tess");
    assert_ne!(user["updatedAt"], before["updatedAt"]);
    let after = app.graphql(token, me, json!({})).await["data"]["me"].clone();
    assert_eq!(&after, user);
    // A change that leaves the name alone leaves the account alone.
    app.graphql(
        token,
        "mutation { updateProfile(input: {bio: \"b\"}) { id } }",
        json!({}),
    )
    .await;
    let unchanged = app.graphql(token, me, json!({})).await["data"]["me"].clone();
    assert_eq!(unchanged, after);
    // Deleting the profile clears the name: the account changed.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.graphql(token, "mutation { deleteProfile }", json!({}))
        .await;
    let deleted = app.graphql(token, me, json!({})).await["data"]["me"].clone();
    assert_eq!(deleted["name"], Value::Null);
    assert_ne!(deleted["updatedAt"], after["updatedAt"]);
}

async fn one_profile_type_whichever_field_returns_it(app: TestApp) {
    let (id, token) = app.signed_up("typename@example.com").await;
    let token = Some(token.as_str());
    let own = app
        .graphql(
            token,
            "{ myProfile { __typename id } me { profile { __typename id } } }",
            json!({}),
        )
        .await;
    let by_id = app
        .graphql(
            token,
            "query($id: Int!) { profile(userId: $id) { __typename id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(own["data"]["myProfile"], own["data"]["me"]["profile"]);
    assert_eq!(own["data"]["myProfile"], by_id["data"]["profile"]);
    assert_eq!(own["data"]["myProfile"]["__typename"], "Profile");
}

async fn misspelt_fields_and_types_get_a_hint(app: TestApp) {
    for (query, hint) in [
        ("{ me { emial } }", "Did you mean \"email\"?"),
        ("{ mee { id } }", "Did you mean \"me\"?"),
        (
            "{ me { id } } fragment F on Userr { id }",
            "Did you mean \"User\"?",
        ),
    ] {
        let response = app.graphql(None, query, json!({})).await;
        let message = response["errors"][0]["message"].as_str().unwrap();
        assert!(message.ends_with(hint), "{query}: {message}");
    }
}
