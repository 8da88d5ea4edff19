//! Dashboard-style queries over synthetic http_events rows held in the real
//! `TableStore` and run by the real `QueryEngine` (DataFusion).
//!
//! Not a criterion bench: it builds the table once per size and connection
//! case, times each query (median of `SONDE_BENCH_REPEAT` runs after one
//! warm-up) and prints CSV lines `engine,rows,query,median_ms,result_rows`.
//! The engine is `sonde` for rows on keep-alive connections and
//! `sonde_conn_per_row` for the same rows on a connection each (the worst
//! case of the connection columns' dictionaries). With
//! `SONDE_BENCH_EXPORT_DIR` set it also writes the keep-alive table as an
//! Arrow IPC file `http_events_<rows>.arrow` there, so
//! `bench/duckdb_queries.py` can run the same SQL in DuckDB over the same
//! rows (converted to Parquet).
//! The queries are in `bench/queries.sql` (shared with the DuckDB side).
//!
//! Sizes: `SONDE_BENCH_ROWS` (comma-separated, default 1000000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use sonde_query::schema::{HTTP_EVENTS, http_events_schema};
use sonde_query::{QueryEngine, TableStore};

mod synthetic;

use synthetic::Connections;

const QUERIES: &str = include_str!("../../bench/queries.sql");
fn export(store: &TableStore, path: &std::path::Path) {
    let file = std::fs::File::create(path).expect("create export file");
    let schema = Arc::new(Schema::new(
        http_events_schema()
            .fields()
            .iter()
            .map(|field| match field.data_type() {
                DataType::Dictionary(_, values) => field
                    .as_ref()
                    .clone()
                    .with_data_type(values.as_ref().clone()),
                _ => field.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let mut writer = arrow::ipc::writer::FileWriter::try_new(file, &schema).expect("ipc writer");
    for batch in store.scan(HTTP_EVENTS, None, None) {
        // An IPC file holds one dictionary per field, and every stored
        // batch has its own (the connection columns): written as strings.
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| arrow::compute::cast(column, field.data_type()))
            .collect::<Result<Vec<_>, _>>()
            .expect("cast to plain columns");
        let batch = RecordBatch::try_new(schema.clone(), columns).expect("plain batch");
        writer.write(&batch).expect("write batch");
    }
    writer.finish().expect("finish ipc");
}

/// `-- name` headers followed by one statement each.
fn queries() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in QUERIES.lines() {
        if let Some(name) = line.strip_prefix("-- name: ") {
            out.push((name.trim().to_string(), String::new()));
        } else if let Some((_, sql)) = out.last_mut()
            && !line.starts_with("--")
        {
            sql.push_str(line);
            sql.push('\n');
        }
    }
    out
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let sizes: Vec<usize> = std::env::var("SONDE_BENCH_ROWS")
        .unwrap_or_else(|_| "1000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("SONDE_BENCH_ROWS: numbers"))
        .collect();
    let repeat: usize = std::env::var("SONDE_BENCH_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let export_dir = std::env::var_os("SONDE_BENCH_EXPORT_DIR").map(std::path::PathBuf::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for rows in sizes {
        for connections in [Connections::KeepAlive, Connections::PerRow] {
            let store = build(rows, connections);
            if let Some(dir) = &export_dir
                && connections == Connections::KeepAlive
            {
                export(&store, &dir.join(format!("http_events_{rows}.arrow")));
            }
            let engine = match connections {
                Connections::KeepAlive => "sonde",
                Connections::PerRow => "sonde_conn_per_row",
            };
            run_queries(&runtime, store, engine, rows, repeat);
        }
    }
}

/// The store of `rows` rows, its size reported on stderr.
fn build(rows: usize, connections: Connections) -> Arc<TableStore> {
    let started = Instant::now();
    let store = synthetic::build(rows, None, connections);
    let bytes: usize = store.table_stats().iter().map(|t| t.bytes).sum();
    eprintln!(
        "built {rows} rows, {connections:?} ({} MiB in the store) in {:.1?}",
        bytes >> 20,
        started.elapsed()
    );
    store
}

/// Times every query over `store`, printing a CSV line each.
fn run_queries(
    runtime: &tokio::runtime::Runtime,
    store: Arc<TableStore>,
    engine_name: &str,
    rows: usize,
    repeat: usize,
) {
    let engine = QueryEngine::new(store).with_timeout(Duration::from_secs(600));
    for (name, sql) in queries() {
        let sql = sql.replace("{p99}", "approx_percentile_cont(latency, 0.99)");
        let mut times = Vec::with_capacity(repeat);
        let mut result_rows = 0;
        for run in 0..=repeat {
            let t = Instant::now();
            let result = runtime
                .block_on(engine.query(&sql))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            if run > 0 {
                times.push(t.elapsed());
            }
            result_rows = result.num_rows();
        }
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "{engine_name},{rows},{name},{:.2},{result_rows}",
            median.as_secs_f64() * 1e3
        );
    }
}
