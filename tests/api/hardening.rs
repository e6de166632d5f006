//! What an attacker tried: slow and silent sockets, parallel guesses, decompression bombs,
//! hidden root fields, look-alike emails, forged request ids, orphan files. Each test here
//! failed before the fix it guards.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    helpers::{Backend, PASSWORD, TestApp, body, expect_error, image_bytes, spawn_app_with},
    on_both_backends, on_both_backends_with,
};

/// Short timeouts, so the tests wait seconds, not minutes.
const QUICK: [(&str, &str); 3] = [
    ("HEADER_READ_TIMEOUT_SECS", "1"),
    ("BODY_IDLE_TIMEOUT_SECS", "1"),
    ("BODY_TIMEOUT_SECS", "3"),
];

async fn quick_app() -> TestApp {
    spawn_app_with(Backend::Sqlite, &QUICK).await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `limit` passes); what it sent.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&received).into()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

fn multipart_head(path: &str, token: Option<&str>, length: usize) -> String {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\
         Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {length}\r\n\r\n"
    )
}

// --- 1. Upload slots -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_upload_bodies_take_no_slot_and_are_cut() {
    let app = quick_app().await;
    let (_, token) = app.signed_up("uploader@example.com").await;
    // Eight clients send an upload's headers, then nothing: anonymous ones to GraphQL, and
    // signed-in ones to both paths.
    let mut silent = Vec::new();
    for i in 0..8 {
        let mut stream = connect(&app).await;
        let (path, token) = match i % 3 {
            0 => ("/graphql", None),
            1 => ("/graphql", Some(token.as_str())),
            _ => ("/api/profiles/me/photo", Some(token.as_str())),
        };
        let head = multipart_head(path, token, 100_000);
        stream.write_all(head.as_bytes()).await.unwrap();
        silent.push((i, stream));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A real upload still goes through at once.
    let started = Instant::now();
    let png = image_bytes(16, 16, image::ImageFormat::Png);
    let uploaded = app
        .upload_rest(&token, png.clone(), "a.png", "image/png")
        .await;
    assert_eq!(uploaded.status(), StatusCode::OK);
    let uploaded = app.upload_graphql(&token, png, "a.png").await;
    assert_eq!(uploaded.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The silent ones: anonymous ones are refused at once, the others cut after the body
    // idle timeout, with the connection closed.
    for (i, mut stream) in silent {
        let answer = read_until_closed(&mut stream, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("connection {i} still open"));
        let expected = if i % 3 == 0 { "401" } else { "408" };
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {expected}")),
            "{i}: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_half_way_is_cut() {
    let app = quick_app().await;
    let (_, token) = app.signed_up("stall@example.com").await;
    let mut stream = connect(&app).await;
    let head = multipart_head("/api/profiles/me/photo", Some(&token), 10_000);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

// --- 2. Lockout under concurrency --------------------------------------------------------

fn three_failures() -> Vec<(&'static str, &'static str)> {
    vec![("LOGIN_MAX_FAILURES", "3")]
}

async fn parallel_guesses_check_no_more_passwords_than_the_limit(app: TestApp) {
    app.signed_up("target@example.com").await;
    // A guesser's burst: forty wrong passwords at once. (The right password in the burst
    // would free the reservations when it succeeds, as any successful login does; a guesser
    // never has it, and with it the outcome depends on the order of arrival.)
    let guesses = (0..40).map(|i| {
        let app = &app;
        async move {
            app.login("target@example.com", &format!("Wrong-{i}-pass"))
                .await
                .status()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (3, 37), "{statuses:?}");
    // The account is locked now: even the right password waits.
    let after = app.login("target@example.com", PASSWORD).await;
    assert_eq!(after.status(), StatusCode::TOO_MANY_REQUESTS);
}

on_both_backends_with!(three_failures; parallel_guesses_check_no_more_passwords_than_the_limit);

// --- 3. Decode memory ----------------------------------------------------------------------

/// A 4096×4096 RGBA PNG at 16 bits a channel: about 130 KB, 128 MiB decoded.
pub fn png_16_bit() -> Vec<u8> {
    let image = image::DynamicImage::ImageRgba16(image::ImageBuffer::new(4096, 4096));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn sixteen_bit_bombs_are_refused(app: TestApp) {
    let (_, token) = app.signed_up("bomb@example.com").await;
    let response = app
        .upload_rest(&token, png_16_bit(), "deep.png", "image/png")
        .await;
    let body = expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "The image is too large; its pixels may take at most 96 MiB.",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "file");
    assert!(app.stored_files().is_empty());
}

// --- 4. Connections -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sent_slowly_are_cut() {
    let app = quick_app().await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    // One header byte every 300 ms: each arrives well within any per-read timeout.
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n" {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let answer = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(answer.is_some(), "still open after {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let app = quick_app().await;
    // Silent from the start.
    let mut silent = connect(&app).await;
    // Idle after one request.
    let mut kept = connect(&app).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    for stream in [&mut silent, &mut kept] {
        let closed = read_until_closed(stream, Duration::from_secs(4)).await;
        assert!(closed.is_some(), "idle connection left open");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_without_end_is_cut() {
    let app = quick_app().await;
    let mut stream = connect(&app).await;
    stream
        .write_all(
            b"POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\n{\"ema\r\n",
        )
        .await
        .unwrap();
    // More chunks, each within the idle timeout, past the whole-body deadline (3 s).
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if stream.write_all(b"1\r\n \r\n").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let answer = read_until_closed(&mut stream, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_clients_get_in_when_idle_connections_fill_the_server() {
    let app = spawn_app_with(Backend::Sqlite, &[("MAX_CONNECTIONS", "20")]).await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(connect(&app).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let response = crate::helpers::http_client()
            .get(app.url("/healthz"))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // The oldest idle ones were closed to make room.
    let closed = read_until_closed(&mut idle[0], Duration::from_secs(1)).await;
    assert!(closed.is_some());
}

// --- 5. The in-memory limit table ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_addresses_does_not_erase_a_lock() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("LOGIN_MAX_FAILURES", "3"),
            ("RATE_LIMIT_MAX_KEYS", "500"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    app.signed_up("locked@example.com").await;
    for _ in 0..3 {
        app.login("locked@example.com", "Wrong-pass-123").await;
    }
    // 2 000 cheap requests from 2 000 addresses.
    let flood = (0..2000u32).map(|i| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/auth/login"))
                .header(
                    "x-forwarded-for",
                    format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                )
                .json(&json!({"email": "locked@example.com", "password": "x-pass-xyz"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures_util::stream::iter(flood)
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS));
    let after = app.login("locked@example.com", PASSWORD).await;
    assert_eq!(after.status(), StatusCode::TOO_MANY_REQUESTS);
}

// --- 6. Browser pages -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_pages_cannot_be_framed_and_load_only_their_own_scripts() {
    let app = quick_app().await;
    // Browsers ask every page's icon: no 404s in the log for it.
    let icon = app.get("/favicon.ico").await;
    assert_eq!(icon.status(), StatusCode::NO_CONTENT);
    assert_eq!(icon.headers()["cache-control"], "public, max-age=86400");
    for path in ["/docs/", "/graphql"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let page = response.text().await.unwrap();
        assert!(!page.contains("https://"), "{path} loads from elsewhere");
    }
    let script = app
        .client
        .get(app.url("/graphiql/graphiql.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()["content-type"], "text/javascript");
    assert!(script.bytes().await.unwrap().len() > 500_000);
    // Swagger UI keeps the token in memory, not in localStorage.
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("\"persistAuthorization\": false"), "{init}");
}

// --- 7. Root fields behind fragments ------------------------------------------------------

async fn root_fields_behind_nested_fragments_are_counted(app: TestApp) {
    let logins: String = (0..25)
        .map(|i| format!("l{i}: login(input: $i) {{ tokenType }} "))
        .collect();
    let mut query = "mutation($i: LoginInput!) { ...F0 }".to_owned();
    for level in 0..12 {
        query.push_str(&format!(
            " fragment F{level} on Mutation {{ ...F{} }}",
            level + 1
        ));
    }
    query.push_str(&format!(" fragment F12 on Mutation {{ {logins} }}"));
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({"query": query, "variables": {"i": {"email": "a@b.c", "password": "x"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = body(response).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("root fields")
    );
    assert!(body.get("data").is_none_or(Value::is_null));
}

// --- 8. Multipart without a file -----------------------------------------------------------

async fn multipart_without_a_file_runs_nothing(app: TestApp) {
    let (_, token) = app.signed_up("form@example.com").await;
    let operations = json!({
        "query": "mutation($i: RegisterInput!) { register(input: $i) { id } }",
        "variables": {"i": {"email": "csrf@example.com", "password": PASSWORD}}
    });
    for token in [None, Some(token.as_str())] {
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", "{}");
        let mut request = app.client.post(app.url("/graphql")).multipart(form);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let expected = if token.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(response.status(), expected);
        let body = body(response).await;
        assert!(
            body["errors"][0]["extensions"]["code"].is_string(),
            "{body}"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE email = 'csrf@example.com'")
            .await,
        0
    );
}

// --- 9. One mailbox, one account -------------------------------------------------------------

async fn look_alike_emails_are_one_account_or_refused(app: TestApp) {
    let invisible = app.register("alice@example.com\u{200B}", PASSWORD).await;
    expect_error(invisible, StatusCode::BAD_REQUEST, "Invalid email format.").await;

    let nfc = app.register("user@jos\u{00E9}.example", PASSWORD).await;
    assert_eq!(nfc.status(), StatusCode::CREATED);
    let nfd = app.register("user@jose\u{0301}.example", PASSWORD).await;
    expect_error(nfd, StatusCode::CONFLICT, "Email already registered.").await;

    let idn = app.register("user@b\u{00FC}cher.example", PASSWORD).await;
    assert_eq!(idn.status(), StatusCode::CREATED);
    assert_eq!(body(idn).await["email"], "user@xn--bcher-kva.example");
    let ascii = app.register("user@xn--bcher-kva.example", PASSWORD).await;
    expect_error(ascii, StatusCode::CONFLICT, "Email already registered.").await;
    // Either spelling logs in.
    let login = app.login("USER@JOSE\u{0301}.example", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 2);
}

// --- 10. Files without a row ---------------------------------------------------------------

fn sweep_every_second() -> Vec<(&'static str, &'static str)> {
    vec![("PHOTO_SWEEP_INTERVAL_SECS", "1")]
}

async fn files_without_a_row_are_never_served_and_swept(app: TestApp) {
    let (user_id, token) = app.signed_up("orphans@example.com").await;
    let png = image_bytes(16, 16, image::ImageFormat::Png);
    let uploaded = body(
        app.upload_rest(&token, png.clone(), "a.png", "image/png")
            .await,
    )
    .await;
    let kept = uploaded["profile_photo_path"].as_str().unwrap().to_owned();
    let dir = app.upload_dir().join(user_id.to_string());
    // An old orphan (with its variants) and an old half-written file (the store's staging
    // name: a crash mid-write), and a young orphan (an upload whose row is not committed yet).
    let old_orphan = uuid::Uuid::new_v4().to_string();
    let young_orphan = uuid::Uuid::new_v4().to_string();
    let with_variants = |stem: &str| {
        [
            format!("{stem}.png"),
            format!("{stem}-64.webp"),
            format!("{stem}-256.webp"),
        ]
    };
    let mut planted: Vec<(String, bool)> = with_variants(&old_orphan)
        .into_iter()
        .map(|name| (name, true))
        .collect();
    planted.push((format!("{}.png#1", uuid::Uuid::new_v4()), true));
    planted.extend(
        with_variants(&young_orphan)
            .into_iter()
            .map(|name| (name, false)),
    );
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for (name, old) in &planted {
        std::fs::write(dir.join(name), &png).unwrap();
        if *old {
            std::fs::File::options()
                .write(true)
                .open(dir.join(name))
                .unwrap()
                .set_modified(an_hour_ago)
                .unwrap();
        }
    }
    let young_orphan = format!("{young_orphan}.png");
    let orphan_url = app.url(&format!("/uploads/{user_id}/{young_orphan}"));
    let served = app.client.get(orphan_url).send().await.unwrap();
    expect_error(served, StatusCode::NOT_FOUND, "Not Found").await;
    let served = app
        .client
        .get(app.url(&format!("/{kept}")))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);

    let deadline = Instant::now() + Duration::from_secs(5);
    let old_left = || {
        planted
            .iter()
            .any(|(name, old)| *old && dir.join(name).exists())
    };
    while old_left() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut left = app.stored_files();
    left.sort();
    let mut expected = vec![kept, format!("uploads/{user_id}/{young_orphan}")];
    expected.sort();
    assert_eq!(left, expected);
}

// --- 11. One upload limit ---------------------------------------------------------------------

const LIMIT: usize = 20_000;

fn small_uploads() -> Vec<(&'static str, &'static str)> {
    vec![("MAX_UPLOAD_BYTES", "20000")]
}

/// A valid PNG of exactly `size` bytes (a comment chunk pads it).
pub fn png_of_size(size: usize) -> Vec<u8> {
    let base = image_bytes(8, 8, image::ImageFormat::Png);
    let overhead = 12 + 5; // chunk length, type and CRC; "note\0"
    let text_len = size - base.len() - overhead;
    let mut chunk = b"tEXtnote\0".to_vec();
    chunk.extend(std::iter::repeat_n(b'x', text_len));
    let mut out = base[..base.len() - 12].to_vec(); // everything before IEND
    out.extend_from_slice(&((chunk.len() - 4) as u32).to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    out.extend_from_slice(&base[base.len() - 12..]);
    assert_eq!(out.len(), size);
    out
}

async fn the_upload_limit_is_on_the_file_on_both_paths(app: TestApp) {
    let (_, token) = app.signed_up("limit@example.com").await;
    let exact = png_of_size(LIMIT);
    let rest = app
        .upload_rest(&token, exact.clone(), "a.png", "image/png")
        .await;
    assert_eq!(rest.status(), StatusCode::OK);
    let graphql = app.upload_graphql(&token, exact, "a.png").await;
    assert_eq!(graphql.status(), StatusCode::OK);
    let graphql = body(graphql).await;
    assert!(
        graphql["data"]["uploadProfilePhoto"]["profilePhotoPath"].is_string(),
        "{graphql}"
    );

    let over = png_of_size(LIMIT + 1);
    let rest = app
        .upload_rest(&token, over.clone(), "a.png", "image/png")
        .await;
    assert_eq!(rest.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let graphql = app.upload_graphql(&token, over, "a.png").await;
    assert_eq!(graphql.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

// --- 12. Error bodies --------------------------------------------------------------------------

async fn every_error_body_is_json_and_names_no_internals(app: TestApp) {
    let (_, token) = app.signed_up("errors@example.com").await;
    let bad_path = app.get_auth("/api/profiles/%FF", &token).await;
    assert_eq!(bad_path.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body(bad_path).await["detail"][0]["loc"],
        json!(["path", "user_id"])
    );
    let bad_upload_path = app
        .client
        .get(app.url("/uploads/%FF/x.png"))
        .send()
        .await
        .unwrap();
    expect_error(bad_upload_path, StatusCode::NOT_FOUND, "Not Found").await;

    let duplicate = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=a%40b.c&username=d%40e.f&password=x")
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = body(duplicate).await.to_string();
    assert!(
        !text.contains("deserialize") && !text.contains("duplicate field"),
        "{text}"
    );

    for not_a_request in [json!({"query": 5}), json!("{ me { id } }"), json!([1])] {
        let response = app.post_json("/graphql", &not_a_request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let text = body(response).await.to_string();
        assert!(
            !text.contains("BatchRequest") && !text.contains("untagged"),
            "{text}"
        );
    }

    let malformed = app
        .client
        .post(app.url("/api/profiles/me/photo"))
        .bearer_auth(&token)
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body("--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc")
        .send()
        .await
        .unwrap();
    let body = expect_error(
        malformed,
        StatusCode::BAD_REQUEST,
        "Malformed multipart body",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "file");
}

// --- 13. Request ids -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_plain_short_request_ids_are_echoed() {
    let app = quick_app().await;
    let id_of = |id: String| {
        let request = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", id);
        async move {
            let response = request.send().await.unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(id_of("req-42.a:b_c".into()).await, "req-42.a:b_c");
    let forged = "1 user_id=42 status=500 ERROR forged";
    let answered = id_of(forged.into()).await;
    assert_ne!(answered, forged);
    assert!(uuid::Uuid::parse_str(&answered).is_ok(), "{answered}");
    let long = "a".repeat(8000);
    assert!(uuid::Uuid::parse_str(&id_of(long).await).is_ok());
}

// --- 14. Keep-alive after an early answer ----------------------------------------------------

async fn early_answers_never_break_a_pooled_connection(app: TestApp) {
    // One pooled connection, reused for every request.
    let client = crate::helpers::http_client_builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let big = json!({"bio": "x".repeat(200_000)});
    for _ in 0..30 {
        let refused = client
            .post(app.url("/api/profiles"))
            .json(&big)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(refused.headers()["connection"], "close");
        let next = client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(next.status(), StatusCode::OK);
        // A request whose body was read keeps its connection.
        assert!(next.headers().get("connection").is_none());
    }
}

on_both_backends!(
    sixteen_bit_bombs_are_refused,
    root_fields_behind_nested_fragments_are_counted,
    multipart_without_a_file_runs_nothing,
    look_alike_emails_are_one_account_or_refused,
    every_error_body_is_json_and_names_no_internals,
    early_answers_never_break_a_pooled_connection,
);
on_both_backends_with!(sweep_every_second; files_without_a_row_are_never_served_and_swept);
on_both_backends_with!(small_uploads; the_upload_limit_is_on_the_file_on_both_paths);
