//! The SQL facade end to end: store → provider → DataFusion → result.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, TimestampNanosecondType, UInt32Type};
use sonde_query::records::{ConnFields, HttpEventsBuilder, HttpRow, TraceRole};
use sonde_query::schema::{CAPTURE_STATS, HTTP_EVENTS, capture_stats_schema, http_events_schema};
use sonde_query::{QueryEngine, QueryError, StatsRegistry, StoreConfig, TableStore};

fn row(time_ns: i64, path: &str, status: i64) -> HttpRow {
    HttpRow {
        time_ns,
        conn: Arc::new(ConnFields {
            upid: "7:99".into(),
            pid: 7,
            comm: "nginx".into(),
            remote_addr: "10.1.2.3".into(),
            remote_port: 40000,
            local_addr: "10.1.2.4".into(),
            local_port: 8080,
            trace_role: TraceRole::Server,
            encrypted: false,
            k8s: Default::default(),
        }),
        major_version: 1,
        minor_version: 1,
        content_type: "text/plain".into(),
        req_headers: [("Host", "svc")].into_iter().collect(),
        req_method: "GET".into(),
        req_path: path.into(),
        req_body: vec![],
        req_body_size: 0,
        resp_headers: Default::default(),
        resp_status: status,
        resp_message: "OK".into(),
        resp_body: b"hello".to_vec(),
        resp_body_size: 5,
        grpc_status: None,
        grpc_message: None,
        latency: 250,
    }
}

/// http_events with two batches: t=1000 /a 200, t=2000 /b 404 | t=3000 /c 500.
fn engine() -> QueryEngine {
    let stats = Arc::new(StatsRegistry::new());
    let store = Arc::new(TableStore::new(StoreConfig::default(), Arc::clone(&stats)));
    store.register(HTTP_EVENTS, http_events_schema()).unwrap();
    store
        .register(CAPTURE_STATS, capture_stats_schema())
        .unwrap();
    let mut builder = HttpEventsBuilder::new();
    builder.append(&row(1_000, "/a", 200));
    builder.append(&row(2_000, "/b", 404));
    store.append(HTTP_EVENTS, builder.finish()).unwrap();
    builder.append(&row(3_000, "/c", 500));
    store.append(HTTP_EVENTS, builder.finish()).unwrap();
    QueryEngine::new(store)
}

fn strings(batches: &[RecordBatch], column: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let array = arrow::compute::cast(b.column(column), &DataType::Utf8).unwrap();
            array
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or("NULL").to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn ints(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column(column)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

#[tokio::test]
async fn select_returns_exact_values() {
    let result = engine()
        .query(
            "SELECT time_, pid, comm, trace_role, req_method, req_path, req_headers, resp_status, resp_body, latency \
             FROM http_events WHERE resp_status >= 400 ORDER BY time_",
        )
        .await
        .unwrap();
    assert!(!result.truncated);
    assert_eq!(result.num_rows(), 2);
    let b = &result.batches;
    let times: Vec<i64> = b
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_primitive::<TimestampNanosecondType>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(times, [2_000, 3_000]);
    let pids: Vec<u32> = b
        .iter()
        .flat_map(|b| b.column(1).as_primitive::<UInt32Type>().values().to_vec())
        .collect();
    assert_eq!(pids, [7, 7]);
    assert_eq!(strings(b, 2), ["nginx", "nginx"]);
    assert_eq!(strings(b, 3), ["server", "server"]);
    assert_eq!(strings(b, 4), ["GET", "GET"]);
    assert_eq!(strings(b, 5), ["/b", "/c"]);
    assert_eq!(strings(b, 6), [r#"{"Host":"svc"}"#, r#"{"Host":"svc"}"#]);
    assert_eq!(ints(b, 7), [404, 500]);
    assert_eq!(strings(b, 8), ["hello", "hello"]);
    assert_eq!(ints(b, 9), [250, 250]);
    assert_eq!(result.schema.field(0).name(), "time_");
}

#[tokio::test]
async fn aggregates_and_time_filters() {
    let engine = engine();
    let result = engine
        .query("SELECT count(*) AS n, sum(latency) AS total FROM http_events WHERE time_ > to_timestamp_nanos(1000)")
        .await
        .unwrap();
    assert_eq!(ints(&result.batches, 0), [2]);
    assert_eq!(ints(&result.batches, 1), [500]);
}

#[tokio::test]
async fn writes_and_multiple_statements_are_rejected() {
    let engine = engine();
    for (sql, kind) in [
        (
            "INSERT INTO http_events SELECT * FROM http_events",
            "INSERT",
        ),
        ("CREATE TABLE x (a INT)", "CREATE TABLE"),
        (
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE",
        ),
        ("COPY (SELECT 1) TO '/tmp/sonde-copy.csv'", "COPY"),
        ("DROP TABLE http_events", "DROP TABLE"),
        ("SET datafusion.execution.batch_size = 1", "SET"),
        ("DELETE FROM http_events", "DELETE"),
        ("SELECT * INTO copy FROM http_events", "SELECT INTO"),
    ] {
        match engine.query(sql).await {
            Err(QueryError::Rejected(message)) => assert_eq!(
                message,
                format!(
                    "only read-only statements are allowed: SELECT, WITH, EXPLAIN, SHOW, DESCRIBE; got {kind}"
                ),
                "{sql}"
            ),
            other => panic!("{sql}: expected Rejected, got {other:?}"),
        }
    }
    match engine.query("SELECT 1; SELECT 2").await {
        Err(QueryError::Rejected(message)) => {
            assert_eq!(message, "exactly one statement is allowed per query, got 2")
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    match engine.query("  ").await {
        Err(QueryError::Rejected(message)) => assert_eq!(message, "no SQL statement given"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    // Nothing was created or dropped.
    assert_eq!(
        engine.store().unwrap().table_names(),
        [CAPTURE_STATS, HTTP_EVENTS]
    );
}

#[tokio::test]
async fn bad_sql_is_a_user_error() {
    let engine = engine();
    for sql in [
        "SELEC 1",
        "SELECT nope FROM http_events",
        "SELECT * FROM missing_table",
        "SELECT * FROM '/etc/passwd'",
    ] {
        let err = engine.query(sql).await.unwrap_err();
        assert!(matches!(err, QueryError::Sql(_)), "{sql}: {err:?}");
        assert!(err.is_user_error());
    }
    assert!(!QueryError::Internal("x".into()).is_user_error());
}

#[tokio::test]
async fn information_schema_lists_http_events_columns() {
    let result = engine()
        .query(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_name = 'http_events' ORDER BY ordinal_position",
        )
        .await
        .unwrap();
    let expected: Vec<String> = http_events_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(strings(&result.batches, 0), expected);
    assert_eq!(strings(&result.batches, 1)[0], "Timestamp(ns, \"UTC\")");
}

#[tokio::test]
async fn show_describe_and_explain_work() {
    let engine = engine();
    let shown = engine.query("SHOW TABLES").await.unwrap();
    // Columns: table_catalog, table_schema, table_name, table_type.
    let mut public: Vec<String> = strings(&shown.batches, 2)
        .into_iter()
        .zip(strings(&shown.batches, 1))
        .filter(|(_, schema)| schema == "public")
        .map(|(name, _)| name)
        .collect();
    public.sort();
    assert_eq!(public, [CAPTURE_STATS, HTTP_EVENTS]);
    let columns = engine
        .query("SHOW COLUMNS FROM capture_stats")
        .await
        .unwrap();
    assert_eq!(
        strings(&columns.batches, 3),
        ["time_", "name", "value", "node"]
    );
    let described = engine.query("DESCRIBE capture_stats").await.unwrap();
    assert_eq!(
        strings(&described.batches, 0),
        ["time_", "name", "value", "node"]
    );
    let explained = engine
        .query("EXPLAIN SELECT count(*) FROM http_events")
        .await
        .unwrap();
    assert!(explained.num_rows() > 0);
}

#[tokio::test]
async fn row_cap_truncates() {
    let engine = engine().with_max_rows(2);
    let result = engine
        .query("SELECT req_path FROM http_events ORDER BY time_")
        .await
        .unwrap();
    assert!(result.truncated);
    assert_eq!(strings(&result.batches, 0), ["/a", "/b"]);

    let exact = engine
        .query("SELECT req_path FROM http_events WHERE resp_status < 500 ORDER BY time_")
        .await
        .unwrap();
    assert!(!exact.truncated);
    assert_eq!(strings(&exact.batches, 0), ["/a", "/b"]);

    let none = engine.query("SELECT 1 WHERE false").await.unwrap();
    assert!(!none.truncated);
    assert_eq!(none.num_rows(), 0);
    assert_eq!(none.schema.fields().len(), 1);
}

#[tokio::test]
async fn each_query_sees_tables_registered_later() {
    let engine = engine();
    let stats = StatsRegistry::new();
    stats.counter("events", "events").add(3);
    engine
        .store()
        .unwrap()
        .append(CAPTURE_STATS, stats.to_record_batch(10))
        .unwrap();
    let result = engine
        .query("SELECT name, value FROM capture_stats")
        .await
        .unwrap();
    assert_eq!(strings(&result.batches, 0), ["events"]);
    assert_eq!(ints(&result.batches, 1), [3]);
    assert_eq!(result.batches[0].column(0).null_count(), 0);
}

#[tokio::test]
async fn memory_limit_rejects_heavy_queries() {
    let engine = engine().with_memory_limit(1);
    let err = engine
        .query("SELECT req_path, count(*) FROM http_events GROUP BY req_path ORDER BY 1")
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Rejected(_)), "{err:?}");
}
