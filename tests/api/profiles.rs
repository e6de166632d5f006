//! Profiles over REST and GraphQL: CRUD, partial updates, the public view, ownership.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, body, expect_error},
    on_both_backends,
};

on_both_backends!(
    registration_creates_an_empty_profile,
    creating_a_second_profile_is_409,
    profile_lifecycle_delete_then_404_then_create_again,
    partial_updates_keep_absent_fields_and_clear_nulls,
    invalid_profile_input_is_400_and_changes_nothing,
    public_profiles_leave_out_the_email,
    users_can_only_change_their_own_profile,
    profile_operations_work_in_graphql,
    user_profile_resolves_through_graphql,
);

const PROFILE_OUT_KEYS: [&str; 12] = [
    "id",
    "user_id",
    "email",
    "name",
    "phone",
    "bio",
    "hobby",
    "occupation",
    "location",
    "profile_photo_path",
    "created_at",
    "updated_at",
];

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn full_profile() -> Value {
    json!({
        "name": "Alice",
        "phone": "+100200300",
        "bio": "Hello, I like hiking.",
        "hobby": "hiking",
        "occupation": "Engineer",
        "location": "San Francisco"
    })
}

async fn registration_creates_an_empty_profile(app: TestApp) {
    let (id, token) = app.signed_up("alice@example.com").await;
    let response = app.my_profile(&token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let profile = body(response).await;
    assert_eq!(keys(&profile), PROFILE_OUT_KEYS);
    assert_eq!(profile["user_id"], id);
    assert_eq!(profile["email"], "alice@example.com");
    for field in [
        "name",
        "phone",
        "bio",
        "hobby",
        "occupation",
        "location",
        "profile_photo_path",
    ] {
        assert_eq!(profile[field], Value::Null, "{field}");
    }
}

async fn creating_a_second_profile_is_409(app: TestApp) {
    let (_, token) = app.signed_up("bob@example.com").await;
    let response = app
        .client
        .post(app.url("/api/profiles"))
        .bearer_auth(&token)
        .json(&full_profile())
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::CONFLICT, "Profile already exists").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM profiles").await, 1);
}

async fn profile_lifecycle_delete_then_404_then_create_again(app: TestApp) {
    let (id, token) = app.signed_up("carol@example.com").await;
    let deleted = app.delete_auth("/api/profiles/me", &token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(deleted.text().await.unwrap().is_empty());
    assert_eq!(app.count("SELECT COUNT(*) FROM profiles").await, 0);

    for response in [
        app.my_profile(&token).await,
        app.update_my_profile(&token, &json!({"bio": "x"})).await,
        app.delete_auth("/api/profiles/me", &token).await,
        app.get_auth(&format!("/api/profiles/{id}"), &token).await,
    ] {
        expect_error(response, StatusCode::NOT_FOUND, "Profile not found").await;
    }
    // The account view still works, with no name.
    let account = body(app.account(&token).await).await;
    assert_eq!(account["name"], Value::Null);

    let created = app
        .client
        .post(app.url("/api/profiles"))
        .bearer_auth(&token)
        .json(&full_profile())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = body(created).await;
    assert_eq!(keys(&created), PROFILE_OUT_KEYS);
    assert_eq!(created["user_id"], id);
    assert_eq!(created["email"], "carol@example.com");
    assert_eq!(created["phone"], "+100200300");
    assert_eq!(created["location"], "San Francisco");
    assert_eq!(created["profile_photo_path"], Value::Null);
    let read = body(app.my_profile(&token).await).await;
    assert_eq!(read, created);
}

async fn partial_updates_keep_absent_fields_and_clear_nulls(app: TestApp) {
    let (_, token) = app.signed_up("dave@example.com").await;
    let first = body(app.update_my_profile(&token, &full_profile()).await).await;
    assert_eq!(first["hobby"], "hiking");

    let response = app
        .update_my_profile(
            &token,
            &json!({"bio": "Updated bio", "location": "New City"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let updated = body(response).await;
    assert_eq!(updated["bio"], "Updated bio");
    assert_eq!(updated["location"], "New City");
    assert_eq!(updated["hobby"], "hiking");
    assert_eq!(updated["phone"], "+100200300");
    assert_eq!(updated["created_at"], first["created_at"]);
    assert_ne!(updated["updated_at"], first["updated_at"]);

    let cleared = body(
        app.update_my_profile(&token, &json!({"phone": null, "hobby": null}))
            .await,
    )
    .await;
    assert_eq!(cleared["phone"], Value::Null);
    assert_eq!(cleared["hobby"], Value::Null);
    assert_eq!(cleared["bio"], "Updated bio");

    let nothing = body(app.update_my_profile(&token, &json!({})).await).await;
    assert_eq!(nothing, cleared);
    // The profile's name is the account's name.
    let account = body(app.account(&token).await).await;
    assert_eq!(account["name"], "Alice");
}

async fn invalid_profile_input_is_400_and_changes_nothing(app: TestApp) {
    let (_, token) = app.signed_up("erin@example.com").await;
    app.update_my_profile(&token, &full_profile()).await;
    let before = body(app.my_profile(&token).await).await;
    let phone = "Invalid phone format; expected +<country_code><number>";
    let cases = [
        (json!({"phone": "12345678"}), "phone", phone.to_owned()),
        (json!({"phone": "+12 345 678"}), "phone", phone.to_owned()),
        (json!({"phone": "+123456"}), "phone", phone.to_owned()),
        (
            json!({"phone": "+1234567890123456"}),
            "phone",
            phone.to_owned(),
        ),
        (
            json!({"name": "n".repeat(101)}),
            "name",
            "Name must be at most 100 characters.".to_owned(),
        ),
        (
            json!({"bio": "b".repeat(1001)}),
            "bio",
            "Bio must be at most 1000 characters.".to_owned(),
        ),
        (
            json!({"hobby": "h".repeat(101)}),
            "hobby",
            "Hobby must be at most 100 characters.".to_owned(),
        ),
        (
            json!({"email": "x@example.com"}),
            "email",
            "Unknown field 'email'.".to_owned(),
        ),
        (
            json!({"profile_photo_path": "uploads/1/x.jpg"}),
            "profile_photo_path",
            "Unknown field 'profile_photo_path'.".to_owned(),
        ),
    ];
    for (request, field, message) in cases {
        for response in [
            app.update_my_profile(&token, &request).await,
            app.client
                .post(app.url("/api/profiles"))
                .bearer_auth(&token)
                .json(&request)
                .send()
                .await
                .unwrap(),
        ] {
            let error = expect_error(response, StatusCode::BAD_REQUEST, &message).await;
            assert_eq!(error["errors"][0]["field"], field, "{request}");
        }
    }
    let wrong_type = app.update_my_profile(&token, &json!({"bio": 42})).await;
    assert_eq!(wrong_type.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body(wrong_type).await["detail"][0]["loc"],
        json!(["body", "bio"])
    );
    let after = body(app.my_profile(&token).await).await;
    assert_eq!(after, before);
    // Boundaries are accepted.
    let ok = app
        .update_my_profile(
            &token,
            &json!({"name": "n".repeat(100), "bio": "b".repeat(1000), "phone": "+1234567"}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

async fn public_profiles_leave_out_the_email(app: TestApp) {
    let (alice, alice_token) = app.signed_up("alice@example.com").await;
    let (_, bob_token) = app.signed_up("bob@example.com").await;
    app.update_my_profile(&alice_token, &full_profile()).await;

    let response = app
        .get_auth(&format!("/api/profiles/{alice}"), &bob_token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let public = body(response).await;
    let expected: Vec<&str> = PROFILE_OUT_KEYS
        .iter()
        .copied()
        .filter(|k| *k != "email")
        .collect();
    assert_eq!(keys(&public), expected);
    assert_eq!(public["name"], "Alice");
    assert!(!public.to_string().contains("alice@example.com"));

    expect_error(
        app.get_auth("/api/profiles/99999", &bob_token).await,
        StatusCode::NOT_FOUND,
        "Profile not found",
    )
    .await;
    let not_a_number = app.get_auth("/api/profiles/abc", &bob_token).await;
    assert_eq!(not_a_number.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let anonymous = app
        .client
        .get(app.url(&format!("/api/profiles/{alice}")))
        .send()
        .await
        .unwrap();
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "Not authenticated").await;

    // GraphQL: the same Profile type, whose owner's email and account read as null for
    // anyone but the owner.
    let query = "query($id: Int!) { profile(userId: $id) { userId name email user { id } } }";
    let response = app
        .graphql(Some(&bob_token), query, json!({"id": alice}))
        .await;
    assert_eq!(
        response["data"]["profile"],
        json!({"userId": alice, "name": "Alice", "email": null, "user": null})
    );
    let own = app
        .graphql(Some(&alice_token), query, json!({"id": alice}))
        .await;
    assert_eq!(own["data"]["profile"]["email"], "alice@example.com");
    assert_eq!(own["data"]["profile"]["user"]["id"], alice);
    let query = "query($id: Int!) { profile(userId: $id) { userId name } }";
    let response = app
        .graphql(Some(&bob_token), query, json!({"id": alice}))
        .await;
    assert_eq!(
        response["data"]["profile"],
        json!({"userId": alice, "name": "Alice"})
    );
}

async fn users_can_only_change_their_own_profile(app: TestApp) {
    let (alice, alice_token) = app.signed_up("alice@example.com").await;
    let (bob, bob_token) = app.signed_up("bob@example.com").await;
    app.update_my_profile(&alice_token, &full_profile()).await;
    let before = body(app.my_profile(&alice_token).await).await;

    // Bob names Alice's id wherever a body could carry one: refused, and nothing of hers moves.
    let attempt = app
        .update_my_profile(&bob_token, &json!({"user_id": alice, "bio": "pwned"}))
        .await;
    assert_eq!(attempt.status(), StatusCode::BAD_REQUEST);
    let own = app
        .update_my_profile(&bob_token, &json!({"bio": "mine"}))
        .await;
    assert_eq!(body(own).await["user_id"], bob);
    app.delete_auth("/api/profiles/me", &bob_token).await;
    let update = "mutation { updateProfile(input: {bio: \"pwned\"}) { userId } }";
    let response = app.graphql(Some(&bob_token), update, json!({})).await;
    assert_eq!(response["errors"][0]["extensions"]["code"], "NOT_FOUND");

    let after = body(app.my_profile(&alice_token).await).await;
    assert_eq!(after, before);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM profiles WHERE user_id = {alice}"
        ))
        .await,
        1
    );
}

async fn profile_operations_work_in_graphql(app: TestApp) {
    let (id, bearer) = app.signed_up("fay@example.com").await;
    let token = Some(bearer.as_str());
    let fields = "id userId email name phone bio profilePhotoPath createdAt updatedAt";
    let mine = app
        .graphql(token, &format!("{{ myProfile {{ {fields} }} }}"), json!({}))
        .await;
    assert_eq!(mine["data"]["myProfile"]["userId"], id);
    assert_eq!(mine["data"]["myProfile"]["email"], "fay@example.com");

    let create =
        format!("mutation($i: ProfileInput!) {{ createProfile(input: $i) {{ {fields} }} }}");
    let conflict = app
        .graphql(token, &create, json!({"i": {"name": "Fay"}}))
        .await;
    assert_eq!(conflict["errors"][0]["extensions"]["code"], "CONFLICT");
    assert_eq!(conflict["errors"][0]["message"], "Profile already exists");

    let update =
        format!("mutation($i: ProfileInput!) {{ updateProfile(input: $i) {{ {fields} }} }}");
    let updated = app
        .graphql(
            token,
            &update,
            json!({"i": {"name": "Fay", "phone": "+100200300"}}),
        )
        .await;
    assert_eq!(updated["data"]["updateProfile"]["name"], "Fay");
    let invalid = app
        .graphql(token, &update, json!({"i": {"phone": "nope"}}))
        .await;
    assert_eq!(invalid["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(
        invalid["errors"][0]["extensions"]["errors"][0],
        json!({"field": "phone", "message": "Invalid phone format; expected +<country_code><number>"})
    );

    let before = app.graphql(token, "{ myProfile { id } }", json!({})).await;
    let deleted = app
        .graphql(token, "mutation { deleteProfile }", json!({}))
        .await;
    // The deleted profile's id, for a client cache to evict it.
    assert_eq!(
        deleted["data"]["deleteProfile"],
        before["data"]["myProfile"]["id"]
    );
    let gone = app.graphql(token, "{ myProfile { id } }", json!({})).await;
    assert_eq!(gone["errors"][0]["extensions"]["code"], "NOT_FOUND");
    assert_eq!(gone["errors"][0]["message"], "Profile not found");

    let again = app
        .graphql(token, &create, json!({"i": {"bio": "back"}}))
        .await;
    assert_eq!(again["data"]["createProfile"]["bio"], "back");
    assert_eq!(again["data"]["createProfile"]["name"], Value::Null);

    // REST sees what GraphQL wrote.
    let rest = body(app.my_profile(&bearer).await).await;
    assert_eq!(rest["bio"], "back");
    assert_eq!(rest["id"], again["data"]["createProfile"]["id"]);
}

async fn user_profile_resolves_through_graphql(app: TestApp) {
    let (_, token) = app.signed_up("gus@example.com").await;
    app.update_my_profile(&token, &json!({"hobby": "chess"}))
        .await;
    let query = "{ a: me { profile { hobby email } } b: me { profile { hobby } } }";
    let response = app.graphql(Some(&token), query, json!({})).await;
    assert_eq!(
        response["data"]["a"]["profile"],
        json!({"hobby": "chess", "email": "gus@example.com"})
    );
    assert_eq!(response["data"]["b"]["profile"]["hobby"], "chess");
    app.delete_auth("/api/profiles/me", &token).await;
    let response = app
        .graphql(Some(&token), "{ me { email profile { id } } }", json!({}))
        .await;
    assert_eq!(response["data"]["me"]["profile"], Value::Null);
}
