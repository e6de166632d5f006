//! `/api/profiles*`, `/api/users/me/profile` and `/uploads/*`: profiles, photos and their files.

use async_graphql::UploadValue;
use axum::{
    body::Body,
    extract::{
        FromRequest, Multipart, Path, Query, Request, State,
        multipart::MultipartError,
        rejection::{PathRejection, QueryRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{
    body::{Authenticated, JsonBody, reject_unknown_fields, unprocessable},
    forward::{execute, forward, respond},
    operations::OPERATIONS,
    schemas::{ErrorBody, PhotoUpload, TypeErrorBody, ValidationErrorBody},
};
use crate::{
    error::{AppError, ErrorCode, FieldError},
    graphql::{Profile, ProfileInput},
    http::{Problem, SlotRefused},
    state::AppState,
};

/// Create my profile
///
/// Registration already creates an empty profile, so this is for after a `DELETE`: 409
/// while one exists.
#[utoipa::path(
    post, path = "/api/profiles", tag = "profiles", operation_id = "createProfile",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = ProfileInput,
    responses(
        (status = 201, description = "The new profile", body = Profile),
        (status = 400, description = "Invalid field (phone format, length) or unknown field", body = ValidationErrorBody,
            example = json!({"detail": "Invalid phone format; expected +<country_code><number>", "errors": [{"field": "phone", "message": "Invalid phone format; expected +<country_code><number>"}]})),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 409, description = "A profile exists", body = ErrorBody, example = json!({"detail": "Profile already exists"})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
    )
)]
pub async fn create_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<ProfileInput>,
) -> Response {
    if let Err(err) = reject_unknown_fields(&body.other) {
        return err.into_response();
    }
    let op = &OPERATIONS.create_profile;
    forward(
        &state,
        op,
        caller,
        json!({ "input": body }),
        StatusCode::CREATED,
    )
    .await
}

/// Read my profile
///
/// The full view, with the owner's email.
#[utoipa::path(
    get, path = "/api/users/me/profile", tag = "profiles", operation_id = "getMyProfile",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The caller's profile", body = Profile),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "The caller has no profile", body = ErrorBody, example = json!({"detail": "Profile not found"})),
    )
)]
pub async fn my_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &OPERATIONS.my_profile;
    forward(&state, op, caller, json!({}), StatusCode::OK).await
}

/// Read a user's public profile
///
/// Any signed-in user may read it; it never includes the email.
#[utoipa::path(
    get, path = "/api/profiles/{user_id}", tag = "profiles", operation_id = "getPublicProfile",
    security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i32, Path, description = "The owner's account id")),
    responses(
        (status = 200, description = "The public profile", body = Profile),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "No profile for that user", body = ErrorBody, example = json!({"detail": "Profile not found"})),
        (status = 422, description = "`user_id` is not an integer", body = TypeErrorBody),
    )
)]
pub async fn public_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    user_id: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(Ok(user_id)) = user_id.ok().map(|Path(id)| id.parse::<i32>()) else {
        return unprocessable(
            &["path".into(), "user_id".into()],
            "Input should be a valid integer",
        )
        .into_response();
    };
    let op = &OPERATIONS.public_profile;
    forward(
        &state,
        op,
        caller,
        json!({ "userId": user_id }),
        StatusCode::OK,
    )
    .await
}

/// Update my profile
///
/// A partial update: absent fields stay as they are, `null` clears a field.
#[utoipa::path(
    put, path = "/api/profiles/me", tag = "profiles", operation_id = "updateMyProfile",
    security(("bearer" = []), ("oauth2" = [])),
    request_body(content = ProfileInput, example = json!({"bio": "Updated bio", "location": "New City"})),
    responses(
        (status = 200, description = "The updated profile", body = Profile),
        (status = 400, description = "Invalid field or unknown field", body = ValidationErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "The caller has no profile", body = ErrorBody, example = json!({"detail": "Profile not found"})),
        (status = 422, description = "JSON of the wrong type", body = TypeErrorBody),
    )
)]
pub async fn update_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<ProfileInput>,
) -> Response {
    if let Err(err) = reject_unknown_fields(&body.other) {
        return err.into_response();
    }
    let op = &OPERATIONS.update_profile;
    forward(&state, op, caller, json!({ "input": body }), StatusCode::OK).await
}

/// Delete my profile
///
/// Removes the profile and its photo file (a file that cannot be removed is logged, and the
/// deletion still succeeds).
#[utoipa::path(
    delete, path = "/api/profiles/me", tag = "profiles", operation_id = "deleteMyProfile",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "The caller has no profile", body = ErrorBody, example = json!({"detail": "Profile not found"})),
    )
)]
pub async fn delete_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &OPERATIONS.delete_profile;
    forward(&state, op, caller, json!({}), StatusCode::NO_CONTENT).await
}

/// Upload my profile photo
///
/// Multipart field `file`: a JPEG, PNG or WebP image, recognised by its content (not its name
/// or `Content-Type`), at most 4096×4096 pixels and `MAX_UPLOAD_BYTES`. It is re-encoded
/// without metadata (EXIF, GPS) and replaces the previous photo.
#[utoipa::path(
    post, path = "/api/profiles/me/photo", tag = "photos", operation_id = "uploadMyPhoto",
    security(("bearer" = []), ("oauth2" = [])),
    request_body(content = inline(PhotoUpload), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The profile with its new photo path", body = Profile),
        (status = 400, description = "Not a JPEG, PNG or WebP image, empty, or too many pixels", body = ValidationErrorBody,
            example = json!({"detail": "Unsupported file type; upload a JPEG, PNG or WebP image.", "errors": [{"field": "file", "message": "Unsupported file type; upload a JPEG, PNG or WebP image."}]})),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "The caller has no profile", body = ErrorBody, example = json!({"detail": "Profile not found"})),
        (status = 413, description = "Larger than `MAX_UPLOAD_BYTES`", body = ErrorBody,
            example = json!({"detail": "File too large; the limit is 5242880 bytes."})),
    )
)]
pub async fn upload_photo(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    request: Request,
) -> Response {
    // The token is checked (by `Authenticated`) before the body is read or a slot taken.
    let (parts, body) = request.into_parts();
    let account = match caller.actor.bearer() {
        Ok(bearer) => bearer.user_id,
        Err(err) => return err.into_response(),
    };
    let (_slot, body) = match state.graphql.uploads.slot(account, body).await {
        Ok(admitted) => admitted,
        // The body timed out; the server answers 408.
        Err(SlotRefused::Body) => return StatusCode::REQUEST_TIMEOUT.into_response(),
        Err(SlotRefused::AccountBusy(err)) => return err.into_response(),
    };
    let request = Request::from_parts(parts, body);
    let file = match Multipart::from_request(request, &state).await {
        Ok(multipart) => read_file_field(multipart, state.graphql.uploads.max_bytes).await,
        Err(_) => Err(malformed(
            "Send the photo as multipart/form-data with a field named `file`",
        )),
    };
    let upload = match file {
        Ok(upload) => upload,
        Err(problem) => return problem.into_response(),
    };
    let op = &OPERATIONS.upload_photo;
    let mut request = op
        .request()
        .variables(async_graphql::Variables::from_json(json!({ "file": null })));
    request.set_upload("variables.file", upload);
    respond(execute(&state, op, request, caller).await, StatusCode::OK)
}

/// Delete my profile photo
///
/// Clears the photo and removes its file; 204 also when there was none.
#[utoipa::path(
    delete, path = "/api/profiles/me/photo", tag = "photos", operation_id = "deleteMyPhoto",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "The caller has no profile", body = ErrorBody, example = json!({"detail": "Profile not found"})),
    )
)]
pub async fn delete_photo(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &OPERATIONS.delete_photo;
    forward(&state, op, caller, json!({}), StatusCode::NO_CONTENT).await
}

/// A 400 for a body that is not the multipart form expected.
fn malformed(detail: &str) -> Problem {
    Problem::new(ErrorCode::BadUserInput, detail).with_errors(json!([FieldError::new(
        "file",
        "A multipart file field is required."
    )]))
}

/// Reads the `file` field, refusing it as soon as it passes `max` bytes.
async fn read_file_field(mut multipart: Multipart, max: usize) -> Result<UploadValue, Problem> {
    let too_large = || Problem::from(AppError::file_too_large(max));
    let broken = |e: MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            malformed("Malformed multipart body")
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(broken)? {
        if field.name() != Some("file") {
            continue;
        }
        let filename = field.file_name().unwrap_or("upload").to_owned();
        let content_type = field.content_type().map(str::to_owned);
        let mut content = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(broken)? {
            if content.len() + chunk.len() > max {
                return Err(too_large());
            }
            content.extend_from_slice(&chunk);
        }
        return Ok(UploadValue {
            filename,
            content_type,
            content: content.into(),
        });
    }
    Err(Problem::from(AppError::validation(
        "file",
        "The file is required.",
    )))
}

/// The query of a photo's URL.
#[derive(Deserialize)]
pub struct PhotoQuery {
    size: Option<String>,
}

/// Download a profile photo
///
/// The path is a profile's `profile_photo_path`; `?size=64` or `?size=256` gives its square
/// WebP variant. Names the store would not make are 404 before the store is asked, so no path
/// can leave the store, and so is a photo that no profile references (left by a crash, or not
/// yet removed). Photos never change (a new photo gets a new name): served with an `ETag`,
/// long caching and 304 on `If-None-Match`. 503 when the store cannot be reached.
#[utoipa::path(
    get, path = "/uploads/{user_id}/{file}", tag = "photos", operation_id = "getPhoto",
    params(
        ("user_id" = i32, Path, description = "The owner's account id"),
        ("file" = String, Path, description = "`{uuid}.{jpg|png|webp}`"),
        ("size" = Option<u32>, Query, description = "`64` or `256`: the square WebP variant of that side"),
    ),
    responses(
        (status = 200, description = "The image", content(
            ([u8] = "image/jpeg"), ([u8] = "image/png"), ([u8] = "image/webp"),
        )),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 400, description = "`size` is not 64 or 256", body = ValidationErrorBody),
        (status = 404, description = "No such photo", body = ErrorBody),
        (status = 422, description = "`size` is not an integer", body = TypeErrorBody),
    )
)]
pub async fn serve_upload(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<PhotoQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    // `?size=64&size=64`, say: a 400 in the documented shape, not the extractor's.
    let Ok(Query(query)) = query else {
        return AppError::validation("size", "Give `size` once: 64 or 256.").into_response();
    };
    // A path that is not even UTF-8 names no photo.
    let Ok(Path((user_id, file))) = path else {
        return Problem::new(ErrorCode::NotFound, "Not Found").into_response();
    };
    let size = match query.size.as_deref().map(str::parse::<u32>) {
        None => None,
        Some(Ok(size)) => Some(size),
        Some(Err(_)) => {
            return unprocessable(
                &["query".into(), "size".into()],
                "Input should be a valid integer",
            );
        }
    };
    let photo = match state.services.photo(&user_id, &file, size).await {
        Ok(photo) => photo,
        Err(err) => return err.into_response(),
    };
    // A stored object never changes (a new photo gets a new name), so its name is its ETag.
    let etag = format!("\"{}\"", photo.name);
    let cache = HeaderValue::from_static("public, max-age=86400, immutable");
    let etag_value = HeaderValue::from_str(&etag).expect("file names are ASCII");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    let data = match state.services.photo_data(&photo).await {
        Ok(data) => data,
        Err(err) => return err.into_response(),
    };
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(photo.kind.content_type()),
            ),
            (header::ETAG, etag_value),
            (header::CACHE_CONTROL, cache),
        ],
        Body::from_stream(data.chunks),
    )
        .into_response();
    if let Some(len) = data.len {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    response
}
