//! The fixed GraphQL operations behind the REST paths, parsed once at start-up.
//!
//! Each selects its root field as `result`, and aliases camelCase fields to the snake_case
//! keys of the REST contract, so the REST body is `data.result` as it stands.

use std::sync::LazyLock;

use async_graphql::{
    Request,
    parser::types::{DocumentOperations, ExecutableDocument},
};

use crate::graphql::Profile;

const TOKEN_FIELDS: &str = "access_token: accessToken token_type: tokenType \
    expires_in: expiresIn refresh_token: refreshToken refresh_expires_in: refreshExpiresIn";
const ACCOUNT_FIELDS: &str =
    "id email email_verified: emailVerified name created_at: createdAt updated_at: updatedAt";

/// An account as the admin sees it, in the documented key order.
const ADMIN_USER_FIELDS: &str = "id email name role email_verified: emailVerified disabled \
    mfa_enabled: mfaEnabled created_at: createdAt updated_at: updatedAt \
    last_login_at: lastLoginAt";
const WEBHOOK_FIELDS: &str = "id url events description enabled created_at: createdAt";
/// A new endpoint: its secret too, in the documented key order.
const CREATED_WEBHOOK_FIELDS: &str =
    "id url events description secret enabled created_at: createdAt";
const PASSKEY_FIELDS: &str = "id name created_at: createdAt last_used_at: lastUsedAt";
const AUDIT_EVENT_FIELDS: &str = "id created_at: createdAt action actor_id: actorId \
    subject_id: subjectId ip request_id: requestId details";
/// The selection of a GraphQL type's fields as the REST contract names them: the fields its
/// OpenAPI schema (`ToSchema`, the same struct) has, in order, each aliased to its
/// snake_case key (`user_id: userId`), but those in `except`.
fn rest_fields_of<T: utoipa::PartialSchema>(except: &[&str]) -> String {
    use utoipa::openapi::{RefOr, schema::Schema};
    let RefOr::T(Schema::Object(object)) = T::schema() else {
        panic!("a REST answer's type is an object");
    };
    object
        .properties
        .keys()
        .filter(|key| !except.contains(&key.as_str()))
        .map(|key| match camel_case(key) {
            camel if camel == *key => camel,
            camel => format!("{key}: {camel}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `profile_photo_path` → `profilePhotoPath`, as async-graphql names fields.
fn camel_case(snake: &str) -> String {
    let mut parts = snake.split('_');
    let mut out = parts.next().unwrap_or_default().to_owned();
    for part in parts {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// What a page of a connection is read as: `{total, page_info, edges: [{node}]}`.
fn page_of(fields: &str) -> String {
    format!(
        "total: totalCount page_info: pageInfo {{ has_next_page: hasNextPage \
         end_cursor: endCursor }} edges {{ node {{ {fields} }} }}"
    )
}

pub struct Operation {
    source: String,
    document: ExecutableDocument,
    /// Its name, as the metrics label of its runs.
    label: &'static str,
}

impl Operation {
    /// Parses the operation (one, named), and keeps its name as a metrics label for good.
    fn parse(source: String) -> Self {
        let document = async_graphql::parser::parse_query(&source)
            .unwrap_or_else(|e| panic!("REST operation does not parse: {e}\n{source}"));
        let DocumentOperations::Multiple(operations) = &document.operations else {
            panic!("a REST operation has a name:\n{source}");
        };
        let name = operations.keys().next().expect("one operation").to_string();
        crate::monitoring::pin_operation_name(&name);
        // Made once per operation, in the static `OPERATIONS`: it lives as long anyway.
        let label = Box::leak(name.into_boxed_str());
        Self {
            source,
            document,
            label,
        }
    }

    /// The metrics label of its runs: its name.
    pub fn label(&self) -> &'static str {
        self.label
    }

    /// A request for this operation that skips parsing.
    pub fn request(&self) -> Request {
        let mut request = Request::new(self.source.as_str());
        request.set_parsed_query(self.document.clone());
        request
    }
}

pub struct Operations {
    pub register: Operation,
    pub login: Operation,
    pub account: Operation,
    pub update_account: Operation,
    pub create_profile: Operation,
    pub my_profile: Operation,
    pub public_profile: Operation,
    pub update_profile: Operation,
    pub delete_profile: Operation,
    pub upload_photo: Operation,
    pub delete_photo: Operation,
    pub refresh: Operation,
    pub logout: Operation,
    pub logout_all: Operation,
    pub sessions: Operation,
    pub revoke_session: Operation,
    pub change_password: Operation,
    pub delete_account: Operation,
    pub verify_email: Operation,
    pub undo_email_change: Operation,
    pub request_verification: Operation,
    pub forgot_password: Operation,
    pub reset_password: Operation,
    pub admin_users: Operation,
    pub admin_user: Operation,
    pub disable_user: Operation,
    pub enable_user: Operation,
    pub set_user_role: Operation,
    pub revoke_user_sessions: Operation,
    pub delete_user: Operation,
    pub audit_events: Operation,
    pub my_security_events: Operation,
    pub my_mfa: Operation,
    pub start_totp: Operation,
    pub confirm_totp: Operation,
    pub disable_totp: Operation,
    pub regenerate_codes: Operation,
    pub verify_mfa: Operation,
    pub reset_user_mfa: Operation,
    pub start_passkey_registration: Operation,
    pub finish_passkey_registration: Operation,
    pub my_passkeys: Operation,
    pub delete_passkey: Operation,
    pub start_passkey_sign_in: Operation,
    pub finish_passkey_sign_in: Operation,
    pub oidc_providers: Operation,
    pub start_oidc_sign_in: Operation,
    pub finish_oidc_sign_in: Operation,
    pub exchange_oidc_code: Operation,
    pub my_identities: Operation,
    pub link_identity: Operation,
    pub unlink_identity: Operation,
    pub create_webhook: Operation,
    pub webhooks: Operation,
    pub webhook: Operation,
    pub delete_webhook: Operation,
    pub enable_webhook: Operation,
    pub disable_webhook: Operation,
    pub rotate_webhook_secret: Operation,
    pub webhook_deliveries: Operation,
}

impl Operations {
    fn new() -> Self {
        // ProfileOut: the GraphQL `Profile`'s own fields, in order; ProfilePublic the same
        // without `email`.
        let profile_fields = rest_fields_of::<Profile>(&[]);
        let public_profile_fields = rest_fields_of::<Profile>(&["email"]);
        Self {
            register: Operation::parse(
                "mutation Register($input: RegisterInput!) { \
                   result: register(input: $input) { id email created_at: createdAt } }"
                    .into(),
            ),
            login: Operation::parse(format!(
                "mutation Login($input: LoginInput!) {{ \
                   result: login(input: $input) {{ {TOKEN_FIELDS} }} }}"
            )),
            account: Operation::parse(format!(
                "query Account {{ result: me {{ {ACCOUNT_FIELDS} }} }}"
            )),
            update_account: Operation::parse(format!(
                "mutation UpdateAccount($input: UpdateMeInput!) {{ \
                   result: updateMe(input: $input) {{ {ACCOUNT_FIELDS} }} }}"
            )),
            create_profile: Operation::parse(format!(
                "mutation CreateProfile($input: ProfileInput!) {{ \
                   result: createProfile(input: $input) {{ {profile_fields} }} }}"
            )),
            my_profile: Operation::parse(format!(
                "query MyProfile {{ result: myProfile {{ {profile_fields} }} }}"
            )),
            public_profile: Operation::parse(format!(
                "query PublicProfile($userId: Int!) {{ \
                   result: profile(userId: $userId) {{ {public_profile_fields} }} }}"
            )),
            update_profile: Operation::parse(format!(
                "mutation UpdateProfile($input: ProfileInput!) {{ \
                   result: updateProfile(input: $input) {{ {profile_fields} }} }}"
            )),
            delete_profile: Operation::parse(
                "mutation DeleteProfile { result: deleteProfile }".into(),
            ),
            upload_photo: Operation::parse(format!(
                "mutation UploadPhoto($file: Upload!) {{ \
                   result: uploadProfilePhoto(file: $file) {{ {profile_fields} }} }}"
            )),
            delete_photo: Operation::parse(
                "mutation DeletePhoto { result: deleteProfilePhoto { id } }".into(),
            ),
            refresh: Operation::parse(format!(
                "mutation Refresh($input: RefreshInput!) {{ \
                   result: refresh(input: $input) {{ {TOKEN_FIELDS} }} }}"
            )),
            logout: Operation::parse("mutation Logout { result: logout }".into()),
            logout_all: Operation::parse("mutation LogoutAll { result: logoutAll }".into()),
            sessions: Operation::parse(
                "query MySessions { result: mySessions { id created_at: createdAt \
                   last_used_at: lastUsedAt expires_at: expiresAt user_agent: userAgent ip \
                   current } }"
                    .into(),
            ),
            revoke_session: Operation::parse(
                "mutation RevokeSession($id: ID!) { result: revokeSession(id: $id) }".into(),
            ),
            change_password: Operation::parse(
                "mutation ChangePassword($input: ChangePasswordInput!) { \
                   result: changePassword(input: $input) }"
                    .into(),
            ),
            delete_account: Operation::parse(
                "mutation DeleteAccount($input: DeleteAccountInput!) { \
                   result: deleteAccount(input: $input) }"
                    .into(),
            ),
            verify_email: Operation::parse(
                "mutation VerifyEmail($token: String!) { result: verifyEmail(token: $token) }"
                    .into(),
            ),
            undo_email_change: Operation::parse(
                "mutation UndoEmailChange($token: String!) { \
                   result: undoEmailChange(token: $token) }"
                    .into(),
            ),
            request_verification: Operation::parse(
                "mutation RequestVerification { result: requestEmailVerification }".into(),
            ),
            forgot_password: Operation::parse(
                "mutation ForgotPassword($email: String!) { result: forgotPassword(email: $email) }"
                    .into(),
            ),
            reset_password: Operation::parse(
                "mutation ResetPassword($input: ResetPasswordInput!) { \
                   result: resetPassword(input: $input) }"
                    .into(),
            ),
            admin_users: Operation::parse(format!(
                "query AdminUsers($first: Int, $after: String, $search: String, \
                   $status: UserStatus, $role: Role) {{ result: users(first: $first, \
                   after: $after, search: $search, status: $status, role: $role) {{ {} }} }}",
                page_of(ADMIN_USER_FIELDS)
            )),
            admin_user: Operation::parse(format!(
                "query AdminUser($id: Int!) {{ result: user(id: $id) {{ {ADMIN_USER_FIELDS} }} }}"
            )),
            disable_user: Operation::parse(format!(
                "mutation DisableUser($id: Int!) {{ \
                   result: disableUser(id: $id) {{ {ADMIN_USER_FIELDS} }} }}"
            )),
            enable_user: Operation::parse(format!(
                "mutation EnableUser($id: Int!) {{ \
                   result: enableUser(id: $id) {{ {ADMIN_USER_FIELDS} }} }}"
            )),
            set_user_role: Operation::parse(format!(
                "mutation SetUserRole($id: Int!, $role: Role!) {{ \
                   result: setUserRole(id: $id, role: $role) {{ {ADMIN_USER_FIELDS} }} }}"
            )),
            revoke_user_sessions: Operation::parse(
                "mutation RevokeUserSessions($id: Int!) { result: revokeUserSessions(id: $id) }"
                    .into(),
            ),
            delete_user: Operation::parse(
                "mutation DeleteUser($id: Int!) { result: deleteUser(id: $id) }".into(),
            ),
            audit_events: Operation::parse(format!(
                "query AuditEvents($first: Int, $after: String, $userId: Int, \
                   $action: AuditAction) {{ result: auditEvents(first: $first, after: $after, \
                   userId: $userId, action: $action) {{ {} }} }}",
                page_of(AUDIT_EVENT_FIELDS)
            )),
            my_security_events: Operation::parse(format!(
                "query MySecurityEvents($first: Int, $after: String) {{ \
                   result: mySecurityEvents(first: $first, after: $after) {{ {} }} }}",
                page_of(AUDIT_EVENT_FIELDS)
            )),
            my_mfa: Operation::parse(
                "query MyMfa { result: myMfa { totp \
                   recovery_codes_left: recoveryCodesLeft passkeys } }"
                    .into(),
            ),
            start_totp: Operation::parse(
                "mutation StartTotpEnrollment($password: String!) { \
                   result: startTotpEnrollment(password: $password) { \
                   secret otpauth_uri: otpauthUri } }"
                    .into(),
            ),
            confirm_totp: Operation::parse(
                "mutation ConfirmTotpEnrollment($code: String!) { \
                   result: confirmTotpEnrollment(code: $code) { recovery_codes: codes } }"
                    .into(),
            ),
            disable_totp: Operation::parse(
                "mutation DisableTotp($input: DisableTotpInput!) { \
                   result: disableTotp(input: $input) }"
                    .into(),
            ),
            regenerate_codes: Operation::parse(
                "mutation RegenerateRecoveryCodes($password: String!) { \
                   result: regenerateRecoveryCodes(password: $password) { \
                   recovery_codes: codes } }"
                    .into(),
            ),
            verify_mfa: Operation::parse(format!(
                "mutation VerifyMfa($input: VerifyMfaInput!) {{ \
                   result: verifyMfa(input: $input) {{ {TOKEN_FIELDS} }} }}"
            )),
            reset_user_mfa: Operation::parse(
                "mutation ResetUserMfa($id: Int!) { result: resetUserMfa(id: $id) }".into(),
            ),
            start_passkey_registration: Operation::parse(
                "mutation StartPasskeyRegistration { result: startPasskeyRegistration { \
                   flow_id: flowId options } }"
                    .into(),
            ),
            finish_passkey_registration: Operation::parse(format!(
                "mutation FinishPasskeyRegistration($input: FinishPasskeyRegistrationInput!) {{ \
                   result: finishPasskeyRegistration(input: $input) {{ {PASSKEY_FIELDS} }} }}"
            )),
            my_passkeys: Operation::parse(format!(
                "query MyPasskeys {{ result: myPasskeys {{ {PASSKEY_FIELDS} }} }}"
            )),
            delete_passkey: Operation::parse(
                "mutation DeletePasskey($id: ID!) { result: deletePasskey(id: $id) }".into(),
            ),
            start_passkey_sign_in: Operation::parse(
                "mutation StartPasskeySignIn { result: startPasskeySignIn { \
                   flow_id: flowId options } }"
                    .into(),
            ),
            finish_passkey_sign_in: Operation::parse(format!(
                "mutation FinishPasskeySignIn($input: FinishPasskeySignInInput!) {{ \
                   result: finishPasskeySignIn(input: $input) {{ {TOKEN_FIELDS} }} }}"
            )),
            oidc_providers: Operation::parse(
                "query OidcProviders { result: oidcProviders { name \
                   display_name: displayName } }"
                    .into(),
            ),
            start_oidc_sign_in: Operation::parse(
                "mutation StartOidcSignIn($provider: String!, $redirectTo: String!) { \
                   result: startOidcSignIn(provider: $provider, redirectTo: $redirectTo) }"
                    .into(),
            ),
            finish_oidc_sign_in: Operation::parse(
                "mutation FinishOidcSignIn($input: FinishOidcSignInInput!) { \
                   result: finishOidcSignIn(input: $input) }"
                    .into(),
            ),
            exchange_oidc_code: Operation::parse(format!(
                "mutation ExchangeOidcCode($code: String!) {{ \
                   result: exchangeOidcCode(code: $code) {{ {TOKEN_FIELDS} }} }}"
            )),
            my_identities: Operation::parse(
                "query MyIdentities { result: myIdentities { provider subject email \
                   linked_at: linkedAt } }"
                    .into(),
            ),
            link_identity: Operation::parse(
                "mutation LinkIdentity($provider: String!, $redirectTo: String!) { \
                   result: linkIdentity(provider: $provider, redirectTo: $redirectTo) }"
                    .into(),
            ),
            unlink_identity: Operation::parse(
                "mutation UnlinkIdentity($provider: String!) { \
                   result: unlinkIdentity(provider: $provider) }"
                    .into(),
            ),
            create_webhook: Operation::parse(format!(
                "mutation CreateWebhook($input: CreateWebhookInput!) {{ \
                   result: createWebhook(input: $input) {{ {CREATED_WEBHOOK_FIELDS} }} }}"
            )),
            webhooks: Operation::parse(format!(
                "query Webhooks {{ result: webhooks {{ {WEBHOOK_FIELDS} }} }}"
            )),
            webhook: Operation::parse(format!(
                "query Webhook($id: ID!) {{ result: webhook(id: $id) {{ {WEBHOOK_FIELDS} }} }}"
            )),
            enable_webhook: Operation::parse(format!(
                "mutation EnableWebhook($id: ID!) {{ \
                   result: enableWebhook(id: $id) {{ {WEBHOOK_FIELDS} }} }}"
            )),
            disable_webhook: Operation::parse(format!(
                "mutation DisableWebhook($id: ID!) {{ \
                   result: disableWebhook(id: $id) {{ {WEBHOOK_FIELDS} }} }}"
            )),
            delete_webhook: Operation::parse(
                "mutation DeleteWebhook($id: ID!) { result: deleteWebhook(id: $id) }".into(),
            ),
            rotate_webhook_secret: Operation::parse(
                "mutation RotateWebhookSecret($id: ID!) { result: rotateWebhookSecret(id: $id) }"
                    .into(),
            ),
            webhook_deliveries: Operation::parse(
                "query WebhookDeliveries($id: ID!) { result: webhookDeliveries(id: $id) { id \
                   event_id: eventId type attempt status response_status: responseStatus \
                   created_at: createdAt } }"
                    .into(),
            ),
        }
    }
}

/// The operations, parsed on first use; [`force`] parses them at start-up (a mistake in one
/// then stops the start, not a request).
pub static OPERATIONS: LazyLock<Operations> = LazyLock::new(Operations::new);

/// Parses the operations now (and pins their names as metrics labels).
pub fn force() {
    LazyLock::force(&OPERATIONS);
}

/// Every REST operation is checked against the schema itself, with variables of the shape its
/// handler sends (built from the REST body types where there is one): a misspelt field, a
/// renamed argument or a variable of the wrong type fails here, not as a 500 at run time.
#[cfg(test)]
mod tests {
    use async_graphql::{
        Response, UploadValue, Value, Variables,
        extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute},
    };
    use serde_json::json;

    use super::*;
    use crate::{graphql::ProfileInput, rest::accounts::UpdateAccountBody};

    /// Stops every request after validation: no resolver runs, so no data is needed.
    struct ValidateOnly;

    impl ExtensionFactory for ValidateOnly {
        fn create(&self) -> std::sync::Arc<dyn Extension> {
            std::sync::Arc::new(ValidateOnly)
        }
    }

    #[async_graphql::async_trait::async_trait]
    impl Extension for ValidateOnly {
        async fn execute(
            &self,
            _ctx: &ExtensionContext<'_>,
            _operation_name: Option<&str>,
            _next: NextExecute<'_>,
        ) -> Response {
            Response::new(Value::Null)
        }
    }

    fn errors_of(op: &Operation, variables: serde_json::Value) -> Vec<String> {
        let schema = crate::graphql::builder().extension(ValidateOnly).finish();
        let mut request = op.request().variables(Variables::from_json(variables));
        if op.source.contains("$file") {
            request.set_upload(
                "variables.file",
                UploadValue {
                    filename: "a.png".into(),
                    content_type: None,
                    content: Vec::new().into(),
                },
            );
        }
        let response = futures_util::FutureExt::now_or_never(schema.execute(request))
            .expect("validation does not wait");
        response.errors.iter().map(|e| e.message.clone()).collect()
    }

    fn via<T: serde::de::DeserializeOwned + serde::Serialize>(
        body: serde_json::Value,
    ) -> serde_json::Value {
        let typed: T = serde_json::from_value(body).unwrap();
        serde_json::to_value(typed).unwrap()
    }

    #[test]
    fn every_rest_operation_is_valid_against_the_schema() {
        let ops = &*OPERATIONS;
        let profile = via::<ProfileInput>(json!({
            "name": "A", "phone": "+100200300", "bio": null, "hobby": "h",
            "occupation": "o", "location": "l"
        }));
        let account = via::<UpdateAccountBody>(json!({"email": "a@b.c", "name": null}));
        let credentials = json!({"email": "a@b.c", "password": "StrongPass123"});
        let page = json!({"first": 20, "after": "dTox"});
        let cases: [(&str, &Operation, serde_json::Value); 60] = [
            (
                "register",
                &ops.register,
                json!({"input": {"email": "a@b.c", "password": "p", "name": null}}),
            ),
            ("login", &ops.login, json!({ "input": credentials })),
            ("account", &ops.account, json!({})),
            (
                "update_account",
                &ops.update_account,
                json!({ "input": account }),
            ),
            (
                "create_profile",
                &ops.create_profile,
                json!({ "input": profile }),
            ),
            ("my_profile", &ops.my_profile, json!({})),
            ("public_profile", &ops.public_profile, json!({"userId": 7})),
            (
                "update_profile",
                &ops.update_profile,
                json!({ "input": profile }),
            ),
            ("delete_profile", &ops.delete_profile, json!({})),
            ("upload_photo", &ops.upload_photo, json!({"file": null})),
            ("delete_photo", &ops.delete_photo, json!({})),
            (
                "refresh",
                &ops.refresh,
                json!({"input": {"refreshToken": "t"}}),
            ),
            ("logout", &ops.logout, json!({})),
            ("logout_all", &ops.logout_all, json!({})),
            ("sessions", &ops.sessions, json!({})),
            (
                "revoke_session",
                &ops.revoke_session,
                json!({"id": "6f1c3a4e-2b7d-4c1e-9a8f-0d2e4b6c8a10"}),
            ),
            (
                "change_password",
                &ops.change_password,
                json!({"input": {"currentPassword": "a", "newPassword": "b"}}),
            ),
            (
                "delete_account",
                &ops.delete_account,
                json!({"input": {"password": "a"}}),
            ),
            ("verify_email", &ops.verify_email, json!({"token": "t"})),
            (
                "undo_email_change",
                &ops.undo_email_change,
                json!({"token": "t"}),
            ),
            ("request_verification", &ops.request_verification, json!({})),
            (
                "forgot_password",
                &ops.forgot_password,
                json!({"email": "a@b.c"}),
            ),
            (
                "reset_password",
                &ops.reset_password,
                json!({"input": {"token": "t", "newPassword": "p"}}),
            ),
            (
                "admin_users",
                &ops.admin_users,
                json!({"first": 5, "after": "dTox", "search": "a", "status": "ACTIVE", "role": "ADMIN"}),
            ),
            ("admin_user", &ops.admin_user, json!({"id": 7})),
            ("disable_user", &ops.disable_user, json!({"id": 7})),
            ("enable_user", &ops.enable_user, json!({"id": 7})),
            (
                "set_user_role",
                &ops.set_user_role,
                json!({"id": 7, "role": "USER"}),
            ),
            (
                "revoke_user_sessions",
                &ops.revoke_user_sessions,
                json!({"id": 7}),
            ),
            ("delete_user", &ops.delete_user, json!({"id": 7})),
            (
                "audit_events",
                &ops.audit_events,
                json!({"first": 5, "userId": 7, "action": "LOGIN_FAILED"}),
            ),
            ("my_security_events", &ops.my_security_events, page),
            ("my_mfa", &ops.my_mfa, json!({})),
            ("start_totp", &ops.start_totp, json!({"password": "p"})),
            ("confirm_totp", &ops.confirm_totp, json!({"code": "123456"})),
            (
                "disable_totp",
                &ops.disable_totp,
                json!({"input": {"password": "p", "code": "123456"}}),
            ),
            (
                "regenerate_codes",
                &ops.regenerate_codes,
                json!({"password": "p"}),
            ),
            (
                "verify_mfa",
                &ops.verify_mfa,
                json!({"input": {"mfaToken": "t", "code": "123456"}}),
            ),
            ("reset_user_mfa", &ops.reset_user_mfa, json!({"id": 7})),
            (
                "start_passkey_registration",
                &ops.start_passkey_registration,
                json!({}),
            ),
            (
                "finish_passkey_registration",
                &ops.finish_passkey_registration,
                json!({"input": {"flowId": "f", "credential": {"id": "x"}, "name": null}}),
            ),
            ("my_passkeys", &ops.my_passkeys, json!({})),
            ("delete_passkey", &ops.delete_passkey, json!({"id": "x"})),
            (
                "start_passkey_sign_in",
                &ops.start_passkey_sign_in,
                json!({}),
            ),
            (
                "finish_passkey_sign_in",
                &ops.finish_passkey_sign_in,
                json!({"input": {"flowId": "f", "credential": {"id": "x"}}}),
            ),
            ("oidc_providers", &ops.oidc_providers, json!({})),
            (
                "start_oidc_sign_in",
                &ops.start_oidc_sign_in,
                json!({"provider": "p", "redirectTo": "https://a.test/"}),
            ),
            (
                "finish_oidc_sign_in",
                &ops.finish_oidc_sign_in,
                json!({"input": {"provider": "p", "state": "s", "code": "c", "error": null}}),
            ),
            (
                "exchange_oidc_code",
                &ops.exchange_oidc_code,
                json!({"code": "c"}),
            ),
            ("my_identities", &ops.my_identities, json!({})),
            (
                "link_identity",
                &ops.link_identity,
                json!({"provider": "p", "redirectTo": "https://a.test/"}),
            ),
            (
                "unlink_identity",
                &ops.unlink_identity,
                json!({"provider": "p"}),
            ),
            (
                "create_webhook",
                &ops.create_webhook,
                json!({"input": {"url": "https://h.test/", "events": ["*"], "description": null}}),
            ),
            ("webhooks", &ops.webhooks, json!({})),
            ("webhook", &ops.webhook, json!({"id": "x"})),
            ("delete_webhook", &ops.delete_webhook, json!({"id": "x"})),
            ("enable_webhook", &ops.enable_webhook, json!({"id": "x"})),
            ("disable_webhook", &ops.disable_webhook, json!({"id": "x"})),
            (
                "rotate_webhook_secret",
                &ops.rotate_webhook_secret,
                json!({"id": "x"}),
            ),
            (
                "webhook_deliveries",
                &ops.webhook_deliveries,
                json!({"id": "x"}),
            ),
        ];
        for (name, op, variables) in cases {
            let errors = errors_of(op, variables);
            assert!(errors.is_empty(), "{name}: {errors:?}");
        }
    }

    #[test]
    fn the_check_catches_a_wrong_field_and_a_wrong_variable() {
        let misspelt = Operation::parse("query Misspelt { result: me { id emial } }".into());
        assert!(!errors_of(&misspelt, json!({})).is_empty());
        let wrong = &OPERATIONS.public_profile;
        assert!(!errors_of(wrong, json!({"userId": "seven"})).is_empty());
    }
}
