//! The REST API: every documented path, each served by running a fixed GraphQL operation.
//!
//! A handler holds no rule. It reads the request into a typed body (so JSON of the wrong type
//! is a 422 and unknown fields of an update a 400, as the original answered), runs its fixed
//! GraphQL operation from [`operations`] against the one schema with the caller's
//! [`Caller`](crate::caller::Caller), and [`forward`] shapes the answer: aliases in the
//! operation give the snake_case keys, and the service's `AppError` (the GraphQL error's
//! source) gives the HTTP status.
//!
//! Three kinds of path carry no GraphQL operation, and say so where they are: a photo's
//! bytes and readiness (through the state's services: bytes are no GraphQL value), the
//! account pages (HTML forms around REST operations), and the OpenAPI documents.

mod accounts;
mod admin;
mod body;
mod forward;
mod health;
mod mfa;
mod oidc;
mod openapi;
mod operations;
mod pages;
mod passkeys;
mod profiles;
mod recovery;
mod schemas;
mod sessions;
mod webhooks;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, header},
    routing::{delete, get, post, put},
};
use tower_http::set_header::SetResponseHeaderLayer;

pub use openapi::{ApiDoc, json as openapi_json};

use crate::state::AppState;

/// Room for the multipart framing around a photo of `MAX_UPLOAD_BYTES`.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// Every REST path: the documented API, the photo files, health, and the OpenAPI documents.
pub fn router(max_upload_bytes: usize) -> Router<AppState> {
    operations::force();
    let api = Router::new()
        .route("/api/auth/register", post(accounts::register))
        .route("/api/users/register", post(accounts::register_alias))
        .route("/api/auth/login", post(accounts::login))
        .route("/api/auth/token", post(accounts::token))
        .route("/api/auth/refresh", post(sessions::refresh))
        .route("/api/auth/logout", post(sessions::logout))
        .route("/api/auth/logout-all", post(sessions::logout_all))
        .route("/api/auth/verify-email", post(recovery::verify_email))
        .route(
            "/api/auth/undo-email-change",
            post(recovery::undo_email_change),
        )
        .route("/api/auth/forgot-password", post(recovery::forgot_password))
        .route("/api/auth/reset-password", post(recovery::reset_password))
        .route(
            "/api/users/me/verify-email",
            post(recovery::request_verification),
        )
        .route("/api/users/me", delete(sessions::delete_account))
        .route("/api/users/me/password", put(sessions::change_password))
        .route("/api/users/me/sessions", get(sessions::my_sessions))
        .route("/api/users/me/mfa", get(mfa::my_mfa))
        .route(
            "/api/users/me/mfa/totp",
            post(mfa::start_totp).delete(mfa::disable_totp),
        )
        .route("/api/users/me/mfa/totp/confirm", post(mfa::confirm_totp))
        .route(
            "/api/users/me/mfa/recovery-codes",
            post(mfa::regenerate_codes),
        )
        .route("/api/auth/mfa/verify", post(mfa::verify))
        .route(
            "/api/users/me/passkeys",
            get(passkeys::list).post(passkeys::add),
        )
        .route(
            "/api/users/me/passkeys/options",
            post(passkeys::registration_options),
        )
        .route("/api/users/me/passkeys/{id}", delete(passkeys::delete))
        .route("/api/auth/passkey/options", post(passkeys::sign_in_options))
        .route("/api/auth/passkey/verify", post(passkeys::sign_in))
        .route("/api/auth/oidc/providers", get(oidc::providers))
        .route("/api/auth/oidc/{name}/authorize", get(oidc::authorize))
        .route("/api/auth/oidc/{name}/callback", get(oidc::callback))
        .route("/api/auth/oidc/exchange", post(oidc::exchange))
        .route("/api/users/me/identities", get(oidc::list))
        .route(
            "/api/users/me/identities/{name}",
            post(oidc::link).delete(oidc::unlink),
        )
        .route(
            "/api/admin/users/{id}/mfa/reset",
            post(admin::reset_user_mfa),
        )
        .route(
            "/api/users/me/sessions/{id}",
            delete(sessions::revoke_session),
        )
        .route(
            "/api/users/me/security-events",
            get(admin::my_security_events),
        )
        .route("/api/admin/users", get(admin::list_users))
        .route(
            "/api/admin/users/{id}",
            get(admin::get_user).delete(admin::delete_user),
        )
        .route("/api/admin/users/{id}/disable", post(admin::disable_user))
        .route("/api/admin/users/{id}/enable", post(admin::enable_user))
        .route("/api/admin/users/{id}/role", put(admin::set_user_role))
        .route(
            "/api/admin/users/{id}/sessions",
            delete(admin::revoke_user_sessions),
        )
        .route("/api/admin/audit", get(admin::audit_events))
        .route(
            "/api/admin/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/api/admin/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route("/api/admin/webhooks/{id}/enable", post(webhooks::enable))
        .route("/api/admin/webhooks/{id}/disable", post(webhooks::disable))
        .route(
            "/api/admin/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route(
            "/api/admin/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/api/users/profile",
            get(accounts::get_account).put(accounts::update_account),
        )
        .route("/api/profiles", post(profiles::create_profile))
        .route("/api/users/me/profile", get(profiles::my_profile))
        .route("/api/profiles/{user_id}", get(profiles::public_profile))
        .route(
            "/api/profiles/me",
            put(profiles::update_profile).delete(profiles::delete_profile),
        )
        .route(
            "/api/profiles/me/photo",
            post(profiles::upload_photo)
                .delete(profiles::delete_photo)
                .layer(DefaultBodyLimit::max(max_upload_bytes + MULTIPART_OVERHEAD)),
        )
        .layer(no_store());
    Router::new()
        .merge(api)
        .route("/uploads/{user_id}/{file}", get(profiles::serve_upload))
        .route(
            "/account/verify-email",
            get(pages::verify_email_form).post(pages::verify_email),
        )
        .route(
            "/account/reset-password",
            get(pages::reset_password_form).post(pages::reset_password),
        )
        .route(
            "/account/undo-email-change",
            get(pages::undo_email_change_form).post(pages::undo_email_change),
        )
        .route("/account/style.css", get(pages::style))
        .route("/account/passkeys", get(pages::passkeys))
        .route("/account/passkeys.js", get(pages::passkeys_script))
        .route("/favicon.ico", get(pages::favicon))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(openapi::docs())
}

/// API answers carry tokens and personal data: no cache may keep them.
pub fn no_store() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    )
}

/// Fuzzing the REST body parsing: whatever bytes arrive, extraction answers with one of the
/// documented statuses and never panics. Bounded (a fixed number of cases), so it runs in CI.
#[cfg(test)]
mod fuzz {
    use axum::{
        body::Body,
        extract::{FromRequest, Request},
        http::StatusCode,
    };
    use proptest::prelude::*;

    use super::{accounts, body::JsonBody};

    fn request(content_type: &str, bytes: Vec<u8>) -> Request {
        Request::builder()
            .method("POST")
            .uri("/")
            .header("content-type", content_type)
            .body(Body::from(bytes))
            .unwrap()
    }

    async fn status_of<T: serde::de::DeserializeOwned>(request: Request) -> StatusCode {
        match JsonBody::<T>::from_request(request, &()).await {
            Ok(_) => StatusCode::OK,
            Err(response) => response.status(),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    /// JSON values of any shape, with the field names the bodies know.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,40}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("email".to_owned()),
                        Just("password".to_owned()),
                        Just("name".to_owned()),
                        Just("phone".to_owned()),
                        Just("bio".to_owned()),
                        "[a-z_]{1,10}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const DOCUMENTED: [StatusCode; 5] = [
        StatusCode::OK,
        StatusCode::BAD_REQUEST,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::UNPROCESSABLE_ENTITY,
        StatusCode::PAYLOAD_TOO_LARGE,
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), json in any::<bool>()) {
            let content_type = if json { "application/json" } else { "text/plain" };
            let rt = runtime();
            for status in [
                rt.block_on(status_of::<accounts::RegisterBody>(request(content_type, bytes.clone()))),
                rt.block_on(status_of::<accounts::UpdateAccountBody>(request(content_type, bytes.clone()))),
                rt.block_on(status_of::<crate::graphql::ProfileInput>(request(content_type, bytes))),
            ] {
                prop_assert!(DOCUMENTED.contains(&status), "{status}");
            }
        }

        #[test]
        fn arbitrary_json_never_panics(value in json_value()) {
            let bytes = serde_json::to_vec(&value).unwrap();
            let rt = runtime();
            for status in [
                rt.block_on(status_of::<accounts::RegisterBody>(request("application/json", bytes.clone()))),
                rt.block_on(status_of::<accounts::LoginBody>(request("application/json", bytes.clone()))),
                rt.block_on(status_of::<crate::graphql::ProfileInput>(request("application/json", bytes))),
            ] {
                prop_assert!(DOCUMENTED.contains(&status), "{status}");
                // Only objects can be bodies.
                if !value.is_object() {
                    prop_assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
                }
            }
        }
    }
}
