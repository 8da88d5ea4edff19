//! End to end: what the kernel copies. Traffic of no protocol Sonde parses
//! is accounted by size, not copied, and conn_stats stays exact.
//!
//! Run as root, one test at a time: `cargo test -p sonde-e2e -- --test-threads=1`

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use sonde_e2e::{Agent, ebpf_available, fixture, free_port, run, wait_until};

const WAIT: Duration = Duration::from_secs(20);
/// Bytes a connection may show without a recognised protocol before the
/// kernel stops copying it (the tracker's OPAQUE_AFTER_UNKNOWN_BYTES).
const OPAQUE_AFTER: i64 = 256 << 10;

/// Each row's values as JSON text, joined by spaces.
fn row_texts(rows: &[Vec<serde_json::Value>]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The capture counters' growth since `before`, once `counter` has grown
/// by at least `at_least` (or after WAIT: the caller's assertion tells).
fn stats_growth(
    agent: &Agent,
    before: &HashMap<String, i64>,
    counter: &str,
    at_least: i64,
) -> HashMap<String, i64> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let growth: HashMap<String, i64> = agent
            .capture_stats()
            .into_iter()
            .map(|(name, value)| {
                let grown = value - before.get(&name).copied().unwrap_or(0);
                (name, grown)
            })
            .collect();
        if growth.get(counter).copied().unwrap_or(0) >= at_least
            || std::time::Instant::now() > deadline
        {
            return growth;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn traffic_of_no_known_protocol_is_counted_not_copied() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("opaque");
    let before: HashMap<String, i64> = agent.capture_stats().into_iter().collect();
    let port = free_port();
    let total: i64 = 64 << 20;
    let received = run(Command::new("python3")
        .arg(fixture("opaque_stream.py"))
        .args([port.to_string(), total.to_string()]));
    assert_eq!(received.trim(), total.to_string());

    // conn_stats: both ends, exact, though almost nothing was copied.
    let rows = agent.wait_rows(
        &format!(
            "SELECT protocol, bytes_sent, bytes_recv FROM conn_stats \
             WHERE (local_port = {port} OR remote_port = {port}) AND conn_close_ns > 0 \
             ORDER BY bytes_sent"
        ),
        2,
        WAIT,
    );
    let got: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_string(),
                r[1].as_i64().unwrap_or(-1),
                r[2].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("unknown".to_string(), 0, total),
            ("unknown".to_string(), total, 0)
        ]
    );

    let mut after = HashMap::new();
    wait_until(WAIT, || {
        after = agent.capture_stats().into_iter().collect();
        after.get("conns_opaque").copied().unwrap_or(0) >= 2
    });
    let delta =
        |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    // Each end copies what identification needs (256 KiB) plus what the
    // kernel copied before the reader, behind it by a batch, told it to
    // stop: a small share of the bytes, most of which are never copied.
    let copied = delta("bytes_captured");
    assert!(copied < total / 4, "copied {copied} of {}", 2 * total);
    assert!(copied >= 2 * OPAQUE_AFTER, "copied {copied}");
    // Both ends' calls (writes and reads) count.
    let uncopied = delta("kernel_uncopied_bytes");
    assert!(uncopied >= 2 * total * 3 / 4, "uncopied {uncopied}");
    // Not a loss: the only gaps are the tails over the per-call copy cap
    // before the connection was found opaque, never the uncopied bytes.
    assert!(
        delta("stream_gap_bytes") <= delta("kernel_bytes_not_copied"),
        "{after:?}"
    );
    assert_eq!(delta("conns_copy_stop_failed"), 0);
}

/// A call's bytes go to userspace as one record however many buffers the
/// call wrote them from: the head and body of a `writev` (or a request in
/// pieces, as here) are one ring record, not one per iovec, and still parse
/// into exact rows.
#[test]
fn a_writev_of_several_buffers_is_one_record() {
    if !ebpf_available() {
        return;
    }
    const EXCHANGES: i64 = 500;
    let agent = Agent::start("writev");
    let before: HashMap<String, i64> = agent.capture_stats().into_iter().collect();
    let port = free_port();
    let done = run(Command::new("python3")
        .arg(fixture("writev_exchanges.py"))
        .args([port.to_string(), EXCHANGES.to_string()]));
    assert_eq!(done.trim(), (EXCHANGES + 1).to_string());

    let rows = agent.wait_rows(
        &format!(
            "SELECT trace_role, count(*), min(req_headers), max(resp_status) FROM http_events \
             WHERE (local_port = {port} OR remote_port = {port}) AND req_path LIKE '/writev/small/%' \
             GROUP BY trace_role ORDER BY trace_role"
        ),
        2,
        WAIT,
    );
    let got: Vec<(String, i64, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_string(),
                r[1].as_i64().unwrap_or(-1),
                r[2].as_str().unwrap_or_default().to_string(),
                r[3].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let headers = r#"{"Host":"writev.test","X-Piece":"three"}"#.to_string();
    assert_eq!(
        got,
        [
            ("client".to_string(), EXCHANGES, headers.clone(), 200),
            ("server".to_string(), EXCHANGES, headers, 200)
        ]
    );

    // Past a record's worth of bytes, split inside a buffer: the body's
    // size is exact and the GET after it parses.
    let rows = agent.wait_rows(
        &format!(
            "SELECT trace_role, req_method, req_path, req_body_size, resp_status FROM http_events \
             WHERE (local_port = {port} OR remote_port = {port}) \
             AND req_path IN ('/writev/big', '/writev/after') ORDER BY trace_role, req_path"
        ),
        4,
        WAIT,
    );
    let got = row_texts(&rows);
    assert_eq!(
        got,
        [
            r#""client" "GET" "/writev/after" 0 200"#,
            r#""client" "POST" "/writev/big" 12000 200"#,
            r#""server" "GET" "/writev/after" 0 200"#,
            r#""server" "POST" "/writev/big" 12000 200"#,
        ]
    );

    // Each exchange is four calls: the client's writev and recv, the
    // server's recv and send. One record each makes 4 per exchange; one
    // per iovec would make 7. The slack covers the large call's records and the test's own queries to
    // the agent (their client side is traced too).
    let records = stats_growth(&agent, &before, "events_data", 4 * EXCHANGES)["events_data"];
    assert!(
        (4 * EXCHANGES..6 * EXCHANGES).contains(&records),
        "{records} data records for {EXCHANGES} exchanges"
    );
}

/// A call larger than the per-call copy cap is one ring record: its first
/// `--max-bytes-per-call` bytes, marked as the call's last record with the
/// call's end, so the uncopied rest is a gap of known size (not a second,
/// header-only record). Bodies past the cap keep their exact sizes, and
/// a writev of more buffers than the kernel's one-pass copy takes still
/// parses into exact rows.
#[test]
fn a_call_over_the_copy_cap_is_one_record() {
    if !ebpf_available() {
        return;
    }
    const EXCHANGES: i64 = 200;
    const CAP: i64 = 1024;
    let agent = Agent::start_with("capped", &["--max-bytes-per-call", &CAP.to_string()]);
    let before: HashMap<String, i64> = agent.capture_stats().into_iter().collect();
    let port = free_port();
    let done = run(Command::new("python3")
        .arg(fixture("capped_exchanges.py"))
        .args([port.to_string(), EXCHANGES.to_string()]));
    assert_eq!(done.trim(), (2 * EXCHANGES).to_string());

    let rows = agent.wait_rows(
        &format!(
            "SELECT trace_role, req_method, req_path, count(*), min(req_body_size), max(req_body_size), \
             min(resp_body_size), max(resp_body_size), min(req_headers), max(resp_status) FROM http_events \
             WHERE local_port = {port} OR remote_port = {port} \
             GROUP BY trace_role, req_method, req_path ORDER BY trace_role, req_method"
        ),
        4,
        WAIT,
    );
    let got = row_texts(&rows);
    let get_headers =
        r#""{\"Host\":\"six.test\",\"X-One\":\"1\",\"X-Three\":\"3\",\"X-Two\":\"2\"}""#;
    let post_headers = r#""{\"Content-Length\":\"5000\",\"Host\":\"capped.test\"}""#;
    assert_eq!(
        got,
        [
            format!(r#""client" "GET" "/six" {EXCHANGES} 0 0 2 2 {get_headers} 200"#),
            format!(
                r#""client" "POST" "/capped" {EXCHANGES} 5000 5000 3000 3000 {post_headers} 200"#
            ),
            format!(r#""server" "GET" "/six" {EXCHANGES} 0 0 2 2 {get_headers} 200"#),
            format!(
                r#""server" "POST" "/capped" {EXCHANGES} 5000 5000 3000 3000 {post_headers} 200"#
            ),
        ]
    );

    // Each exchange is four calls (each side's one send and one recv):
    // four records, not eight (a capped call used to send its copied bytes
    // and then a header-only record declaring the rest). The slack covers
    // the test's own queries to the agent (their client side is traced).
    let growth = stats_growth(&agent, &before, "events_data", 8 * EXCHANGES);
    let (records, not_copied) = (growth["events_data"], growth["kernel_bytes_not_copied"]);
    assert!(
        (8 * EXCHANGES..10 * EXCHANGES).contains(&records),
        "{records} data records for {} exchanges",
        2 * EXCHANGES
    );
    // Every POST and its answer, on both sides, left all but CAP bytes.
    let post = 66 + 5000;
    let answer = 41 + 3000;
    assert!(
        not_copied >= 2 * EXCHANGES * (post - CAP + answer - CAP),
        "{not_copied} bytes not copied"
    );
}
