//! The REST compatibility layer: every documented path of the original service.
//!
//! A handler holds no rule. It reads the request into a typed body (so JSON of the wrong type
//! is a 422 and unknown fields of an update a 400, as the original answered), runs its fixed
//! GraphQL operation from [`operations`] against the one schema with the caller's
//! [`Caller`](crate::caller::Caller), and [`forward`] maps the result: aliases in the operation
//! give the snake_case keys, and `extensions.code` gives the HTTP status.

mod accounts;
mod body;
mod forward;
mod operations;
mod profiles;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};

pub use body::{Authenticated, JsonBody, Problem, has_media_type};
pub use operations::Operations;
pub use profiles::serve_upload;

use crate::startup::AppState;

/// Room for the multipart framing around a photo of `MAX_UPLOAD_BYTES`.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

pub fn router(max_upload_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(accounts::register))
        .route("/api/users/register", post(accounts::register))
        .route("/api/auth/login", post(accounts::login))
        .route(
            "/api/users/profile",
            get(accounts::get_account).put(accounts::update_account),
        )
        .route("/api/profiles", post(profiles::create_profile))
        .route("/api/users/me/profile", get(profiles::my_profile))
        .route("/api/profiles/{user_id}", get(profiles::public_profile))
        .route(
            "/api/profiles/me",
            axum::routing::put(profiles::update_profile).delete(profiles::delete_profile),
        )
        .route(
            "/api/profiles/me/photo",
            post(profiles::upload_photo)
                .delete(profiles::delete_photo)
                .layer(DefaultBodyLimit::max(max_upload_bytes + MULTIPART_OVERHEAD)),
        )
}
