//! TLS plaintext capture: finds OpenSSL in the host's processes and attaches
//! the `SSL_read`/`SSL_write` (and `_ex`) uprobes to it, and to the SSL
//! BIO's read and write methods (found through `BIO_f_ssl`).
//!
//! A uprobe attached to a file (for all processes) fires in every process that
//! maps that file, now or later, so each distinct file (device, inode) is
//! attached once: at start, the system's libssl and every libssl or binary
//! exporting the symbols that a running process maps; then, on each exec (the
//! `sched_process_exec` tracepoint, on its own ring buffer), the new process's
//! executable and the libraries its loader maps within the next second; and a
//! rescan of all processes every 30 s for libraries loaded later (dlopen).
//! Every attempt lands in the `probe_status` table.
//!
//! `maps` reads /proc/PID/maps, `elf` finds the functions in a file
//! (`ssl_bio` the SSL BIO's methods), `attacher` does the rest.

mod attacher;
pub mod elf;
pub mod maps;
mod ssl_bio;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aya::Ebpf;
use aya::maps::{MapData, RingBuf};
use sonde_query::records::{ProbeStatusRow, probe_status_batch};
use sonde_query::schema::PROBE_STATUS;
use sonde_query::stats::StatsRegistry;
use sonde_query::store::TableStore;
use tokio::sync::watch;

use crate::clock::Clock;
use attacher::TlsAttacher;

/// Loads the uprobes and starts the attacher thread. A failure is reported
/// (log, probe_status) and leaves the rest of the agent running.
pub fn spawn(
    ebpf: Arc<Mutex<Ebpf>>,
    execs: RingBuf<MapData>,
    store: Arc<TableStore>,
    stats: &StatsRegistry,
    proc_root: PathBuf,
    shutdown: watch::Receiver<bool>,
) -> Option<std::thread::JoinHandle<()>> {
    let attacher = match TlsAttacher::new(ebpf, execs, store.clone(), stats, proc_root) {
        Ok(attacher) => attacher,
        Err(err) => {
            tracing::warn!(%err, "TLS uprobes unavailable; encrypted traffic is not captured");
            let row = ProbeStatusRow {
                time_ns: Clock::sample().to_unix_ns(Clock::monotonic_now()),
                kind: "uprobe".into(),
                probe: "openssl".into(),
                target: String::new(),
                pid: 0,
                status: "failed".into(),
                detail: err,
            };
            let _ = store.append(PROBE_STATUS, probe_status_batch(&[row]));
            return None;
        }
    };
    std::thread::Builder::new()
        .name("sonde-tls".into())
        .spawn(move || attacher.run(shutdown))
        .map_err(|err| tracing::warn!(%err, "cannot start the TLS attacher thread"))
        .ok()
}
