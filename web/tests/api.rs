//! The router end to end, driven with `tower::ServiceExt::oneshot`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::ipc::reader::StreamReader;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sonde_query::records::{ConnFields, HttpEventsBuilder, HttpRow, TraceRole};
use sonde_query::schema::{HTTP_EVENTS, http_events_schema};
use sonde_query::{QueryEngine, StatsRegistry, StoreConfig, TableStore};
use sonde_web::{AppState, MAX_BODY_BYTES, router};
use tower::ServiceExt;

/// 2026-11-21T21:30:00Z in Unix nanoseconds.
const T0: i64 = 1_795_296_600_000_000_000;

fn row(time_ns: i64, path: &str, status: i64, latency_ns: i64) -> HttpRow {
    HttpRow {
        time_ns,
        conn: Arc::new(ConnFields {
            upid: "12:345".into(),
            pid: 12,
            comm: "api".into(),
            remote_addr: "10.0.0.9".into(),
            remote_port: 5432,
            local_addr: "10.0.0.1".into(),
            local_port: 8080,
            trace_role: TraceRole::Server,
            encrypted: true,
            k8s: Default::default(),
        }),
        major_version: 1,
        minor_version: 1,
        content_type: "application/json".into(),
        req_headers: [("Host", "api")].into_iter().collect(),
        req_method: "POST".into(),
        req_path: path.into(),
        req_body: b"{}".to_vec(),
        req_body_size: 2,
        resp_headers: Default::default(),
        resp_status: status,
        resp_message: "OK".into(),
        resp_body: b"done".to_vec(),
        resp_body_size: 4,
        grpc_status: None,
        grpc_message: None,
        latency: latency_ns,
    }
}

fn state() -> AppState {
    let stats = Arc::new(StatsRegistry::new());
    let store = Arc::new(TableStore::new(StoreConfig::default(), Arc::clone(&stats)));
    store.register(HTTP_EVENTS, http_events_schema()).unwrap();
    let mut builder = HttpEventsBuilder::new();
    builder.append(&row(T0 + 123_456_789, "/v1/a", 200, 1_500));
    builder.append(&row(T0 + 1_000_000_000, "/v1/b", 503, 2_000));
    store.append(HTTP_EVENTS, builder.finish()).unwrap();
    stats
        .counter("events_read", "Events read from the ring buffer")
        .add(9);
    AppState {
        engine: Arc::new(QueryEngine::new(store)),
        stats,
        ready: Arc::new(AtomicBool::new(false)),
        degraded: Default::default(),
        extra_metrics: Vec::new(),
    }
}

async fn send(state: &AppState, request: Request<Body>) -> Response {
    router(state.clone()).oneshot(request).await.unwrap()
}

fn post_query(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn sql_body(sql: &str) -> String {
    json!({ "sql": sql }).to_string()
}

async fn body_bytes(response: Response) -> Vec<u8> {
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

fn content_type(response: &Response) -> &str {
    response.headers()[header::CONTENT_TYPE].to_str().unwrap()
}

const SELECT: &str = "SELECT time_, pid, req_path, resp_status, encrypted, latency / 1000.0 AS latency_us, \
                      CAST(NULL AS BIGINT) AS nothing FROM http_events ORDER BY time_";

#[tokio::test]
async fn query_returns_json() {
    let state = state();
    let response = send(&state, post_query("/api/v1/query", sql_body(SELECT))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "application/json");
    let body: Value = serde_json::from_slice(&body_bytes(response).await).unwrap();
    assert_eq!(
        body,
        json!({
            "columns": [
                {"name": "time_", "type": "Timestamp(ns, \"UTC\")"},
                {"name": "pid", "type": "UInt32"},
                {"name": "req_path", "type": "Utf8"},
                {"name": "resp_status", "type": "Int64"},
                {"name": "encrypted", "type": "Boolean"},
                {"name": "latency_us", "type": "Float64"},
                {"name": "nothing", "type": "Int64"},
            ],
            "rows": [
                ["2026-11-21T21:30:00.123456789Z", 12, "/v1/a", 200, true, 1.5, null],
                ["2026-11-21T21:30:01.000000000Z", 12, "/v1/b", 503, true, 2.0, null],
            ],
            "truncated": false,
        })
    );
}

#[tokio::test]
async fn json_reports_truncation() {
    let mut state = state();
    let store = Arc::clone(state.engine.store().unwrap());
    state.engine = Arc::new(QueryEngine::new(store).with_max_rows(1));
    let response = send(
        &state,
        post_query("/api/v1/query?format=json", sql_body(SELECT)),
    )
    .await;
    let body: Value = serde_json::from_slice(&body_bytes(response).await).unwrap();
    assert_eq!(
        body["rows"],
        json!([[
            "2026-11-21T21:30:00.123456789Z",
            12,
            "/v1/a",
            200,
            true,
            1.5,
            null
        ]])
    );
    assert_eq!(body["truncated"], json!(true));
}

#[tokio::test]
async fn query_returns_csv() {
    let state = state();
    let sql = "SELECT req_path, resp_status, encrypted FROM http_events ORDER BY time_";
    let response = send(
        &state,
        post_query("/api/v1/query?format=csv", sql_body(sql)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "text/csv; charset=utf-8");
    let text = String::from_utf8(body_bytes(response).await).unwrap();
    assert_eq!(
        text,
        "req_path,resp_status,encrypted\n/v1/a,200,true\n/v1/b,503,true\n"
    );

    let empty = send(
        &state,
        post_query(
            "/api/v1/query?format=csv",
            sql_body("SELECT 1 AS one WHERE false"),
        ),
    )
    .await;
    assert_eq!(String::from_utf8(body_bytes(empty).await).unwrap(), "one\n");
}

#[tokio::test]
async fn query_returns_arrow_stream() {
    let state = state();
    let sql = "SELECT * FROM http_events ORDER BY time_";
    let response = send(
        &state,
        post_query("/api/v1/query?format=arrow", sql_body(sql)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        content_type(&response),
        "application/vnd.apache.arrow.stream"
    );
    let bytes = body_bytes(response).await;
    let reader = StreamReader::try_new(bytes.as_slice(), None).unwrap();
    assert_eq!(reader.schema(), http_events_schema());
    let decoded: Vec<_> = reader.collect::<Result<_, _>>().unwrap();

    let expected = state.engine.query(sql).await.unwrap();
    assert_eq!(decoded, expected.batches);
    assert_eq!(decoded.iter().map(|b| b.num_rows()).sum::<usize>(), 2);

    // Zero rows: still a schema.
    let sql = "SELECT req_path FROM http_events WHERE false";
    let response = send(
        &state,
        post_query("/api/v1/query?format=arrow", sql_body(sql)),
    )
    .await;
    let bytes = body_bytes(response).await;
    let reader = StreamReader::try_new(bytes.as_slice(), None).unwrap();
    assert_eq!(reader.schema().field(0).name(), "req_path");
    assert_eq!(reader.count(), 0);
}

async fn expect_error(state: &AppState, request: Request<Body>, status: StatusCode) -> String {
    let response = send(state, request).await;
    assert_eq!(response.status(), status);
    assert_eq!(content_type(&response), "application/json");
    let body: Value = serde_json::from_slice(&body_bytes(response).await).unwrap();
    body["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn client_errors_are_400_json() {
    let state = state();
    let bad = StatusCode::BAD_REQUEST;

    let message = expect_error(
        &state,
        post_query("/api/v1/query", sql_body("SELEC 1")),
        bad,
    )
    .await;
    assert!(message.starts_with("SQL error"), "{message}");

    let message = expect_error(
        &state,
        post_query("/api/v1/query", sql_body("DROP TABLE http_events")),
        bad,
    )
    .await;
    assert_eq!(
        message,
        "only read-only statements are allowed: SELECT, WITH, EXPLAIN, SHOW, DESCRIBE; got DROP TABLE"
    );

    let message = expect_error(
        &state,
        post_query("/api/v1/query", sql_body("SELECT * FROM '/etc/passwd'")),
        bad,
    )
    .await;
    assert!(message.contains("not found"), "{message}");

    let message = expect_error(&state, post_query("/api/v1/query", "{not json"), bad).await;
    assert!(
        message.starts_with("invalid request body: key must be a string"),
        "{message}"
    );

    let message = expect_error(
        &state,
        post_query("/api/v1/query", r#"{"query": "SELECT 1"}"#),
        bad,
    )
    .await;
    assert!(
        message.starts_with("invalid request body: missing field `sql`"),
        "{message}"
    );

    let message = expect_error(
        &state,
        post_query("/api/v1/query?format=xml", sql_body("SELECT 1")),
        bad,
    )
    .await;
    assert_eq!(
        message,
        "unknown format \"xml\"; expected json, csv or arrow"
    );

    let message = expect_error(
        &state,
        post_query(
            "/api/v1/query?format=csv",
            sql_body("SELECT make_array(1, 2) AS l"),
        ),
        bad,
    )
    .await;
    assert!(
        message.starts_with("cannot encode the result as CSV"),
        "{message}"
    );

    let huge = sql_body(&format!("SELECT '{}'", "x".repeat(MAX_BODY_BYTES)));
    expect_error(
        &state,
        post_query("/api/v1/query", huge),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
}

#[tokio::test]
async fn health_and_readiness() {
    let state = state();
    let response = send(
        &state,
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_bytes(response).await, b"ok");

    let response = send(&state, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_bytes(response).await, b"probes not attached");

    state.ready.store(true, Ordering::Release);
    let response = send(&state, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_bytes(response).await, b"ready");

    // Degraded is still ready; the body says what.
    let degraded = AppState {
        degraded: vec![
            "no bpf_loop: x".to_string(),
            "2 of 32 tracepoints not attached: a, b".to_string(),
        ]
        .into(),
        ..state
    };
    let response = send(
        &degraded,
        Request::get("/readyz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_bytes(response).await,
        b"ready; degraded: no bpf_loop: x; 2 of 32 tracepoints not attached: a, b"
    );
}

#[tokio::test]
async fn metrics_text() {
    let state = state();
    let response = send(
        &state,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "text/plain; version=0.0.4");
    let text = String::from_utf8(body_bytes(response).await).unwrap();
    let table = &state.engine.store().unwrap().table_stats()[0];
    let expected = format!(
        "# HELP sonde_events_read Events read from the ring buffer\n\
         # TYPE sonde_events_read counter\n\
         sonde_events_read 9\n\
         # HELP sonde_evicted_batches_http_events Batches of http_events dropped by the table store's byte budget\n\
         # TYPE sonde_evicted_batches_http_events counter\n\
         sonde_evicted_batches_http_events 0\n\
         # HELP sonde_evicted_rows_http_events Rows of http_events dropped by the table store's byte budget\n\
         # TYPE sonde_evicted_rows_http_events counter\n\
         sonde_evicted_rows_http_events 0\n\
         # HELP sonde_table_rows Rows held in the table store\n\
         # TYPE sonde_table_rows gauge\n\
         sonde_table_rows{{table=\"http_events\"}} 2\n\
         # HELP sonde_table_bytes Bytes held in the table store\n\
         # TYPE sonde_table_bytes gauge\n\
         sonde_table_bytes{{table=\"http_events\"}} {}\n\
         # HELP sonde_table_budget_bytes Byte budget of the table\n\
         # TYPE sonde_table_budget_bytes gauge\n\
         sonde_table_budget_bytes{{table=\"http_events\"}} 1073741824\n\
         # HELP sonde_table_batches Record batches held in the table store\n\
         # TYPE sonde_table_batches gauge\n\
         sonde_table_batches{{table=\"http_events\"}} 1\n",
        table.bytes
    );
    assert_eq!(text, expected);
    assert!(table.bytes > 0);
}

#[tokio::test]
async fn unknown_route_is_404() {
    let state = state();
    let response = send(&state, Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = send(
        &state,
        Request::get("/api/v1/query").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// Requests built to recurse deeply (in the SQL or in the JSON around it)
/// are refused with a message while the server keeps answering; 5 000
/// `UNION ALL` terms used to overflow a worker's stack and abort the agent.
#[tokio::test]
async fn hostile_requests_are_refused_and_the_server_keeps_answering() {
    let state = state();
    let bad = StatusCode::BAD_REQUEST;
    let answers = |state: AppState| async move {
        let response = send(
            &state,
            post_query("/api/v1/query", sql_body("SELECT 6 * 7 AS v")),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = serde_json::from_slice(&body_bytes(response).await).unwrap();
        assert_eq!(body["rows"], json!([[42]]));
    };

    let union = |terms: usize| vec!["SELECT 1"; terms].join(" UNION ALL ");
    let message = expect_error(
        &state,
        post_query("/api/v1/query", sql_body(&union(5_000))),
        bad,
    )
    .await;
    assert!(
        message.starts_with("the statement nests at least 5000 levels deep")
            && message.ends_with("at most 500 levels are accepted"),
        "{message}"
    );
    answers(state.clone()).await;

    let sql = union(50_000);
    assert!(sql_body(&sql).len() < MAX_BODY_BYTES);
    let message = expect_error(&state, post_query("/api/v1/query", sql_body(&sql)), bad).await;
    assert_eq!(
        message,
        format!(
            "the SQL text is {} bytes long; at most 262144 bytes are accepted",
            sql.len()
        )
    );
    answers(state.clone()).await;

    let nots = format!("SELECT {}true", "NOT ".repeat(10_000));
    let message = expect_error(&state, post_query("/api/v1/query", sql_body(&nots)), bad).await;
    assert!(
        message.starts_with("the statement nests more than 50 levels deep"),
        "{message}"
    );
    answers(state.clone()).await;

    // Deep JSON where a value is read is refused at its first bracket.
    let deep =
        |open: &str, close: &str| format!("{}{}", open.repeat(100_000), close.repeat(100_000));
    for (body, expected) in [
        (
            format!(r#"{{"sql": {}}}"#, deep("[", "]")),
            "invalid request body: invalid type: sequence, expected a string",
        ),
        (
            deep(r#"{"sql": "#, "}"),
            "invalid request body: invalid type: map, expected a string",
        ),
        (
            deep("[", "]"),
            "invalid request body: invalid type: sequence, expected a string",
        ),
    ] {
        let message = expect_error(&state, post_query("/api/v1/query", body), bad).await;
        assert!(message.starts_with(expected), "{message}");
        answers(state.clone()).await;
    }
    // In a field the API does not read, serde_json skips it without
    // recursing (an explicit stack): the query runs.
    let skipped = format!(
        r#"{{"extra": {}, "sql": "SELECT 6 * 7 AS v"}}"#,
        deep("[", "]")
    );
    let response = send(&state, post_query("/api/v1/query", skipped)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(&body_bytes(response).await).unwrap();
    assert_eq!(body["rows"], json!([[42]]));

    let huge = sql_body(&format!("SELECT '{}'", "x".repeat(MAX_BODY_BYTES)));
    let message = expect_error(
        &state,
        post_query("/api/v1/query", huge),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(
        message,
        format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes")
    );
    answers(state.clone()).await;
}
