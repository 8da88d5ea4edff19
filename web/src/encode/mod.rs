//! Encodings of a query result: JSON (default), CSV, Arrow IPC stream.

mod json;

use arrow::csv::WriterBuilder;
use arrow::error::ArrowError;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use sonde_query::QueryResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Csv,
    Arrow,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    #[error("cannot encode the result as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// CSV has no representation for some types (lists, structs): the
    /// query asked for something CSV cannot carry.
    #[error("cannot encode the result as CSV: {0}")]
    Csv(ArrowError),
    #[error("cannot encode the result as {format}: {source}")]
    Arrow {
        format: &'static str,
        source: ArrowError,
    },
}

impl EncodeError {
    /// Whether a different query or format would succeed (HTTP 400).
    pub(crate) fn is_user_error(&self) -> bool {
        matches!(self, EncodeError::Csv(_))
    }
}

impl Format {
    /// From the `format` query parameter; `None` means JSON.
    pub(crate) fn parse(name: Option<&str>) -> Result<Self, String> {
        match name {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some("arrow") => Ok(Format::Arrow),
            Some(other) => Err(format!(
                "unknown format {other:?}; expected json, csv or arrow"
            )),
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
    }

    pub(crate) fn encode(self, result: &QueryResult) -> Result<Vec<u8>, EncodeError> {
        match self {
            Format::Json => json::encode(result),
            Format::Csv => csv(result).map_err(EncodeError::Csv),
            Format::Arrow => arrow_stream(result).map_err(|source| EncodeError::Arrow {
                format: "an Arrow IPC stream",
                source,
            }),
        }
    }
}

/// CSV with a header row. The header is written with the first batch, so
/// an empty result writes an empty batch to still get it.
fn csv(result: &QueryResult) -> Result<Vec<u8>, ArrowError> {
    let mut writer = WriterBuilder::new().with_header(true).build(Vec::new());
    if result.batches.is_empty() {
        writer.write(&RecordBatch::new_empty(result.schema.clone()))?;
    }
    for batch in &result.batches {
        writer.write(batch)?;
    }
    Ok(writer.into_inner())
}

/// An Arrow IPC stream: the schema message (also for zero rows), then the
/// batches.
fn arrow_stream(result: &QueryResult) -> Result<Vec<u8>, ArrowError> {
    let mut writer = StreamWriter::try_new(Vec::new(), &result.schema)?;
    for batch in &result.batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    writer.into_inner()
}
