//! Dashboard-style queries over synthetic http_events rows held in the real
//! `TableStore` and run by the real `QueryEngine` (DataFusion).
//!
//! Not a criterion bench: it builds the table once per size, times each query
//! (median of `SONDE_BENCH_REPEAT` runs after one warm-up) and prints CSV
//! lines `engine,rows,query,median_ms,result_rows`. With
//! `SONDE_BENCH_EXPORT_DIR` set it also writes the table as an Arrow IPC file
//! `http_events_<rows>.arrow` there, so `bench/duckdb_queries.py` can run
//! the same SQL in DuckDB over the same rows (converted to Parquet).
//! The queries are in `bench/queries.sql` (shared with the DuckDB side).
//!
//! Sizes: `SONDE_BENCH_ROWS` (comma-separated, default 1000000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sonde_query::records::{ConnFields, HttpEventsBuilder, HttpRow, TraceRole};
use sonde_query::schema::{HTTP_EVENTS, http_events_schema};
use sonde_query::{QueryEngine, StatsRegistry, StoreConfig, TableStore};

const QUERIES: &str = include_str!("../../bench/queries.sql");
/// 2026-11-21T00:00:00Z; rows are spread evenly over the following hour.
const T0_NS: i64 = 1_795_219_200_000_000_000;
const SPAN_NS: i64 = 3_600_000_000_000;
const BATCH_ROWS: usize = 8_192;

const PATHS: [&str; 20] = [
    "/",
    "/login",
    "/logout",
    "/api/v1/items",
    "/api/v1/items/42",
    "/api/v1/cart",
    "/api/v1/cart/add",
    "/api/v1/orders",
    "/api/v1/orders/7",
    "/api/v1/users/me",
    "/api/v1/search",
    "/api/v1/recommendations",
    "/healthz",
    "/metrics",
    "/static/app.js",
    "/static/app.css",
    "/static/logo.png",
    "/api/v2/checkout",
    "/api/v2/payment",
    "/api/v2/shipping",
];

/// xorshift64*: the same sequence on every run (seed 42).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn conn(rng: &mut Rng) -> ConnFields {
    let pid = 1000 + rng.below(8) as u32;
    ConnFields {
        upid: format!("{pid}:123456789"),
        pid,
        comm: ["nginx", "gunicorn", "node", "envoy"][(pid % 4) as usize].into(),
        remote_addr: format!("10.0.{}.{}", rng.below(4), rng.below(250)),
        remote_port: 30_000 + rng.below(30_000) as i64,
        local_addr: "10.0.0.1".into(),
        local_port: 8080,
        trace_role: TraceRole::Server,
        encrypted: false,
        k8s: Default::default(),
    }
}

fn row(i: usize, rows: usize, rng: &mut Rng) -> HttpRow {
    let path = PATHS[rng.below(PATHS.len() as u64) as usize];
    let status = match rng.below(100) {
        0..=89 => 200,
        90..=93 => 404,
        94..=96 => 201,
        97..=98 => 500,
        _ => 503,
    };
    // Log-uniform latency between 100 µs and ~1.6 s.
    let latency_ns = (100_000.0 * (rng.below(1_000_000) as f64 / 1e6 * 9.7).exp()) as i64;
    let body = b"{\"ok\":true,\"items\":[1,2,3]}".to_vec();
    HttpRow {
        time_ns: T0_NS + (i as i64) * (SPAN_NS / rows as i64),
        conn: Arc::new(conn(rng)),
        major_version: 1,
        minor_version: 1,
        content_type: "application/json".into(),
        req_headers: vec![
            ("Host".into(), "shop.internal:8080".into()),
            ("User-Agent".into(), "wrk/4.1".into()),
            ("Accept".into(), "*/*".into()),
        ],
        req_method: if rng.below(5) == 0 { "POST" } else { "GET" }.into(),
        req_path: path.into(),
        req_body: Vec::new(),
        req_body_size: 0,
        resp_headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Content-Length".into(), body.len().to_string()),
        ],
        resp_status: status,
        resp_message: if status < 300 { "OK" } else { "Error" }.into(),
        resp_body_size: body.len() as i64,
        grpc_status: None,
        grpc_message: None,
        resp_body: body,
        latency: latency_ns,
    }
}

fn build(rows: usize) -> Arc<TableStore> {
    let stats = Arc::new(StatsRegistry::new());
    let config = StoreConfig {
        budget_bytes: 64 << 30,
        shares: Vec::new(),
    };
    let store = Arc::new(TableStore::new(config, stats));
    store.register(HTTP_EVENTS, http_events_schema()).unwrap();
    let mut rng = Rng(42);
    let mut builder = HttpEventsBuilder::new();
    for i in 0..rows {
        builder.append(&row(i, rows, &mut rng));
        if builder.len() == BATCH_ROWS {
            store.append(HTTP_EVENTS, builder.finish()).unwrap();
        }
    }
    if !builder.is_empty() {
        store.append(HTTP_EVENTS, builder.finish()).unwrap();
    }
    store
}

fn export(store: &TableStore, path: &std::path::Path) {
    let file = std::fs::File::create(path).expect("create export file");
    let schema = http_events_schema();
    let mut writer = arrow::ipc::writer::FileWriter::try_new(file, &schema).expect("ipc writer");
    for batch in store.scan(HTTP_EVENTS, None, None) {
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
        let started = Instant::now();
        let store = build(rows);
        let bytes: usize = store.table_stats().iter().map(|t| t.bytes).sum();
        eprintln!(
            "built {rows} rows ({} MiB in the store) in {:.1?}",
            bytes >> 20,
            started.elapsed()
        );
        if let Some(dir) = &export_dir {
            export(&store, &dir.join(format!("http_events_{rows}.arrow")));
        }
        let engine = QueryEngine::new(Arc::clone(&store)).with_timeout(Duration::from_secs(600));
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
                "sonde,{rows},{name},{:.2},{result_rows}",
                median.as_secs_f64() * 1e3
            );
        }
    }
}
