//! Synthetic `http_events` rows for the query benchmarks: the same
//! deterministic rows (xorshift seed 42, 20 paths, one hour) in every run,
//! on keep-alive connections or on a connection each ([`Connections`]).

use std::sync::Arc;

use sonde_query::records::{ConnFields, HttpEventsBuilder, HttpRow, K8sFields, TraceRole};
use sonde_query::schema::{HTTP_EVENTS, http_events_schema};
use sonde_query::{StatsRegistry, StoreConfig, TableStore};

/// 2026-11-21T00:00:00Z; rows are spread evenly over the following hour.
const T0_NS: i64 = 1_795_219_200_000_000_000;
const SPAN_NS: i64 = 3_600_000_000_000;
const BATCH_ROWS: usize = 8_192;

/// Connections the keep-alive rows come from (clients of one server).
const KEEP_ALIVE_CONNECTIONS: usize = 256;

/// How the rows share connections: what the connection columns'
/// dictionaries hold per stored batch (`records/conn.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// Rows spread over [`KEEP_ALIVE_CONNECTIONS`] connections: a batch's
    /// dictionaries hold up to that many values, however many rows.
    KeepAlive,
    /// A connection per row (HTTP/1.0, `Connection: close`): as many
    /// dictionary values as rows, the dictionaries' worst case.
    PerRow,
}

/// Hands each row its connection. Both cases draw the same random values
/// per row, so every other column is the same in both.
struct ConnSource<'a> {
    connections: Connections,
    node: Option<&'a str>,
    pool: Vec<Option<Arc<ConnFields>>>,
}

impl ConnSource<'_> {
    fn next(&mut self, rng: &mut Rng) -> Arc<ConnFields> {
        let fields = conn(rng, self.node);
        if self.connections == Connections::PerRow {
            return Arc::new(fields);
        }
        // The row's client port picks its connection: the first row to
        // land on a connection sets its fields.
        let slot = fields.remote_port as usize % KEEP_ALIVE_CONNECTIONS;
        match self.pool.get_mut(slot) {
            Some(entry) => Arc::clone(entry.get_or_insert_with(|| Arc::new(fields))),
            None => Arc::new(fields),
        }
    }
}

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

fn conn(rng: &mut Rng, node: Option<&str>) -> ConnFields {
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
        k8s: K8sFields {
            node: node.map(str::to_owned),
            ..Default::default()
        },
    }
}

fn row(i: usize, rows: usize, rng: &mut Rng, conns: &mut ConnSource<'_>) -> HttpRow {
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
        conn: conns.next(rng),
        major_version: 1,
        minor_version: 1,
        content_type: "application/json".into(),
        req_headers: [
            ("Host", "shop.internal:8080"),
            ("User-Agent", "wrk/4.1"),
            ("Accept", "*/*"),
        ]
        .into_iter()
        .collect(),
        req_method: if rng.below(5) == 0 { "POST" } else { "GET" }.into(),
        req_path: path.into(),
        req_body: Vec::new(),
        req_body_size: 0,
        resp_headers: [
            ("Content-Type", "application/json"),
            ("Content-Length", &body.len().to_string()),
        ]
        .into_iter()
        .collect(),
        resp_status: status,
        resp_message: if status < 300 { "OK" } else { "Error" }.into(),
        resp_body_size: body.len() as i64,
        grpc_status: None,
        grpc_message: None,
        resp_body: body,
        latency: latency_ns,
    }
}

/// A store holding `rows` synthetic `http_events` rows, their `node`
/// column set to `node`, sharing connections as `connections` says.
pub fn build(rows: usize, node: Option<&str>, connections: Connections) -> Arc<TableStore> {
    let stats = Arc::new(StatsRegistry::new());
    let config = StoreConfig {
        budget_bytes: 64 << 30,
        shares: Vec::new(),
    };
    let store = Arc::new(TableStore::new(config, stats));
    store.register(HTTP_EVENTS, http_events_schema()).unwrap();
    let mut rng = Rng(42);
    let mut conns = ConnSource {
        connections,
        node,
        pool: vec![None; KEEP_ALIVE_CONNECTIONS],
    };
    let mut builder = HttpEventsBuilder::new();
    for i in 0..rows {
        builder.append(&row(i, rows, &mut rng, &mut conns));
        if builder.len() == BATCH_ROWS {
            store.append(HTTP_EVENTS, builder.finish()).unwrap();
        }
    }
    if !builder.is_empty() {
        store.append(HTTP_EVENTS, builder.finish()).unwrap();
    }
    store
}
