//! `spawn_app`: the real application on a random port with its own fresh database, and a
//! client with helpers that read like the API they call.

use std::{collections::HashMap, path::PathBuf, process::Command};

use nta_user_svc::{config::Config, startup::App};
use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret!";
pub const PASSWORD: &str = "StrongPass123";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// A connection of the test's own to the app's database, to check rows.
    pub db: DatabaseConnection,
    /// The app's `DATABASE_URL` (for a second replica on the same database).
    pub database_url: String,
    /// Holds the SQLite file and the upload folder; removed when the test ends.
    _dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    postgres: Option<PostgresDatabase>,
}

/// A client for the tests. reqwest's TLS (rustls, which the service's S3 client brings in)
/// needs a process-wide crypto provider; the service installs ring when it starts, and tests
/// may make a client before any app has started.
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().unwrap()
}

/// As [`http_client`], to configure further.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// Starts the app on `backend` with test settings (bcrypt cost 4, a known JWT secret).
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// The same, with extra or overriding settings.
pub async fn spawn_app_with(backend: Backend, settings: &[(&str, &str)]) -> TestApp {
    init_logging();
    let dir = tempfile::tempdir().expect("temp dir");
    let postgres = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(PostgresDatabase::create().await),
    };
    let database_url = match &postgres {
        None => format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
        Some(pg) => pg.url.clone(),
    };
    let upload_dir = dir.path().join("uploads");
    let mail_dir = dir.path().join("mail");
    let mut env: HashMap<String, String> = [
        ("DATABASE_URL", database_url.as_str()),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("JWT_SECRET", JWT_SECRET),
        ("BCRYPT_COST", "4"),
        ("UPLOAD_DIR", upload_dir.to_str().unwrap()),
        ("MAIL_DIR", mail_dir.to_str().unwrap()),
        // Many apps run at once in this process; the metrics test runs its own process.
        ("METRICS_ADDR", ""),
        // Tests register and log in far more often than a person; the limits' own tests
        // set them low again.
        ("LOGIN_PER_IP_PER_MINUTE", "10000"),
        ("REGISTER_PER_IP_PER_MINUTE", "10000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test config");

    let app = App::build(config).await.expect("app builds");
    let port = app.port();
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stop.await;
    }));
    let db = Database::connect(&database_url)
        .await
        .expect("test db connection");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: http_client(),
        db,
        database_url,
        _dir: dir,
        shutdown: Some(shutdown),
        server: Some(server),
        postgres,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The app's `UPLOAD_DIR`.
    pub fn upload_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("uploads")
    }

    /// The app's `MAIL_DIR` (messages as `.eml` files when no SMTP server is set).
    pub fn mail_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("mail")
    }

    /// The messages delivered to `MAIL_DIR` for `to`, oldest first, waiting up to 10 s for
    /// at least `count` of them.
    pub async fn mail_to(&self, to: &str, count: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut files: Vec<_> = std::fs::read_dir(self.mail_dir())
                .map(|dir| dir.flatten().map(|f| f.path()).collect())
                .unwrap_or_default();
            files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
            files.sort();
            let messages: Vec<String> = files
                .iter()
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .filter(|m| {
                    m.lines()
                        .any(|l| l.eq_ignore_ascii_case(&format!("To: {to}")))
                })
                .collect();
            if messages.len() >= count || std::time::Instant::now() > deadline {
                return messages;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to 10 s) until the outbox holds no message still to send.
    pub async fn mail_delivered(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self
            .count("SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL")
            .await
            > 0
        {
            assert!(std::time::Instant::now() < deadline, "mail still queued");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Every photo under `UPLOAD_DIR`, as `uploads/{user}/{file}` paths, sorted. Each must
    /// come with its two variants (`{uuid}-64.webp`, `{uuid}-256.webp`), and no variant may
    /// be left without its photo: a file out of place fails the test here.
    pub fn stored_files(&self) -> Vec<String> {
        let mut photos = Vec::new();
        let mut variants = std::collections::BTreeSet::new();
        let Ok(users) = std::fs::read_dir(self.upload_dir()) else {
            return photos;
        };
        for user in users.flatten() {
            let user_id = user.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(user.path()).unwrap().flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                if name.ends_with("-64.webp") || name.ends_with("-256.webp") {
                    variants.insert(format!("uploads/{user_id}/{name}"));
                } else {
                    photos.push(format!("uploads/{user_id}/{name}"));
                }
            }
        }
        photos.sort();
        let expected: std::collections::BTreeSet<String> = photos
            .iter()
            .flat_map(|photo| {
                let stem = photo.rsplit_once('.').unwrap().0.to_owned();
                [format!("{stem}-64.webp"), format!("{stem}-256.webp")]
            })
            .collect();
        assert_eq!(variants, expected, "each photo with its variants, no more");
        photos
    }

    /// Every photo path the database references, sorted.
    pub async fn referenced_files(&self) -> Vec<String> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT profile_photo_path FROM profiles WHERE profile_photo_path IS NOT NULL",
            ))
            .await
            .unwrap();
        let mut paths: Vec<String> = rows
            .iter()
            .map(|row| row.try_get_by_index::<String>(0).unwrap())
            .collect();
        paths.sort();
        paths
    }

    pub async fn delete_auth(&self, path: &str, token: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `POST /api/profiles/me/photo` with `bytes` as the multipart field `file`.
    pub async fn upload_rest(
        &self,
        token: &str,
        bytes: Vec<u8>,
        name: &str,
        mime: &str,
    ) -> Response {
        self.try_upload_rest(token, bytes, name, mime)
            .await
            .unwrap()
    }

    /// The same, keeping a connection error (see [`expect_too_large`]).
    pub async fn try_upload_rest(
        &self,
        token: &str,
        bytes: Vec<u8>,
        name: &str,
        mime: &str,
    ) -> Result<Response, reqwest::Error> {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str(mime)
            .unwrap();
        let form = reqwest::multipart::Form::new().part("file", part);
        self.client
            .post(self.url("/api/profiles/me/photo"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
    }

    /// `uploadProfilePhoto` by the GraphQL multipart request spec.
    pub async fn upload_graphql(&self, token: &str, bytes: Vec<u8>, name: &str) -> Response {
        let operations = json!({
            "query": "mutation($file: Upload!) { uploadProfilePhoto(file: $file) { userId profilePhotoPath } }",
            "variables": {"file": null}
        });
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({"0": ["variables.file"]}).to_string())
            .part(
                "0",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
            );
        self.client
            .post(self.url("/graphql"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Stops accepting connections; requests in flight finish.
    pub fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// `GET path`, no credentials.
    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/register",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Logs in with the standard password and returns the answer's body (asserting a 200).
    pub async fn tokens(&self, email: &str) -> Value {
        self.tokens_with(email, PASSWORD).await
    }

    /// Logs in and returns the answer's body (asserting a 200).
    pub async fn tokens_with(&self, email: &str, password: &str) -> Value {
        let login = self.login(email, password).await;
        assert_eq!(login.status(), StatusCode::OK);
        body(login).await
    }

    /// `POST /api/auth/refresh`.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/api/auth/refresh",
            &json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    /// `POST` to a path with a token and no body.
    pub async fn post_auth(&self, path: &str, token: &str) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Registers `email` with the standard password and returns `(user_id, token)`.
    pub async fn signed_up(&self, email: &str) -> (i64, String) {
        let registered = self.register(email, PASSWORD).await;
        assert_eq!(registered.status(), StatusCode::CREATED);
        let id = body(registered).await["id"].as_i64().unwrap();
        let login = self.login(email, PASSWORD).await;
        assert_eq!(login.status(), StatusCode::OK);
        let token = body(login).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        (id, token)
    }

    /// `GET /api/users/profile`: the account view.
    pub async fn account(&self, token: &str) -> Response {
        self.get_auth("/api/users/profile", token).await
    }

    /// `PUT /api/users/profile`.
    pub async fn update_account(&self, token: &str, body: &Value) -> Response {
        self.put_auth("/api/users/profile", token, body).await
    }

    /// `GET /api/users/me/profile`.
    pub async fn my_profile(&self, token: &str) -> Response {
        self.get_auth("/api/users/me/profile", token).await
    }

    /// `PUT /api/profiles/me`: a partial update.
    pub async fn update_my_profile(&self, token: &str, body: &Value) -> Response {
        self.put_auth("/api/profiles/me", token, body).await
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn put_auth(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Sends a raw body with the given content type.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.client
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs a GraphQL document, with a token when given; returns the parsed response.
    pub async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        body(response).await
    }

    /// Counts rows with a plain SQL query on the app's database.
    pub async fn count(&self, sql: &str) -> i64 {
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    pub async fn execute(&self, sql: &str) {
        let backend = self.db.get_database_backend();
        self.db
            .execute_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .unwrap();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shut_down();
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(pg) = self.postgres.take() {
            pg.drop_database();
        }
    }
}

/// For bodies over a limit: the server answers 413 as soon as the limit is passed and stops
/// reading, so a client still writing may see that answer or a closed connection. Returns
/// the 413's body when there was one.
pub async fn expect_too_large(sent: Result<Response, reqwest::Error>) -> Option<Value> {
    match sent {
        Ok(response) => {
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
            // The rest of the body is never read, so the connection must not be reused.
            assert_eq!(response.headers()["connection"], "close");
            Some(body(response).await)
        }
        Err(e) => {
            assert!(e.is_request(), "{e}");
            None
        }
    }
}

pub async fn body(response: Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts status and `detail`, returning the body.
pub async fn expect_error(response: Response, status: StatusCode, detail: &str) -> Value {
    assert_eq!(response.status(), status);
    let body = body(response).await;
    assert_eq!(body["detail"], detail, "{body}");
    body
}

/// A database of its own on the PostgreSQL server named by `TEST_DATABASE_URL`.
pub struct PostgresDatabase {
    pub admin_url: String,
    pub name: String,
    pub url: String,
}

impl PostgresDatabase {
    pub async fn create() -> Self {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .expect("TEST_DATABASE_URL must be set for the PostgreSQL tests");
        let name = format!("nta_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let base = admin_url.split('?').next().unwrap();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// Dropped from a thread of its own: `Drop` cannot await, and the test's runtime may be
    /// single-threaded.
    pub fn drop_database(self) {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(&self.admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                            self.name
                        ))
                        .await;
                }
            });
        })
        .join()
        .ok();
    }
}

fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        nta_user_svc::telemetry::init(nta_user_svc::config::LogFormat::Pretty);
    }
}

/// Declares each test function once per backend: `name::sqlite` and `name::postgres`.
/// Without `TEST_DATABASE_URL` the PostgreSQL variants show as ignored, with the reason.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::helpers::{Backend, spawn_app};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(spawn_app(Backend::Sqlite).await).await;
            }

            #[cfg_attr(not(pg_tests), ignore = "set TEST_DATABASE_URL to run on PostgreSQL")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(spawn_app(Backend::Postgres).await).await;
            }
        }
    )*};
}

/// A token signed with the test secret under `algorithm`, holding exactly `claims`.
pub fn sign(claims: Value, algorithm: &str) -> String {
    let algorithm = algorithm.parse().expect("algorithm");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// An `alg: none` token: no signature at all.
pub fn unsigned(claims: Value) -> String {
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    )
}

/// The claims of a token, read without checking it.
pub fn decode_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("claims JSON")
}

fn b64(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// An image of the given size and format, made here (a gradient, so JPEG has something to
/// compress).
pub fn image_bytes(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

/// A JPEG carrying an EXIF segment with a recognisable GPS marker.
pub fn jpeg_with_exif(marker: &str) -> Vec<u8> {
    let jpeg = image_bytes(32, 24, image::ImageFormat::Jpeg);
    let mut exif = b"Exif\0\0MM\0*\0\0\0\x08\0\0\0\0\0\0".to_vec();
    exif.extend_from_slice(marker.as_bytes());
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG whose header declares `width`×`height` with no pixel data behind it.
pub fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&width.to_be_bytes());
    chunk.extend_from_slice(&height.to_be_bytes());
    chunk.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    out
}

/// As [`on_both_backends!`], with the settings that `super::$settings()` returns.
#[macro_export]
macro_rules! on_both_backends_with {
    ($settings:ident; $($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::helpers::{Backend, spawn_app_with};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(spawn_app_with(Backend::Sqlite, &super::$settings()).await).await;
            }

            #[cfg_attr(not(pg_tests), ignore = "set TEST_DATABASE_URL to run on PostgreSQL")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(spawn_app_with(Backend::Postgres, &super::$settings()).await).await;
            }
        }
    )*};
}

/// A `kB` field of `/proc/{pid}/status` (`VmRSS`, `VmHWM`, …).
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Logs in at the server at `base` with the standard password; the token, if it worked.
pub async fn login_at(client: &reqwest::Client, base: &str, email: &str) -> Option<String> {
    let response = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    body["access_token"].as_str().map(str::to_owned)
}

/// A message's text with quoted-printable soft breaks and escapes undone.
pub fn decoded(message: &str) -> String {
    let joined = message.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::with_capacity(joined.len());
    let bytes = joined.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token of the first `http://127.0.0.1:8000{path}?token=…` link in `message`.
pub fn link_token(message: &str, path: &str) -> String {
    let text = decoded(message);
    let marker = format!("http://127.0.0.1:8000{path}?token=");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no {path} link in {text}"))
        + marker.len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// A Python that can `import module`: the one `env_var` names, else a virtual environment
/// `{venv}` under the target folder with `package` installed from PyPI (made on first use).
pub fn python_with(env_var: &str, venv: &str, module: &str, package: &str) -> PathBuf {
    if let Some(given) = std::env::var_os(env_var) {
        return PathBuf::from(given);
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(venv);
    let python = venv.join("bin/python");
    let has_it = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !has_it {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(
            made.success(),
            "python3 -m venv failed (install python3-venv)"
        );
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", package])
            .status()
            .expect("pip runs");
        assert!(installed.success(), "pip install {package} failed");
    }
    python
}
