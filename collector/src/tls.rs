//! TLS plaintext capture: finds OpenSSL in the host's processes and attaches
//! the `SSL_read`/`SSL_write` (and `_ex`) uprobes to it.
//!
//! A uprobe attached to a file (for all processes) fires in every process that
//! maps that file, now or later, so each distinct file (device, inode) is
//! attached once: at start, the system's libssl and every libssl or binary
//! exporting the symbols that a running process maps; then, on each exec (the
//! `sched_process_exec` tracepoint, on its own ring buffer), the new process's
//! executable and the libraries its loader maps within the next second; and a
//! rescan of all processes every 30 s for libraries loaded later (dlopen).
//! Every attempt lands in the `probe_status` table.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aya::Ebpf;
use aya::maps::{MapData, RingBuf};
use aya::programs::UProbe;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeScope};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use sonde_ebpf::TLS_UPROBES;
use sonde_ebpf::events::ExecEvent;
use sonde_query::records::{ProbeStatusRow, probe_status_batch};
use sonde_query::schema::PROBE_STATUS;
use sonde_query::stats::{Counter, StatsRegistry};
use sonde_query::store::TableStore;
use tokio::sync::watch;

use crate::clock::Clock;

/// After an exec, the process's maps are scanned at these delays: the dynamic
/// loader maps libssl a few milliseconds after exec.
const SCAN_DELAYS: [Duration; 5] = [
    Duration::from_millis(5),
    Duration::from_millis(40),
    Duration::from_millis(150),
    Duration::from_millis(400),
    Duration::from_millis(1000),
];
/// Processes waiting for their post-exec scans; beyond, execs are only caught
/// by the periodic rescan (counted in `tls_exec_scans_dropped`).
const MAX_PENDING_SCANS: usize = 4096;
/// Every process is rescanned this often (libraries loaded long after exec).
const RESCAN_EVERY: Duration = Duration::from_secs(30);
/// Files (device, inode) already looked at, attached or not; cleared when full.
const MAX_KNOWN_FILES: usize = 65_536;
/// Files larger than this are not parsed for symbols.
const MAX_ELF_BYTES: u64 = 1 << 30;
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

/// One file-backed mapping of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub path: String,
    pub inode: u64,
    pub deleted: bool,
}

/// The file-backed mappings in the text of /proc/PID/maps, one per distinct
/// path, in order of first appearance. Malformed lines are skipped.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        // address perms offset dev inode [path, which may contain spaces]
        let mut rest = line;
        let mut fields = [""; 5];
        let mut complete = true;
        for field in fields.iter_mut() {
            rest = rest.trim_start_matches(' ');
            let end = rest.find(' ').unwrap_or(rest.len());
            let (value, tail) = rest.split_at(end);
            if value.is_empty() {
                complete = false;
                break;
            }
            *field = value;
            rest = tail;
        }
        let path = rest.trim_start_matches(' ');
        let Ok(inode) = fields[4].parse::<u64>() else {
            continue;
        };
        if !complete || inode == 0 || !path.starts_with('/') {
            continue;
        }
        let (path, deleted) = match path.strip_suffix(" (deleted)") {
            Some(p) => (p, true),
            None => (path, false),
        };
        if seen.insert(path.to_string()) {
            out.push(Mapping {
                path: path.to_string(),
                inode,
                deleted,
            });
        }
    }
    out
}

/// Whether a file name looks like OpenSSL's libssl (`libssl.so.3`,
/// `libssl.so.1.1`, `libssl-a1b2c3.so.3` as bundled by Python wheels). The
/// symbols decide; NSS's `libssl3.so` passes here and fails there.
pub fn is_libssl_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("libssl") && name.contains(".so")
}

/// The TLS functions a file defines, with their file offsets (what a uprobe
/// is attached to), in `TLS_UPROBES` order. Err if it is not an ELF object.
pub fn tls_symbols(data: &[u8]) -> Result<Vec<(&'static str, u64)>, String> {
    let file = object::File::parse(data).map_err(|e| format!("not an ELF object: {e}"))?;
    let mut found: HashMap<&'static str, u64> = HashMap::new();
    for symbol in file.dynamic_symbols().chain(file.symbols()) {
        if symbol.is_undefined() || symbol.kind() != SymbolKind::Text {
            continue;
        }
        let Ok(name) = symbol.name() else {
            continue;
        };
        let Some(&(_, _, wanted)) = TLS_UPROBES.iter().find(|(_, _, s)| *s == name) else {
            continue;
        };
        if found.contains_key(wanted) {
            continue;
        }
        let Some(index) = symbol.section_index() else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        let Some((section_offset, _)) = section.file_range() else {
            continue;
        };
        let offset = symbol
            .address()
            .checked_sub(section.address())
            .and_then(|o| o.checked_add(section_offset));
        if let Some(offset) = offset {
            found.insert(wanted, offset);
        }
    }
    Ok(TLS_UPROBES
        .iter()
        .filter_map(|&(_, _, name)| found.get(name).map(|&off| (name, off)))
        .collect())
}

/// True if the symbols cover at least one read and one write function.
fn covers_read_and_write(symbols: &[(&str, u64)]) -> bool {
    let has = |prefix: &str| symbols.iter().any(|(s, _)| s.starts_with(prefix));
    has("SSL_read") && has("SSL_write")
}

/// A read-only private mapping of a whole file (symbol tables are read lazily).
struct MappedFile {
    ptr: *mut libc::c_void,
    len: usize,
}

impl MappedFile {
    fn open(path: &Path) -> Result<MappedFile, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("open: {e}"))?;
        let len = file.metadata().map_err(|e| format!("stat: {e}"))?.len();
        if len == 0 || len > MAX_ELF_BYTES {
            return Err(format!("size {len} bytes not parsed"));
        }
        let len = usize::try_from(len).map_err(|_| "too large".to_string())?;
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh private read-only mapping of an open fd; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        Ok(MappedFile { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: ptr/len describe a live read-only mapping owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping created in open, once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// The TLS symbols of the file at `path` (None: it defines none of them).
fn file_tls_symbols(path: &Path) -> Result<Vec<(&'static str, u64)>, String> {
    let mapped = MappedFile::open(path)?;
    tls_symbols(mapped.bytes())
}

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
            for &(entry, ret, _) in TLS_UPROBES {
                for name in [entry, ret] {
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
            if !candidate.is_exe {
                self.report(
                    &candidate,
                    Err("not OpenSSL: no SSL_read/SSL_write functions defined".to_string()),
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

/// /proc/PID/map_files/<range> of the first mapping of `path` (deleted files).
fn map_files_entry(proc: &Path, path: &str, maps: &str) -> Option<PathBuf> {
    let line = maps.lines().find(|l| l.contains(path))?;
    let range = line.split(' ').next()?;
    Some(proc.join("map_files").join(range))
}

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

/// `probe_status` rows for the tracepoint programs (attached at load).
pub fn report_tracepoints(store: &TableStore, attached: &[String], failed: &[(String, String)]) {
    let now = Clock::sample().to_unix_ns(Clock::monotonic_now());
    let target = |program: &str| {
        sonde_ebpf::TRACEPOINTS
            .iter()
            .find(|(p, _, _)| *p == program)
            .map_or_else(String::new, |(_, category, name)| {
                format!("{category}/{name}")
            })
    };
    let row = |program: &str, status: &str, detail: &str| ProbeStatusRow {
        time_ns: now,
        kind: "tracepoint".into(),
        probe: program.to_string(),
        target: target(program),
        pid: 0,
        status: status.into(),
        detail: detail.to_string(),
    };
    let rows: Vec<ProbeStatusRow> = attached
        .iter()
        .map(|p| row(p, "attached", ""))
        .chain(failed.iter().map(|(p, err)| row(p, "failed", err)))
        .collect();
    if let Err(err) = store.append(PROBE_STATUS, probe_status_batch(&rows)) {
        tracing::error!(%err, "probe_status batch refused by the store");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a2a000 r--p 00000000 fd:01 1835123                    /usr/bin/curl
7f1c2a000000-7f1c2a021000 r--p 00000000 fd:01 1836001                    /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c2a021000-7f1c2a0a0000 r-xp 00021000 fd:01 1836001                    /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c2b000000-7f1c2b001000 rw-p 00000000 00:00 0 
7f1c2c000000-7f1c2c021000 r-xp 00000000 00:1f 99                         /tmp/my libs/libssl.so.1.1 (deleted)
7ffd1e000000-7ffd1e021000 rw-p 00000000 00:00 0                          [stack]
garbage line
";

    #[test]
    fn maps_lines_become_distinct_file_mappings() {
        assert_eq!(
            parse_maps(MAPS),
            vec![
                Mapping {
                    path: "/usr/bin/curl".into(),
                    inode: 1_835_123,
                    deleted: false
                },
                Mapping {
                    path: "/usr/lib/x86_64-linux-gnu/libssl.so.3".into(),
                    inode: 1_836_001,
                    deleted: false
                },
                Mapping {
                    path: "/tmp/my libs/libssl.so.1.1".into(),
                    inode: 99,
                    deleted: true
                },
            ]
        );
        assert_eq!(parse_maps(""), vec![]);
    }

    #[test]
    fn libssl_names() {
        assert!(is_libssl_name("/usr/lib/x86_64-linux-gnu/libssl.so.3"));
        assert!(is_libssl_name("/usr/lib/libssl.so.1.1"));
        assert!(is_libssl_name(
            "/venv/lib/python3.11/site-packages/x.libs/libssl-4a1b2c.so.3"
        ));
        assert!(is_libssl_name("libssl.so"));
        assert!(!is_libssl_name("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"));
        assert!(!is_libssl_name("/usr/lib/x86_64-linux-gnu/libssl.a"));
        assert!(!is_libssl_name("/opt/libssl/bin/app"));
    }

    #[test]
    fn non_elf_bytes_are_an_error() {
        assert!(tls_symbols(b"definitely not an ELF file").is_err());
        assert!(tls_symbols(&[]).is_err());
    }

    #[test]
    fn a_binary_without_openssl_defines_no_tls_symbols() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(file_tls_symbols(&exe).unwrap(), vec![]);
    }

    #[test]
    fn coverage_needs_a_read_and_a_write() {
        assert!(covers_read_and_write(&[("SSL_read", 1), ("SSL_write", 2)]));
        assert!(covers_read_and_write(&[
            ("SSL_read_ex", 1),
            ("SSL_write", 2)
        ]));
        assert!(!covers_read_and_write(&[
            ("SSL_read", 1),
            ("SSL_read_ex", 2)
        ]));
        assert!(!covers_read_and_write(&[]));
    }

    /// The system's OpenSSL 3, where installed: the four functions, at the
    /// offsets readelf lists (Debian's libssl has .text at equal file offset
    /// and address, so the symbol value is the file offset).
    #[test]
    fn finds_the_functions_of_the_system_libssl() {
        let path = Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
        let readelf = std::process::Command::new("readelf")
            .args(["-W", "--dyn-syms"])
            .arg(path)
            .output();
        let Ok(readelf) = readelf.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()) else {
            eprintln!("SKIPPED: no readelf");
            return;
        };
        if !path.exists() {
            eprintln!("SKIPPED: no {}", path.display());
            return;
        }
        let listed = |name: &str| -> u64 {
            readelf
                .lines()
                .find_map(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    let symbol = cols.get(7)?.split('@').next()?;
                    (symbol == name && cols.get(3) == Some(&"FUNC"))
                        .then(|| u64::from_str_radix(cols.get(1)?, 16).ok())
                        .flatten()
                })
                .unwrap_or_else(|| panic!("{name} not in readelf output"))
        };
        let symbols = file_tls_symbols(path).unwrap();
        let expected: Vec<(&str, u64)> = [
            "SSL_write",
            "SSL_read",
            "SSL_write_ex",
            "SSL_read_ex",
            "SSL_do_handshake",
        ]
        .into_iter()
        .map(|name| (name, listed(name)))
        .collect();
        assert_eq!(symbols, expected);
    }
}
