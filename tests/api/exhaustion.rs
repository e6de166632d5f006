//! Hardening, round three: what one client could pin (memory, connections, CPU, queues) and
//! how a stolen token could keep an account. Each test repeats an attack as it was made
//! (huge inputs, trickling bodies, readers that never read, bursts, NUL characters) and
//! failed before the fix it guards.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::{
    helpers::{
        Backend, PASSWORD, TestApp, body, expect_error, http_client_builder, link_token,
        spawn_app_with,
    },
    on_both_backends,
    process::{ServerProcess, peak_rss, token_on, upload},
};

// --- Inputs: bounded before any work, no NUL reaching a database ---------------------------

async fn huge_emails_are_refused_before_any_work(app: TestApp) {
    let huge = format!("{}@example.com", "é".repeat(400_000));
    for (path, body) in [
        (
            "/api/auth/login",
            json!({"email": huge, "password": PASSWORD}),
        ),
        (
            "/api/auth/register",
            json!({"email": huge, "password": PASSWORD}),
        ),
        ("/api/auth/forgot-password", json!({"email": huge})),
    ] {
        let started = Instant::now();
        let response = app.post_json(path, &body).await;
        let answer = expect_error(
            response,
            StatusCode::BAD_REQUEST,
            "Email must be at most 254 characters.",
        )
        .await;
        assert_eq!(answer["errors"][0]["field"], "email", "{path}");
        assert!(started.elapsed() < Duration::from_secs(2), "{path}");
    }
    // URL-encoded, the one above would be over the body limit (413): ASCII, as long.
    let long = format!("{}@example.com", "a".repeat(500_000));
    let form = [("username", long.as_str()), ("password", PASSWORD)];
    let response = app
        .client
        .post(app.url("/api/auth/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let long_password = "p".repeat(129);
    let response = app.login("someone@example.com", &long_password).await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "Password must be at most 128 characters.",
    )
    .await;
    let graphql = app
        .graphql(
            None,
            "mutation($e: String!) { login(input: {email: $e, password: \"x\"}) { accessToken } }",
            json!({"e": huge}),
        )
        .await;
    assert_eq!(graphql["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    // Nothing was counted or stored.
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn nul_characters_are_400_everywhere_never_500(app: TestApp) {
    let (_, token) = app.signed_up("nul@example.com").await;
    let nul = "a\u{0}b";
    let mut checks: Vec<(&str, reqwest::Response)> = Vec::new();
    checks.push((
        "login email",
        app.login(&format!("{nul}@example.com"), PASSWORD).await,
    ));
    checks.push((
        "register name",
        app.post_json(
            "/api/users/register",
            &json!({"email": "n2@example.com", "password": PASSWORD, "name": nul}),
        )
        .await,
    ));
    checks.push((
        "forgot email",
        app.post_json(
            "/api/auth/forgot-password",
            &json!({"email": format!("{nul}@example.com")}),
        )
        .await,
    ));
    checks.push((
        "account name",
        app.update_account(&token, &json!({"name": nul})).await,
    ));
    for field in ["name", "bio", "hobby", "occupation", "location", "phone"] {
        checks.push((
            "profile field",
            app.update_my_profile(&token, &json!({ field: nul })).await,
        ));
    }
    checks.push((
        "reset token",
        app.post_json(
            "/api/auth/reset-password",
            &json!({"token": nul, "new_password": "NewPass12345"}),
        )
        .await,
    ));
    for (what, response) in checks {
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
    }
    // GraphQL, the same rules.
    let answer = app
        .graphql(
            Some(&token),
            "mutation($n: String) { updateProfile(input: {name: $n}) { name } }",
            json!({"n": nul}),
        )
        .await;
    assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(
        answer["errors"][0]["message"],
        "Name must not contain control characters."
    );
    // Tabs and line breaks are text in the bio.
    let bio = app
        .update_my_profile(&token, &json!({"bio": "two\nlines\tand a tab"}))
        .await;
    assert_eq!(bio.status(), StatusCode::OK);
    assert_eq!(body(bio).await["bio"], "two\nlines\tand a tab");
}

on_both_backends!(
    huge_emails_are_refused_before_any_work,
    nul_characters_are_400_everywhere_never_500,
    email_changes_are_limited_refusals_included,
    the_undo_link_gives_the_account_back,
    a_moved_address_cannot_be_taken_while_its_undo_link_lives,
);

/// 300 logins with 1 MB emails used to take the process from 27 to 315 MiB, for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_with_huge_emails_keep_no_memory() {
    let server = ServerProcess::start(&[("LOGIN_PER_IP_PER_MINUTE", "100000")]);
    let client = crate::helpers::http_client();
    let huge = format!("{}@example.com", "a".repeat(1_000_000));
    let body = json!({"email": huge, "password": "wrong-password"}).to_string();
    // Warm up, then measure.
    for _ in 0..5 {
        let _ = client
            .post(server.url("/api/auth/login"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
    }
    let before = crate::helpers::proc_status_kb(server.pid(), "VmRSS");
    for _ in 0..300 {
        let response = client
            .post(server.url("/api/auth/login"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = crate::helpers::proc_status_kb(server.pid(), "VmRSS");
    assert!(
        after.saturating_sub(before) < 28 * 1024,
        "RSS grew from {before} kB to {after} kB"
    );
}

// --- Connections ------------------------------------------------------------------------------

/// A connection from `source` (an address of the loopback range) to `app`.
async fn connect_from(address: &str, source: [u8; 4]) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind((std::net::Ipv4Addr::from(source), 0).into())?;
    socket.connect(address.parse().unwrap()).await
}

/// Sends a login's head and the first bytes of its body, then trickles the rest.
async fn trickling_login(address: &str, source: [u8; 4]) -> Option<TcpStream> {
    let mut stream = connect_from(address, source).await.ok()?;
    let head = "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 100000\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.ok()?;
    Some(stream)
}

/// One address trickling bodies used to hold every connection: others' health checks failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_connection() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("MAX_CONNECTIONS", "40"), ("MAX_CONNECTIONS_PER_IP", "8")],
    )
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..60 {
        if let Some(stream) = trickling_login(&address, [127, 0, 0, 1]).await {
            held.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Past its eight, the address's connections were closed at once.
    let mut open = 0;
    for stream in &mut held {
        let mut byte = [0u8; 1];
        // Still open: the read waits (a closed one answers at once).
        let read = tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await;
        if read.is_err() {
            open += 1;
        }
    }
    assert_eq!(open, 8, "one address keeps its eight connections");
    // Another address is served at once.
    let other = http_client_builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    for _ in 0..5 {
        let started = Instant::now();
        let health = other.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

/// A byte every half second never trips the 10 s idle timer; the minimum rate ends it after
/// its 5 s of grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_cut_by_the_minimum_rate() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = trickling_login(&address, [127, 0, 0, 1]).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    loop {
        assert!(started.elapsed() < Duration::from_secs(12), "never cut");
        if stream.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert!(started.elapsed() < Duration::from_secs(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_blocks_over_64_kib_are_431() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-filler", "a".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // Just under the limit is fine.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-filler", "a".repeat(60 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// A noise PNG of `side`² pixels: it compresses badly, so the file is about its pixels' size.
fn noise_png(side: u32) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let image = image::RgbImage::from_fn(side, side, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [a, b, c, _] = state.to_le_bytes();
        image::Rgb([a, b, c])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// 100 clients that ask for a 3 MB photo and never read used to add 1.1 GB, for good: the
/// photo is streamed (one chunk per reader), and their connections close after the write
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_that_never_read_pin_no_photos() {
    let server = ServerProcess::start(&[("WRITE_TIMEOUT_SECS", "2")]);
    let token = token_on(&server, "photo@example.com").await;
    let uploaded = upload(&server, &token, noise_png(1000)).await;
    assert_eq!(uploaded.status(), StatusCode::OK);
    let path = uploaded.json::<Value>().await.unwrap()["profile_photo_path"]
        .as_str()
        .unwrap()
        .to_owned();
    let size = crate::helpers::http_client()
        .get(server.url(&format!("/{path}")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    assert!(size > 2_000_000, "a large photo ({size} bytes)");
    let before = crate::helpers::proc_status_kb(server.pid(), "VmRSS");
    let address = server.address.trim_start_matches("http://").to_owned();
    let mut readers = Vec::new();
    for i in 0..100u8 {
        // Spread over addresses, as many clients would be; a small receive window, so that
        // the photo cannot hide in the kernel's buffers of a loopback connection.
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket
            .bind((std::net::Ipv4Addr::new(127, 0, 1, i), 0).into())
            .unwrap();
        let mut stream = socket.connect(address.parse().unwrap()).await.unwrap();
        let request = format!("GET /{path} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        readers.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let during = crate::helpers::proc_status_kb(server.pid(), "VmRSS");
    assert!(
        during.saturating_sub(before) < 60 * 1024,
        "100 stalled readers took {} kB",
        during.saturating_sub(before)
    );
    // After the write timeout, the server has let them go: reading now ends before the photo.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut stream = readers.pop().unwrap();
    let mut received = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received))
        .await
        .is_ok();
    assert!(ended, "the connection was closed");
    assert!(received.len() < size, "the photo was cut off");
}

// --- Uploads, CPU and queues ------------------------------------------------------------------

/// One account's uploads used to take all four slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_has_one_upload_in_flight() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let (_, token) = app.signed_up("uploads@example.com").await;
    let photo = crate::helpers::image_bytes(16, 16, image::ImageFormat::Png);
    // The first upload sends its head and the first bytes of its body, then waits.
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&address).await.unwrap();
    let boundary = "XyZ";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&photo);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST /api/profiles/me/photo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..20]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A second upload of the same account is refused at once, on both paths.
    let second = app
        .upload_rest(&token, photo.clone(), "b.png", "image/png")
        .await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(second.headers().contains_key("retry-after"));
    let graphql = app.upload_graphql(&token, photo.clone(), "c.png").await;
    assert_eq!(graphql.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another account is not held up.
    let (_, other) = app.signed_up("other@example.com").await;
    let theirs = app
        .upload_rest(&other, photo.clone(), "d.png", "image/png")
        .await;
    assert_eq!(theirs.status(), StatusCode::OK);
    // The first one finishes, and then the account may upload again.
    slow.write_all(&body[20..]).await.unwrap();
    let mut answer = vec![0u8; 12];
    slow.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let again = app.upload_rest(&token, photo, "e.png", "image/png").await;
    assert_eq!(again.status(), StatusCode::OK);
}

/// One file mapped to many variables, or named by many fields, used to be decoded for each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_uses_one_file_once() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let (_, token) = app.signed_up("once@example.com").await;
    let photo = crate::helpers::image_bytes(16, 16, image::ImageFormat::Png);
    let send = |operations: Value, map: Value| {
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", map.to_string())
            .part(
                "0",
                reqwest::multipart::Part::bytes(photo.clone()).file_name("a.png"),
            );
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };
    let upload = "mutation($f: Upload!) { uploadProfilePhoto(file: $f) { id } }";
    // One file mapped to ten operations of a batch.
    let batch: Vec<Value> = (0..10)
        .map(|_| json!({"query": upload, "variables": {"f": null}}))
        .collect();
    let paths: Vec<String> = (0..10).map(|i| format!("{i}.variables.f")).collect();
    let response = send(json!(batch), json!({"0": paths})).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // One file named by two aliased fields: the second is refused, the first works.
    let aliased = "mutation($f: Upload!) { a: uploadProfilePhoto(file: $f) { id } \
                   b: uploadProfilePhoto(file: $f) { id } }";
    let response = send(
        json!({"query": aliased, "variables": {"f": null}}),
        json!({"0": ["variables.f"]}),
    )
    .await
    .unwrap();
    let answer = body(response).await;
    assert!(answer["data"]["a"]["id"].is_number(), "{answer}");
    assert_eq!(answer["errors"][0]["path"][0], "b");
    assert_eq!(
        answer["errors"][0]["message"],
        "A request may use its file once; send each upload on its own."
    );
    assert_eq!(app.stored_files().len(), 1);
}

/// A PNG 4096 px wide and 1 px high used to be scaled to 1 048 576 × 256 for its variants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_thin_images_are_cheap_and_big_pipelines_refused() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let (_, token) = app.signed_up("thin@example.com").await;
    let thin = crate::helpers::image_bytes(4096, 1, image::ImageFormat::Png);
    let started = Instant::now();
    let response = app.upload_rest(&token, thin, "thin.png", "image/png").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(5));
    // 4096×3000 RGB at 16 bits: 70 MiB of pixels (under the decode limit), but those and a
    // lossless output of the same size pass the pipeline's budget.
    let deep = image::DynamicImage::ImageRgb16(image::ImageBuffer::new(4096, 3000));
    let mut big = std::io::Cursor::new(Vec::new());
    deep.write_to(&mut big, image::ImageFormat::Png).unwrap();
    let response = app
        .upload_rest(&token, big.into_inner(), "big.png", "image/png")
        .await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "The image is too large to process; it would take more than 128 MiB.",
    )
    .await;
}

/// The largest image the budget lets through keeps the process's peak within the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_processing_stays_within_its_memory_budget() {
    let server = ServerProcess::start(&[]);
    let token = token_on(&server, "budget@example.com").await;
    let before = peak_rss(server.pid());
    // The attack's image: 4096×4096 RGBA, a 100 KB PNG, 64 MiB decoded (it once took the
    // process up by 193 MiB: a full RGBA copy for the variants, another for the output).
    let image = image::RgbaImage::from_pixel(4096, 4096, image::Rgba([10, 200, 30, 255]));
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let response = upload(&server, &token, png.into_inner()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let grew = peak_rss(server.pid()).saturating_sub(before);
    assert!(
        grew < 128 * 1024 * 1024,
        "peak grew {} MiB",
        grew / (1024 * 1024)
    );
}

/// Ten addresses inside their limits used to queue logins for 85 s: past the queue's
/// expected wait the answer is 503 at once, and health checks stay fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hash_queue_answers_503_at_once() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("BCRYPT_COST", "11"), ("HASH_QUEUE_MAX_WAIT_SECS", "1")],
    )
    .await;
    let logins = (0..40).map(|i| {
        let client = app.client.clone();
        let url = app.url("/api/auth/login");
        async move {
            let started = Instant::now();
            let response = client
                .post(url)
                .json(&json!({"email": format!("u{i}@example.com"), "password": "wrong-pass"}))
                .send()
                .await
                .unwrap();
            (response, started.elapsed())
        }
    });
    let results = futures_util::future::join_all(logins).await;
    let mut busy = 0;
    for (response, took) in results {
        match response.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert!(took < Duration::from_secs(2), "refused at once");
                assert!(response.headers().contains_key("retry-after"));
                assert_eq!(body(response).await["detail"], "Server busy");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy > 0, "some were refused");
    let started = Instant::now();
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(500));
}

// --- Sensitive changes: a stolen token cannot keep the account --------------------------------

async fn change_email(app: &TestApp, token: &str, email: &str) -> reqwest::Response {
    app.update_account(token, &json!({ "email": email })).await
}

async fn email_changes_are_limited_refusals_included(app: TestApp) {
    let (_, token) = app.signed_up("limited@example.com").await;
    app.register("taken@example.com", PASSWORD).await;
    // A taken address is refused, and counts.
    let taken = change_email(&app, &token, "taken@example.com").await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert_eq!(
        change_email(&app, &token, "second@example.com")
            .await
            .status(),
        StatusCode::OK
    );
    let graphql = app
        .graphql(
            Some(&token),
            "mutation { updateMe(input: {email: \"third@example.com\"}) { email } }",
            json!({}),
        )
        .await;
    assert_eq!(graphql["data"]["updateMe"]["email"], "third@example.com");
    let fourth = change_email(&app, &token, "fourth@example.com").await;
    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(fourth.headers().contains_key("retry-after"));
    // Other changes are not limited.
    let named = app
        .update_account(&token, &json!({"name": "Still me"}))
        .await;
    assert_eq!(named.status(), StatusCode::OK);
    assert_eq!(body(named).await["email"], "third@example.com");
}

async fn the_undo_link_gives_the_account_back(app: TestApp) {
    let (id, stolen) = app.signed_up("owner@example.com").await;
    // The thief, with a stolen access token, moves the account twice.
    assert_eq!(
        change_email(&app, &stolen, "thief@example.com")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        change_email(&app, &stolen, "thief2@example.com")
            .await
            .status(),
        StatusCode::OK
    );
    // The owner's notice holds the undo link; the second change did not void it.
    let notices = app.mail_to("owner@example.com", 2).await;
    let notice = notices
        .iter()
        .find(|m| m.contains("undo-email-change"))
        .expect("a notice with an undo link");
    let token = link_token(notice, "/account/undo-email-change");
    // Opening the link changes nothing; posting its form does.
    let page = app
        .get(&format!("/account/undo-email-change?token={token}"))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("method=\"post\""));
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM users WHERE id = {id} AND email = 'thief2@example.com'"
        ))
        .await,
        1
    );
    let undone = app
        .post_json("/api/auth/undo-email-change", &json!({ "token": token }))
        .await;
    assert_eq!(undone.status(), StatusCode::NO_CONTENT);
    // The address is the owner's again, verified; the thief's token is dead.
    assert_eq!(
        app.account(&stolen).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let owner = app.tokens("owner@example.com").await;
    let account = body(app.account(owner["access_token"].as_str().unwrap()).await).await;
    assert_eq!(account["email"], "owner@example.com");
    assert_eq!(account["email_verified"], true);
    // A reset link went to the restored address, and works.
    let reset_mail = app.mail_to("owner@example.com", 3).await;
    let reset = reset_mail
        .iter()
        .find(|m| m.contains("reset-password"))
        .expect("a reset link");
    let reset_token = link_token(reset, "/account/reset-password");
    let response = app
        .post_json(
            "/api/auth/reset-password",
            &json!({"token": reset_token, "new_password": "BrandNew12345"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // The link works once; the thief's own undo link (to thief@) died with it.
    let again = app
        .post_json("/api/auth/undo-email-change", &json!({ "token": token }))
        .await;
    expect_error(again, StatusCode::BAD_REQUEST, "Invalid or expired token.").await;
    let thief_notice = app.mail_to("thief@example.com", 2).await;
    let thief_undo = thief_notice
        .iter()
        .find(|m| m.contains("undo-email-change"))
        .expect("the second change's notice");
    let thief_token = link_token(thief_undo, "/account/undo-email-change");
    let graphql = app
        .graphql(
            None,
            "mutation($t: String!) { undoEmailChange(token: $t) }",
            json!({ "t": thief_token }),
        )
        .await;
    assert_eq!(graphql["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    // The audit log tells the story.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE subject_id = {id} AND action = 'email_changed'"
        ))
        .await,
        3
    );
}

async fn a_moved_address_cannot_be_taken_while_its_undo_link_lives(app: TestApp) {
    let (_, stolen) = app.signed_up("keeper@example.com").await;
    assert_eq!(
        change_email(&app, &stolen, "elsewhere@example.com")
            .await
            .status(),
        StatusCode::OK
    );
    // The thief cannot park the old address on an account of their own.
    let registered = app.register("keeper@example.com", PASSWORD).await;
    assert_eq!(registered.status(), StatusCode::CONFLICT);
    let (_, other) = app.signed_up("other@example.com").await;
    let moved = change_email(&app, &other, "keeper@example.com").await;
    assert_eq!(moved.status(), StatusCode::CONFLICT);
    // The account itself may go back to it.
    let back = change_email(&app, &stolen, "keeper@example.com").await;
    assert_eq!(back.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photo_urls_answer_only_for_the_canonical_id() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let (id, token) = app.signed_up("canonical@example.com").await;
    let photo = crate::helpers::image_bytes(16, 16, image::ImageFormat::Png);
    let uploaded = body(app.upload_rest(&token, photo, "a.png", "image/png").await).await;
    let path = uploaded["profile_photo_path"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("/{path}")).await.status(), StatusCode::OK);
    let alias = path.replace(&format!("/{id}/"), &format!("/0{id}/"));
    assert_eq!(
        app.get(&format!("/{alias}")).await.status(),
        StatusCode::NOT_FOUND
    );
}

/// A failing store used to be asked again by every photo request, each holding its
/// connection: after five failures in a row photo paths answer 503 at once, other paths
/// are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_photo_store_is_not_asked_again_for_a_while() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let (_, token) = app.signed_up("breaker@example.com").await;
    let photo = crate::helpers::image_bytes(16, 16, image::ImageFormat::Png);
    let uploaded = body(
        app.upload_rest(&token, photo.clone(), "a.png", "image/png")
            .await,
    )
    .await;
    let path = uploaded["profile_photo_path"].as_str().unwrap().to_owned();
    // The file becomes one the store cannot read (a link to itself).
    let file = app.upload_dir().join(path.trim_start_matches("uploads/"));
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&file, &file).unwrap();
    for _ in 0..5 {
        let response = app.get(&format!("/{path}")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    // Mended, but the store is not asked again for 30 s: every photo path is 503 at once.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, &photo).unwrap();
    let started = Instant::now();
    let response = app.get(&format!("/{path}")).await;
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "Service unavailable",
    )
    .await;
    let upload = app.upload_rest(&token, photo, "b.png", "image/png").await;
    assert_eq!(upload.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(1));
    // The rest of the API does not notice.
    assert_eq!(app.my_profile(&token).await.status(), StatusCode::OK);
    assert_eq!(
        body(app.my_profile(&token).await).await["profile_photo_path"],
        path.as_str()
    );
}
