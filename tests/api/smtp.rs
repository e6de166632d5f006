//! Mail over a real SMTP server: Python's `aiosmtpd` (from PyPI), writing what it receives
//! to a Maildir. The message arrives with both parts and a working link; while the server
//! is down requests still succeed and the mail arrives once it is back; a `kill -9` of the
//! service between commit and delivery loses nothing.
//!
//! `SMTP_TEST_PYTHON` names a Python that has `aiosmtpd` (`.ci/run` makes one); without it
//! the first test that needs one makes a virtual environment under the target folder.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::json;
use tempfile::TempDir;

use crate::{
    helpers::{Backend, PASSWORD, decoded, link_token, python_with, spawn_app_with},
    process::ServerProcess,
};

/// A Python with `aiosmtpd`, made once per test run.
fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        python_with(
            "SMTP_TEST_PYTHON",
            "aiosmtpd-venv",
            "aiosmtpd",
            "aiosmtpd==1.4.6",
        )
    })
}

/// An `aiosmtpd` server on a port of its own, saving messages to a Maildir.
struct SmtpServer {
    child: Option<Child>,
    port: u16,
    maildir: TempDir,
}

impl SmtpServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            child: None,
            port,
            maildir: tempfile::tempdir().unwrap(),
        };
        server.resume();
        server
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and Maildir, and waits until it accepts connections.
    fn resume(&mut self) {
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            // A Maildir is made only where nothing exists yet.
            .arg(self.maildir.path().join("maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The messages received for `to`, waiting up to `wait` for at least `count`.
    async fn messages_to(&self, to: &str, count: usize, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        loop {
            let mut messages: Vec<(std::time::SystemTime, String)> =
                std::fs::read_dir(self.maildir.path().join("maildir/new"))
                    .map(|dir| {
                        dir.flatten()
                            .filter_map(|f| {
                                let modified = f.metadata().ok()?.modified().ok()?;
                                Some((modified, std::fs::read_to_string(f.path()).ok()?))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
            messages.retain(|(_, m)| {
                m.lines()
                    .any(|l| l.eq_ignore_ascii_case(&format!("To: {to}")))
            });
            messages.sort();
            if messages.len() >= count || Instant::now() > deadline {
                return messages.into_iter().map(|(_, m)| m).collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn on_smtp(backend: Backend) {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = spawn_app_with(backend, &[("SMTP_URL", url.as_str())]).await;
    assert_eq!(
        app.register("ann@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let messages = smtp
        .messages_to("ann@example.com", 1, Duration::from_secs(15))
        .await;
    assert_eq!(messages.len(), 1);
    let message = decoded(&messages[0]);
    assert!(
        message.contains("Subject: Confirm your email address"),
        "{message}"
    );
    assert!(message.contains("text/plain") && message.contains("text/html"));
    // What mail providers ask of automatic mail: a Message-ID in MAIL_FROM's domain (Gmail
    // refuses mail without one), and Auto-Submitted so that no auto-responder answers.
    let header = |name: &str| {
        message
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .map(str::to_owned)
    };
    let message_id = header("Message-ID").expect("a Message-ID");
    assert!(
        message_id.starts_with('<') && message_id.ends_with("@localhost>"),
        "{message_id}"
    );
    assert_eq!(header("Auto-Submitted").as_deref(), Some("auto-generated"));
    let token = link_token(&messages[0], "/account/verify-email");
    assert_eq!(
        app.post_json("/api/auth/verify-email", &json!({ "token": token }))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    // Nothing went to the file transport.
    assert!(app.mail_to("ann@example.com", 0).await.is_empty());

    // The reset link from a real message works once.
    assert_eq!(
        app.post_json(
            "/api/auth/forgot-password",
            &json!({"email": "ann@example.com"})
        )
        .await
        .status(),
        StatusCode::ACCEPTED
    );
    let messages = smtp
        .messages_to("ann@example.com", 2, Duration::from_secs(15))
        .await;
    let token = link_token(&messages[1], "/account/reset-password");
    let reset = |token: String| {
        let request = app
            .client
            .post(app.url("/api/auth/reset-password"))
            .json(&json!({"token": token, "new_password": "EvenStronger456"}));
        async move { request.send().await.unwrap() }
    };
    assert_eq!(reset(token.clone()).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(reset(token).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.login("ann@example.com", "EvenStronger456")
            .await
            .status(),
        StatusCode::OK
    );
}

async fn through_an_outage(backend: Backend) {
    let mut smtp = SmtpServer::start();
    let url = smtp.url();
    let app = spawn_app_with(backend, &[("SMTP_URL", url.as_str())]).await;
    smtp.stop();
    // The server is down: requests still succeed.
    assert_eq!(
        app.register("bo@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.post_json(
            "/api/auth/forgot-password",
            &json!({"email": "bo@example.com"})
        )
        .await
        .status(),
        StatusCode::ACCEPTED
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL AND attempts >= 1")
            .await,
        2,
        "both were tried and are waiting"
    );
    smtp.resume();
    let messages = smtp
        .messages_to("bo@example.com", 2, Duration::from_secs(40))
        .await;
    assert_eq!(
        messages.len(),
        2,
        "the mail arrives once the server is back"
    );
    // And the outbox knows (the row is marked just after the server took the message).
    app.mail_delivered().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_delivers_both_parts_and_working_links_sqlite() {
    on_smtp(Backend::Sqlite).await;
}

#[cfg_attr(not(pg_tests), ignore = "set TEST_DATABASE_URL to run on PostgreSQL")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_delivers_both_parts_and_working_links_postgres() {
    on_smtp(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_waits_out_an_smtp_outage_sqlite() {
    through_an_outage(Backend::Sqlite).await;
}

#[cfg_attr(not(pg_tests), ignore = "set TEST_DATABASE_URL to run on PostgreSQL")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_waits_out_an_smtp_outage_postgres() {
    through_an_outage(Backend::Postgres).await;
}

/// `kill -9` after the registration committed and before its message could go (the SMTP
/// server is down): the next start delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_loses_no_message() {
    let mut smtp = SmtpServer::start();
    smtp.stop();
    let dir = tempfile::tempdir().unwrap();
    let url = smtp.url();
    let settings = [("SMTP_URL", url.as_str())];
    let server = ServerProcess::start_in(dir.path(), &settings);
    let client = crate::helpers::http_client();
    let registered = client
        .post(server.url("/api/auth/register"))
        .json(&json!({"email": "cy@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    server.signal("KILL");
    drop(server);

    smtp.resume();
    let _restarted = ServerProcess::start_in(dir.path(), &settings);
    let messages = smtp
        .messages_to("cy@example.com", 1, Duration::from_secs(40))
        .await;
    assert_eq!(messages.len(), 1);
    assert!(decoded(&messages[0]).contains("/account/verify-email?token="));
}
