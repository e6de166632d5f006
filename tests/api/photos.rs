//! Profile photos: content checks, limits, metadata stripping, storage and serving.

use std::time::{Duration, Instant};

use image::ImageFormat;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{
        Backend, TestApp, body, expect_error, expect_too_large, image_bytes, jpeg_with_exif,
        png_bomb, spawn_app_with,
    },
    on_both_backends,
};

on_both_backends!(
    jpeg_round_trip_over_rest,
    png_round_trip_over_graphql,
    webp_is_accepted,
    exif_is_stripped,
    types_are_judged_by_content_not_by_name_or_header,
    pixel_bombs_are_refused_quickly,
    photos_need_a_profile_and_a_token,
    replacing_and_deleting_leave_no_orphans,
    paths_outside_the_upload_dir_are_404,
    variants_are_square_webp_thumbnails,
);

fn photo_path_pattern(path: &Value, user_id: i64, ext: &str) {
    let path = path.as_str().expect("a photo path");
    let prefix = format!("uploads/{user_id}/");
    let file = path
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{path}"));
    let (stem, got_ext) = file.rsplit_once('.').unwrap();
    assert_eq!(got_ext, ext);
    assert!(uuid::Uuid::try_parse(stem).is_ok(), "{path}");
}

async fn fetch(app: &TestApp, path: &str) -> reqwest::Response {
    app.get(&format!("/{path}")).await
}

/// Each photo has square WebP variants at 64 and 256 px on disk, served with `?size=`, named
/// by `Profile.photoUrl(size:)`, and removed with it.
async fn variants_are_square_webp_thumbnails(app: TestApp) {
    let (id, token) = app.signed_up("thumbs@example.com").await;
    let uploaded = app
        .upload_rest(
            &token,
            image_bytes(300, 120, ImageFormat::Png),
            "w.png",
            "image/png",
        )
        .await;
    let path = body(uploaded).await["profile_photo_path"]
        .as_str()
        .unwrap()
        .to_owned();
    let stem = path.strip_suffix(".png").unwrap();
    // stored_files() checks that the photo has exactly its two variants beside it.
    assert_eq!(app.stored_files(), vec![path.clone()]);
    for size in [64u32, 256] {
        let served = fetch(&app, &format!("{path}?size={size}")).await;
        assert_eq!(served.status(), StatusCode::OK);
        assert_eq!(served.headers()["content-type"], "image/webp");
        let etag = format!("\"{}-{size}.webp\"", stem.rsplit('/').next().unwrap());
        assert_eq!(served.headers()["etag"], etag.as_str());
        let bytes = served.bytes().await.unwrap();
        let on_disk = std::fs::read(app.upload_dir().join(format!(
            "{id}/{}-{size}.webp",
            stem.rsplit('/').next().unwrap()
        )))
        .unwrap();
        assert_eq!(bytes, on_disk);
        let image = image::load_from_memory_with_format(&bytes, ImageFormat::WebP).unwrap();
        assert_eq!((image.width(), image.height()), (size, size));
        let again = app
            .client
            .get(app.url(&format!("/{path}?size={size}")))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }
    let wrong = fetch(&app, &format!("{path}?size=128")).await;
    let wrong = expect_error(wrong, StatusCode::BAD_REQUEST, "Size must be 64 or 256.").await;
    assert_eq!(wrong["errors"][0]["field"], "size");
    let not_a_number = fetch(&app, &format!("{path}?size=big")).await;
    assert_eq!(not_a_number.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let urls = app
        .graphql(
            Some(&token),
            "{ myProfile { photoUrl small: photoUrl(size: 64) large: photoUrl(size: 256) } }",
            json!({}),
        )
        .await;
    let base = "http://127.0.0.1:8000";
    assert_eq!(
        urls["data"]["myProfile"],
        json!({
            "photoUrl": format!("{base}/{path}"),
            "small": format!("{base}/{path}?size=64"),
            "large": format!("{base}/{path}?size=256"),
        })
    );
    let odd = app
        .graphql(
            Some(&token),
            "{ myProfile { photoUrl(size: 100) } }",
            json!({}),
        )
        .await;
    assert_eq!(odd["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    let deleted = app
        .client
        .delete(app.url("/api/profiles/me/photo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let left =
        std::fs::read_dir(app.upload_dir().join(id.to_string())).map_or(0, |files| files.count());
    assert_eq!(left, 0, "the photo and its variants are gone");
    let none = app
        .graphql(
            Some(&token),
            "{ myProfile { photoUrl(size: 64) } }",
            json!({}),
        )
        .await;
    assert_eq!(none["data"]["myProfile"]["photoUrl"], Value::Null);
}

async fn jpeg_round_trip_over_rest(app: TestApp) {
    let (id, token) = app.signed_up("alice@example.com").await;
    let response = app
        .upload_rest(
            &token,
            image_bytes(64, 48, ImageFormat::Jpeg),
            "me.jpg",
            "image/jpeg",
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let profile = body(response).await;
    assert_eq!(profile["email"], "alice@example.com");
    photo_path_pattern(&profile["profile_photo_path"], id, "jpg");
    let path = profile["profile_photo_path"].as_str().unwrap();
    assert_eq!(app.stored_files(), [path]);
    assert_eq!(app.referenced_files().await, [path]);

    let served = fetch(&app, path).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()["content-type"], "image/jpeg");
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    let etag = served.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        served.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let bytes = served.bytes().await.unwrap();
    let decoded = image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (64, 48));

    let cached = app
        .client
        .get(app.url(&format!("/{path}")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    let me = body(app.my_profile(&token).await).await;
    assert_eq!(me["profile_photo_path"], path);
}

async fn png_round_trip_over_graphql(app: TestApp) {
    let (id, token) = app.signed_up("bob@example.com").await;
    let response = app
        .upload_graphql(&token, image_bytes(30, 20, ImageFormat::Png), "x.png")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = body(response).await;
    assert!(response["errors"].is_null(), "{response}");
    let path = &response["data"]["uploadProfilePhoto"]["profilePhotoPath"];
    photo_path_pattern(path, id, "png");
    let served = fetch(&app, path.as_str().unwrap()).await;
    assert_eq!(served.headers()["content-type"], "image/png");
    let decoded = image::load_from_memory(&served.bytes().await.unwrap()).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (30, 20));

    let deleted = app
        .graphql(
            Some(&token),
            "mutation { deleteProfilePhoto { userId profilePhotoPath } }",
            json!({}),
        )
        .await;
    // The changed profile comes back, for a client cache to update it.
    assert_eq!(
        deleted["data"]["deleteProfilePhoto"],
        json!({"userId": id, "profilePhotoPath": null})
    );
    assert!(app.stored_files().is_empty());
    assert!(app.referenced_files().await.is_empty());
}

async fn webp_is_accepted(app: TestApp) {
    let (id, token) = app.signed_up("cid@example.com").await;
    let response = app
        .upload_rest(
            &token,
            image_bytes(16, 16, ImageFormat::WebP),
            "w.webp",
            "image/webp",
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let profile = body(response).await;
    photo_path_pattern(&profile["profile_photo_path"], id, "webp");
    let served = fetch(&app, profile["profile_photo_path"].as_str().unwrap()).await;
    assert_eq!(served.headers()["content-type"], "image/webp");
}

async fn exif_is_stripped(app: TestApp) {
    let (_, token) = app.signed_up("dee@example.com").await;
    let original = jpeg_with_exif("GPS-37.7749N-122.4194W");
    assert!(original.windows(4).any(|w| w == b"Exif"));
    let profile = body(
        app.upload_rest(&token, original, "gps.jpg", "image/jpeg")
            .await,
    )
    .await;
    let served = fetch(&app, profile["profile_photo_path"].as_str().unwrap()).await;
    let bytes = served.bytes().await.unwrap();
    assert!(!bytes.windows(4).any(|w| w == b"Exif"));
    assert!(!bytes.windows(3).any(|w| w == b"GPS"));
    assert!(image::load_from_memory(&bytes).is_ok());
}

async fn types_are_judged_by_content_not_by_name_or_header(app: TestApp) {
    let (_, token) = app.signed_up("eve@example.com").await;
    let cases: [(Vec<u8>, &str, &str, &str); 4] = [
        (
            b"just some text, honestly".to_vec(),
            "photo.jpg",
            "image/jpeg",
            "Unsupported file type; upload a JPEG, PNG or WebP image.",
        ),
        (
            b"GIF89a\x01\x00\x01\x00".to_vec(),
            "photo.png",
            "image/png",
            "Unsupported file type; upload a JPEG, PNG or WebP image.",
        ),
        (
            image_bytes(8, 8, ImageFormat::Png)[..30].to_vec(),
            "cut.png",
            "image/png",
            "The file is not a valid image.",
        ),
        (Vec::new(), "empty.jpg", "image/jpeg", "The file is empty."),
    ];
    for (bytes, name, mime, message) in cases {
        let response = app.upload_rest(&token, bytes.clone(), name, mime).await;
        let error = expect_error(response, StatusCode::BAD_REQUEST, message).await;
        assert_eq!(error["errors"][0]["field"], "file");
        let response = body(app.upload_graphql(&token, bytes, name).await).await;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{name}"
        );
    }
    // A real PNG named .jpg and sent as text is still a PNG.
    let response = app
        .upload_rest(
            &token,
            image_bytes(8, 8, ImageFormat::Png),
            "notes.txt",
            "text/plain",
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        body(response).await["profile_photo_path"]
            .as_str()
            .unwrap()
            .ends_with(".png")
    );

    let no_file = app
        .client
        .post(app.url("/api/profiles/me/photo"))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().text("other", "x"))
        .send()
        .await
        .unwrap();
    expect_error(no_file, StatusCode::BAD_REQUEST, "The file is required.").await;
    assert_eq!(app.stored_files().len(), 1);
}

async fn pixel_bombs_are_refused_quickly(app: TestApp) {
    let (_, token) = app.signed_up("fin@example.com").await;
    let started = Instant::now();
    let response = app
        .upload_rest(&token, png_bomb(50_000, 50_000), "bomb.png", "image/png")
        .await;
    let error = expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "The image is too large; at most 4096×4096 pixels.",
    )
    .await;
    assert_eq!(error["errors"][0]["field"], "file");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(app.stored_files().is_empty());
}

async fn photos_need_a_profile_and_a_token(app: TestApp) {
    let (_, token) = app.signed_up("gil@example.com").await;
    let anonymous = app
        .client
        .post(app.url("/api/profiles/me/photo"))
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(image_bytes(8, 8, ImageFormat::Png)).file_name("a.png"),
        ))
        .send()
        .await
        .unwrap();
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "Not authenticated").await;
    app.delete_auth("/api/profiles/me", &token).await;
    let response = app
        .upload_rest(
            &token,
            image_bytes(8, 8, ImageFormat::Png),
            "a.png",
            "image/png",
        )
        .await;
    expect_error(response, StatusCode::NOT_FOUND, "Profile not found").await;
    let response = app.delete_auth("/api/profiles/me/photo", &token).await;
    expect_error(response, StatusCode::NOT_FOUND, "Profile not found").await;
    assert!(app.stored_files().is_empty());
}

async fn replacing_and_deleting_leave_no_orphans(app: TestApp) {
    let (_, token) = app.signed_up("hal@example.com").await;
    let png = || image_bytes(10, 10, ImageFormat::Png);
    let first = body(app.upload_rest(&token, png(), "1.png", "image/png").await).await;
    let second = body(
        app.upload_rest(
            &token,
            image_bytes(12, 12, ImageFormat::Jpeg),
            "2.jpg",
            "image/jpeg",
        )
        .await,
    )
    .await;
    assert_ne!(first["profile_photo_path"], second["profile_photo_path"]);
    assert_eq!(app.stored_files(), app.referenced_files().await);
    assert_eq!(app.stored_files().len(), 1);
    let old = fetch(&app, first["profile_photo_path"].as_str().unwrap()).await;
    assert_eq!(old.status(), StatusCode::NOT_FOUND);

    // Ten parallel uploads: one account has one upload in flight, so the others are 429
    // (or run after it); whichever wins, exactly its file (and its variants) remains.
    let mut uploads = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/api/profiles/me/photo"),
            token.clone(),
        );
        let bytes = png();
        uploads.spawn(async move {
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("p.png"),
            );
            client
                .post(url)
                .bearer_auth(token)
                .multipart(form)
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let statuses = uploads.join_all().await;
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
    assert_eq!(app.stored_files(), app.referenced_files().await);
    assert_eq!(app.stored_files().len(), 1);

    let response = app.delete_auth("/api/profiles/me/photo", &token).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(app.stored_files().is_empty());
    let profile = body(app.my_profile(&token).await).await;
    assert_eq!(profile["profile_photo_path"], Value::Null);
    // Deleting again is fine.
    assert_eq!(
        app.delete_auth("/api/profiles/me/photo", &token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    // Deleting the profile removes its photo file.
    app.upload_rest(&token, png(), "3.png", "image/png").await;
    assert_eq!(app.stored_files().len(), 1);
    assert_eq!(
        app.delete_auth("/api/profiles/me", &token).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(app.stored_files().is_empty());
    assert!(app.referenced_files().await.is_empty());
}

async fn paths_outside_the_upload_dir_are_404(app: TestApp) {
    let (_, token) = app.signed_up("ian@example.com").await;
    let profile = body(
        app.upload_rest(
            &token,
            image_bytes(8, 8, ImageFormat::Png),
            "a.png",
            "image/png",
        )
        .await,
    )
    .await;
    let path = profile["profile_photo_path"].as_str().unwrap();
    let user = path.split('/').nth(1).unwrap();
    // A file outside the upload folder that an escape would reach.
    std::fs::write(app.upload_dir().join("secret.txt"), "secret").unwrap();
    for attempt in [
        format!("/uploads/{user}/..%2Fsecret.txt"),
        format!("/uploads/{user}/%2e%2e%2fsecret.txt"),
        "/uploads/../Cargo.toml".to_owned(),
        "/uploads/..%2F..%2FCargo.toml/x.png".to_owned(),
        format!("/uploads/{user}/..%5Csecret.txt"),
        "/uploads/%2Fetc/passwd".to_owned(),
        format!("/uploads/{user}/secret.txt"),
        "/uploads/secret.txt".to_owned(),
        format!("/uploads/{user}/00000000-0000-0000-0000-000000000000.png"),
    ] {
        let response = app.client.get(app.url(&attempt)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{attempt}");
        assert!(
            !response.text().await.unwrap().contains("secret"),
            "{attempt}"
        );
    }
}

/// The size limit holds on both paths, before the whole body is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_limit_are_413_on_rest_and_graphql() {
    let app = spawn_app_with(Backend::Sqlite, &[("MAX_UPLOAD_BYTES", "20000")]).await;
    let (_, token) = app.signed_up("big@example.com").await;
    let big = vec![0xAB; 30_000];
    let response = app
        .upload_rest(&token, big.clone(), "big.jpg", "image/jpeg")
        .await;
    let error = expect_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "File too large; the limit is 20000 bytes.",
    )
    .await;
    assert!(error["detail"].is_string());

    let response = app.upload_graphql(&token, big, "big.jpg").await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body(response).await["errors"][0]["extensions"]["code"],
        "PAYLOAD_TOO_LARGE"
    );

    // A body far over the limit is cut off, and the server keeps answering.
    let huge = vec![0u8; 8 * 1024 * 1024];
    expect_too_large(
        app.try_upload_rest(&token, huge, "huge.jpg", "image/jpeg")
            .await,
    )
    .await;
    let fits = app
        .upload_rest(
            &token,
            image_bytes(8, 8, ImageFormat::Png),
            "ok.png",
            "image/png",
        )
        .await;
    assert_eq!(fits.status(), StatusCode::OK);
    assert_eq!(app.stored_files().len(), 1);
}

/// A query the extractor cannot read (`size` twice) answers in the documented 400 shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_size_is_a_documented_400() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let (_, token) = app.signed_up("twice@example.com").await;
    let png = crate::helpers::image_bytes(8, 8, image::ImageFormat::Png);
    let uploaded = body(app.upload_rest(&token, png, "a.png", "image/png").await).await;
    let path = uploaded["profile_photo_path"].as_str().unwrap().to_owned();
    let response = app.get(&format!("/{path}?size=64&size=64")).await;
    let answer = crate::helpers::expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "Give `size` once: 64 or 256.",
    )
    .await;
    assert_eq!(answer["errors"][0]["field"], "size");
}
