//! Tests of the real binary in its own process: what it logs, and how it stops on a signal.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    hardening::png_16_bit,
    helpers::{JWT_SECRET, image_bytes, login_at, proc_status_kb},
};

/// The release or debug binary that cargo built for these tests, running in a temp folder.
pub struct ServerProcess {
    child: Child,
    pub address: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: Option<TempDir>,
}

impl ServerProcess {
    /// Starts the server in a fresh temporary folder (its SQLite database lives there).
    pub fn start(settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::start_in(dir.path(), settings);
        server._dir = Some(dir);
        server
    }

    /// Starts the server in `dir`, which outlives it (to restart on the same database).
    pub fn start_in(dir: &std::path::Path, settings: &[(&str, &str)]) -> Self {
        Self::launch(dir, settings, None)
    }

    /// Starts the server with at most `open_files` file descriptors (`ulimit -n`).
    pub fn start_with_open_files(open_files: u64, settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::launch(dir.path(), settings, Some(open_files));
        server._dir = Some(dir);
        server
    }

    fn launch(dir: &std::path::Path, settings: &[(&str, &str)], open_files: Option<u64>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_nta-user-svc"));
        if let Some(limit) = open_files {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: setrlimit is async-signal-safe and touches only the child's limits.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        command
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", "0")
            .env("JWT_SECRET", JWT_SECRET)
            .env("BCRYPT_COST", "4")
            .env("LOG_FORMAT", "json")
            // Many servers run at once; the metrics test sets its own.
            .env("METRICS_ADDR", "")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in settings {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the server binary starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, port_tx) = (log.clone(), port_tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(address) = listening_address(&line) {
                        let _ = port_tx.send(address);
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let address = port_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("server did not start: {:?}", log.lock().unwrap()));
        Self {
            child,
            address: format!("http://{address}"),
            log,
            _dir: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) to the server.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end; its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not stop within {timeout:?}");
    }

    pub fn log(&self) -> Vec<String> {
        // Give the reader threads a moment to drain the pipes.
        std::thread::sleep(Duration::from_millis(100));
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening_address(line: &str) -> Option<String> {
    let value: Value = serde_json::from_str(line).ok()?;
    (value["fields"]["message"] == "listening")
        .then(|| value["fields"]["address"].as_str().map(str::to_owned))?
}

const SECRET_PASSWORD: &str = "Sup3r-Secret-Passw0rd";

/// Exercises every endpoint, with passwords and tokens in every place a request can carry
/// them, then reads the whole debug-level log: none of them, nor a hash or the JWT secret,
/// may appear; every request's lines carry its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_hold_secrets() {
    let server = ServerProcess::start(&[("RUST_LOG", "debug")]);
    let client = crate::helpers::http_client();
    let post = |path: &str, body: Value| client.post(server.url(path)).json(&body).send();

    let email = "logged@example.com";
    assert_eq!(
        post(
            "/api/auth/register",
            json!({"email": email, "password": SECRET_PASSWORD})
        )
        .await
        .unwrap()
        .status(),
        StatusCode::CREATED
    );
    post(
        "/api/users/register",
        json!({"email": "b@example.com", "password": SECRET_PASSWORD, "name": "B"}),
    )
    .await
    .unwrap();
    let login: Value = post(
        "/api/auth/login",
        json!({"email": email, "password": SECRET_PASSWORD}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    client
        .post(server.url("/api/auth/login"))
        .form(&[("username", email), ("password", SECRET_PASSWORD)])
        .send()
        .await
        .unwrap();
    post(
        "/api/auth/login",
        json!({"email": email, "password": "Wrong-Secret-Passw0rd"}),
    )
    .await
    .unwrap();
    post(
        "/api/auth/register",
        json!({"email": "short@example.com", "password": "tiny-pw"}),
    )
    .await
    .unwrap();
    let graphql = |query: &str, variables: Value| {
        client
            .post(server.url("/graphql"))
            .bearer_auth(&token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
    };
    graphql(
        "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
        json!({"i": {"email": email, "password": SECRET_PASSWORD}}),
    )
    .await
    .unwrap();
    graphql("{ me { id profile { id } } myProfile { id } }", json!({}))
        .await
        .unwrap();
    client
        .get(server.url("/graphql"))
        .query(&[("query", format!("mutation {{ login(input: {{email: \"{email}\", password: \"{SECRET_PASSWORD}\"}}) {{ accessToken }} }}"))])
        .send()
        .await
        .unwrap();
    let auth = |request: reqwest::RequestBuilder| request.bearer_auth(&token).send();
    auth(client.get(server.url("/api/users/profile")))
        .await
        .unwrap();
    auth(
        client
            .put(server.url("/api/users/profile"))
            .json(&json!({"name": "N", "password": SECRET_PASSWORD})),
    )
    .await
    .unwrap();
    auth(client.get(server.url("/api/users/me/profile")))
        .await
        .unwrap();
    auth(
        client
            .put(server.url("/api/profiles/me"))
            .json(&json!({"bio": "hello"})),
    )
    .await
    .unwrap();
    auth(client.get(server.url("/api/profiles/1")))
        .await
        .unwrap();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(image_bytes(8, 8, image::ImageFormat::Png))
            .file_name("a.png"),
    );
    auth(
        client
            .post(server.url("/api/profiles/me/photo"))
            .multipart(form),
    )
    .await
    .unwrap();
    auth(client.delete(server.url("/api/profiles/me/photo")))
        .await
        .unwrap();
    auth(client.delete(server.url("/api/profiles/me")))
        .await
        .unwrap();
    auth(
        client
            .post(server.url("/api/profiles"))
            .json(&json!({"name": "A"})),
    )
    .await
    .unwrap();
    client
        .get(server.url("/api/users/profile"))
        .bearer_auth(format!("{token}tampered"))
        .send()
        .await
        .unwrap();
    // Sessions: refresh (fresh, reused, unknown), the list, password change and deletion.
    let refresh_token = login["refresh_token"].as_str().unwrap().to_owned();
    let renewed: Value = post(
        "/api/auth/refresh",
        json!({ "refresh_token": refresh_token }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let renewed_refresh = renewed["refresh_token"].as_str().unwrap().to_owned();
    post(
        "/api/auth/refresh",
        json!({ "refresh_token": refresh_token }),
    )
    .await
    .unwrap();
    post(
        "/api/auth/refresh",
        json!({ "refresh_token": "Guessed-Refresh-Token" }),
    )
    .await
    .unwrap();
    graphql(
        "mutation($t: String!) { refresh(input: {refreshToken: $t}) { accessToken } }",
        json!({"t": renewed_refresh}),
    )
    .await
    .unwrap();
    auth(client.get(server.url("/api/users/me/sessions")))
        .await
        .unwrap();
    for current in ["Wrong-Secret-Passw0rd", SECRET_PASSWORD] {
        auth(
            client
                .put(server.url("/api/users/me/password"))
                .json(&json!({"current_password": current, "new_password": "New-Secret-Passw0rd"})),
        )
        .await
        .unwrap();
    }
    auth(
        client
            .delete(server.url("/api/users/me"))
            .json(&json!({"password": "Wrong-Secret-Passw0rd"})),
    )
    .await
    .unwrap();
    auth(
        client
            .delete(server.url("/api/users/me"))
            .json(&json!({"password": "New-Secret-Passw0rd"})),
    )
    .await
    .unwrap();

    let log = server.log();
    let text = log.join("\n");
    assert!(log.len() > 20, "{text}");
    let signature = token.rsplit('.').next().unwrap();
    for secret in [
        SECRET_PASSWORD,
        "Wrong-Secret-Passw0rd",
        "tiny-pw",
        token.as_str(),
        signature,
        refresh_token.as_str(),
        renewed_refresh.as_str(),
        "Guessed-Refresh-Token",
        "New-Secret-Passw0rd",
        JWT_SECRET,
        "$2b$",
    ] {
        assert!(!text.contains(secret), "the log holds {secret:?}");
    }
    // No email address at INFO or above: user ids instead.
    for line in &log {
        let level = serde_json::from_str::<Value>(line).map(|v| v["level"].clone());
        if level.is_ok_and(|l| ["INFO", "WARN", "ERROR"].contains(&l.as_str().unwrap_or(""))) {
            assert!(!line.contains("@example.com"), "an email at INFO: {line}");
        }
    }
    // Every line is JSON, and the request lines carry their request id.
    let responses: Vec<Value> = log
        .iter()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("not JSON: {line}"))
        })
        .filter(|v| v["fields"]["message"] == "response")
        .collect();
    assert!(responses.len() >= 18);
    for line in responses {
        assert_eq!(
            line["span"]["request_id"].as_str().map(str::len),
            Some(36),
            "{line}"
        );
    }
}

/// SIGTERM while a request is in flight: it completes, new connections are refused, and the
/// process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_exits_cleanly() {
    let mut server = ServerProcess::start(&[("BCRYPT_COST", "13")]);
    let client = crate::helpers::http_client();
    // Registration hashes at cost 13: long enough to be in flight when the signal lands.
    let in_flight = tokio::spawn(
        client
            .post(server.url("/api/auth/register"))
            .json(&json!({"email": "slow@example.com", "password": "StrongPass123"}))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.signal("TERM");
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(server.wait(Duration::from_secs(10)), Some(0));
    assert!(reqwest::get(server.url("/healthz")).await.is_err());
    let log = server.log().join("\n");
    assert!(log.contains("shutdown signal received"), "{log}");
}

/// Registers and logs in on a server process; the bearer token.
pub async fn token_on(server: &ServerProcess, email: &str) -> String {
    let client = crate::helpers::http_client();
    let credentials = json!({"email": email, "password": "StrongPass123"});
    let registered = client
        .post(server.url("/api/auth/register"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    login_at(&client, &server.address, email)
        .await
        .expect("a new account logs in")
}

/// `POST /api/profiles/me/photo` on a server process.
pub async fn upload(server: &ServerProcess, token: &str, bytes: Vec<u8>) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name("photo.png"),
    );
    crate::helpers::http_client()
        .post(server.url("/api/profiles/me/photo"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// The process's peak resident memory (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    proc_status_kb(pid, "VmHWM") * 1024
}

/// Eight 16-bit 4096×4096 PNGs at once (130 KB each, 128 MiB each decoded): all refused, and
/// the process's peak memory stays far below what one decode would take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_16_bit_bombs_keep_memory_bounded() {
    let server = ServerProcess::start(&[]);
    // Eight accounts: one account has one upload in flight.
    let mut tokens = Vec::new();
    for i in 0..8 {
        tokens.push(token_on(&server, &format!("bombs{i}@example.com")).await);
    }
    let bomb = png_16_bit();
    let uploads = tokens
        .iter()
        .map(|token| upload(&server, token, bomb.clone()));
    for response in futures_util::future::join_all(uploads).await {
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    let peak = peak_rss(server.pid());
    assert!(
        peak < 100 * 1024 * 1024,
        "peak RSS {} MB",
        peak / (1024 * 1024)
    );
}

/// With 256 file descriptors, 400 idle connections cannot lock new clients out: the server
/// closes the longest-idle ones to make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_use_up_the_file_descriptors() {
    let server = ServerProcess::start_with_open_files(256, &[]);
    let address = server.address.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..400 {
        match tokio::net::TcpStream::connect(&address).await {
            Ok(stream) => idle.push(stream),
            Err(e) => panic!("connect: {e}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let response = crate::helpers::http_client()
            .get(server.url("/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("a new client is served");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

/// A failure on a path that only REST serves (reading a stored photo: the store fails, 503) is
/// logged with its cause and request id; the client sees only the generic message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_on_rest_only_paths_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_in(dir.path(), &[]);
    let token = token_on(&server, "broken@example.com").await;
    let png = image_bytes(8, 8, image::ImageFormat::Png);
    let uploaded: Value = upload(&server, &token, png).await.json().await.unwrap();
    let path = uploaded["profile_photo_path"].as_str().unwrap();
    // The file becomes something the store cannot read: a link to itself.
    let file = dir.path().join(path);
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&file, &file).unwrap();
    let response = crate::helpers::http_client()
        .get(server.url(&format!("/{path}")))
        .header("x-request-id", "broken-photo-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"detail": "Service unavailable"}));
    let log = server.log();
    let logged = log.iter().any(|line| {
        line.contains("backend unavailable")
            && line.contains("broken-photo-1")
            && line.contains("photo store")
            && line.contains("symbolic links")
    });
    assert!(logged, "{}", log.join("\n"));
}
