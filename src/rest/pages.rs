//! The pages the links in messages open, served by the service itself so that the links work
//! with nothing else deployed: plain HTML forms (no script, no asset from elsewhere, a strict
//! Content-Security-Policy), each with a clear success and error state.
//!
//! Opening a link never acts by itself: the page shows a form that the user submits. Mail
//! scanners open every link in a message (to check it); a link that spent its token on a
//! `GET` would be spent before its reader ever saw it.

use axum::{
    Form,
    extract::{Query, State, rejection::FormRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{
    forward::run,
    operations::{OPERATIONS, Operation},
};
use crate::{caller::Caller, error::ErrorCode, html::escape, state::AppState};

/// Stricter than the API's policy: no script at all, styles from this origin only, forms
/// posting back here only.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

#[derive(Deserialize)]
pub struct TokenParam {
    #[serde(default)]
    token: String,
}

/// A link whose page is one button: what it says, and what it does once posted.
struct OneButton {
    /// Where the form posts (the page's own path).
    action: &'static str,
    title: &'static str,
    /// What the page says before the button (HTML).
    intro: &'static str,
    button: &'static str,
    /// The operation the button runs with the token.
    operation: fn() -> &'static Operation,
    done_title: &'static str,
    /// What the page says once it worked (HTML).
    done: &'static str,
}

const VERIFY_EMAIL: OneButton = OneButton {
    action: "/account/verify-email",
    title: "Confirm your email address",
    intro: "<p>Confirm that this email address is yours.</p>",
    button: "Confirm my email address",
    operation: || &OPERATIONS.verify_email,
    done_title: "Email address confirmed",
    done: "<p class=\"message\">Thank you: your email address is confirmed. You can close \
           this page.</p>",
};

const UNDO_EMAIL_CHANGE: OneButton = OneButton {
    action: "/account/undo-email-change",
    title: "Undo the change of your email address",
    intro: "<p>If you did not change your account's email address, someone else may have \
            access to your account. This puts your address back, signs every device out, and \
            sends you a link to choose a new password.</p>",
    button: "Put my email address back",
    operation: || &OPERATIONS.undo_email_change,
    done_title: "Email address restored",
    done: "<p class=\"message\">Your email address is the account's again, and every device \
           that was signed in has been signed out. We sent you a link to choose a new \
           password: use it before you sign in again.</p>",
};

impl OneButton {
    /// The page the link opens: the button, which posts the token back.
    fn form(&self, token: &str) -> Response {
        if token.is_empty() {
            return invalid_link();
        }
        page(
            StatusCode::OK,
            self.title,
            "form",
            &format!(
                "{}\n<form method=\"post\" action=\"{}\">\n\
                 <input type=\"hidden\" name=\"token\" value=\"{}\">\n\
                 <button type=\"submit\">{}</button>\n</form>",
                self.intro,
                self.action,
                escape(token),
                self.button,
            ),
        )
    }

    /// The button pressed: runs the operation with the token.
    async fn submit(
        &self,
        state: &AppState,
        caller: Caller,
        form: Result<Form<TokenParam>, FormRejection>,
    ) -> Response {
        let Ok(Form(form)) = form else {
            return invalid_link();
        };
        let op = (self.operation)();
        match run(state, op, caller, json!({ "token": form.token })).await {
            Ok(_) => page(StatusCode::OK, self.done_title, "success", self.done),
            Err(problem) if problem.code() == ErrorCode::BadUserInput => invalid_link(),
            Err(problem) => failure(problem.code().status(), problem.detail()),
        }
    }
}

/// `GET /account/verify-email?token=…`: the button that confirms the address.
pub async fn verify_email_form(Query(query): Query<TokenParam>) -> Response {
    VERIFY_EMAIL.form(&query.token)
}

/// `POST /account/verify-email` (the form above).
pub async fn verify_email(
    State(state): State<AppState>,
    caller: Caller,
    form: Result<Form<TokenParam>, FormRejection>,
) -> Response {
    VERIFY_EMAIL.submit(&state, caller, form).await
}

/// `GET /account/undo-email-change?token=…`: the button that puts the old address back.
pub async fn undo_email_change_form(Query(query): Query<TokenParam>) -> Response {
    UNDO_EMAIL_CHANGE.form(&query.token)
}

/// `POST /account/undo-email-change` (the form above).
pub async fn undo_email_change(
    State(state): State<AppState>,
    caller: Caller,
    form: Result<Form<TokenParam>, FormRejection>,
) -> Response {
    UNDO_EMAIL_CHANGE.submit(&state, caller, form).await
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// `GET /account/reset-password?token=…`: the form for the new password.
pub async fn reset_password_form(Query(query): Query<TokenParam>) -> Response {
    if query.token.is_empty() {
        return invalid_link();
    }
    reset_form(StatusCode::OK, &query.token, None)
}

/// `POST /account/reset-password` (the form above): sets the password, or shows the form
/// again with what to fix.
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    form: Result<Form<ResetForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return invalid_link();
    };
    if form.token.is_empty() {
        return invalid_link();
    }
    if form.new_password != form.confirm_password {
        return reset_form(
            StatusCode::BAD_REQUEST,
            &form.token,
            Some("The two passwords differ."),
        );
    }
    let op = &OPERATIONS.reset_password;
    let input = json!({ "token": form.token, "newPassword": form.new_password });
    match run(&state, op, caller, json!({ "input": input })).await {
        Ok(_) => page(
            StatusCode::OK,
            "Password changed",
            "success",
            "<p class=\"message\">Your new password is set, and every device that was signed \
             in has been signed out. Sign in again with the new password.</p>",
        ),
        Err(problem) if problem.field() == Some("new_password") => {
            reset_form(StatusCode::BAD_REQUEST, &form.token, Some(problem.detail()))
        }
        Err(problem) if problem.code() == ErrorCode::BadUserInput => invalid_link(),
        Err(problem) => failure(problem.code().status(), problem.detail()),
    }
}

fn reset_form(status: StatusCode, token: &str, error: Option<&str>) -> Response {
    let (state, notice) = match error {
        Some(error) => (
            "error",
            format!("<p class=\"message\">{}</p>\n", escape(error)),
        ),
        None => ("form", String::new()),
    };
    page(
        status,
        "Choose a new password",
        state,
        &format!(
            "{notice}<form method=\"post\" action=\"/account/reset-password\">\n\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\n\
             <label for=\"new_password\">New password (at least 8 characters)</label>\n\
             <input type=\"password\" id=\"new_password\" name=\"new_password\" \
             autocomplete=\"new-password\" minlength=\"8\" required>\n\
             <label for=\"confirm_password\">The same again</label>\n\
             <input type=\"password\" id=\"confirm_password\" name=\"confirm_password\" \
             autocomplete=\"new-password\" minlength=\"8\" required>\n\
             <button type=\"submit\">Set the new password</button>\n\
             </form>",
            escape(token)
        ),
    )
}

/// The passkey page's policy: its own script (served from the binary) and calls to this
/// origin's API, nothing else.
const PASSKEY_PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
    style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// `GET /account/passkeys`: sign in with a passkey, or with a password and add one.
pub async fn passkeys() -> Response {
    let mut response = page(
        StatusCode::OK,
        "Passkeys",
        "form",
        include_str!("../../templates/pages/passkeys.html"),
    );
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PASSKEY_PAGE_POLICY),
    );
    response
}

/// `GET /account/passkeys.js`: the passkey page's script.
pub async fn passkeys_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/pages/passkeys.js"),
    )
        .into_response()
}

/// `GET /favicon.ico`: the service has no icon, and says so once (204, cached for a day)
/// instead of a 404 on every page a browser opens.
pub async fn favicon() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::CACHE_CONTROL, "public, max-age=86400")],
    )
        .into_response()
}

/// `GET /account/style.css`.
pub async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/pages/style.css"),
    )
        .into_response()
}

fn invalid_link() -> Response {
    failure(
        StatusCode::BAD_REQUEST,
        "This link is invalid, has expired or was used already. Ask for a new message from \
         the app, and use the link of the newest one.",
    )
}

fn failure(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "That did not work",
        "error",
        &format!("<p class=\"message\">{}</p>", escape(message)),
    )
}

/// A whole page: the layout in `templates/pages/page.html` around `content` (HTML, already
/// escaped where it holds values), never cached (the URL holds a token).
fn page(status: StatusCode, title: &str, state: &str, content: &str) -> Response {
    let html = include_str!("../../templates/pages/page.html")
        .replace("{{title}}", &escape(title))
        .replace("{{state}}", state)
        .replace("{{content}}", content);
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    response
}
