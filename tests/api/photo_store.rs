//! Photos on S3: the photo flows against a real S3-compatible server, moto's (from PyPI),
//! reached through a proxy the tests can cut. Upload, replace, delete, serve (ETag, 304),
//! variants, 10 parallel uploads, an account's deletion, and a store that stops answering:
//! 503, nothing changed, and it works again once the store is back.
//!
//! `S3_TEST_PYTHON` names a Python that has `moto[server]` (`.ci/run` makes one); without it
//! the first test that needs one makes a virtual environment under the target folder.

use std::{
    collections::BTreeSet,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, body, image_bytes, python_with, spawn_app_with};

const MOTO: &str = "moto[server]==5.2.5";

/// A Python with moto's server, made once per test run.
fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| python_with("S3_TEST_PYTHON", "moto-venv", "moto.server", MOTO))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// moto's S3 server on a port of its own, behind a proxy that can stop answering.
struct S3Server {
    child: Child,
    port: u16,
    proxy: Proxy,
}

impl S3Server {
    async fn start() -> Self {
        let port = free_port();
        let child = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let proxy = Proxy::start(port).await;
        Self { child, port, proxy }
    }

    /// A new bucket; moto takes unsigned requests.
    async fn bucket(&self) -> String {
        let name = format!("photos-{}", uuid::Uuid::new_v4().simple());
        let made = crate::helpers::http_client()
            .put(format!("http://127.0.0.1:{}/{name}", self.port))
            .send()
            .await
            .unwrap();
        assert!(made.status().is_success(), "{}", made.status());
        name
    }

    /// The keys in `bucket`, sorted.
    async fn keys(&self, bucket: &str) -> BTreeSet<String> {
        let listing = crate::helpers::http_client()
            .get(format!(
                "http://127.0.0.1:{}/{bucket}?list-type=2&max-keys=1000",
                self.port
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        listing
            .split("<Key>")
            .skip(1)
            .filter_map(|part| part.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }

    /// An app on `backend` keeping its photos in a new bucket of this server, under `svc/`.
    async fn app(&self, backend: Backend) -> (TestApp, String) {
        let bucket = self.bucket().await;
        let store = format!("s3://{bucket}/svc");
        let endpoint = format!("http://127.0.0.1:{}", self.proxy.port);
        let settings = [
            ("PHOTO_STORE", store.as_str()),
            ("AWS_ENDPOINT", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_TIMEOUT", "2 seconds"),
            ("AWS_CONNECT_TIMEOUT", "1 second"),
        ];
        (spawn_app_with(backend, &settings).await, bucket)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy to moto that the test can turn into a black hole: connections are then
/// accepted and held without an answer, as a store that hangs.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&down);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let flag = Arc::clone(&flag);
                tokio::spawn(async move {
                    if flag.load(Ordering::SeqCst) {
                        // Hold the connection, answer nothing.
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let copying = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    // A connection open when the store goes down stops answering too.
                    let cut = async {
                        while !flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    };
                    tokio::select! {
                        _ = copying => {}
                        () = cut => {}
                    }
                });
            }
        });
        Self { port, down }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

fn png() -> Vec<u8> {
    image_bytes(40, 30, image::ImageFormat::Png)
}

fn jpeg() -> Vec<u8> {
    image_bytes(50, 20, image::ImageFormat::Jpeg)
}

/// The keys a photo path `uploads/{user}/{uuid}.{ext}` stands for in the bucket.
fn keys_of(path: &str) -> BTreeSet<String> {
    let rest = path.strip_prefix("uploads/").unwrap();
    let stem = rest.rsplit_once('.').unwrap().0;
    [
        format!("svc/{rest}"),
        format!("svc/{stem}-64.webp"),
        format!("svc/{stem}-256.webp"),
    ]
    .into_iter()
    .collect()
}

async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>) -> reqwest::Response {
    app.upload_rest(token, bytes, "photo.png", "image/png")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_live_in_the_bucket_sqlite() {
    photos_live_in_the_bucket(Backend::Sqlite).await;
}

#[cfg_attr(not(pg_tests), ignore = "set TEST_DATABASE_URL to run on PostgreSQL")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_live_in_the_bucket_postgres() {
    photos_live_in_the_bucket(Backend::Postgres).await;
}

async fn photos_live_in_the_bucket(backend: Backend) {
    let s3 = S3Server::start().await;
    let (app, bucket) = s3.app(backend).await;
    let (user_id, token) = app.signed_up("s3@example.com").await;

    let uploaded = upload(&app, &token, png()).await;
    assert_eq!(uploaded.status(), StatusCode::OK);
    let first = body(uploaded).await["profile_photo_path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(first.starts_with(&format!("uploads/{user_id}/")), "{first}");
    assert_eq!(s3.keys(&bucket).await, keys_of(&first));
    assert!(app.stored_files().is_empty(), "nothing on the local disk");
    // Each object carries its Content-Type (a CDN or a browser reading the bucket needs it).
    for key in keys_of(&first) {
        let object = crate::helpers::http_client()
            .get(format!("http://127.0.0.1:{}/{bucket}/{key}", s3.port))
            // moto checks no signature, only that there is one.
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(object.status(), StatusCode::OK, "{key}");
        let expected = if key.ends_with(".webp") {
            "image/webp"
        } else {
            "image/png"
        };
        assert_eq!(object.headers()["content-type"], expected, "{key}");
    }

    // Served from the bucket, with its ETag and 304.
    let served = app.get(&format!("/{first}")).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()["content-type"], "image/png");
    let etag = served.headers()["etag"].clone();
    let image = image::load_from_memory(&served.bytes().await.unwrap()).unwrap();
    assert_eq!((image.width(), image.height()), (40, 30));
    let again = app
        .client
        .get(app.url(&format!("/{first}")))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    for size in [64u32, 256] {
        let variant = app.get(&format!("/{first}?size={size}")).await;
        assert_eq!(variant.status(), StatusCode::OK);
        assert_eq!(variant.headers()["content-type"], "image/webp");
        let image = image::load_from_memory(&variant.bytes().await.unwrap()).unwrap();
        assert_eq!((image.width(), image.height()), (size, size));
    }
    let wrong = app.get(&format!("/{first}?size=100")).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let url = app
        .graphql(
            Some(&token),
            "{ myProfile { photoUrl small: photoUrl(size: 64) } }",
            json!({}),
        )
        .await;
    assert_eq!(
        url["data"]["myProfile"]["small"],
        format!("http://127.0.0.1:8000/{first}?size=64")
    );

    // Replaced: the old photo and its variants go.
    let replaced = upload(&app, &token, jpeg()).await;
    assert_eq!(replaced.status(), StatusCode::OK);
    let second = body(replaced).await["profile_photo_path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s3.keys(&bucket).await, keys_of(&second));
    let old = app.get(&format!("/{first}")).await;
    assert_eq!(old.status(), StatusCode::NOT_FOUND);

    // Deleted.
    let deleted = app.delete_auth("/api/profiles/me/photo", &token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(s3.keys(&bucket).await.is_empty());

    // An account's deletion takes its photos.
    assert_eq!(upload(&app, &token, png()).await.status(), StatusCode::OK);
    assert_eq!(s3.keys(&bucket).await.len(), 3);
    let gone = app
        .client
        .delete(app.url("/api/users/me"))
        .bearer_auth(&token)
        .json(&json!({"password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert!(s3.keys(&bucket).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_parallel_uploads_of_one_account_leave_one_photo_in_the_bucket() {
    let s3 = S3Server::start().await;
    let (app, bucket) = s3.app(Backend::Sqlite).await;
    let (_, token) = app.signed_up("many@example.com").await;
    let uploads = (0..10).map(|i| {
        let bytes = if i % 2 == 0 { png() } else { jpeg() };
        upload(&app, &token, bytes)
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(uploads)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    // One upload in flight per account: the others are 429, or run after it.
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
    let referenced = app.referenced_files().await;
    assert_eq!(referenced.len(), 1);
    assert_eq!(s3.keys(&bucket).await, keys_of(&referenced[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stops_answering_is_503_and_changes_nothing() {
    let s3 = S3Server::start().await;
    let (app, bucket) = s3.app(Backend::Sqlite).await;
    let (_, token) = app.signed_up("outage@example.com").await;
    let uploaded = upload(&app, &token, png()).await;
    let first = body(uploaded).await["profile_photo_path"]
        .as_str()
        .unwrap()
        .to_owned();

    s3.proxy.set_down(true);
    let started = Instant::now();
    let refused = upload(&app, &token, jpeg()).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "fails in bounded time"
    );
    assert_eq!(
        app.referenced_files().await,
        vec![first.clone()],
        "the row is unchanged"
    );
    let read = app.get(&format!("/{first}")).await;
    assert_eq!(read.status(), StatusCode::SERVICE_UNAVAILABLE);
    // A client that has the photo is answered without the store.
    let etag = format!("\"{}\"", first.rsplit('/').next().unwrap());
    let cached = app
        .client
        .get(app.url(&format!("/{first}")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(cached.headers()["etag"], etag.as_str());
    // The rest of the service goes on.
    assert_eq!(app.my_profile(&token).await.status(), StatusCode::OK);

    s3.proxy.set_down(false);
    let read = app.get(&format!("/{first}")).await;
    assert_eq!(read.status(), StatusCode::OK, "the photo was never touched");
    let replaced = upload(&app, &token, jpeg()).await;
    assert_eq!(replaced.status(), StatusCode::OK);
    let second = body(replaced).await["profile_photo_path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s3.keys(&bucket).await, keys_of(&second));
}
