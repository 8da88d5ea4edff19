//! `http_events` rows and their Arrow builder.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, StringBuilder};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use super::conn::{ConnColumnsBuilder, ConnFields};
use crate::schema::http_events_schema;

/// One request paired with its response.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRow {
    /// Response time, Unix epoch nanoseconds.
    pub time_ns: i64,
    pub conn: ConnFields,
    pub major_version: i64,
    pub minor_version: i64,
    pub content_type: String,
    /// In wire order; stored as a JSON object, see [`headers_to_json`].
    pub req_headers: Vec<(String, String)>,
    pub req_method: String,
    pub req_path: String,
    /// Possibly truncated; stored as lossy UTF-8 text.
    pub req_body: Vec<u8>,
    /// Size on the wire, which may exceed `req_body.len()`.
    pub req_body_size: i64,
    pub resp_headers: Vec<(String, String)>,
    pub resp_status: i64,
    pub resp_message: String,
    pub resp_body: Vec<u8>,
    pub resp_body_size: i64,
    pub latency_ns: i64,
}

/// Serializes headers as a JSON object keyed by header name. A name that
/// occurs more than once (compared exactly, as received) gets its values
/// joined with ", " in wire order — the combination RFC 9110 §5.3 defines,
/// so no value is lost. Keys are sorted, making the text deterministic.
pub fn headers_to_json(headers: &[(String, String)]) -> String {
    let mut object = Map::new();
    for (name, value) in headers {
        match object.get_mut(name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            _ => {
                object.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    Value::Object(object).to_string()
}

/// Fixed-width bytes per row in the HTTP-specific columns: six Int64
/// columns plus a 4-byte offset for each of the eight string columns.
const FIXED_ROW_BYTES: usize = 6 * 8 + 8 * 4;

/// Accumulates [`HttpRow`]s into `http_events` record batches.
#[derive(Debug)]
pub struct HttpEventsBuilder {
    conn: ConnColumnsBuilder,
    major_version: Int64Builder,
    minor_version: Int64Builder,
    content_type: StringBuilder,
    req_headers: StringBuilder,
    req_method: StringBuilder,
    req_path: StringBuilder,
    req_body: StringBuilder,
    req_body_size: Int64Builder,
    resp_headers: StringBuilder,
    resp_status: Int64Builder,
    resp_message: StringBuilder,
    resp_body: StringBuilder,
    resp_body_size: Int64Builder,
    latency: Int64Builder,
    rows: usize,
    bytes: usize,
}

impl Default for HttpEventsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpEventsBuilder {
    pub fn new() -> Self {
        Self {
            conn: ConnColumnsBuilder::new(),
            major_version: Int64Builder::new(),
            minor_version: Int64Builder::new(),
            content_type: StringBuilder::new(),
            req_headers: StringBuilder::new(),
            req_method: StringBuilder::new(),
            req_path: StringBuilder::new(),
            req_body: StringBuilder::new(),
            req_body_size: Int64Builder::new(),
            resp_headers: StringBuilder::new(),
            resp_status: Int64Builder::new(),
            resp_message: StringBuilder::new(),
            resp_body: StringBuilder::new(),
            resp_body_size: Int64Builder::new(),
            latency: Int64Builder::new(),
            rows: 0,
            bytes: 0,
        }
    }

    pub fn append(&mut self, row: &HttpRow) {
        let req_headers = headers_to_json(&row.req_headers);
        let resp_headers = headers_to_json(&row.resp_headers);
        let req_body = String::from_utf8_lossy(&row.req_body);
        let resp_body = String::from_utf8_lossy(&row.resp_body);

        let mut bytes = self.conn.append(row.time_ns, &row.conn);
        self.major_version.append_value(row.major_version);
        self.minor_version.append_value(row.minor_version);
        self.content_type.append_value(&row.content_type);
        self.req_headers.append_value(&req_headers);
        self.req_method.append_value(&row.req_method);
        self.req_path.append_value(&row.req_path);
        self.req_body.append_value(&req_body);
        self.req_body_size.append_value(row.req_body_size);
        self.resp_headers.append_value(&resp_headers);
        self.resp_status.append_value(row.resp_status);
        self.resp_message.append_value(&row.resp_message);
        self.resp_body.append_value(&resp_body);
        self.resp_body_size.append_value(row.resp_body_size);
        self.latency.append_value(row.latency_ns);

        bytes += FIXED_ROW_BYTES
            + row.content_type.len()
            + req_headers.len()
            + row.req_method.len()
            + row.req_path.len()
            + req_body.len()
            + resp_headers.len()
            + row.resp_message.len()
            + resp_body.len();
        self.rows += 1;
        self.bytes += bytes;
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Approximate size of the pending rows' data (values, offsets), not of
    /// the builders' allocated capacity; used to decide when to flush.
    pub fn approx_bytes(&self) -> usize {
        self.bytes
    }

    /// Returns the pending rows as a batch and resets the builder.
    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = self.conn.finish();
        columns.extend([
            Arc::new(self.major_version.finish()) as ArrayRef,
            Arc::new(self.minor_version.finish()),
            Arc::new(self.content_type.finish()),
            Arc::new(self.req_headers.finish()),
            Arc::new(self.req_method.finish()),
            Arc::new(self.req_path.finish()),
            Arc::new(self.req_body.finish()),
            Arc::new(self.req_body_size.finish()),
            Arc::new(self.resp_headers.finish()),
            Arc::new(self.resp_status.finish()),
            Arc::new(self.resp_message.finish()),
            Arc::new(self.resp_body.finish()),
            Arc::new(self.resp_body_size.finish()),
            Arc::new(self.latency.finish()),
        ]);
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(http_events_schema(), columns)
            .expect("http_events columns are built to match http_events_schema")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use arrow::array::{Array, AsArray, BooleanArray, Int64Array, StringArray, UInt32Array};
    use arrow::datatypes::TimestampNanosecondType;

    use super::*;
    use crate::records::TraceRole;

    pub(crate) fn sample_row(time_ns: i64, path: &str) -> HttpRow {
        HttpRow {
            time_ns,
            conn: ConnFields {
                upid: "42:1000".into(),
                pid: 42,
                comm: "curl".into(),
                remote_addr: "10.0.0.2".into(),
                remote_port: 80,
                local_addr: "10.0.0.1".into(),
                local_port: 51234,
                trace_role: TraceRole::Client,
                encrypted: false,
                k8s: Default::default(),
            },
            major_version: 1,
            minor_version: 1,
            content_type: "application/json".into(),
            req_headers: vec![
                ("Host".into(), "example".into()),
                ("Accept".into(), "a/b".into()),
                ("Accept".into(), "c/d".into()),
            ],
            req_method: "GET".into(),
            req_path: path.into(),
            req_body: vec![],
            req_body_size: 0,
            resp_headers: vec![("Content-Length".into(), "5".into())],
            resp_status: 200,
            resp_message: "OK".into(),
            resp_body: b"hi\xffok".to_vec(),
            resp_body_size: 5,
            latency_ns: 1_500,
        }
    }

    fn string(batch: &RecordBatch, name: &str) -> Vec<String> {
        let column = batch.column_by_name(name).unwrap();
        let array = column.as_any().downcast_ref::<StringArray>().unwrap();
        array.iter().map(|v| v.unwrap().to_owned()).collect()
    }

    fn int(batch: &RecordBatch, name: &str) -> Vec<i64> {
        let column = batch.column_by_name(name).unwrap();
        column
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec()
    }

    #[test]
    fn headers_json_joins_repeats_and_sorts() {
        let headers = vec![
            ("b".to_owned(), "1".to_owned()),
            ("a".to_owned(), "\"q\"".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ];
        assert_eq!(headers_to_json(&headers), r#"{"a":"\"q\"","b":"1, 2"}"#);
        assert_eq!(headers_to_json(&[]), "{}");
    }

    #[test]
    fn builds_exact_columns_and_resets() {
        let mut builder = HttpEventsBuilder::new();
        assert!(builder.is_empty());
        builder.append(&sample_row(1_000, "/a"));
        let mut second = sample_row(2_000, "/b");
        second.conn.trace_role = TraceRole::Server;
        second.conn.encrypted = true;
        second.req_body = b"x=1".to_vec();
        second.req_body_size = 3;
        builder.append(&second);
        assert_eq!(builder.len(), 2);
        assert!(builder.approx_bytes() > 0);

        let batch = builder.finish();
        assert_eq!(batch.schema(), http_events_schema());
        assert_eq!(batch.num_rows(), 2);
        let time = batch.column(0).as_primitive::<TimestampNanosecondType>();
        assert_eq!(time.values().to_vec(), vec![1_000, 2_000]);
        assert_eq!(string(&batch, "upid"), ["42:1000", "42:1000"]);
        let pid = batch
            .column(2)
            .as_any()
            .downcast_ref::<UInt32Array>()
            .unwrap();
        assert_eq!(pid.values().to_vec(), vec![42, 42]);
        assert_eq!(string(&batch, "trace_role"), ["client", "server"]);
        let encrypted = batch
            .column(9)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap();
        assert_eq!(
            encrypted.iter().collect::<Vec<_>>(),
            [Some(false), Some(true)]
        );
        assert_eq!(string(&batch, "req_path"), ["/a", "/b"]);
        assert_eq!(
            string(&batch, "req_headers")[0],
            r#"{"Accept":"a/b, c/d","Host":"example"}"#
        );
        assert_eq!(
            string(&batch, "resp_headers")[0],
            r#"{"Content-Length":"5"}"#
        );
        assert_eq!(string(&batch, "req_body"), ["", "x=1"]);
        assert_eq!(string(&batch, "resp_body")[0], "hi\u{fffd}ok");
        assert_eq!(int(&batch, "req_body_size"), [0, 3]);
        assert_eq!(int(&batch, "resp_status"), [200, 200]);
        assert_eq!(int(&batch, "latency"), [1_500, 1_500]);
        assert_eq!(batch.column_by_name("remote_port").unwrap().null_count(), 0);

        assert!(builder.is_empty());
        assert_eq!(builder.approx_bytes(), 0);
        assert_eq!(builder.finish().num_rows(), 0);
    }
}
