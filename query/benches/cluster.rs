//! The same query over one node and over a cluster of three, through the
//! real engines: three agent-side engines (each a store of synthetic
//! `http_events` rows, served by its worker endpoint on loopback) and a
//! coordinator engine planning over them, against one engine over one
//! node's rows, in the same process.
//!
//! Prints CSV lines `setup,rows_per_node,query,runs,median_ms,p90_ms,max_ms,result_rows`.
//! Rows per node: `SONDE_BENCH_ROWS` (default 1000000); runs:
//! `SONDE_BENCH_REPEAT` (default 20, after one warm-up).
//!
//! All of it shares this machine's cores: the three workers and the
//! coordinator compete for them, as they would not across three machines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sonde_query::QueryEngine;
use sonde_query::distributed::{
    Cluster, ClusterClientConfig, Peer, StaticPeers, WorkerConfig, serve_worker,
};
use sonde_query::schema::{HTTP_EVENTS, http_events_schema};

mod synthetic;

use synthetic::Connections;

/// The per-endpoint p99 of bench/queries.sql, over the whole hour.
const QUERIES: [(&str, &str); 2] = [
    (
        "endpoint_p99_all",
        "SELECT req_path, count(*) AS requests, approx_percentile_cont(latency, 0.99) AS p99 \
         FROM http_events GROUP BY req_path ORDER BY p99 DESC LIMIT 20",
    ),
    (
        "endpoint_p99_window",
        "SELECT req_path, count(*) AS requests, approx_percentile_cont(latency, 0.99) AS p99 \
         FROM http_events \
         WHERE time_ >= TIMESTAMP '2026-11-21 00:45:00' AND time_ < TIMESTAMP '2026-11-21 01:00:00' \
         GROUP BY req_path ORDER BY p99 DESC LIMIT 20",
    ),
];

fn time_query(
    runtime: &tokio::runtime::Runtime,
    engine: &QueryEngine,
    sql: &str,
    repeat: usize,
) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(repeat);
    let mut result_rows = 0;
    for run in 0..=repeat {
        let started = Instant::now();
        let result = runtime
            .block_on(engine.query(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        if run > 0 {
            times.push(started.elapsed());
        }
        result_rows = result.num_rows();
    }
    times.sort();
    (times, result_rows)
}

fn report(setup: &str, rows: usize, name: &str, times: &[Duration], result_rows: usize) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{setup},{rows},{name},{},{:.1},{:.1},{:.1},{result_rows}",
        times.len(),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(1.0))
    );
}

fn main() {
    let rows: usize = std::env::var("SONDE_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let repeat: usize = std::env::var("SONDE_BENCH_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    // One node.
    let single = QueryEngine::new(synthetic::build(rows, Some("n1"), Connections::KeepAlive))
        .with_timeout(Duration::from_secs(600));
    for (name, sql) in QUERIES {
        let (times, result_rows) = time_query(&runtime, &single, sql, repeat);
        report("one_node", rows, name, &times, result_rows);
    }
    drop(single);

    // Three nodes, each with its own engine (query threads, memory pool)
    // and worker endpoint, and a coordinator.
    let mut workers = Vec::new();
    let mut peers = Vec::new();
    for node in ["n1", "n2", "n3"] {
        let engine = QueryEngine::new(synthetic::build(rows, Some(node), Connections::KeepAlive));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind a worker port");
        let url = format!("http://{}", listener.local_addr().expect("worker address"));
        let config = WorkerConfig {
            node_name: node.to_owned(),
            ..WorkerConfig::default()
        };
        let server = serve_worker(&engine, listener, config, std::future::pending())
            .expect("start a worker");
        peers.push(Peer {
            url: url.parse().expect("worker URL"),
            name: None,
        });
        workers.push((engine, server));
    }
    let cluster = Cluster::new(
        Box::new(StaticPeers(peers)),
        vec![(HTTP_EVENTS.to_owned(), http_events_schema())],
        &ClusterClientConfig::default(),
        Duration::from_secs(5),
    )
    .expect("cluster");
    let coordinator =
        QueryEngine::cluster(Arc::new(cluster)).with_timeout(Duration::from_secs(600));
    for (name, sql) in QUERIES {
        let (times, result_rows) = time_query(&runtime, &coordinator, sql, repeat);
        report("three_nodes", rows, name, &times, result_rows);
    }
}
