//! `/api/profiles*`, `/api/users/me/profile` and `/uploads/*`: profiles, photos and their files.

use async_graphql::{MaybeUndefined, UploadValue};
use axum::{
    body::Body,
    extract::{Multipart, Path, State, multipart::MultipartError},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    Problem,
    body::{Authenticated, JsonBody, reject_unknown_fields, unprocessable},
    forward::{forward, forward_request},
};
use crate::{
    error::{AppError, ErrorCode, FieldError},
    startup::AppState,
};

/// ProfileCreate / ProfileUpdate: every field optional; absent keeps, `null` clears.
#[derive(Deserialize, Serialize)]
pub struct ProfileBody {
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    name: MaybeUndefined<String>,
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    phone: MaybeUndefined<String>,
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    bio: MaybeUndefined<String>,
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    hobby: MaybeUndefined<String>,
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    occupation: MaybeUndefined<String>,
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    location: MaybeUndefined<String>,
    #[serde(flatten, skip_serializing)]
    other: Map<String, Value>,
}

/// `POST /api/profiles` → 201 ProfileOut; 409 while the caller has a profile.
pub async fn create_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<ProfileBody>,
) -> Response {
    if let Err(err) = reject_unknown_fields(&body.other) {
        return err.into_response();
    }
    let op = &state.operations.create_profile;
    forward(
        &state,
        op,
        caller,
        json!({ "input": body }),
        StatusCode::CREATED,
    )
    .await
}

/// `GET /api/users/me/profile` → ProfileOut.
pub async fn my_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &state.operations.my_profile;
    forward(&state, op, caller, json!({}), StatusCode::OK).await
}

/// `GET /api/profiles/{user_id}` → ProfilePublic (no email).
pub async fn public_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(user_id): Path<String>,
) -> Response {
    let Ok(user_id) = user_id.parse::<i32>() else {
        return unprocessable(
            &["path".into(), "user_id".into()],
            "Input should be a valid integer",
        )
        .into_response();
    };
    let op = &state.operations.public_profile;
    forward(
        &state,
        op,
        caller,
        json!({ "userId": user_id }),
        StatusCode::OK,
    )
    .await
}

/// `PUT /api/profiles/me`: partial update → ProfileOut.
pub async fn update_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<ProfileBody>,
) -> Response {
    if let Err(err) = reject_unknown_fields(&body.other) {
        return err.into_response();
    }
    let op = &state.operations.update_profile;
    forward(&state, op, caller, json!({ "input": body }), StatusCode::OK).await
}

/// `DELETE /api/profiles/me` → 204; the photo file goes too.
pub async fn delete_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &state.operations.delete_profile;
    forward(&state, op, caller, json!({}), StatusCode::NO_CONTENT).await
}

/// `POST /api/profiles/me/photo`, multipart field `file` → ProfileOut.
pub async fn upload_photo(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let max = state.services.max_upload_bytes();
    let file = match multipart {
        Ok(multipart) => read_file_field(multipart, max).await,
        Err(_) => Err(Problem::new(
            ErrorCode::BadUserInput,
            "Send the photo as multipart/form-data with a field named `file`",
        )
        .with_errors(json!([FieldError::new(
            "file",
            "A multipart file field is required."
        )]))),
    };
    let upload = match file {
        Ok(upload) => upload,
        Err(problem) => return problem.into_response(),
    };
    let mut request = state
        .operations
        .upload_photo
        .request()
        .variables(async_graphql::Variables::from_json(json!({ "file": null })));
    request.set_upload("variables.file", upload);
    forward_request(&state, request, caller, StatusCode::OK).await
}

/// `DELETE /api/profiles/me/photo` → 204.
pub async fn delete_photo(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let op = &state.operations.delete_photo;
    forward(&state, op, caller, json!({}), StatusCode::NO_CONTENT).await
}

/// Reads the `file` field, refusing it as soon as it passes `max` bytes.
async fn read_file_field(mut multipart: Multipart, max: usize) -> Result<UploadValue, Problem> {
    let too_large = || {
        Problem::from(AppError::PayloadTooLarge(format!(
            "File too large; the limit is {max} bytes."
        )))
    };
    let broken = |e: MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            Problem::new(ErrorCode::BadUserInput, "Malformed multipart body")
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
    Err(Problem::from(AppError::Validation(vec![FieldError::new(
        "file",
        "The file is required.",
    )])))
}

/// `GET /uploads/{user_id}/{file}`: a stored photo. Names the store would not make are 404
/// before the disk is touched, so no path can leave `UPLOAD_DIR`.
pub async fn serve_upload(
    State(state): State<AppState>,
    Path((user_id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let not_found = || Problem::new(ErrorCode::NotFound, "Not Found").into_response();
    let Some((path, kind)) = state.services.photos().locate(&user_id, &file) else {
        return not_found();
    };
    // A stored file never changes (a new photo gets a new name), so its name is its ETag.
    let etag = format!("\"{file}\"");
    let cache = HeaderValue::from_static("public, max-age=86400, immutable");
    let etag_value = HeaderValue::from_str(&etag).expect("file names are ASCII");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return not_found(),
        Err(e) => return AppError::internal(e).into_response(),
    };
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(kind.content_type()),
            ),
            (header::ETAG, etag_value),
            (header::CACHE_CONTROL, cache),
        ],
        Body::from(bytes),
    )
        .into_response()
}
