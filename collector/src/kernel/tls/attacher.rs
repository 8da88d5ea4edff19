//! The attacher thread: finds the files that hold OpenSSL (at start, after
//! each exec, every 30 s) and attaches the uprobes to each once.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aya::Ebpf;
use aya::maps::{MapData, RingBuf};
use aya::programs::UProbe;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeScope};
use sonde_ebpf::TLS_UPROBES;
use sonde_ebpf::events::ExecEvent;
use sonde_query::records::{ProbeStatusRow, probe_status_batch};
use sonde_query::schema::PROBE_STATUS;
use sonde_query::stats::{Counter, StatsRegistry};
use sonde_query::store::TableStore;
use tokio::sync::watch;

use super::elf::{covers_read_and_write, file_tls_symbols};
use super::maps::{is_libssl_name, map_files_entry, parse_maps};
use crate::clock::Clock;

/// After an exec, the process's maps are scanned at these delays: the dynamic
/// loader maps libssl a few milliseconds after exec; interpreters load it
/// when a module imports it, which on a loaded node can take seconds.
const SCAN_DELAYS: [Duration; 7] = [
    Duration::from_millis(5),
    Duration::from_millis(40),
    Duration::from_millis(150),
    Duration::from_millis(400),
    Duration::from_millis(1000),
    Duration::from_millis(2500),
    Duration::from_millis(6000),
];
/// Processes waiting for their post-exec scans; beyond, execs are only caught
/// by the periodic rescan (counted in `tls_exec_scans_dropped`).
const MAX_PENDING_SCANS: usize = 4096;
/// Every process is rescanned this often (libraries loaded long after exec).
const RESCAN_EVERY: Duration = Duration::from_secs(30);
/// Files (device, inode) already looked at, attached or not; cleared when full.
const MAX_KNOWN_FILES: usize = 65_536;
/// Where the system's libssl lives on common distributions.
const SYSTEM_LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/local/lib64",
];

/// A file a process maps (or executes) that may hold OpenSSL.
#[derive(Debug, Clone)]
struct Candidate {
    /// As the process sees it (for reporting).
    display: String,
    /// A path that opens it from here (e.g. through /proc/PID/root).
    open_path: PathBuf,
    pid: u32,
    /// Executables are probed only if they export the symbols (no failure row otherwise).
    is_exe: bool,
}

pub struct TlsCounters {
    targets_attached: Arc<Counter>,
    targets_failed: Arc<Counter>,
    exec_events: Arc<Counter>,
    exec_scans_dropped: Arc<Counter>,
}

impl TlsCounters {
    fn register(stats: &StatsRegistry) -> Self {
        Self {
            targets_attached: stats.counter(
                "tls_targets_attached",
                "Files (libssl or binaries with OpenSSL) the TLS uprobes are attached to",
            ),
            targets_failed: stats.counter(
                "tls_targets_failed",
                "TLS library candidates that could not be probed (see probe_status)",
            ),
            exec_events: stats.counter(
                "tls_exec_events",
                "Exec notifications received (new processes scanned for TLS libraries)",
            ),
            exec_scans_dropped: stats.counter(
                "tls_exec_scans_dropped",
                "New processes not scanned after exec because too many were waiting",
            ),
        }
    }
}

/// Attaches the TLS uprobes; runs on its own thread.
pub struct TlsAttacher {
    ebpf: Arc<Mutex<Ebpf>>,
    execs: RingBuf<MapData>,
    store: Arc<TableStore>,
    counters: TlsCounters,
    /// (device, inode) of every file looked at.
    known: HashSet<(u64, u64)>,
    self_pid: u32,
    rows: Vec<ProbeStatusRow>,
    /// The host's /proc (`--proc-root`; /host/proc in the DaemonSet).
    proc_root: PathBuf,
}

/// (pid, when its exec was seen, scans done).
struct PendingScan {
    pid: u32,
    since: Instant,
    step: usize,
}

impl TlsAttacher {
    /// Loads the uprobe programs. Err (with the reason) if the kernel refuses them.
    pub fn new(
        ebpf: Arc<Mutex<Ebpf>>,
        execs: RingBuf<MapData>,
        store: Arc<TableStore>,
        stats: &StatsRegistry,
        proc_root: PathBuf,
    ) -> Result<TlsAttacher, String> {
        {
            let mut guard = ebpf.lock().map_err(|_| "BPF object lock poisoned")?;
            let mut loaded = HashSet::new();
            for &(entry, ret, _) in TLS_UPROBES {
                // A program may serve several functions: loaded once.
                for name in [entry, ret].into_iter().filter(|name| loaded.insert(*name)) {
                    let program = guard
                        .program_mut(name)
                        .ok_or_else(|| format!("{name}: not in the BPF object"))?;
                    let uprobe: &mut UProbe =
                        program.try_into().map_err(|e| format!("{name}: {e}"))?;
                    uprobe.load().map_err(|e| format!("{name}: load: {e:#}"))?;
                }
            }
        }
        Ok(TlsAttacher {
            ebpf,
            execs,
            store,
            counters: TlsCounters::register(stats),
            known: HashSet::new(),
            self_pid: std::process::id(),
            rows: Vec::new(),
            proc_root,
        })
    }

    /// Startup scan, then exec-driven and periodic scans until `shutdown`.
    pub fn run(mut self, shutdown: watch::Receiver<bool>) {
        let started = Instant::now();
        self.scan_system_libraries();
        self.scan_all_processes();
        tracing::info!(
            attached = self.counters.targets_attached.get(),
            failed = self.counters.targets_failed.get(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "TLS library scan done"
        );
        self.flush_rows();
        let mut pending: Vec<PendingScan> = Vec::new();
        let mut last_rescan = Instant::now();
        while !*shutdown.borrow() {
            self.wait_for_execs(Duration::from_millis(20));
            while let Some(record) = self.execs.next() {
                let Some(exec) = ExecEvent::decode(&record) else {
                    continue;
                };
                self.counters.exec_events.inc();
                if pending.len() >= MAX_PENDING_SCANS {
                    self.counters.exec_scans_dropped.inc();
                    continue;
                }
                pending.push(PendingScan {
                    pid: exec.tgid,
                    since: Instant::now(),
                    step: 0,
                });
            }
            let now = Instant::now();
            let mut i = 0;
            while i < pending.len() {
                let scan = &mut pending[i];
                let due = SCAN_DELAYS
                    .get(scan.step)
                    .is_some_and(|delay| now.duration_since(scan.since) >= *delay);
                if !due {
                    i += 1;
                    continue;
                }
                let (pid, since, first) = (scan.pid, scan.since, scan.step == 0);
                scan.step += 1;
                let done = scan.step >= SCAN_DELAYS.len();
                let alive = self.scan_process(pid, first, Some(since));
                if done || !alive {
                    pending.swap_remove(i);
                } else {
                    i += 1;
                }
            }
            if last_rescan.elapsed() >= RESCAN_EVERY {
                self.scan_all_processes();
                last_rescan = Instant::now();
            }
            self.flush_rows();
        }
    }

    fn wait_for_execs(&self, timeout: Duration) {
        use std::os::fd::AsRawFd;
        let mut fds = [libc::pollfd {
            fd: self.execs.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
    }

    fn flush_rows(&mut self) {
        if self.rows.is_empty() {
            return;
        }
        let batch = probe_status_batch(&self.rows);
        self.rows.clear();
        if let Err(err) = self.store.append(PROBE_STATUS, batch) {
            tracing::error!(%err, "probe_status batch refused by the store");
        }
    }

    /// The libssl files of the system library directories, in this
    /// filesystem (pid 0 in probe_status) and in the host's, through pid 1's
    /// root when the agent runs in a container (pid 1; the same files are
    /// skipped on a host). Regular files only: links (libssl.so) name the
    /// same files.
    fn scan_system_libraries(&mut self) {
        let host_root = self.proc_root.join("1/root");
        for (root, pid) in [(PathBuf::from("/"), 0), (host_root, 1)] {
            for dir in SYSTEM_LIB_DIRS {
                let Ok(entries) = std::fs::read_dir(root.join(dir.trim_start_matches('/'))) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|name| is_libssl_name(name))
                    .collect();
                names.sort();
                for name in names {
                    let display = format!("{dir}/{name}");
                    let open_path = root.join(display.trim_start_matches('/'));
                    self.consider(
                        Candidate {
                            display,
                            open_path,
                            pid,
                            is_exe: false,
                        },
                        None,
                    );
                }
            }
        }
    }

    fn scan_all_processes(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.proc_root) else {
            return;
        };
        let pids: Vec<u32> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        for pid in pids {
            self.scan_process(pid, true, None);
        }
    }

    /// Looks at the executable (if `with_exe`) and the libssl mappings of one
    /// process. False if the process is gone.
    fn scan_process(&mut self, pid: u32, with_exe: bool, exec_seen: Option<Instant>) -> bool {
        if pid == self.self_pid {
            return true;
        }
        let proc = self.proc_root.join(pid.to_string());
        let Ok(maps) = std::fs::read_to_string(proc.join("maps")) else {
            return false;
        };
        if with_exe && let Ok(target) = std::fs::read_link(proc.join("exe")) {
            self.consider(
                Candidate {
                    display: target.display().to_string(),
                    open_path: proc.join("exe"),
                    pid,
                    is_exe: true,
                },
                exec_seen,
            );
        }
        for mapping in parse_maps(&maps) {
            if !is_libssl_name(&mapping.path) {
                continue;
            }
            // A deleted file (upgraded on disk) is still reachable through map_files.
            let open_path = if mapping.deleted {
                match map_files_entry(&proc, &mapping.path, &maps) {
                    Some(p) => p,
                    None => continue,
                }
            } else {
                proc.join("root").join(mapping.path.trim_start_matches('/'))
            };
            self.consider(
                Candidate {
                    display: mapping.path,
                    open_path,
                    pid,
                    is_exe: false,
                },
                exec_seen,
            );
        }
        true
    }

    /// Attaches to the candidate unless its file was seen before.
    fn consider(&mut self, candidate: Candidate, exec_seen: Option<Instant>) {
        let Ok(meta) = std::fs::metadata(&candidate.open_path) else {
            return;
        };
        if !self.known.insert((meta.dev(), meta.ino())) {
            return;
        }
        // The same file under the path the process uses, when it resolves
        // here too (same mount namespace): it outlives the process, unlike
        // /proc/PID/..., and a short-lived process may be gone by attach time.
        let mut candidate = candidate;
        if let Ok(here) = std::fs::metadata(&candidate.display)
            && (here.dev(), here.ino()) == (meta.dev(), meta.ino())
        {
            candidate.open_path = PathBuf::from(&candidate.display);
        }
        if self.known.len() >= MAX_KNOWN_FILES {
            self.known.clear();
            self.known.insert((meta.dev(), meta.ino()));
        }
        let symbols = match file_tls_symbols(&candidate.open_path) {
            Ok(symbols) => symbols,
            Err(_) if candidate.is_exe => return,
            Err(err) => {
                self.report(&candidate, Err(err));
                return;
            }
        };
        if !covers_read_and_write(&symbols) {
            // A libssl that is not OpenSSL (NSS's libssl3.so on every Debian
            // desktop): expected, so recorded as skipped, not as a failure.
            if !candidate.is_exe {
                self.skip(
                    &candidate,
                    "not OpenSSL: no SSL_read/SSL_write functions defined",
                );
            }
            return;
        }
        let result = self.attach(&candidate.open_path, &symbols);
        let result = result.map(|detail| match exec_seen {
            Some(seen) => format!("{detail}; {} ms after exec", seen.elapsed().as_millis()),
            None => detail,
        });
        self.report(&candidate, result);
    }

    /// Attaches every found function (return probe first, so an entry probe
    /// never runs without its return probe). Ok(detail) if a read and a write
    /// function are probed.
    fn attach(&self, path: &Path, symbols: &[(&'static str, u64)]) -> Result<String, String> {
        let mut guard = self.ebpf.lock().map_err(|_| "BPF object lock poisoned")?;
        let mut attached: Vec<&str> = Vec::new();
        let mut errors = Vec::new();
        for &(entry, ret, symbol) in TLS_UPROBES {
            let Some(&(_, offset)) = symbols.iter().find(|(s, _)| *s == symbol) else {
                continue;
            };
            match attach_pair(&mut guard, entry, ret, path, offset) {
                Ok(()) => attached.push(symbol),
                Err(err) => errors.push(format!("{symbol}: {err}")),
            }
        }
        let probed: Vec<(&str, u64)> = attached.iter().map(|s| (*s, 0)).collect();
        if covers_read_and_write(&probed) {
            let mut detail = attached.join(" ");
            if !errors.is_empty() {
                detail.push_str(&format!(" (not: {})", errors.join("; ")));
            }
            Ok(detail)
        } else {
            Err(format!("attach failed: {}", errors.join("; ")))
        }
    }

    /// A candidate that is not a TLS library Sonde probes: a `skipped` row.
    fn skip(&mut self, candidate: &Candidate, why: &str) {
        tracing::debug!(target = %candidate.display, pid = candidate.pid, why, "TLS candidate skipped");
        self.push_row(candidate, "skipped", why.to_string());
    }

    fn report(&mut self, candidate: &Candidate, result: Result<String, String>) {
        let (status, detail) = match result {
            Ok(detail) => {
                self.counters.targets_attached.inc();
                tracing::info!(target = %candidate.display, pid = candidate.pid, %detail, "TLS uprobes attached");
                ("attached", detail)
            }
            Err(err) => {
                self.counters.targets_failed.inc();
                tracing::warn!(target = %candidate.display, pid = candidate.pid, %err, "TLS uprobes not attached");
                ("failed", err)
            }
        };
        self.push_row(candidate, status, detail);
    }

    fn push_row(&mut self, candidate: &Candidate, status: &str, detail: String) {
        self.rows.push(ProbeStatusRow {
            time_ns: Clock::sample().to_unix_ns(Clock::monotonic_now()),
            kind: "uprobe".into(),
            probe: "openssl".into(),
            target: candidate.display.clone(),
            pid: candidate.pid,
            status: status.into(),
            detail,
        });
    }
}

fn attach_pair(
    ebpf: &mut Ebpf,
    entry: &str,
    ret: &str,
    path: &Path,
    offset: u64,
) -> Result<(), String> {
    let ret_prog: &mut UProbe = ebpf
        .program_mut(ret)
        .ok_or("not in the BPF object")?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    let ret_link = ret_prog
        .attach(
            UProbeAttachLocation::AbsoluteOffset(offset),
            path,
            UProbeScope::AllProcesses,
        )
        .map_err(|e| format!("uretprobe: {}", error_chain(&e)))?;
    let entry_prog: &mut UProbe = ebpf
        .program_mut(entry)
        .ok_or("not in the BPF object")?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    if let Err(err) = entry_prog.attach(
        UProbeAttachLocation::AbsoluteOffset(offset),
        path,
        UProbeScope::AllProcesses,
    ) {
        if let Some(prog) = ebpf.program_mut(ret)
            && let Ok(ret_prog) = <&mut UProbe>::try_from(prog)
        {
            let _ = ret_prog.detach(ret_link);
        }
        return Err(format!("uprobe: {}", error_chain(&err)));
    }
    Ok(())
}

/// An error and its sources, `: `-separated (aya's errors keep the OS error in
/// the source).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
