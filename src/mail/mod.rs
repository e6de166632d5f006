//! Outgoing mail: the messages, made from the templates in `templates/mail/` (a text and an
//! HTML part each), and the transport that delivers them: `.eml` files in `MAIL_DIR` by
//! default (zero setup: open the file, follow the link), SMTP through lettre with `SMTP_URL`.
//!
//! Nothing here decides *when* to send: the services write each message to the outbox in the
//! transaction of the change that causes it, and their worker hands it to [`Mailer::send`].

use secrecy::ExposeSecret;
use std::{path::PathBuf, time::Duration};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Mailbox, MultiPart,
        header::{Header, HeaderName, HeaderValue},
    },
};

use crate::config::MailConfig;

/// How long one SMTP exchange may take before it counts as a failed attempt.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A message's content, ready for the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Letter {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The messages the service sends.
pub enum Template<'a> {
    /// To the address to confirm, with the link that confirms it.
    VerifyEmail {
        email: &'a str,
        link: &'a str,
        hours: u64,
    },
    /// To the old address, after the account's address changed, with the link that undoes
    /// the change (valid `days`).
    EmailChanged {
        email: &'a str,
        new_email: &'a str,
        undo_link: &'a str,
        days: u64,
    },
    /// To the account's address, with the link that sets a new password.
    ResetPassword { link: &'a str, minutes: u64 },
    /// To the account's address, after a change of how it signs in (a second factor or a
    /// passkey): what happened, and the way back if it was not its owner.
    SecurityNotice { email: &'a str, notice: Notice },
}

/// A change of how an account signs in that its owner is told of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    TotpEnabled,
    TotpDisabled,
    PasskeyAdded,
    IdentityLinked,
}

impl Notice {
    /// The subject, and the sentence that says what happened.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Self::TotpEnabled => (
                "Two-factor authentication was turned on",
                "Two-factor authentication (an authenticator app) was turned on",
            ),
            Self::TotpDisabled => (
                "Two-factor authentication was turned off",
                "Two-factor authentication was turned off",
            ),
            Self::PasskeyAdded => (
                "A passkey was added to your account",
                "A passkey was added, which signs in without a password",
            ),
            Self::IdentityLinked => (
                "A sign-in provider was linked to your account",
                "An account at an external sign-in provider was linked, which signs in without a password",
            ),
        }
    }
}

impl Template<'_> {
    pub fn render(&self) -> Letter {
        match self {
            Self::VerifyEmail { email, link, hours } => {
                let hours = hours.to_string();
                let values = [
                    ("email", *email),
                    ("link", *link),
                    ("hours", hours.as_str()),
                ];
                Letter {
                    subject: "Confirm your email address".into(),
                    text: fill(
                        include_str!("../../templates/mail/verify-email.txt"),
                        &values,
                        false,
                    ),
                    html: fill(
                        include_str!("../../templates/mail/verify-email.html"),
                        &values,
                        true,
                    ),
                }
            }
            Self::ResetPassword { link, minutes } => {
                let minutes = minutes.to_string();
                let values = [("link", *link), ("minutes", minutes.as_str())];
                Letter {
                    subject: "Reset your password".into(),
                    text: fill(
                        include_str!("../../templates/mail/reset-password.txt"),
                        &values,
                        false,
                    ),
                    html: fill(
                        include_str!("../../templates/mail/reset-password.html"),
                        &values,
                        true,
                    ),
                }
            }
            Self::SecurityNotice { email, notice } => {
                let (subject, what) = notice.words();
                let values = [("email", *email), ("what", what), ("subject", subject)];
                Letter {
                    subject: subject.into(),
                    text: fill(
                        include_str!("../../templates/mail/security-notice.txt"),
                        &values,
                        false,
                    ),
                    html: fill(
                        include_str!("../../templates/mail/security-notice.html"),
                        &values,
                        true,
                    ),
                }
            }
            Self::EmailChanged {
                email,
                new_email,
                undo_link,
                days,
            } => {
                let days = days.to_string();
                let values = [
                    ("email", *email),
                    ("new_email", *new_email),
                    ("link", *undo_link),
                    ("days", days.as_str()),
                ];
                Letter {
                    subject: "Your email address was changed".into(),
                    text: fill(
                        include_str!("../../templates/mail/email-changed.txt"),
                        &values,
                        false,
                    ),
                    html: fill(
                        include_str!("../../templates/mail/email-changed.html"),
                        &values,
                        true,
                    ),
                }
            }
        }
    }
}

/// Replaces each `{{name}}` with its value, HTML-escaped for the HTML part.
fn fill(template: &str, values: &[(&str, &str)], html: bool) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        let value = if html {
            crate::html::escape(value)
        } else {
            (*value).to_owned()
        };
        out = out.replace(&format!("{{{{{name}}}}}"), &value);
    }
    out
}

/// Hands messages to the configured transport.
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no vacation reply or other auto-responder
/// should answer these messages.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

enum Transport {
    Files(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Mailer {
    /// The transport `config` names; an unusable `MAIL_FROM` or `SMTP_URL` is an error (the
    /// server does not start), and neither is echoed, as the URL may hold a password.
    pub fn new(config: &MailConfig) -> Result<Self, String> {
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|_| "MAIL_FROM is not a valid mailbox (`Name <address>`)".to_owned())?;
        let transport = match &config.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|_| "SMTP_URL is not a valid smtp:// or smtps:// URL".to_owned())?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            ),
            None => Transport::Files(config.dir.clone()),
        };
        Ok(Self { from, transport })
    }

    /// Where messages go, for the start-up log (never the SMTP credentials).
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Files(dir) => format!("files in {}", dir.display()),
            Transport::Smtp(_) => "SMTP".to_owned(),
        }
    }

    /// Delivers message `id` (its outbox row, queued at `queued_micros`) to `to`. Sending the
    /// same id again writes the same file and carries the same `Message-ID`
    /// (`<{id}.{queued_micros}@{the domain of MAIL_FROM}>`), so a retry after a crash is one
    /// message, on disk and to a receiver that deduplicates. The error says what failed,
    /// without the message's content.
    pub async fn send(
        &self,
        id: i32,
        queued_micros: i64,
        to: &str,
        letter: &Letter,
    ) -> Result<(), String> {
        let to = to
            .parse::<Mailbox>()
            .map_err(|e| format!("invalid recipient: {e}"))?;
        let domain = self.from.email.domain();
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .message_id(Some(format!("<{id}.{queued_micros}@{domain}>")))
            .header(AutoSubmitted)
            .subject(&letter.subject)
            .multipart(MultiPart::alternative_plain_html(
                letter.text.clone(),
                letter.html.clone(),
            ))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(drop)
                .map_err(|e| format!("SMTP: {e}")),
            Transport::Files(dir) => write_eml(dir, id, &message.formatted()).await,
        }
    }
}

/// Writes `MAIL_DIR/message-{id}.eml` (through a temporary name, so a reader never sees half
/// a message).
async fn write_eml(dir: &std::path::Path, id: i32, bytes: &[u8]) -> Result<(), String> {
    let io = |e: std::io::Error| format!("cannot write to MAIL_DIR: {e}");
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let name = format!("message-{id:08}.eml");
    let temporary = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&temporary, bytes).await.map_err(io)?;
    tokio::fs::rename(&temporary, dir.join(name))
        .await
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mail as `.eml` files in `dir`, from `from`.
    fn files_in(dir: &std::path::Path, from: &str) -> MailConfig {
        MailConfig {
            dir: dir.to_owned(),
            smtp_url: None,
            from: from.into(),
            public_url: "http://127.0.0.1:8000".into(),
            max_attempts: 8,
            verify_ttl: Duration::from_secs(3600),
            reset_ttl: Duration::from_secs(1800),
            recovery_per_ip_per_hour: 10,
            require_verified_email: false,
        }
    }

    #[tokio::test]
    async fn messages_carry_a_stable_message_id_and_say_they_are_automatic() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::new(&files_in(
            dir.path(),
            "nta-user-svc <no-reply@mail.example>",
        ))
        .unwrap();
        let letter = Letter {
            subject: "Hello".into(),
            text: "text".into(),
            html: "<p>html</p>".into(),
        };
        let read = || std::fs::read_to_string(dir.path().join("message-00000007.eml")).unwrap();
        mailer
            .send(7, 1234, "to@example.com", &letter)
            .await
            .unwrap();
        let first = read();
        assert!(
            first.contains("Message-ID: <7.1234@mail.example>"),
            "{first}"
        );
        assert!(first.contains("Auto-Submitted: auto-generated"), "{first}");
        // A retry is the same message.
        mailer
            .send(7, 1234, "to@example.com", &letter)
            .await
            .unwrap();
        assert!(read().contains("Message-ID: <7.1234@mail.example>"));
    }

    #[test]
    fn templates_fill_every_placeholder_and_escape_html() {
        let letter = Template::VerifyEmail {
            email: "a<b>@example.com",
            link: "http://x/account/verify-email?token=abc&x=1",
            hours: 48,
        }
        .render();
        for part in [&letter.text, &letter.html] {
            assert!(!part.contains("{{"), "{part}");
        }
        assert!(
            letter
                .text
                .contains("http://x/account/verify-email?token=abc&x=1")
        );
        assert!(letter.text.contains("48 hours"));
        assert!(letter.html.contains("token=abc&amp;x=1"));
        assert!(letter.html.contains("a&lt;b&gt;@example.com"));
        let notice = Template::EmailChanged {
            email: "old@example.com",
            new_email: "new@example.com",
            undo_link: "https://x/account/undo-email-change?token=abc&x=1",
            days: 7,
        }
        .render();
        assert!(notice.text.contains("old@example.com") && notice.text.contains("new@example.com"));
        assert!(!notice.html.contains("{{"));
    }

    #[tokio::test]
    async fn the_file_transport_writes_one_eml_per_message_with_both_parts() {
        let dir = tempfile::tempdir().unwrap();
        let config = files_in(dir.path(), "nta-user-svc <no-reply@localhost>");
        let mailer = Mailer::new(&config).unwrap();
        let letter = Template::VerifyEmail {
            email: "a@example.com",
            link: "http://127.0.0.1:8000/account/verify-email?token=t",
            hours: 1,
        }
        .render();
        mailer.send(7, 1, "a@example.com", &letter).await.unwrap();
        mailer.send(7, 1, "a@example.com", &letter).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "a retry rewrites the same file");
        let eml = std::fs::read_to_string(files[0].path()).unwrap();
        assert!(eml.contains("To: a@example.com"));
        assert!(eml.contains("Subject: Confirm your email address"));
        assert!(eml.contains("text/plain") && eml.contains("text/html"));
    }

    #[test]
    fn a_bad_from_or_smtp_url_is_refused_without_echoing_it() {
        let mut config = MailConfig {
            dir: PathBuf::from("x"),
            smtp_url: Some(crate::config::Secret::from("ftp://user:hunter2@host")),
            from: "nta-user-svc <no-reply@localhost>".into(),
            public_url: String::new(),
            max_attempts: 1,
            verify_ttl: Duration::from_secs(1),
            reset_ttl: Duration::from_secs(1),
            recovery_per_ip_per_hour: 1,
            require_verified_email: false,
        };
        let err = Mailer::new(&config).err().unwrap();
        assert!(err.contains("SMTP_URL") && !err.contains("hunter2"));
        config.smtp_url = None;
        config.from = "not a mailbox".into();
        assert!(Mailer::new(&config).err().unwrap().contains("MAIL_FROM"));
    }
}
