//! `/graphql` over HTTP, with the checks async-graphql's own integration leaves out:
//!
//! - POST only as `application/json` (or `multipart/form-data` for uploads); anything else is
//!   415, so a cross-site HTML form cannot reach a mutation;
//! - GET runs queries only: a mutation sent by GET is 405 and nothing executes;
//! - the body limit applies (1 MiB of JSON; the upload limit for multipart), over it → 413;
//! - at most [`MAX_BATCH`] operations in one batch, and documents within [`shape`]'s limits
//!   (aliases, root fields of a mutation), refused before anything executes.

use async_graphql::{
    BatchRequest, ParseRequestError, ServerError,
    http::{MultipartOptions, parse_query_string, receive_batch_body},
};
use axum::{
    body::Bytes,
    extract::{FromRequest, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{Html, IntoResponse, Response},
};

use super::{GraphqlState, MAX_BATCH, UploadOnce, documents::runs_mutation, shape};
use crate::{
    caller::Caller,
    error::{AppError, ErrorCode, NOT_AUTHENTICATED},
    http::{MAX_JSON_BODY, SlotRefused, has_media_type},
};
use futures_util::TryStreamExt;
use tokio_util::compat::TokioAsyncReadCompatExt;

/// `GET /graphql`: GraphiQL for a browser, or a query from the query string.
pub async fn graphql_get(
    State(state): State<GraphqlState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let wants = wants_graphql_response(&headers);
    media_type(wants, get(state, caller, uri).await)
}

async fn get(state: GraphqlState, caller: Caller, uri: Uri) -> Response {
    let Some(query) = uri.query().filter(|q| has_query_param(q)) else {
        return Html(super::graphiql::PAGE).into_response();
    };
    let mut request = match parse_query_string(query) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                &e.to_string(),
            );
        }
    };
    state.documents.prepare(&mut request);
    let operation_name = request.operation_name.clone();
    match request.parsed_query() {
        Err(parse_error) => return rejected_document(parse_error, PARSE_FAILED),
        Ok(doc) => {
            if let Err(reason) = shape::check(doc) {
                return error(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, &reason);
            }
        }
    }
    if let Ok(doc) = request.parsed_query()
        && runs_mutation(doc, operation_name.as_deref())
    {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadUserInput,
            "Mutations must be sent with POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let with_variables = !request.variables.is_empty();
    let request = request.data(caller.actor).data(caller.client);
    let mut response = super::execute(&state.schema, request).await;
    log_failures(&response.errors);
    if rejected_before_execution(&mut response, with_variables, state.suggestions.as_deref()) {
        return rejected_response(&response);
    }
    json(&response)
}

/// `POST /graphql`: a JSON body (one request or a batch), or a multipart upload.
pub async fn graphql_post(
    State(state): State<GraphqlState>,
    caller: Caller,
    request: axum::extract::Request,
) -> Response {
    let wants = wants_graphql_response(request.headers());
    media_type(wants, post(state, caller, request).await)
}

async fn post(state: GraphqlState, caller: Caller, request: axum::extract::Request) -> Response {
    let headers = request.headers();
    let mut slot = None;
    let batch = if has_media_type(headers, "application/json") {
        read_json(request, &state).await
    } else if has_media_type(headers, "multipart/form-data") {
        // Multipart exists for uploads, which need an account: checked before the body is
        // read or an upload slot taken, so anonymous clients cannot occupy the slots.
        let Ok(bearer) = caller.actor.bearer() else {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                NOT_AUTHENTICATED,
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        };
        let (parts, body) = request.into_parts();
        let (permit, body) = match state.uploads.slot(bearer.user_id, body).await {
            Ok(admitted) => admitted,
            // The body timed out; the server answers 408.
            Err(SlotRefused::Body) => return StatusCode::REQUEST_TIMEOUT.into_response(),
            Err(SlotRefused::AccountBusy(err)) => {
                let mut response = error(StatusCode::TOO_MANY_REQUESTS, err.code(), &err.message());
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
        };
        // Held until the response is built, like the REST upload path.
        slot = Some(permit);
        let request = axum::extract::Request::from_parts(parts, body);
        read_multipart(request, state.uploads.max_bytes).await
    } else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadUserInput,
            "Content-Type must be application/json or multipart/form-data",
        );
    };
    let batch = match batch {
        Ok(batch) => batch,
        Err(response) => return response,
    };
    if let BatchRequest::Batch(requests) = &batch
        && requests.len() > MAX_BATCH
    {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            &format!("A batch may hold at most {MAX_BATCH} operations"),
        );
    }
    let mut batch = batch;
    let single = matches!(batch, BatchRequest::Single(_));
    for request in batch.iter_mut() {
        state.documents.prepare(request);
        match request.parsed_query() {
            // One document that does not parse: the request as a whole is refused. In a
            // batch, the executor reports it in that operation's own response.
            Err(parse_error) if single => return rejected_document(parse_error, PARSE_FAILED),
            Err(_) => {}
            Ok(doc) => {
                if let Err(reason) = shape::check(doc) {
                    return error(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, &reason);
                }
            }
        }
    }
    let with_variables: Vec<bool> = batch.iter().map(|r| !r.variables.is_empty()).collect();
    let batch = batch
        .data(caller.actor)
        .data(caller.client)
        .data(UploadOnce::default());
    let mut executed = execute_in_turn(&state, batch).await;
    let suggestions = state.suggestions.as_deref();
    let response = match &mut executed {
        async_graphql::BatchResponse::Single(response) => {
            log_failures(&response.errors);
            let variables = with_variables.first().copied().unwrap_or_default();
            if rejected_before_execution(response, variables, suggestions) {
                rejected_response(response)
            } else {
                json(response)
            }
        }
        async_graphql::BatchResponse::Batch(responses) => {
            for (response, variables) in responses.iter_mut().zip(with_variables) {
                log_failures(&response.errors);
                rejected_before_execution(response, variables, suggestions);
            }
            json(&executed)
        }
    };
    drop(slot);
    response
}

/// Code of a document that does not parse (the name Apollo Server gives it).
const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// Code of a document that does not validate against the schema (or its limits).
const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";

/// Marks a response whose document was refused before anything ran, with the body it
/// takes under the GraphQL-over-HTTP media type (errors only, no `data`): [`media_type`]
/// then answers it as a 400.
#[derive(Clone)]
struct DocumentRejected(Vec<u8>);

/// Did the request fail before execution (its document did not validate)? Such errors have
/// no path and no service error behind them; they get [`VALIDATION_FAILED`] as their code,
/// and a "Did you mean …?" hint where one helps.
///
/// The variables are the client's input, as Apollo Server counts them: a variable that is
/// missing (reported when the field runs) or of the wrong type (reported by validation, when
/// the request sent variables) is `BAD_USER_INPUT`.
fn rejected_before_execution(
    response: &mut async_graphql::Response,
    with_variables: bool,
    suggestions: Option<&super::Suggestions>,
) -> bool {
    let rejected = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response
            .errors
            .iter()
            .all(|e| e.path.is_empty() && e.source::<AppError>().is_none());
    for err in response.errors.iter_mut() {
        if err.source::<AppError>().is_some() {
            continue;
        }
        let missing_variable =
            err.message.starts_with("Variable ") && err.message.ends_with(" is not defined.");
        let bad_variable = with_variables && err.message.starts_with("Invalid value for argument");
        if missing_variable || bad_variable {
            set_code_if_missing(err, ErrorCode::BadUserInput.as_str());
        }
        if err.path.is_empty() {
            set_code_if_missing(err, VALIDATION_FAILED);
            if let Some(hinted) = suggestions.and_then(|s| s.hint(&err.message)) {
                err.message = hinted;
            }
        }
    }
    rejected
}

fn set_code_if_missing(err: &mut ServerError, code: &str) {
    let ext = err.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", code);
    }
}

/// A single document that did not parse, with its code. An operation or fragment defined
/// twice is a validation failure (GraphQL's rule "Operation Name Uniqueness"), though
/// async-graphql's parser is the one to notice it.
fn rejected_document(mut err: ServerError, code: &str) -> Response {
    let code = if err.message.ends_with(" is defined twice") {
        VALIDATION_FAILED
    } else {
        code
    };
    set_code_if_missing(&mut err, code);
    rejected_response(&async_graphql::Response::from_errors(vec![err]))
}

fn rejected_response(response: &async_graphql::Response) -> Response {
    let errors_only =
        serde_json::to_vec(&serde_json::json!({ "errors": response.errors })).unwrap_or_default();
    let mut response = json(response);
    response
        .extensions_mut()
        .insert(DocumentRejected(errors_only));
    response
}

/// Does the client accept `application/graphql-response+json` (Apollo Client 4, the
/// `graphql-http` reference client)?
fn wants_graphql_response(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(GRAPHQL_RESPONSE))
        })
}

/// The GraphQL-over-HTTP media type: a client that accepts `application/graphql-response+json`
/// gets its answers in it, and a document refused before execution as a 400 with no `data`
/// entry. Others get `application/json` with 200 for every executed request, as ever.
fn media_type(wants_graphql_response: bool, mut response: Response) -> Response {
    if !wants_graphql_response || !has_media_type(response.headers(), "application/json") {
        return response;
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(GRAPHQL_RESPONSE),
    );
    match response.extensions_mut().remove::<DocumentRejected>() {
        Some(DocumentRejected(errors_only)) => {
            let (mut parts, _) = response.into_parts();
            parts.status = StatusCode::BAD_REQUEST;
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, axum::body::Body::from(errors_only))
        }
        None => response,
    }
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

async fn read_json(
    request: axum::extract::Request,
    state: &GraphqlState,
) -> Result<BatchRequest, Response> {
    let body = match Bytes::from_request(request, state).await {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(too_large("Request body too large"));
        }
        Err(rejection) => {
            return Err(error(
                rejection.status(),
                ErrorCode::BadUserInput,
                &rejection.body_text(),
            ));
        }
    };
    let invalid = |message: &str| error(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, message);
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| invalid(&format!("Invalid JSON: {e}")))?;
    // serde's own message here would name our types (`untagged enum BatchRequest`).
    serde_json::from_value(value).map_err(|_| {
        invalid(
            "Invalid GraphQL request: send an object with a `query` string (and optional \
             `variables` object and `operationName` string), or a list of such objects",
        )
    })
}

/// The GraphQL multipart request spec: `operations`, `map`, then the files. Each file is
/// limited to `max_upload` bytes (the same limit as the REST path: on the file, not on the
/// framing around it) and the whole body to that plus the JSON limit, both enforced while
/// the body streams in. A multipart request must carry a file: multipart is what an HTML
/// form can send cross-site without a preflight, so it may not run other operations.
async fn read_multipart(
    request: axum::extract::Request,
    max_upload: usize,
) -> Result<BatchRequest, Response> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = max_upload + MAX_JSON_BODY;
    let body = http_body_util::Limited::new(request.into_body(), limit);
    let stream = http_body_util::BodyDataStream::new(body).map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream).compat();
    // No `max_num_files`: async-graphql would then cap the whole stream, framing included, at
    // the file limit. The body limit above bounds the total instead.
    let options = MultipartOptions::default().max_file_size(max_upload);
    let batch = receive_batch_body(content_type, reader, options)
        .await
        .map_err(|e| match e {
            ParseRequestError::PayloadTooLarge => {
                too_large(&AppError::file_too_large(max_upload).message())
            }
            ParseRequestError::Io(io) if is_length_limit(&io) => {
                too_large("Request body too large")
            }
            other => error(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                &other.to_string(),
            ),
        })?;
    // Every place the `map` puts a file counts: one file mapped to a hundred variables would
    // be decoded a hundred times.
    let files: usize = batch.iter().map(|request| request.uploads.len()).sum();
    if files == 0 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            "A multipart request must carry a file; send other operations as JSON",
        ));
    }
    if files > 1 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            "A request may carry one file, used once; send each upload on its own",
        ));
    }
    Ok(batch)
}

fn is_length_limit(err: &std::io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.is::<http_body_util::LengthLimitError>())
}

fn too_large(message: &str) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        message,
    )
}

/// Runs a batch's operations one after the other (async-graphql would run them at once), so
/// that each sees what the previous ones did: a login limit reached by the third operation
/// holds for the fourth.
async fn execute_in_turn(
    state: &GraphqlState,
    batch: BatchRequest,
) -> async_graphql::BatchResponse {
    match batch {
        BatchRequest::Single(request) => super::execute(&state.schema, request).await.into(),
        BatchRequest::Batch(requests) => {
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                responses.push(super::execute(&state.schema, request).await);
            }
            async_graphql::BatchResponse::Batch(responses)
        }
    }
}

fn has_query_param(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("query"))
}

/// Logs the hidden causes of server-side failures among a response's errors.
fn log_failures(errors: &[ServerError]) {
    for err in errors.iter().filter_map(|e| e.source::<AppError>()) {
        err.log();
    }
}

fn json(body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => {
            let err = AppError::internal(e);
            err.log();
            let code = ErrorCode::InternalServerError;
            error(StatusCode::INTERNAL_SERVER_ERROR, code, &err.message())
        }
    }
}

/// A request refused before execution: `{"errors": [...]}` with no `data` entry (nothing
/// ran), and the status.
fn error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let mut err = ServerError::new(message, None);
    set_code_if_missing(&mut err, code.as_str());
    let mut response = json(&serde_json::json!({ "errors": [err] }));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_query_parameter_named_query_counts() {
        assert!(has_query_param("query=%7Bme%7D"));
        assert!(has_query_param("a=1&query="));
        assert!(!has_query_param("querystring=1"));
    }
}
