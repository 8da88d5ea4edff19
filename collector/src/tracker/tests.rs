//! The tracker end to end on kernel-shaped records: ordering, gaps,
//! protocols, TLS, connection lifetimes, conn_stats.

use super::tls_mode::is_tls_handshake_record;
use super::*;
use crate::counters::CaptureCounters;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use sonde_ebpf::events::build;
use sonde_query::stats::StatsRegistry;

mod http2;

const TGID: u32 = 4242;

fn conn(fd: i32, generation: u64) -> ConnId {
    ConnId {
        tgid: TGID,
        fd,
        proc_start_ns: 1_000_000_000,
        generation,
    }
}

fn open(id: ConnId, role: u16) -> Vec<u8> {
    build::open_ipv4(
        id,
        1,
        role,
        "nginx",
        ([127, 0, 0, 1], 8080),
        ([10, 1, 2, 3], 40000),
    )
}

/// A data event carrying `bytes` at `position`; the call spans to `call_end`.
fn data(id: ConnId, dir: u8, ts: u64, position: u64, bytes: &[u8], call_end: u64) -> Vec<u8> {
    build::data(id, dir, ts, position, bytes, call_end)
}

fn close(id: ConnId) -> Vec<u8> {
    build::close(id, 999, 0, 0)
}

fn tracker() -> (Tracker, Arc<StatsRegistry>) {
    let stats = Arc::new(StatsRegistry::new());
    let tracker = Tracker::new(TrackerConfig::default(), CaptureCounters::register(&stats));
    (tracker, stats)
}

fn counter(stats: &StatsRegistry, name: &str) -> u64 {
    stats
        .snapshot()
        .into_iter()
        .find(|c| c.name == name)
        .map_or(0, |c| c.value)
}

/// The pending rows of `table` (taking every pending batch): a text and
/// an integer accessor by column name and row.
struct Taken {
    batch: Option<arrow::record_batch::RecordBatch>,
}

impl Taken {
    fn of(tracker: &mut Tracker, table: &str) -> Taken {
        let batch = tracker
            .take_batches()
            .into_iter()
            .find(|flushed| flushed.table == table)
            .map(|flushed| flushed.batch);
        Taken { batch }
    }
    fn len(&self) -> usize {
        self.batch.as_ref().map_or(0, |b| b.num_rows())
    }
    /// A string cell (a connection column is a dictionary).
    fn text(&self, column: &str, row: usize) -> String {
        let batch = self.batch.as_ref().unwrap();
        let column = batch.column_by_name(column).unwrap();
        arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)
            .unwrap()
            .as_string::<i32>()
            .value(row)
            .to_string()
    }
    fn boolean(&self, column: &str, row: usize) -> bool {
        let batch = self.batch.as_ref().unwrap();
        batch
            .column_by_name(column)
            .unwrap()
            .as_boolean()
            .value(row)
    }
    fn int(&self, column: &str, row: usize) -> i64 {
        let batch = self.batch.as_ref().unwrap();
        batch
            .column_by_name(column)
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(row)
    }
}

/// (role, method, path, status, req_body_size, resp_body_size, latency) per row.
fn rows(tracker: &mut Tracker) -> Vec<(String, String, String, i64, i64, i64, i64)> {
    let t = Taken::of(tracker, "http_events");
    (0..t.len())
        .map(|i| {
            (
                t.text("trace_role", i),
                t.text("req_method", i),
                t.text("req_path", i),
                t.int("resp_status", i),
                t.int("req_body_size", i),
                t.int("resp_body_size", i),
                t.int("latency", i),
            )
        })
        .collect()
}

const IN: u8 = events::DIR_INGRESS;
const OUT: u8 = events::DIR_EGRESS;
const REQ: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn row(
    role: &str,
    method: &str,
    path: &str,
    status: i64,
    req: i64,
    resp: i64,
    latency: i64,
) -> (String, String, String, i64, i64, i64, i64) {
    (
        role.into(),
        method.into(),
        path.into(),
        status,
        req,
        resp,
        latency,
    )
}

#[test]
fn server_request_and_response_make_one_row() {
    let (mut t, stats) = tracker();
    let id = conn(5, 1);
    t.handle_record(&open(id, events::ROLE_SERVER));
    t.handle_record(&data(id, IN, 1_000, 0, REQ, REQ.len() as u64));
    t.handle_record(&data(id, OUT, 4_000, 0, RESP, RESP.len() as u64));
    assert_eq!(
        rows(&mut t),
        vec![row("server", "GET", "/a", 200, 0, 2, 3_000)]
    );
    assert_eq!(counter(&stats, "http_rows"), 1);
    let batch_fields = t.conns.get(&id).map(|c| c.fields.clone()).unwrap();
    assert_eq!(batch_fields.local_addr, "127.0.0.1");
    assert_eq!(batch_fields.remote_addr, "10.1.2.3");
    assert_eq!(batch_fields.comm, "nginx");
    assert_eq!(batch_fields.upid, "4242:100");
}

#[test]
fn data_of_a_connection_whose_open_was_lost_is_tracked_within_the_table_bound() {
    let stats = Arc::new(StatsRegistry::new());
    let config = TrackerConfig {
        max_connections: 1,
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(config, CaptureCounters::register(&stats));
    let (first, second) = (conn(5, 1), conn(6, 1));
    t.handle_record(&data(first, IN, 1_000, 0, REQ, REQ.len() as u64));
    t.handle_record(&data(second, IN, 2_000, 0, REQ, REQ.len() as u64));
    t.handle_record(&data(first, OUT, 4_000, 0, RESP, RESP.len() as u64));
    assert_eq!(
        t.conns.keys().copied().collect::<Vec<_>>(),
        vec![first],
        "only the first fits the table"
    );
    assert_eq!(counter(&stats, "events_unknown_conn"), 2);
    assert_eq!(counter(&stats, "conns_tracked"), 1);
    assert_eq!(counter(&stats, "conns_table_full"), 1);
    assert_eq!(counter(&stats, "http_rows"), 1);
}

#[test]
fn unknown_role_is_inferred_from_the_request_direction() {
    let (mut t, _) = tracker();
    let id = conn(6, 2);
    t.handle_record(&open(id, events::ROLE_UNKNOWN));
    t.handle_record(&data(id, OUT, 10, 0, REQ, REQ.len() as u64));
    t.handle_record(&data(id, IN, 50, 0, RESP, RESP.len() as u64));
    assert_eq!(
        rows(&mut t),
        vec![row("client", "GET", "/a", 200, 0, 2, 40)]
    );
}

#[test]
fn split_and_reordered_chunks_parse_the_same() {
    let (mut t, stats) = tracker();
    let id = conn(7, 3);
    t.handle_record(&open(id, events::ROLE_SERVER));
    let (a, b) = REQ.split_at(7);
    // The second half arrives first (another CPU won the race to the ring buffer).
    t.handle_record(&data(id, IN, 20, 7, b, REQ.len() as u64));
    t.handle_record(&data(id, IN, 10, 0, a, 7));
    for (i, byte) in RESP.iter().enumerate() {
        t.handle_record(&data(
            id,
            OUT,
            100 + i as u64,
            i as u64,
            &[*byte],
            i as u64 + 1,
        ));
    }
    let got = rows(&mut t);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].3, 200);
    assert_eq!(counter(&stats, "stream_gaps"), 0);
}

#[test]
fn gap_inside_a_body_of_known_length_is_skipped() {
    let (mut t, stats) = tracker();
    let id = conn(8, 4);
    t.handle_record(&open(id, events::ROLE_SERVER));
    let head = b"POST /up HTTP/1.1\r\nContent-Length: 100000\r\n\r\n";
    let mut first = head.to_vec();
    first.extend_from_slice(&[b'x'; 1000]);
    // The call moved head + 100000 bytes but only `first` was copied.
    let call_end = (head.len() + 100_000) as u64;
    t.handle_record(&data(id, IN, 10, 0, &first, call_end));
    t.handle_record(&data(id, OUT, 90, 0, RESP, RESP.len() as u64));
    assert_eq!(
        rows(&mut t),
        vec![row("server", "POST", "/up", 200, 100_000, 2, 80)]
    );
    assert_eq!(counter(&stats, "stream_gaps"), 1);
    assert_eq!(counter(&stats, "stream_gap_bytes"), 99_000);
    assert_eq!(counter(&stats, "http_messages_lost"), 0);
}

#[test]
fn gap_in_a_head_loses_one_message_and_resyncs() {
    let (mut t, stats) = tracker();
    let id = conn(9, 5);
    t.handle_record(&open(id, events::ROLE_SERVER));
    // First request's head is cut short by a gap (10 bytes copied of 28).
    t.handle_record(&data(id, IN, 10, 0, &REQ[..10], REQ.len() as u64));
    t.handle_record(&data(id, OUT, 20, 0, RESP, RESP.len() as u64));
    let second = b"GET /b HTTP/1.1\r\n\r\n";
    let pos = REQ.len() as u64;
    t.handle_record(&data(id, IN, 30, pos, second, pos + second.len() as u64));
    let pos = RESP.len() as u64;
    t.handle_record(&data(id, OUT, 45, pos, RESP, pos + RESP.len() as u64));
    assert_eq!(
        rows(&mut t),
        vec![row("server", "GET", "/b", 200, 0, 2, 15)]
    );
    assert_eq!(counter(&stats, "http_messages_lost"), 1);
    assert_eq!(counter(&stats, "http_unmatched_responses"), 1);
}

#[test]
fn unknown_protocols_are_counted_not_parsed() {
    let (mut t, stats) = tracker();
    let id = conn(10, 6);
    t.handle_record(&open(id, events::ROLE_CLIENT));
    let junk = [0x16u8; 300];
    t.handle_record(&data(id, OUT, 10, 0, &junk, 300));
    assert!(rows(&mut t).is_empty());
    assert_eq!(counter(&stats, "protocol_unknown_bytes"), 300);
    // A later HTTP request on the same connection is still recognised.
    t.handle_record(&data(id, OUT, 20, 300, REQ, 300 + REQ.len() as u64));
    t.handle_record(&data(id, IN, 30, 0, RESP, RESP.len() as u64));
    assert_eq!(rows(&mut t).len(), 1);
}

#[test]
fn close_completes_a_close_delimited_response() {
    let (mut t, stats) = tracker();
    let id = conn(11, 7);
    t.handle_record(&open(id, events::ROLE_CLIENT));
    let req = b"GET /old HTTP/1.0\r\n\r\n";
    t.handle_record(&data(id, OUT, 10, 0, req, req.len() as u64));
    let resp = b"HTTP/1.0 200 OK\r\n\r\nbody until close";
    t.handle_record(&data(id, IN, 70, 0, resp, resp.len() as u64));
    assert!(rows(&mut t).is_empty(), "not complete before close");
    t.handle_record(&close(id));
    assert_eq!(
        rows(&mut t),
        vec![row("client", "GET", "/old", 200, 0, 16, 60)]
    );
    assert_eq!(t.connection_count(), 0);
    assert_eq!(counter(&stats, "http_unmatched_requests"), 0);
}

#[test]
fn process_exit_finishes_its_connections_only() {
    let (mut t, stats) = tracker();
    let mine = conn(12, 8);
    let other = ConnId {
        tgid: TGID + 1,
        ..conn(12, 9)
    };
    t.handle_record(&open(mine, events::ROLE_CLIENT));
    t.handle_record(&open(other, events::ROLE_CLIENT));
    t.handle_record(&data(mine, OUT, 10, 0, REQ, REQ.len() as u64));
    let exit = build::proc_exit(mine.tgid, 50);
    assert_eq!(t.handle_record(&exit), vec![(TGID, 12)]);
    assert_eq!(t.connection_count(), 1);
    assert_eq!(counter(&stats, "http_unmatched_requests"), 1);
}

#[test]
fn fd_reuse_starts_a_new_connection() {
    let (mut t, _) = tracker();
    let first = conn(13, 10);
    let second = conn(13, 11);
    t.handle_record(&open(first, events::ROLE_SERVER));
    t.handle_record(&data(first, IN, 10, 0, REQ, REQ.len() as u64));
    t.handle_record(&open(second, events::ROLE_SERVER));
    // The response on the new connection must not pair with the old request.
    t.handle_record(&data(second, OUT, 20, 0, RESP, RESP.len() as u64));
    assert!(rows(&mut t).is_empty());
    assert_eq!(t.connection_count(), 1);
}

#[test]
fn conn_stats_rows_at_close_and_periodically() {
    let (mut t, _) = tracker();
    let id = conn(15, 13);
    t.handle_record(&open(id, events::ROLE_SERVER));
    t.handle_record(&data(id, IN, 10, 0, REQ, REQ.len() as u64));
    t.handle_record(&data(id, OUT, 20, 0, RESP, RESP.len() as u64));
    let _ = t.take_batches();
    // Open with new traffic: a row once the interval has passed.
    t.tick(5_000_000_000, |_| true);
    assert!(
        t.take_batches()
            .iter()
            .all(|flushed| flushed.table != "conn_stats")
    );
    t.tick(11_000_000_000, |_| true);
    let stats = conn_stats(&mut t);
    assert_eq!(stats, vec![("http".to_string(), 28, 40, 0)]);
    // No new traffic: no new periodic row; the close gives the final one.
    t.tick(30_000_000_000, |_| true);
    assert!(conn_stats(&mut t).is_empty());
    t.handle_record(&close(id));
    let stats = conn_stats(&mut t);
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].1, stats[0].2), (28, 40));
    assert!(stats[0].3 > 0, "closed rows carry the close time");
}

/// (protocol, bytes_recv, bytes_sent, conn_close_ns) of pending conn_stats rows.
fn conn_stats(tracker: &mut Tracker) -> Vec<(String, i64, i64, i64)> {
    let t = Taken::of(tracker, "conn_stats");
    (0..t.len())
        .map(|i| {
            (
                t.text("protocol", i),
                t.int("bytes_recv", i),
                t.int("bytes_sent", i),
                t.int("conn_close_ns", i),
            )
        })
        .collect()
}

#[test]
fn impossible_positions_are_counted_not_followed() {
    let (mut t, stats) = tracker();
    let id = conn(32, 32);
    t.handle_record(&open(id, events::ROLE_SERVER));
    // Bytes past the end of their call; a position that overflows.
    t.handle_record(&data(id, IN, 10, 0, REQ, 3));
    t.handle_record(&data(id, IN, 10, u64::MAX - 2, REQ, u64::MAX));
    assert_eq!(counter(&stats, "events_malformed"), 2);
    assert_eq!(counter(&stats, "bytes_captured"), 0);
    // The connection goes on from position 0.
    t.handle_record(&data(id, IN, 20, 0, REQ, REQ.len() as u64));
    t.handle_record(&data(id, OUT, 30, 0, RESP, RESP.len() as u64));
    assert_eq!(rows(&mut t).len(), 1);
    assert_eq!(counter(&stats, "stream_gaps"), 0);
}

#[test]
fn malformed_records_are_counted() {
    let (mut t, stats) = tracker();
    t.handle_record(&[1, 2, 3]);
    assert_eq!(counter(&stats, "events_malformed"), 1);
}

#[test]
fn waiting_for_lost_bytes_times_out_into_a_gap() {
    let (mut t, stats) = tracker();
    let id = conn(14, 12);
    t.handle_record(&open(id, events::ROLE_SERVER));
    // Bytes 0..50 were lost in the ring buffer; the next request starts at 50.
    t.handle_record(&data(id, IN, 10, 50, REQ, 50 + REQ.len() as u64));
    t.handle_record(&data(id, OUT, 20, 0, RESP, RESP.len() as u64));
    assert!(rows(&mut t).is_empty());
    t.tick(10 + 600_000_000, |_| true);
    assert_eq!(counter(&stats, "stream_gaps"), 1);
    // The request was parsed after the gap; the early response had no request.
    assert_eq!(counter(&stats, "http_unmatched_responses"), 1);
    let pos = RESP.len() as u64;
    t.handle_record(&data(
        id,
        OUT,
        700_000_000,
        pos,
        RESP,
        pos + RESP.len() as u64,
    ));
    assert_eq!(rows(&mut t).len(), 1);
    let _ = t.tick(u64::MAX, |_| false);
    assert_eq!(
        t.connection_count(),
        0,
        "idle connection of a dead process is dropped"
    );
}

/// A TLS 1.3 ClientHello's first bytes, and an application-data record.
const CLIENT_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x00, 0x20, 0x01, 0x00, 0x00, 0x1c, 0x03, 0x03, 0xaa, 0xbb,
];
const SERVER_HELLO: &[u8] = &[0x16, 0x03, 0x03, 0x00, 0x10, 0x02, 0x00, 0x00, 0x0c];
const APP_RECORD: &[u8] = &[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5];

fn tls_data(id: ConnId, dir: u8, ts: u64, position: u64, bytes: &[u8]) -> Vec<u8> {
    build::tls_data(id, dir, ts, position, bytes, position + bytes.len() as u64)
}

#[test]
fn tls_plaintext_replaces_the_ciphertext_stream() {
    let (mut t, stats) = tracker();
    let id = conn(20, 20);
    t.handle_record(&open(id, events::ROLE_CLIENT));
    // The handshake on the wire (outside SSL_read/SSL_write).
    t.handle_record(&data(
        id,
        OUT,
        1,
        0,
        CLIENT_HELLO,
        CLIENT_HELLO.len() as u64,
    ));
    t.handle_record(&data(id, IN, 2, 0, SERVER_HELLO, SERVER_HELLO.len() as u64));
    // Then plaintext from the library probes, in its own positions.
    t.handle_record(&tls_data(id, OUT, 100, 0, REQ));
    // Wire bytes after the switch (e.g. a close_notify alert) are ignored.
    let pos = CLIENT_HELLO.len() as u64;
    t.handle_record(&data(
        id,
        OUT,
        150,
        pos,
        APP_RECORD,
        pos + APP_RECORD.len() as u64,
    ));
    t.handle_record(&tls_data(id, IN, 400, 0, RESP));
    let taken = Taken::of(&mut t, "http_events");
    assert_eq!(taken.len(), 1);
    assert_eq!(taken.text("req_method", 0), "GET");
    assert_eq!(taken.text("req_path", 0), "/a");
    assert_eq!(taken.int("resp_status", 0), 200);
    assert_eq!(taken.text("trace_role", 0), "client");
    assert!(taken.boolean("encrypted", 0));
    assert_eq!(taken.int("latency", 0), 300);
    assert_eq!(counter(&stats, "tls_connections"), 1);
    assert_eq!(
        counter(&stats, "tls_ciphertext_bytes"),
        (CLIENT_HELLO.len() + SERVER_HELLO.len() + APP_RECORD.len()) as u64
    );
    assert_eq!(
        counter(&stats, "tls_plaintext_bytes"),
        (REQ.len() + RESP.len()) as u64
    );
    assert_eq!(counter(&stats, "protocol_unknown_bytes"), 0);
    assert_eq!(counter(&stats, "http_parse_failures"), 0);
    assert_eq!(counter(&stats, "stream_gaps"), 0);
    // conn_stats counts the plaintext bytes of an encrypted connection.
    t.handle_record(&close(id));
    let conn_rows = Taken::of(&mut t, "conn_stats");
    assert_eq!(conn_rows.len(), 1);
    assert_eq!(conn_rows.int("bytes_sent", 0), REQ.len() as i64);
    assert_eq!(conn_rows.int("bytes_recv", 0), RESP.len() as i64);
    assert!(conn_rows.boolean("encrypted", 0));
}

#[test]
fn tls_without_a_library_probe_is_counted_not_parsed() {
    let (mut t, stats) = tracker();
    let id = conn(21, 21);
    t.handle_record(&open(id, events::ROLE_SERVER));
    t.handle_record(&data(id, IN, 1, 0, CLIENT_HELLO, CLIENT_HELLO.len() as u64));
    let mut pos = CLIENT_HELLO.len() as u64;
    for i in 0..3 {
        t.handle_record(&data(
            id,
            IN,
            10 + i,
            pos,
            APP_RECORD,
            pos + APP_RECORD.len() as u64,
        ));
        pos += APP_RECORD.len() as u64;
    }
    assert_eq!(rows(&mut t), vec![]);
    assert_eq!(
        counter(&stats, "tls_ciphertext_bytes"),
        (CLIENT_HELLO.len() + 3 * APP_RECORD.len()) as u64
    );
    assert_eq!(counter(&stats, "protocol_unknown_bytes"), 0);
    assert_eq!(counter(&stats, "tls_connections"), 0);
    // Ciphertext is never parsed: the kernel need not copy it.
    assert_eq!(t.take_stop_copying(), vec![id]);
}

#[test]
fn plaintext_prelude_then_tls_starts_a_fresh_session() {
    let (mut t, stats) = tracker();
    let id = conn(22, 22);
    t.handle_record(&open(id, events::ROLE_SERVER));
    // A plaintext request and response, then a TLS handshake (STARTTLS-like).
    t.handle_record(&data(id, IN, 1, 0, REQ, REQ.len() as u64));
    t.handle_record(&data(id, OUT, 2, 0, RESP, RESP.len() as u64));
    let pos = REQ.len() as u64;
    t.handle_record(&data(
        id,
        IN,
        3,
        pos,
        CLIENT_HELLO,
        pos + CLIENT_HELLO.len() as u64,
    ));
    let second = b"GET /secret HTTP/1.1\r\n\r\n";
    t.handle_record(&tls_data(id, IN, 10, 0, second));
    t.handle_record(&tls_data(id, OUT, 30, 0, RESP));
    let taken = Taken::of(&mut t, "http_events");
    assert_eq!(taken.len(), 2);
    assert_eq!(
        (taken.text("req_path", 0), taken.boolean("encrypted", 0)),
        ("/a".to_string(), false)
    );
    assert_eq!(
        (taken.text("req_path", 1), taken.boolean("encrypted", 1)),
        ("/secret".to_string(), true)
    );
    assert_eq!(taken.int("latency", 1), 20);
    assert_eq!(counter(&stats, "http_parse_failures"), 0);
    assert_eq!(counter(&stats, "protocol_unknown_bytes"), 0);
}

#[test]
fn tls_handshake_records_are_recognised() {
    assert!(is_tls_handshake_record(CLIENT_HELLO));
    assert!(is_tls_handshake_record(SERVER_HELLO));
    assert!(!is_tls_handshake_record(APP_RECORD));
    assert!(!is_tls_handshake_record(&CLIENT_HELLO[..4]));
    assert!(!is_tls_handshake_record(REQ));
    assert!(!is_tls_handshake_record(&[0x16, 0x03, 0x05, 0x00, 0x10]));
    assert!(!is_tls_handshake_record(&[0x16, 0x03, 0x01, 0x00, 0x00]));
    assert!(!is_tls_handshake_record(&[0x16, 0x03, 0x01, 0x48, 0x01]));
    assert!(!is_tls_handshake_record(&[]));
}

#[test]
fn a_connection_of_no_known_protocol_stops_being_copied() {
    let (mut t, stats) = tracker();
    let id = conn(30, 30);
    t.handle_record(&open(id, events::ROLE_CLIENT));
    // 4 KiB writes of bytes no parser recognises (not TLS: tls_mode keeps those).
    let junk: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8 | 0x80).collect();
    let limit = super::identify::OPAQUE_AFTER_UNKNOWN_BYTES;
    let mut pos = 0u64;
    while pos < limit {
        assert!(t.take_stop_copying().is_empty(), "at {pos}");
        t.handle_record(&data(id, OUT, 10, pos, &junk, pos + junk.len() as u64));
        pos += junk.len() as u64;
    }
    assert_eq!(t.take_stop_copying(), vec![id]);
    assert_eq!(t.take_stop_copying(), vec![], "asked once");
    assert_eq!(counter(&stats, "conns_opaque"), 1);
    assert_eq!(counter(&stats, "protocol_unknown_bytes"), limit);
    // From now on the kernel sends sizes only (header-only events): no gap
    // is counted, nothing is parsed, and conn_stats stays exact.
    for _ in 0..10 {
        t.handle_record(&data(id, OUT, 20, pos, &[], pos + 1_000_000));
        pos += 1_000_000;
    }
    t.handle_record(&data(id, IN, 30, 0, b"", 5));
    assert_eq!(counter(&stats, "stream_gaps"), 0);
    assert_eq!(counter(&stats, "stream_gap_bytes"), 0);
    assert_eq!(counter(&stats, "protocol_unknown_bytes"), limit);
    assert!(rows(&mut t).is_empty());
    t.handle_record(&close(id));
    let stats = conn_stats(&mut t);
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].1, stats[0].2), (5, pos as i64));
}

#[test]
fn a_connection_that_showed_a_protocol_is_never_made_opaque_by_noise() {
    let (mut t, stats) = tracker();
    let id = conn(31, 31);
    t.handle_record(&open(id, events::ROLE_SERVER));
    t.handle_record(&data(id, IN, 10, 0, REQ, REQ.len() as u64));
    t.handle_record(&data(id, OUT, 20, 0, RESP, RESP.len() as u64));
    assert_eq!(rows(&mut t).len(), 1);
    let junk = vec![0xffu8; 1 << 20];
    let (pin, pout) = (REQ.len() as u64, RESP.len() as u64);
    t.handle_record(&data(id, IN, 30, pin, &junk, pin + junk.len() as u64));
    t.handle_record(&data(id, OUT, 40, pout, &junk, pout + junk.len() as u64));
    assert!(t.take_stop_copying().is_empty());
    assert_eq!(counter(&stats, "conns_opaque"), 0);
}

#[test]
fn requests_waiting_for_answers_count_toward_the_state_bound() {
    let stats = Arc::new(StatsRegistry::new());
    let config = TrackerConfig {
        max_buffered_bytes: 1 << 20,
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(config, CaptureCounters::register(&stats));
    // Servers that read and never answer: 200 connections, each sent 100
    // pipelined requests of ~1 KiB (about 20 MiB of heads if all were kept).
    let header = format!("X-Pad: {}\r\n", "p".repeat(1000));
    let request = format!("GET /flood HTTP/1.1\r\nHost: x\r\n{header}\r\n");
    let burst = request.repeat(100);
    for fd in 0..200 {
        let id = conn(1000 + fd, 1000 + fd as u64);
        t.handle_record(&open(id, events::ROLE_SERVER));
        t.handle_record(&data(id, IN, 10, 0, burst.as_bytes(), burst.len() as u64));
        // Never above the bound by more than one record's worth.
        assert!(
            t.buffered_bytes() <= (1 << 20) + burst.len() + (300 << 10),
            "{} at fd {fd}",
            t.buffered_bytes()
        );
    }
    assert!(t.buffered_bytes() >= 1 << 20, "{}", t.buffered_bytes());
    assert!(counter(&stats, "stream_buffer_dropped_bytes") > 0);
    // Closing the connections releases everything.
    for fd in 0..200 {
        t.handle_record(&close(conn(1000 + fd, 1000 + fd as u64)));
    }
    assert_eq!(t.buffered_bytes(), 0);
}
