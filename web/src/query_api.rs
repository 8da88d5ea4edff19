//! `POST /api/v1/query`: `{"sql": "..."}` in, the result out as JSON, CSV
//! (`?format=csv`) or an Arrow IPC stream (`?format=arrow`).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::encode::Format;
use crate::error::ApiError;
use crate::{AppState, MAX_BODY_BYTES};

#[derive(Debug, Deserialize)]
struct QueryRequest {
    sql: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct QueryParams {
    format: Option<String>,
}

// Extractor rejections are taken as `Result`s so that every failure,
// including axum's own (body too large, bad query string), is answered as
// a JSON error.
pub(crate) async fn query(
    State(state): State<AppState>,
    params: Result<Query<QueryParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let format = Format::parse(params.format.as_deref()).map_err(ApiError::bad_request)?;
    let body = body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
        ),
        status => ApiError::new(status, r.body_text()),
    })?;
    // Parsed whatever the Content-Type, so `curl -d` works as is.
    let request: QueryRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;

    let result = state.engine.query(&request.sql).await?;
    // Encoding up to the row cap is CPU-bound and recurses into nested
    // types: it runs on the query threads, off the async workers.
    let encoded = state
        .engine
        .run_blocking(move || format.encode(&result))
        .await?;
    match encoded {
        Ok(bytes) => Ok(([(header::CONTENT_TYPE, format.content_type())], bytes).into_response()),
        Err(err) if err.is_user_error() => Err(ApiError::bad_request(err.to_string())),
        Err(err) => Err(ApiError::internal(err.to_string())),
    }
}
