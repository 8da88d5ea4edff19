//! `POST /api/v1/query`: `{"sql": "..."}` in, the result out as JSON, CSV
//! (`?format=csv`) or an Arrow IPC stream (`?format=arrow`).
//!
//! Over a cluster (the coordinator), `"partial": true` (or `?partial=true`)
//! answers from the nodes that respond; the nodes that did not are named in
//! the JSON's `warnings` and, for every format, in `Sonde-Warning` headers.
//! Without it, a missing node fails the query (503) naming it.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sonde_query::QueryOptions;

use crate::encode::Format;
use crate::error::ApiError;
use crate::{AppState, MAX_BODY_BYTES};

#[derive(Debug, Deserialize)]
struct QueryRequest {
    sql: String,
    #[serde(default)]
    partial: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct QueryParams {
    format: Option<String>,
    #[serde(default)]
    partial: bool,
}

/// Header carrying each warning of the answer, whatever its format.
pub(crate) const WARNING_HEADER: &str = "sonde-warning";

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

    let options = QueryOptions {
        partial_results: request.partial || params.partial,
    };
    let result = state.engine.query_with(&request.sql, options).await?;
    let warnings = result.warnings.clone();
    // Encoding up to the row cap is CPU-bound and recurses into nested
    // types: it runs on the query threads, off the async workers.
    let encoded = state
        .engine
        .run_blocking(move || format.encode(&result))
        .await?;
    match encoded {
        Ok(bytes) => {
            let mut response =
                ([(header::CONTENT_TYPE, format.content_type())], bytes).into_response();
            for warning in warnings {
                // Header values are visible ASCII: anything else becomes '?'.
                let text: String = warning
                    .chars()
                    .map(|c| {
                        if c.is_ascii_graphic() || c == ' ' {
                            c
                        } else {
                            '?'
                        }
                    })
                    .collect();
                if let Ok(value) = HeaderValue::from_str(&text) {
                    response.headers_mut().append(WARNING_HEADER, value);
                }
            }
            Ok(response)
        }
        Err(err) if err.is_user_error() => Err(ApiError::bad_request(err.to_string())),
        Err(err) => Err(ApiError::internal(err.to_string())),
    }
}
