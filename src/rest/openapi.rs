//! The OpenAPI 3.1 description of the REST paths (`GET /openapi.json`, Swagger UI at `/docs`,
//! `nta-user-svc export-openapi`, and the committed `openapi.json`).

use utoipa::{
    Modify, OpenApi,
    openapi::security::{
        Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
    },
};

use axum::{Router, http::header, routing::get};
use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

use super::{
    accounts, admin, mfa, oidc, passkeys, profiles, recovery, schemas, sessions, webhooks,
};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "nta-user-svc",
        description = "User accounts, login (JWT), profiles and profile photos over REST; the \
            same operations are available in GraphQL at `/graphql`.",
        license(name = "MIT", identifier = "MIT"),
        contact(name = "nta-user-svc maintainers"),
    ),
    servers((url = "/", description = "This server")),
    paths(
        accounts::register,
        accounts::register_alias,
        accounts::login,
        accounts::token,
        sessions::refresh,
        sessions::logout,
        sessions::logout_all,
        recovery::verify_email,
        recovery::undo_email_change,
        recovery::forgot_password,
        recovery::reset_password,
        accounts::get_account,
        accounts::update_account,
        recovery::request_verification,
        sessions::change_password,
        sessions::delete_account,
        sessions::my_sessions,
        sessions::revoke_session,
        mfa::my_mfa,
        mfa::start_totp,
        mfa::confirm_totp,
        mfa::disable_totp,
        mfa::regenerate_codes,
        mfa::verify,
        passkeys::registration_options,
        passkeys::add,
        passkeys::list,
        passkeys::delete,
        passkeys::sign_in_options,
        passkeys::sign_in,
        oidc::providers,
        oidc::authorize,
        oidc::callback,
        oidc::exchange,
        oidc::list,
        oidc::link,
        oidc::unlink,
        profiles::create_profile,
        profiles::my_profile,
        profiles::public_profile,
        profiles::update_profile,
        profiles::delete_profile,
        profiles::upload_photo,
        profiles::delete_photo,
        profiles::serve_upload,
        admin::my_security_events,
        admin::list_users,
        admin::get_user,
        admin::disable_user,
        admin::enable_user,
        admin::set_user_role,
        admin::revoke_user_sessions,
        admin::delete_user,
        admin::reset_user_mfa,
        admin::audit_events,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::delete,
        webhooks::enable,
        webhooks::disable,
        webhooks::rotate_secret,
        webhooks::deliveries,
        super::health::healthz,
        super::health::readyz,
    ),
    components(schemas(
        schemas::FieldErrorBody,
        schemas::TypeErrorItem,
        accounts::RegisterBody,
        accounts::LoginBody,
        accounts::LoginForm,
        accounts::UpdateAccountBody,
        sessions::RefreshBody,
        sessions::ChangePasswordBody,
        sessions::DeleteAccountBody,
        recovery::TokenBody,
        recovery::ForgotBody,
        recovery::ResetBody,
        crate::graphql::ProfileInput,
        admin::RoleBody,
        mfa::MfaPasswordBody,
        mfa::MfaCodeBody,
        mfa::DisableTotpBody,
        mfa::VerifyMfaBody,
        passkeys::AddPasskeyBody,
        passkeys::PasskeySignInBody,
        oidc::ExchangeBody,
        oidc::LinkBody,
        webhooks::WebhookBody,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Registration, login, refresh, logout, password reset and email verification"),
        (name = "users", description = "The account: its view, password and deletion"),
        (name = "sessions", description = "The account's signed-in sessions"),
        (name = "mfa", description = "Two-factor authentication: TOTP and recovery codes"),
        (name = "passkeys", description = "Passkeys (WebAuthn): the account's, and adding one"),
        (name = "profiles", description = "Profiles: the caller's own, and others' public view"),
        (name = "photos", description = "Profile photos"),
        (name = "admin", description = "Administration (admins only): accounts and the audit log"),
        (name = "health", description = "Liveness and readiness"),
    ),
)]
pub struct ApiDoc;

/// `bearer` for a token pasted by hand; `oauth2` (password flow against the login path) for
/// Swagger UI's Authorize button. Either is accepted.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A token from `POST /api/auth/login`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::Password(Password::new(
                    "/api/auth/token",
                    Scopes::new(),
                ))],
                "Email as username, and the password",
            )),
        );
    }
}

/// The document, as served and committed.
pub fn json() -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    complete(&mut doc);
    let mut json = serde_json::to_string_pretty(&doc).expect("the OpenAPI document serialises");
    json.push('\n');
    json
}

/// What every path can answer besides its own statuses, said once here rather than on each
/// handler: 405 for another method, 500, 503 when a backend is down, and for a JSON body
/// 413 (over 1 MiB) and 415 (not JSON). Response bodies list every key they always carry,
/// null or not; photos are binary, with their caching headers.
fn complete(doc: &mut serde_json::Value) {
    use serde_json::{Value, json};
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    let paths = doc["paths"].as_object_mut().expect("paths");
    for item in paths.values_mut() {
        for operation in item.as_object_mut().expect("path item").values_mut() {
            let json_body = operation["requestBody"]["content"]
                .get("application/json")
                .is_some();
            let responses = operation["responses"].as_object_mut().expect("responses");
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status)
                    .or_insert_with(|| error(description));
            };
            if json_body {
                add("413", "The body is over 1 MiB");
                add(
                    "415",
                    "The body is not JSON (`Content-Type: application/json`)",
                );
            }
            add("405", "The path does not take this method");
            add(
                "500",
                "Something unexpected failed; the details are in the server log",
            );
            add(
                "503",
                "The database (or another required backend) cannot be reached, or the server \
                 is too busy to hash a password now (`Server busy`, with `Retry-After`); retry \
                 later",
            );
        }
    }
    exact(doc);
    // Anyone's profile as others see it: the profile without `email`.
    let public = &mut doc["paths"]["/api/profiles/{user_id}"]["get"]["responses"]["200"];
    public["content"]["application/json"]["schema"] =
        json!({"$ref": "#/components/schemas/ProfilePublic"});
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("schemas");
    // On REST the own profile always has its email.
    schemas["ProfileOut"]["description"] = json!("The caller's own profile, with their email.");
    schemas["ProfileOut"]["properties"]["email"]["description"] = json!("The owner's email.");
    let mut profile_public = schemas["ProfileOut"].clone();
    profile_public["description"] = json!("Anyone's profile as other users see it: no email.");
    if let Some(properties) = profile_public["properties"].as_object_mut() {
        properties.shift_remove("email");
    }
    if let Some(example) = profile_public["example"].as_object_mut() {
        example.shift_remove("email");
    }
    schemas.insert("ProfilePublic".into(), profile_public);
    for name in [
        "UserCreated",
        "Token",
        "UserOut",
        "ProfileOut",
        "ProfilePublic",
        "SessionOut",
        "AdminUserOut",
        "AdminUserPage",
        "AuditEventOut",
        "AuditEventPage",
        "SessionsEnded",
        "ErrorBody",
    ] {
        let schema = &mut schemas[name];
        let keys: Vec<Value> = schema["properties"]
            .as_object()
            .map(|p| p.keys().cloned().map(Value::from).collect())
            .unwrap_or_default();
        schema["required"] = Value::Array(keys);
    }
    let photo = &mut doc["paths"]["/uploads/{user_id}/{file}"]["get"]["responses"];
    let headers = json!({
        "ETag": {"description": "The file's name: a stored photo never changes", "schema": {"type": "string"}},
        "Cache-Control": {"description": "`public, max-age=86400, immutable`", "schema": {"type": "string"}}
    });
    for content in photo["200"]["content"]
        .as_object_mut()
        .expect("photo types")
        .values_mut()
    {
        content["schema"] = json!({"type": "string", "format": "binary"});
    }
    photo["200"]["headers"] = headers.clone();
    photo["304"]["headers"] = headers;
}

/// The document as exact as the server: a choice of values is an `enum` (not a pattern), a
/// photo's `size` is 64 or 256, an audit `action` one of the actions, a webhook's events
/// the event types, free text the characters it may hold, and the bodies whose unknown
/// fields are refused say `additionalProperties: false`.
fn exact(doc: &mut serde_json::Value) {
    use serde_json::{Value, json};
    // `^(a|b)$` patterns (utoipa takes no enum for a string parameter) become enums.
    fn enums(value: &mut Value) {
        match value {
            Value::Object(map) => {
                let choices = map
                    .get("pattern")
                    .and_then(Value::as_str)
                    .and_then(|p| p.strip_prefix("^(")?.strip_suffix(")$").map(str::to_owned))
                    .filter(|p| {
                        p.chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '|')
                    });
                if let Some(choices) = choices {
                    map.remove("pattern");
                    map.insert("enum".into(), json!(choices.split('|').collect::<Vec<_>>()));
                }
                map.values_mut().for_each(enums);
            }
            Value::Array(items) => items.iter_mut().for_each(enums),
            _ => {}
        }
    }
    enums(doc);
    let actions: Vec<String> = <crate::graphql::AuditAction as async_graphql::EnumType>::items()
        .iter()
        .map(|item| item.name.to_ascii_lowercase())
        .collect();
    let parameters = |doc: &mut Value, path: &str| -> Vec<Value> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    for (path, name, choices) in [
        ("/uploads/{user_id}/{file}", "size", json!([64, 256])),
        ("/api/admin/audit", "action", json!(actions)),
    ] {
        let mut list = parameters(doc, path);
        for parameter in list.iter_mut().filter(|p| p["name"] == name) {
            parameter["schema"]["enum"] = choices.clone();
        }
        doc["paths"][path]["get"]["parameters"] = Value::Array(list);
    }
    for schema in ["ProfileBody", "UpdateAccountBody"] {
        doc["components"]["schemas"][schema]["additionalProperties"] = json!(false);
    }
    // Free text is trimmed, then its length is counted and it may hold no control character
    // (the bio keeps tab and line breaks). A `maxLength` on the raw string would refuse what
    // the server takes (a name of 100 characters and a trailing space), so the pattern says
    // it all: any whitespace around at most that many characters of no control.
    const SPACE: &str =
        r"[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*";
    const LINE: &str = r"[^\u0000-\u001f\u007f]";
    const LINES: &str = r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]";
    // Every bounded profile field without a rule of its own (the phone has one) is free
    // text; only the bio has lines.
    let profile_text: Vec<String> = doc["components"]["schemas"]["ProfileBody"]["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, p)| p.get("maxLength").is_some() && p.get("pattern").is_none())
        .map(|(field, _)| field.clone())
        .collect();
    let others = [
        ("RegisterBody", "name"),
        ("UpdateAccountBody", "name"),
        ("AddPasskeyBody", "name"),
        ("WebhookBody", "description"),
    ];
    let text = profile_text
        .iter()
        .map(|field| ("ProfileBody", field.as_str()))
        .chain(others);
    for (schema, field) in text {
        let allowed = if (schema, field) == ("ProfileBody", "bio") {
            LINES
        } else {
            LINE
        };
        let property = &mut doc["components"]["schemas"][schema]["properties"][field];
        let max = property["maxLength"]
            .as_u64()
            .expect("free text has a maxLength");
        property["pattern"] = json!(format!("^{SPACE}{allowed}{{0,{max}}}{SPACE}$"));
        if let Some(property) = property.as_object_mut() {
            property.remove("maxLength");
        }
    }
    let mut events: Vec<&str> = crate::graphql::WEBHOOK_EVENT_TYPES.to_vec();
    events.push("*");
    doc["components"]["schemas"]["WebhookBody"]["properties"]["events"]["items"]["enum"] =
        json!(events);
}

/// `/openapi.json` and Swagger UI at `/docs`, with its assets served from the binary (no
/// internet needed) and no external validator badge. The Authorize button runs the OAuth2
/// password flow against `POST /api/auth/login`.
pub fn docs() -> Router<AppState> {
    let openapi = json();
    let swagger = SwaggerUi::new("/docs").config(
        SwaggerConfig::new(["/openapi.json"])
            .validator_url("none")
            // The token stays in the page's memory, not in localStorage where any script
            // of the origin could read it later.
            .persist_authorization(false)
            .try_it_out_enabled(true),
    );
    Router::from(swagger).route(
        "/openapi.json",
        get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi) }),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_openapi_matches_the_code() {
        let committed = include_str!("../../openapi.json");
        assert!(
            committed == super::json(),
            "openapi.json is out of date: run `cargo run -- export-openapi > openapi.json`"
        );
    }
}
