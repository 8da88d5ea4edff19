//! Reassembly → protocol inference → HTTP parse → request/response pairing →
//! Arrow append, driven through `conntrack::Tracker` with ring-buffer records
//! built like the kernel's (`sonde_ebpf::events::record_bytes`). Reports
//! ring-buffer events/s; every iteration checks the expected row count.
//! The `export` group measures what OTLP export adds per row (span and RED
//! histogram), in rows/s.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_sdk::trace::RandomIdGenerator;
use sonde::counters::CaptureCounters;
use sonde::export::operation::{ServiceNaming, operation};
use sonde::export::red::RedMetrics;
use sonde::export::spans::{ResourceDefaults, scope, span};
use sonde::sessions::Exchanges;
use sonde::tracker::{Tracker, TrackerConfig};
use sonde_ebpf::events::{self, ConnId, build};
use sonde_query::StatsRegistry;
use sonde_query::records::HttpRow;
use sonde_query::schema::HTTP_EVENTS;

const CONNECTIONS: usize = 50;
const REQUESTS_PER_CONNECTION: usize = 200;

const REQUEST: &[u8] = b"GET /api/v1/items?limit=20 HTTP/1.1\r\nHost: shop.internal:8080\r\n\
User-Agent: wrk/4.1\r\nAccept: */*\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n\
Date: Sat, 21 Nov 2026 22:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 17\r\n\
Connection: keep-alive\r\n\r\nhello from nginx\n";

fn open(conn: ConnId) -> Vec<u8> {
    let remote = ([127, 0, 0, 1], 40_000 + conn.fd as u16);
    build::open_ipv4(
        conn,
        1,
        events::ROLE_SERVER,
        "nginx",
        ([127, 0, 0, 1], 8080),
        remote,
    )
}

fn data(conn: ConnId, direction: u8, ts: u64, position: u64, bytes: &[u8]) -> Vec<u8> {
    build::data(
        conn,
        direction,
        ts,
        position,
        bytes,
        position + bytes.len() as u64,
    )
}

fn close(conn: ConnId, ts: u64) -> Vec<u8> {
    build::close(
        conn,
        ts,
        (REQUESTS_PER_CONNECTION * RESPONSE.len()) as u64,
        (REQUESTS_PER_CONNECTION * REQUEST.len()) as u64,
    )
}

/// Keep-alive server connections, interleaved round-robin like a busy server.
fn records() -> Vec<Vec<u8>> {
    let conns: Vec<ConnId> = (0..CONNECTIONS)
        .map(|i| ConnId {
            tgid: 4242,
            fd: 10 + i as i32,
            proc_start_ns: 1_000_000_000,
            generation: 1,
        })
        .collect();
    let mut out: Vec<Vec<u8>> = conns.iter().map(|c| open(*c)).collect();
    let mut ts = 1_000u64;
    for r in 0..REQUESTS_PER_CONNECTION as u64 {
        for conn in &conns {
            ts += 1_000;
            out.push(data(
                *conn,
                events::DIR_INGRESS,
                ts,
                r * REQUEST.len() as u64,
                REQUEST,
            ));
            ts += 20_000;
            out.push(data(
                *conn,
                events::DIR_EGRESS,
                ts,
                r * RESPONSE.len() as u64,
                RESPONSE,
            ));
        }
    }
    out.extend(conns.iter().map(|c| close(*c, ts + 1)));
    out
}

fn run(records: &[Vec<u8>]) -> usize {
    let stats = Arc::new(StatsRegistry::new());
    let mut tracker = Tracker::new(TrackerConfig::default(), CaptureCounters::register(&stats));
    for record in records {
        black_box(tracker.handle_record(record));
    }
    let rows: usize = tracker
        .take_batches()
        .into_iter()
        .filter(|flushed| flushed.table == HTTP_EVENTS)
        .map(|flushed| flushed.batch.num_rows())
        .sum();
    assert_eq!(rows, CONNECTIONS * REQUESTS_PER_CONNECTION);
    rows
}

/// The typed http_events rows the pipeline makes of `records` (what the
/// capture thread hands the exporter).
fn http_rows(records: &[Vec<u8>]) -> Vec<HttpRow> {
    let stats = Arc::new(StatsRegistry::new());
    let config = TrackerConfig {
        keep_exchanges: true,
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::new(config, CaptureCounters::register(&stats));
    for record in records {
        tracker.handle_record(record);
    }
    tracker
        .take_batches()
        .into_iter()
        .filter_map(|flushed| match flushed.exchanges {
            Some(Exchanges::Http(rows)) => Some(rows),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Row → operation → span, plus the RED histogram: the export's work per row.
fn export(c: &mut Criterion) {
    let rows = http_rows(&records());
    let stats = Arc::new(StatsRegistry::new());
    let defaults = ResourceDefaults {
        host_name: "bench".into(),
        extra: Vec::new(),
    };
    let red = RedMetrics::new(defaults, "sonde", 1024, &stats);
    let naming = ServiceNaming::default();
    let ids = RandomIdGenerator::default();
    let scope = scope();
    let mut group = c.benchmark_group("export");
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("http_rows_to_spans_and_red_metrics", |b| {
        b.iter(|| {
            for row in &rows {
                let op = operation(row, &naming).expect("an http row");
                red.record(&op);
                black_box(span(op, &ids, &scope));
            }
        })
    });
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let records = records();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("http_keepalive_events", |b| b.iter(|| run(&records)));
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args()
}

criterion_group! { name = benches; config = config(); targets = pipeline, export }
criterion_main!(benches);
