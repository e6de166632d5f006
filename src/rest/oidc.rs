//! Sign-in with external OpenID providers over REST: the providers, the browser's round trip
//! (authorize → provider → callback, both answered with a 302), the exchange of the
//! callback's code, and the caller's linked identities.

use axum::{
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::{
    body::{Authenticated, JsonBody, unprocessable},
    forward::{forward, run},
    operations::{OPERATIONS, Operation},
    schemas::{ErrorBody, LoginRefusedBody, Token, TypeErrorBody, ValidationErrorBody},
};
use crate::{caller::Caller, state::AppState};

/// A provider to offer a sign-in button for.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "google", "display_name": "Google"}))]
pub struct OidcProviderOut {
    pub name: String,
    pub display_name: String,
}

/// An identity at a provider, linked to the account.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"provider": "google", "subject": "10769150350006150715113082367", "email": "ada@example.com", "linked_at": "2025-01-01T00:00:00Z"}))]
pub struct IdentityOut {
    pub provider: String,
    /// The provider's id for the person (`sub`).
    pub subject: String,
    /// The address the provider gave when it was linked.
    pub email: Option<String>,
    pub linked_at: chrono::DateTime<chrono::Utc>,
}

/// Where the provider's answer goes in the end.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeQuery {
    /// The front end's page the browser comes back to with `?code=…` or `?error=…`; it must
    /// start with an entry of `OIDC_REDIRECT_ALLOWLIST` (default `PUBLIC_URL`).
    #[param(value_type = String, required = true, min_length = 1, max_length = 2048)]
    redirect_to: Option<String>,
}

/// What the provider sends the browser back with.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The `state` of the authorization request.
    #[param(value_type = String, required = true, min_length = 1)]
    state: Option<String>,
    /// The provider's error (`access_denied`, …).
    error: Option<String>,
}

/// The callback's one-time code.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"code": "hq3Ck2…"}))]
pub struct ExchangeBody {
    /// The `code` the callback sent the browser back with: 60 seconds, once.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256)]
    code: Option<String>,
}

/// Where the provider sends the browser back after linking.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"redirect_to": "https://app.example.com/settings"}))]
pub struct LinkBody {
    /// Comes back with `?linked={name}` or `?error=…`; under `OIDC_REDIRECT_ALLOWLIST`.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 2048)]
    redirect_to: Option<String>,
}

/// The provider's page to send the browser to.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"authorize_url": "https://accounts.example.com/authorize?client_id=…"}))]
pub struct AuthorizeUrlOut {
    pub authorize_url: String,
}

/// List sign-in providers
///
/// The external OpenID providers configured (`OIDC_PROVIDERS`), for sign-in buttons.
#[utoipa::path(
    get, path = "/api/auth/oidc/providers", tag = "auth", operation_id = "listOidcProviders",
    responses((status = 200, description = "The providers", body = Vec<OidcProviderOut>))
)]
pub async fn providers(State(state): State<AppState>, caller: Caller) -> Response {
    let op = &OPERATIONS.oidc_providers;
    forward(&state, op, caller, json!({}), StatusCode::OK).await
}

/// Sign in with a provider
///
/// Sends the browser to the provider (authorization code flow, PKCE S256, single-use `state`
/// and `nonce`, 10 minutes). A provider that cannot be reached sends it straight back to
/// `redirect_to` with `?error=provider_error`.
#[utoipa::path(
    get, path = "/api/auth/oidc/{name}/authorize", tag = "auth", operation_id = "startOidcSignIn",
    params(("name" = String, Path, description = "The provider's name"), AuthorizeQuery),
    responses(
        (status = 302, description = "To the provider", headers(("Location" = String, description = "The provider's authorization URL"))),
        (status = 400, description = "`redirect_to` missing or not under `OIDC_REDIRECT_ALLOWLIST`", body = ValidationErrorBody),
        (status = 404, description = "Unknown provider", body = ErrorBody, example = json!({"detail": "Provider not found"})),
        (status = 422, description = "A parameter of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many attempts; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn authorize(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    query: Result<Query<AuthorizeQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return unprocessable(&["query".into()], "Invalid query string");
    };
    let variables = json!({
        "provider": name,
        "redirectTo": query.redirect_to.unwrap_or_default(),
    });
    redirect(&state, &OPERATIONS.start_oidc_sign_in, caller, variables).await
}

/// The provider's redirect back
///
/// The redirect URI to register at the provider: `{PUBLIC_URL}/api/auth/oidc/{name}/callback`.
/// Checks `state`, exchanges the code, checks the ID token, then sends the browser to
/// `redirect_to` with `?code=…` (exchange it at `/api/auth/oidc/exchange` within 60 s), or,
/// for a link, `?linked={name}`; or with `?error=` `account_exists`, `account_disabled`,
/// `access_denied`, `provider_error` or `identity_in_use`.
#[utoipa::path(
    get, path = "/api/auth/oidc/{name}/callback", tag = "auth", operation_id = "finishOidcSignIn",
    params(("name" = String, Path, description = "The provider's name"), CallbackQuery),
    responses(
        (status = 302, description = "Back to `redirect_to`", headers(("Location" = String, description = "`redirect_to` with `code`, `linked` or `error`"))),
        (status = 400, description = "Unknown, expired or used `state`", body = ValidationErrorBody,
            example = json!({"detail": "Invalid or expired sign-in attempt", "errors": [{"field": "state", "message": "Invalid or expired sign-in attempt"}]})),
        (status = 404, description = "Unknown provider", body = ErrorBody, example = json!({"detail": "Provider not found"})),
        (status = 422, description = "A parameter of the wrong type", body = TypeErrorBody),
    )
)]
pub async fn callback(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return unprocessable(&["query".into()], "Invalid query string");
    };
    let input = json!({
        "provider": name,
        "state": query.state,
        "code": query.code,
        "error": query.error,
    });
    let op = &OPERATIONS.finish_oidc_sign_in;
    redirect(&state, op, caller, json!({ "input": input })).await
}

/// Exchange a sign-in code
///
/// The `code` the callback sent the browser back with, for a session (the login shape, `amr`
/// `["oidc"]`). An account with TOTP on answers 403 `MFA_REQUIRED`, as a password login does.
#[utoipa::path(
    post, path = "/api/auth/oidc/exchange", tag = "auth", operation_id = "exchangeOidcCode",
    request_body = ExchangeBody,
    responses(
        (status = 200, description = "Signed in", body = Token),
        (status = 400, description = "Unknown, expired or used code", body = ValidationErrorBody,
            example = json!({"detail": "Invalid or expired code.", "errors": [{"field": "code", "message": "Invalid or expired code."}]})),
        (status = 403, description = "A second factor is due (`MFA_REQUIRED`), or the account is disabled or its email not verified (with `REQUIRE_VERIFIED_EMAIL`)", body = LoginRefusedBody),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many attempts; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn exchange(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<ExchangeBody>,
) -> Response {
    let variables = json!({ "code": body.code.unwrap_or_default() });
    let op = &OPERATIONS.exchange_oidc_code;
    forward(&state, op, caller, variables, StatusCode::OK).await
}

/// List my linked identities
///
/// The identities at external providers that sign in to this account, oldest first.
#[utoipa::path(
    get, path = "/api/users/me/identities", tag = "users", operation_id = "listMyIdentities",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The identities, oldest first", body = Vec<IdentityOut>),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Response {
    let op = &OPERATIONS.my_identities;
    forward(&state, op, caller, json!({}), StatusCode::OK).await
}

/// Link an identity
///
/// The provider's page to send the browser to; its callback links the identity to this
/// account and comes back to `redirect_to` with `?linked={name}` (an identity linked to
/// another account: `?error=identity_in_use`). The account's address is told by mail.
#[utoipa::path(
    post, path = "/api/users/me/identities/{name}", tag = "users", operation_id = "linkIdentity",
    security(("bearer" = []), ("oauth2" = [])),
    params(("name" = String, Path, description = "The provider's name")),
    request_body = LinkBody,
    responses(
        (status = 200, description = "Where to send the browser", body = AuthorizeUrlOut),
        (status = 400, description = "`redirect_to` missing or not under `OIDC_REDIRECT_ALLOWLIST`", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "Unknown provider", body = ErrorBody, example = json!({"detail": "Provider not found"})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
        (status = 429, description = "Too many attempts; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn link(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<LinkBody>,
) -> Response {
    let variables = json!({
        "provider": name,
        "redirectTo": body.redirect_to.unwrap_or_default(),
    });
    match run(&state, &OPERATIONS.link_identity, caller, variables).await {
        Ok(url) => (StatusCode::OK, axum::Json(json!({ "authorize_url": url }))).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Unlink an identity
///
/// Refused (409) when it is the account's last way to sign in: no password, no passkey and
/// no other identity.
#[utoipa::path(
    delete, path = "/api/users/me/identities/{name}", tag = "users", operation_id = "unlinkIdentity",
    security(("bearer" = []), ("oauth2" = [])),
    params(("name" = String, Path, description = "The provider's name")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "No identity of that provider is linked", body = ErrorBody, example = json!({"detail": "Identity not found"})),
        (status = 409, description = "The last way to sign in", body = ErrorBody, example = json!({"detail": "Cannot remove your last way to sign in"})),
    )
)]
pub async fn unlink(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
) -> Response {
    let op = &OPERATIONS.unlink_identity;
    forward(
        &state,
        op,
        caller,
        json!({ "provider": name }),
        StatusCode::NO_CONTENT,
    )
    .await
}

/// Runs `op`, whose result is a URL, and answers 302 to it.
async fn redirect(state: &AppState, op: &Operation, caller: Caller, variables: Value) -> Response {
    match run(state, op, caller, variables).await {
        Ok(async_graphql::Value::String(url)) => match HeaderValue::try_from(url) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Ok(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(problem) => problem.into_response(),
    }
}
