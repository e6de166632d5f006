use async_graphql::{Context, ID, Object, Result, Upload};

use super::{
    UploadOnce,
    admin::Role,
    context,
    mfa::{DisableTotpInput, RecoveryCodes, TotpEnrollment, VerifyMfaInput},
    oidc::FinishOidcSignInInput,
    origin,
    passkeys::{FinishPasskeyRegistrationInput, FinishPasskeySignInInput, Passkey, PasskeyOptions},
    types::{
        AuthPayload, ChangePasswordInput, DeleteAccountInput, LoginInput, Profile, ProfileInput,
        RefreshInput, RegisterInput, ResetPasswordInput, UpdateMeInput, User,
    },
    webhooks::{CreateWebhookInput, Webhook},
};
use crate::{
    domain::{
        AccountPatch, AccountToken, Confirmation, Credentials, ExchangeCode, MfaCode, MfaDisable,
        MfaVerification, NewAccount, NewWebhook, OidcCallback, PasskeyRegistrationInput,
        PasskeySignIn, PasswordChange, PasswordReset, ProfilePatch, RefreshToken,
    },
    error::AppError,
};

/// Changes. `register`, `login` and `refresh` need no token; the rest act on the caller's own
/// data.
pub struct MutationRoot;

/// Changes. `register`, `login`, `refresh` and the sign-in steps (`verifyMfa`, passkey and
/// OpenID sign-in) need no token; the rest act on the caller's own data, except the admin's
/// (`disableUser`, `enableUser`, `setUserRole`, `revokeUserSessions`, `deleteUser`,
/// `resetUserMfa`, and the webhook endpoints'), which act on others.
#[Object(name = "Mutation")]
impl MutationRoot {
    /// Creates an account and its (empty) profile.
    async fn register(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new account.")] input: RegisterInput,
    ) -> Result<User> {
        let (services, _) = context(ctx);
        let new = NewAccount::parse(&input.email, input.password, input.name.as_deref())?;
        Ok(User(services.register(&origin(ctx), new).await?))
    }

    /// Exchanges email and password for a bearer token and a refresh token: a new session.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The credentials.")] input: LoginInput,
    ) -> Result<AuthPayload> {
        let (services, _) = context(ctx);
        let credentials = Credentials::parse(&input.email, input.password)?;
        Ok(services.login(&origin(ctx), credentials).await?.into())
    }

    /// The second step of a sign-in whose password was right: the `mfaToken` of the
    /// `MFA_REQUIRED` error and a TOTP code or a recovery code open the session. A wrong
    /// code → `BAD_USER_INPUT` on `code` (and a failed login toward the lockout); after 5,
    /// or once used or expired, the token → `UNAUTHENTICATED`.
    async fn verify_mfa(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token and a code.")] input: VerifyMfaInput,
    ) -> Result<AuthPayload> {
        let (services, _) = context(ctx);
        let verification = MfaVerification::parse(input.mfa_token, input.code)?;
        Ok(services
            .verify_mfa(&origin(ctx), verification)
            .await?
            .into())
    }

    /// Starts turning TOTP on, after checking the password (a wrong one counts as a failed
    /// login): a new pending secret, shown this once. A second call replaces it.
    /// `CONFLICT` while TOTP is on.
    async fn start_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's password.")] password: String,
    ) -> Result<TotpEnrollment> {
        let (services, actor) = context(ctx);
        let password = Confirmation::parse(password)?;
        Ok(services
            .start_totp_enrollment(&actor, &origin(ctx), password)
            .await?
            .into())
    }

    /// Turns TOTP on with a code of the pending secret; returns ten recovery codes (shown
    /// this once). Every other session of the account ends. `CONFLICT` with nothing pending.
    async fn confirm_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A code of the authenticator app.")] code: String,
    ) -> Result<RecoveryCodes> {
        let (services, actor) = context(ctx);
        let code = MfaCode::parse(code)?;
        let codes = services
            .confirm_totp_enrollment(&actor, &origin(ctx), code)
            .await?;
        Ok(RecoveryCodes { codes })
    }

    /// Turns TOTP off with the password and a code (TOTP or recovery); the recovery codes
    /// are void.
    async fn disable_totp(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The password and a code.")] input: DisableTotpInput,
    ) -> Result<bool> {
        let (services, actor) = context(ctx);
        let input = MfaDisable::parse(input.password, input.code)?;
        services.disable_totp(&actor, &origin(ctx), input).await?;
        Ok(true)
    }

    /// Ten new recovery codes (shown this once) after checking the password; the old ones
    /// are void. `CONFLICT` while TOTP is off.
    async fn regenerate_recovery_codes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's password.")] password: String,
    ) -> Result<RecoveryCodes> {
        let (services, actor) = context(ctx);
        let password = Confirmation::parse(password)?;
        let codes = services
            .regenerate_recovery_codes(&actor, &origin(ctx), password)
            .await?;
        Ok(RecoveryCodes { codes })
    }

    /// Starts adding a passkey to the account: the options for
    /// `navigator.credentials.create()` (a discoverable credential, user verification
    /// required) and the ceremony's id.
    async fn start_passkey_registration(&self, ctx: &Context<'_>) -> Result<PasskeyOptions> {
        let (services, actor) = context(ctx);
        Ok(services.start_passkey_registration(&actor).await?.into())
    }

    /// Finishes adding a passkey with the browser's credential. A credential that does not
    /// verify (origin, RP id, challenge, signature), or a ceremony used or expired →
    /// `BAD_USER_INPUT` on `credential`.
    async fn finish_passkey_registration(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The ceremony, the credential and a name.")]
        input: FinishPasskeyRegistrationInput,
    ) -> Result<Passkey> {
        let (services, actor) = context(ctx);
        let input = PasskeyRegistrationInput::parse(
            &input.flow_id,
            Some(input.credential.0),
            input.name.as_deref(),
        )?;
        Ok(services
            .finish_passkey_registration(&actor, &origin(ctx), input)
            .await?
            .into())
    }

    /// Removes one of the account's passkeys; `NOT_FOUND` for any other id.
    async fn delete_passkey(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The passkey's id (from `myPasskeys`).")] id: ID,
    ) -> Result<bool> {
        let (services, actor) = context(ctx);
        services.delete_passkey(&actor, &origin(ctx), &id).await?;
        Ok(true)
    }

    /// Starts a sign-in with a passkey (no email needed): the options for
    /// `navigator.credentials.get()` and the ceremony's id.
    async fn start_passkey_sign_in(&self, ctx: &Context<'_>) -> Result<PasskeyOptions> {
        let (services, _) = context(ctx);
        Ok(services.start_passkey_sign_in(&origin(ctx)).await?.into())
    }

    /// Finishes a sign-in with a passkey: a session (`amr` `["passkey"]`, no second step).
    /// An unknown passkey or one that does not verify → `UNAUTHENTICATED`.
    async fn finish_passkey_sign_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The ceremony and the browser's assertion.")]
        input: FinishPasskeySignInInput,
    ) -> Result<AuthPayload> {
        let (services, _) = context(ctx);
        let input = PasskeySignIn::parse(&input.flow_id, Some(input.credential.0))?;
        Ok(services
            .finish_passkey_sign_in(&origin(ctx), input)
            .await?
            .into())
    }

    /// Starts a sign-in at an external OpenID provider: the URL to send the browser to (what
    /// `GET /api/auth/oidc/{provider}/authorize` redirects to). `redirectTo` must be under
    /// `OIDC_REDIRECT_ALLOWLIST` (`BAD_USER_INPUT` on `redirect_to`); an unknown provider →
    /// `NOT_FOUND`.
    async fn start_oidc_sign_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider's name (from `oidcProviders`).")] provider: String,
        #[graphql(desc = "Where the browser comes back to with `code` or `error`.")]
        redirect_to: String,
    ) -> Result<String> {
        let (services, _) = context(ctx);
        Ok(services
            .start_oidc_sign_in(&origin(ctx), &provider, &redirect_to)
            .await?)
    }

    /// The provider's redirect back (what `GET /api/auth/oidc/{provider}/callback` runs):
    /// where to send the browser, `redirectTo` with `code`, `linked` or `error`. An unknown,
    /// expired or used `state` → `BAD_USER_INPUT` on `state`.
    async fn finish_oidc_sign_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The redirect's parameters.")] input: FinishOidcSignInInput,
    ) -> Result<String> {
        let (services, _) = context(ctx);
        let callback = OidcCallback::parse(
            input.state.as_deref(),
            input.code.as_deref(),
            input.error.as_deref(),
        )?;
        Ok(services
            .finish_oidc(&origin(ctx), &input.provider, callback)
            .await?)
    }

    /// Exchanges the one-time `code` an OpenID sign-in came back with (60 s, once) for a
    /// session (`amr` `["oidc"]`); an account with TOTP on → `MFA_REQUIRED`. A bad or used
    /// code → `BAD_USER_INPUT` on `code`.
    async fn exchange_oidc_code(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The `code` of the redirect.")] code: String,
    ) -> Result<AuthPayload> {
        let (services, _) = context(ctx);
        let code = ExchangeCode::parse(&code)?;
        Ok(services
            .exchange_oidc_code(&origin(ctx), code)
            .await?
            .into())
    }

    /// Starts linking an identity at an external provider to the account: the URL to send
    /// the browser to. It comes back to `redirectTo` with `linked={provider}` (or `error`).
    async fn link_identity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider's name.")] provider: String,
        #[graphql(desc = "Where the browser comes back to.")] redirect_to: String,
    ) -> Result<String> {
        let (services, actor) = context(ctx);
        Ok(services
            .link_identity(&actor, &origin(ctx), &provider, &redirect_to)
            .await?)
    }

    /// Unlinks the account's identity at `provider`: `NOT_FOUND` when none is linked,
    /// `CONFLICT` when it is the last way to sign in (no password, passkey or other identity).
    async fn unlink_identity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider's name.")] provider: String,
    ) -> Result<bool> {
        let (services, actor) = context(ctx);
        services
            .unlink_identity(&actor, &origin(ctx), &provider)
            .await?;
        Ok(true)
    }

    /// Registers a webhook endpoint (admins only); the answer holds its `secret`, shown this
    /// once. A URL on a private, loopback or link-local address → `BAD_USER_INPUT` on `url`
    /// (unless `WEBHOOK_ALLOW_PRIVATE`).
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint.")] input: CreateWebhookInput,
    ) -> Result<Webhook> {
        let (services, actor) = context(ctx);
        let new = NewWebhook::parse(&input.url, &input.events, input.description.as_deref())?;
        Ok(services.create_webhook(&actor, new).await?.into())
    }

    /// Turns a webhook endpoint on (admins only): it takes events again (after a 410, say).
    async fn enable_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: ID,
    ) -> Result<Webhook> {
        let (services, actor) = context(ctx);
        Ok(services
            .set_webhook_enabled(&actor, &id, true)
            .await?
            .into())
    }

    /// Turns a webhook endpoint off (admins only): no event is queued for it.
    async fn disable_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: ID,
    ) -> Result<Webhook> {
        let (services, actor) = context(ctx);
        Ok(services
            .set_webhook_enabled(&actor, &id, false)
            .await?
            .into())
    }

    /// Removes a webhook endpoint and its pending events (admins only).
    async fn delete_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: ID,
    ) -> Result<bool> {
        let (services, actor) = context(ctx);
        services.delete_webhook(&actor, &id).await?;
        Ok(true)
    }

    /// A new signing secret for an endpoint (admins only): the old one signs too, beside it,
    /// for 24 hours.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: ID,
    ) -> Result<String> {
        let (services, actor) = context(ctx);
        Ok(services.rotate_webhook_secret(&actor, &id).await?)
    }

    /// Exchanges a refresh token for a new pair; the one sent is spent. Unknown, expired or
    /// revoked → `UNAUTHENTICATED`. A spent token sent again within a few seconds (two tabs
    /// refreshing at once) gets a new pair; later, it ends the session.
    async fn refresh(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The refresh token.")] input: RefreshInput,
    ) -> Result<AuthPayload> {
        let (services, _) = context(ctx);
        let token = RefreshToken::parse(input.refresh_token)?;
        Ok(services.refresh(&origin(ctx), token).await?.into())
    }

    /// Ends the current session: its access and refresh tokens stop working at once.
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        let (services, actor) = context(ctx);
        services.logout(&actor, &origin(ctx)).await?;
        Ok(true)
    }

    /// Ends every session of the account, this one included; returns how many ended.
    async fn logout_all(&self, ctx: &Context<'_>) -> Result<u64> {
        let (services, actor) = context(ctx);
        Ok(services.logout_all(&actor, &origin(ctx)).await?)
    }

    /// Ends one of the account's sessions; `NOT_FOUND` unless it is one of yours and live.
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session's id (from `mySessions`).")] id: ID,
    ) -> Result<bool> {
        let (services, actor) = context(ctx);
        services.revoke_session(&actor, &origin(ctx), &id).await?;
        Ok(true)
    }

    /// Changes the password after checking the current one (a wrong one counts as a failed
    /// login). Every other session ends; this one stays.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The current and the new password.")] input: ChangePasswordInput,
    ) -> Result<bool> {
        let (services, actor) = context(ctx);
        let change = PasswordChange::parse(input.current_password, input.new_password)?;
        services
            .change_password(&actor, &origin(ctx), change)
            .await?;
        Ok(true)
    }

    /// Deletes the account, its profile, photo and sessions, after checking the password.
    /// The email can register again.
    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The password, to confirm.")] input: DeleteAccountInput,
    ) -> Result<bool> {
        let (services, actor) = context(ctx);
        let confirmation = Confirmation::parse(input.password)?;
        services
            .delete_account(&actor, &origin(ctx), confirmation)
            .await?;
        Ok(true)
    }

    /// Confirms an email address with the token from the link sent to it. A bad, expired or
    /// used token → `BAD_USER_INPUT` on `token`.
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The `token` of the link.")] token: String,
    ) -> Result<bool> {
        let (services, _) = context(ctx);
        let token = AccountToken::parse(token)?;
        services.verify_email(&origin(ctx), token).await?;
        Ok(true)
    }

    /// Undoes a change of the account's email address with the token of the link sent to
    /// the old address: that address is the account's again (verified), every session ends,
    /// and a link to choose a new password goes to it. A bad, expired or used token →
    /// `BAD_USER_INPUT` on `token`.
    async fn undo_email_change(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The `token` of the link.")] token: String,
    ) -> Result<bool> {
        let (services, _) = context(ctx);
        let token = AccountToken::parse(token)?;
        services.undo_email_change(&origin(ctx), token).await?;
        Ok(true)
    }

    /// Sends a new verification message to the account's address; `CONFLICT` when it is
    /// verified already. At most 3 an hour.
    async fn request_email_verification(&self, ctx: &Context<'_>) -> Result<bool> {
        let (services, actor) = context(ctx);
        services.request_email_verification(&actor).await?;
        Ok(true)
    }

    /// Sends a password-reset link to the address if it is an account's. The answer is the
    /// same (`true`), after about the same time, whether it is or not.
    async fn forgot_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's email.")] email: String,
    ) -> Result<bool> {
        let (services, _) = context(ctx);
        services.forgot_password(&origin(ctx), &email).await?;
        Ok(true)
    }

    /// Sets a new password with the token from a reset link: every session ends. A bad,
    /// expired or used token → `BAD_USER_INPUT` on `token`.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token and the new password.")] input: ResetPasswordInput,
    ) -> Result<bool> {
        let (services, _) = context(ctx);
        let reset = PasswordReset::parse(input.token, input.new_password)?;
        services.reset_password(&origin(ctx), reset).await?;
        Ok(true)
    }

    /// Changes the current account's email and/or name.
    async fn update_me(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields to change.")] input: UpdateMeInput,
    ) -> Result<User> {
        let (services, actor) = context(ctx);
        let patch = AccountPatch::parse(input.email.into(), input.name.into())?;
        Ok(User(services.update_me(&actor, &origin(ctx), patch).await?))
    }

    /// Creates the current account's profile; `CONFLICT` while one exists.
    async fn create_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The profile's fields.")] input: ProfileInput,
    ) -> Result<Profile> {
        let (services, actor) = context(ctx);
        let fields = ProfilePatch::parse(input.into())?;
        Ok(services.create_profile(&actor, fields).await?.into())
    }

    /// Changes the given fields of the current account's profile.
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields to change; omitted ones stay.")] input: ProfileInput,
    ) -> Result<Profile> {
        let (services, actor) = context(ctx);
        let patch = ProfilePatch::parse(input.into())?;
        Ok(services.update_profile(&actor, patch).await?.into())
    }

    /// Deletes the current account's profile and its photo; returns the deleted profile's id
    /// (for a client cache to evict it).
    async fn delete_profile(&self, ctx: &Context<'_>) -> Result<i32> {
        let (services, actor) = context(ctx);
        Ok(services.delete_profile(&actor).await?)
    }

    /// Sets the profile photo (JPEG, PNG or WebP, sent by the GraphQL multipart request
    /// spec). It is checked by content, re-encoded without metadata, and replaces the old one.
    async fn upload_profile_photo(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The image file.")] file: Upload,
    ) -> Result<Profile> {
        let (services, actor) = context(ctx);
        if ctx
            .data_opt::<UploadOnce>()
            .is_some_and(|once| !once.take())
        {
            return Err(AppError::validation(
                "file",
                "A request may use its file once; send each upload on its own.",
            )
            .into());
        }
        let upload = file
            .value(ctx)
            .map_err(|_| AppError::validation("file", "The file is missing."))?;
        Ok(services
            .set_photo(&actor, upload.content.into())
            .await?
            .into())
    }

    /// Removes the profile photo and its file; returns the changed profile.
    async fn delete_profile_photo(&self, ctx: &Context<'_>) -> Result<Profile> {
        let (services, actor) = context(ctx);
        Ok(services.delete_photo(&actor).await?.into())
    }

    /// Disables an account (admins only): it may not log in, and its sessions end at once.
    /// Not on your own account.
    async fn disable_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: i32,
    ) -> Result<User> {
        let (services, actor) = context(ctx);
        Ok(User(services.disable_user(&actor, &origin(ctx), id).await?))
    }

    /// Lets a disabled account log in again (admins only). Not on your own account.
    async fn enable_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: i32,
    ) -> Result<User> {
        let (services, actor) = context(ctx);
        Ok(User(services.enable_user(&actor, &origin(ctx), id).await?))
    }

    /// Gives an account a role (admins only). Not on your own account.
    async fn set_user_role(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: i32,
        #[graphql(desc = "The new role.")] role: Role,
    ) -> Result<User> {
        let (services, actor) = context(ctx);
        let account = services
            .set_user_role(&actor, &origin(ctx), id, role.into())
            .await?;
        Ok(User(account))
    }

    /// Ends every session of an account (admins only); returns how many ended. Not on your
    /// own account (`logoutAll` is for that).
    async fn revoke_user_sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: i32,
    ) -> Result<u64> {
        let (services, actor) = context(ctx);
        Ok(services
            .revoke_user_sessions(&actor, &origin(ctx), id)
            .await?)
    }

    /// Removes an account's second factors (TOTP, recovery codes, passkeys) and ends its
    /// sessions (admins only): for someone who lost their phone and their codes. Not on your
    /// own account.
    async fn reset_user_mfa(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: i32,
    ) -> Result<bool> {
        let (services, actor) = context(ctx);
        services.reset_user_mfa(&actor, &origin(ctx), id).await?;
        Ok(true)
    }

    /// Deletes an account with its profile, photo and sessions (admins only). Not on your
    /// own account (`deleteAccount` is for that).
    async fn delete_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: i32,
    ) -> Result<bool> {
        let (services, actor) = context(ctx);
        services.delete_user(&actor, &origin(ctx), id).await?;
        Ok(true)
    }
}
