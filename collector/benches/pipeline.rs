//! Reassembly → protocol inference → HTTP parse → request/response pairing →
//! Arrow append, driven through `conntrack::Tracker` with ring-buffer records
//! built like the kernel's (`sonde_ebpf::events::record_bytes`). Reports
//! ring-buffer events/s; every iteration checks the expected row count.
//! The same exchanges as HTTP/2 streams (h2c, one stream per request, the
//! header blocks HPACK-encoded the way an encoder with a dynamic table
//! sends them) run beside HTTP/1.1 in the same group: the per-stream cost
//! of HTTP/2 next to HTTP/1's, measured in one run.
//! The `export` group measures what OTLP export adds per row (span and RED
//! histogram), in rows/s.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_sdk::trace::RandomIdGenerator;
use sonde::counters::CaptureCounters;
use sonde::export::operation::{Processes, ServiceNaming, operation};
use sonde::export::red::{RedBatch, RedMetrics};
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

/// A frame: 9-byte header and payload.
fn frame(frame_type: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.push(frame_type);
    out.push(flags);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK: a literal field with incremental indexing whose name is static
/// table entry `name_index` (value not Huffman-coded, under 127 bytes).
fn indexed_literal(name_index: u8, value: &str) -> Vec<u8> {
    let mut out = vec![0x40 | name_index, value.len() as u8];
    out.extend_from_slice(value.as_bytes());
    out
}

/// The HTTP/2 frames of REQUEST and RESPONSE: the first of a connection
/// inserts its fields in the dynamic tables, the next ones index them.
fn h2_request(stream_id: u32) -> Vec<u8> {
    // :method GET, :scheme http, then :path, :authority, user-agent, accept.
    let block = if stream_id == 1 {
        [
            vec![0x82, 0x86],
            indexed_literal(4, "/api/v1/items?limit=20"),
            indexed_literal(1, "shop.internal:8080"),
            indexed_literal(58, "wrk/4.1"),
            indexed_literal(19, "*/*"),
        ]
        .concat()
    } else {
        vec![0x82, 0x86, 0xc1, 0xc0, 0xbf, 0xbe]
    };
    frame(0x1, 0x5, stream_id, &block)
}

fn h2_response(stream_id: u32) -> Vec<u8> {
    // :status 200, then server, date, content-type, content-length.
    let block = if stream_id == 1 {
        [
            vec![0x88],
            indexed_literal(54, "nginx/1.22.1"),
            indexed_literal(33, "Sat, 21 Nov 2026 22:00:00 GMT"),
            indexed_literal(31, "text/plain"),
            indexed_literal(28, "17"),
        ]
        .concat()
    } else {
        vec![0x88, 0xc1, 0xc0, 0xbf, 0xbe]
    };
    let mut out = frame(0x1, 0x4, stream_id, &block);
    out.extend(frame(0x0, 0x1, stream_id, b"hello from nginx\n"));
    out
}

/// The same keep-alive server connections as [`records`], speaking h2c:
/// the client's preface and SETTINGS and the server's SETTINGS first, then
/// one stream per request.
fn h2_records() -> Vec<Vec<u8>> {
    let conns: Vec<ConnId> = (0..CONNECTIONS)
        .map(|i| ConnId {
            tgid: 4242,
            fd: 10 + i as i32,
            proc_start_ns: 1_000_000_000,
            generation: 1,
        })
        .collect();
    let mut out: Vec<Vec<u8>> = conns.iter().map(|c| open(*c)).collect();
    let mut position = vec![[0u64; 2]; CONNECTIONS];
    let mut push =
        |out: &mut Vec<Vec<u8>>, i: usize, conn: ConnId, dir: u8, ts: u64, bytes: &[u8]| {
            let at = &mut position[i][usize::from(dir == events::DIR_EGRESS)];
            out.push(data(conn, dir, ts, *at, bytes));
            *at += bytes.len() as u64;
        };
    let mut ts = 1_000u64;
    let client_start = [
        sonde_protocols::http2::PREFACE.to_vec(),
        frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]),
    ]
    .concat();
    let server_start = [
        frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 128]),
        frame(0x4, 0x1, 0, &[]),
    ]
    .concat();
    for (i, conn) in conns.iter().enumerate() {
        ts += 1_000;
        push(&mut out, i, *conn, events::DIR_INGRESS, ts, &client_start);
        push(&mut out, i, *conn, events::DIR_EGRESS, ts, &server_start);
    }
    for r in 0..REQUESTS_PER_CONNECTION as u32 {
        let stream_id = 2 * r + 1;
        let (request, response) = (h2_request(stream_id), h2_response(stream_id));
        for (i, conn) in conns.iter().enumerate() {
            ts += 1_000;
            push(&mut out, i, *conn, events::DIR_INGRESS, ts, &request);
            ts += 20_000;
            push(&mut out, i, *conn, events::DIR_EGRESS, ts, &response);
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
    // Every header field decoded, every frame understood.
    for counter in stats.snapshot() {
        if counter.name.starts_with("http2_") || counter.name == "stream_gaps" {
            assert_eq!(counter.value, 0, "{}", counter.name);
        }
    }
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
    // Connections outlive flushes: their processes are named once.
    let mut processes = Processes::new(ServiceNaming::default());
    let ids = RandomIdGenerator::default();
    let scope = scope();
    let mut group = c.benchmark_group("export");
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("http_rows_to_spans_and_red_metrics", |b| {
        b.iter(|| {
            let mut batch = RedBatch::default();
            for row in &rows {
                let mut op = operation(row, &mut processes, true).expect("an http row");
                batch.add(&mut op);
                black_box(span(op, &ids, &scope));
            }
            red.record(batch);
        })
    });
    // Without an OTLP endpoint: the RED histograms only (the default).
    group.bench_function("http_rows_to_red_metrics", |b| {
        b.iter(|| {
            let mut batch = RedBatch::default();
            for row in &rows {
                let mut op = operation(row, &mut processes, false).expect("an http row");
                batch.add(&mut op);
                black_box(op);
            }
            red.record(batch);
        })
    });
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let records = records();
    let h2 = h2_records();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("http_keepalive_events", |b| b.iter(|| run(&records)));
    // Per stream (= per HTTP/1 exchange), both protocols side by side.
    group.throughput(Throughput::Elements(
        (CONNECTIONS * REQUESTS_PER_CONNECTION) as u64,
    ));
    group.bench_function("http1_exchanges", |b| b.iter(|| run(&records)));
    group.bench_function("http2_streams", |b| b.iter(|| run(&h2)));
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
