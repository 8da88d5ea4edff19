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
