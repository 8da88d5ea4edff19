//! Loads the BPF object and attaches its tracepoints.
//!
//! Which object (see `features`) is decided by probing the kernel
//! first; a kernel below the minimum is refused with what it lacks. What could
//! not be attached is reported, not fatal, unless nothing could be (a kernel
//! may lack a syscall, e.g. no `sendfile64` on some arches).

use std::path::Path;
use std::sync::{Arc, Mutex};

use aya::maps::{Array as BpfArray, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::TracePoint;
use aya::{Ebpf, EbpfLoader};
use sonde_ebpf::events::{self, ConnId};
use sonde_ebpf::names;

use super::features::{self, KernelPlan, PlanError};
use super::seed;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "sonde agent must run as root (or with CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE) to load eBPF programs; \
         try: sudo sonde agent"
    )]
    NotPrivileged,
    #[error("cannot mount tracefs at /sys/kernel/tracing: {0}")]
    Tracefs(std::io::Error),
    /// Below the supported minimum, or a bad SONDE_BPF_VARIANT.
    #[error(transparent)]
    Kernel(#[from] PlanError),
    #[error("the kernel (Linux {release}) refused the BPF object {object}: {source}")]
    Load {
        object: &'static str,
        release: String,
        #[source]
        source: Box<aya::EbpfError>,
    },
    #[error("no probe could be attached; first error: {first}")]
    NothingAttached { first: String },
    #[error("BPF object has no map `{0}`")]
    MissingMap(&'static str),
    #[error("BPF map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}

/// Settings pushed into the kernel programs at load time.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub max_bytes_per_call: u32,
    pub ring_buffer_bytes: u32,
    /// Unread ring bytes at which the kernel wakes the reader (0: any record
    /// may wake it); below it the reader collects on its timer.
    pub wakeup_bytes: u64,
    /// The host's /proc, to find syscalls already in flight (`--proc-root`).
    pub proc_root: std::path::PathBuf,
}

/// The attached probes and the maps the agent reads.
pub struct Probes {
    // Keeps programs and links alive: dropping the last reference detaches
    // everything (the TLS attacher holds another, to attach uprobes).
    _ebpf: Arc<Mutex<Ebpf>>,
    pub stats: PerCpuArray<MapData, u64>,
    /// Key: tgid in the low 32 bits, fd in the high 32 (the C struct conn_key);
    /// value: the C struct conn_state (96 bytes; only removed from here, but
    /// aya checks the size when it opens the map).
    pub conns: BpfHashMap<MapData, u64, [u64; 12]>,
    /// Connections the kernel accounts by size only (same key; value: the
    /// connection's generation). See `stop_copying`.
    uncopied: BpfHashMap<MapData, u64, u64>,
    /// Bumped after entries are added to `uncopied`: the kernel looks there
    /// only when it moved.
    uncopied_epoch: BpfArray<MapData, u64>,
    pub attached: Vec<String>,
    pub failed: Vec<(String, String)>,
    /// What the kernel offers and which object was loaded.
    pub kernel: KernelPlan,
    /// What the TLS attacher needs (taken by the agent): the BPF object, to
    /// attach uprobes, and the exec ring buffer.
    pub tls_setup: Option<(Arc<Mutex<Ebpf>>, RingBuf<MapData>)>,
}

pub fn conn_map_key(tgid: u32, fd: i32) -> u64 {
    u64::from(tgid) | (u64::from(fd as u32) << 32)
}

/// CAP_BPF (39) or CAP_SYS_ADMIN (21) in the effective set, or root.
fn has_bpf_privileges() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 39) != 0 || caps & (1 << 21) != 0)
}

/// aya finds tracepoints under tracefs; fresh machines may not have it mounted.
fn ensure_tracefs() -> Result<(), ProbeError> {
    for dir in [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ] {
        if Path::new(dir).is_dir() {
            return Ok(());
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are valid NUL-terminated strings; data is null.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(ProbeError::Tracefs(std::io::Error::last_os_error()));
    }
    tracing::info!("mounted tracefs at /sys/kernel/tracing");
    Ok(())
}

/// Older kernels charge BPF maps to RLIMIT_MEMLOCK; newer ones use memcg. Best effort.
fn raise_memlock_limit() {
    let limit = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid pointer to an initialised rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) } != 0 {
        tracing::debug!(
            "could not raise RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Returns the probes and, separately, the ring buffer (read on its own task).
pub fn load_and_attach(config: &ProbeConfig) -> Result<(Probes, RingBuf<MapData>), ProbeError> {
    if !has_bpf_privileges() {
        return Err(ProbeError::NotPrivileged);
    }
    ensure_tracefs()?;
    raise_memlock_limit();
    let kernel = features::plan_for_this_kernel()?;
    tracing::info!(
        release = %kernel.features.release,
        object = kernel.variant.file_name(),
        missing = ?kernel.features.missing.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "kernel features probed"
    );

    let self_tgid = std::process::id();
    let mut ebpf = EbpfLoader::new()
        .override_global(names::SELF_TGID, &self_tgid, true)
        .override_global(names::MAX_BYTES_PER_CALL, &config.max_bytes_per_call, true)
        .override_global(names::WAKEUP_BYTES, &config.wakeup_bytes, true)
        .map_max_entries(names::EVENTS_MAP, config.ring_buffer_bytes)
        // The per-thread stash is task storage, a map type aya creates but
        // has no typed handle for (only the programs use it).
        .allow_unsupported_maps()
        .load(kernel.variant.object())
        .map_err(|err| match &err {
            aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EPERM) =>
            {
                ProbeError::NotPrivileged
            }
            _ => ProbeError::Load {
                object: kernel.variant.file_name(),
                release: kernel.features.release.clone(),
                source: Box::new(err),
            },
        })?;

    let mut attached = Vec::new();
    let mut failed = Vec::new();
    for &(program, category, tracepoint) in kernel.variant.tracepoints() {
        match attach_one(&mut ebpf, program, category, tracepoint) {
            Ok(()) => attached.push(program.to_string()),
            Err(err) => {
                tracing::warn!(program, "probe not attached: {err}");
                failed.push((program.to_string(), err));
            }
        }
    }
    if attached.is_empty() {
        let first = failed
            .first()
            .map(|(p, e)| format!("{p}: {e}"))
            .unwrap_or_default();
        return Err(ProbeError::NothingAttached { first });
    }

    seed_calls_in_flight(
        &mut ebpf,
        &config.proc_root,
        self_tgid,
        kernel.variant.has_ingress_enters(),
    )?;

    let ring = RingBuf::try_from(take_map(&mut ebpf, names::EVENTS_MAP)?).map_err(|source| {
        ProbeError::Map {
            name: names::EVENTS_MAP,
            source,
        }
    })?;
    let stats =
        PerCpuArray::try_from(take_map(&mut ebpf, names::STATS_MAP)?).map_err(|source| {
            ProbeError::Map {
                name: names::STATS_MAP,
                source,
            }
        })?;
    let conns = BpfHashMap::try_from(take_map(&mut ebpf, names::CONNS_MAP)?).map_err(|source| {
        ProbeError::Map {
            name: names::CONNS_MAP,
            source,
        }
    })?;
    let uncopied =
        BpfHashMap::try_from(take_map(&mut ebpf, names::UNCOPIED_MAP)?).map_err(|source| {
            ProbeError::Map {
                name: names::UNCOPIED_MAP,
                source,
            }
        })?;
    let uncopied_epoch = BpfArray::try_from(take_map(&mut ebpf, names::UNCOPIED_EPOCH_MAP)?)
        .map_err(|source| ProbeError::Map {
            name: names::UNCOPIED_EPOCH_MAP,
            source,
        })?;
    let execs = RingBuf::try_from(take_map(&mut ebpf, names::EXECS_MAP)?).map_err(|source| {
        ProbeError::Map {
            name: names::EXECS_MAP,
            source,
        }
    })?;
    let ebpf = Arc::new(Mutex::new(ebpf));
    Ok((
        Probes {
            _ebpf: ebpf.clone(),
            stats,
            conns,
            uncopied,
            uncopied_epoch,
            attached,
            failed,
            kernel,
            tls_setup: Some((ebpf, execs)),
        },
        ring,
    ))
}

/// Seeds the arguments of socket syscalls threads were already blocked in
/// when the probes attached (see `seed`); the kernel checks each before use.
/// Calls that receive are seeded only for an object that stashes them on
/// entry (`ingress_seeds`): the default object's exits need no seed.
fn seed_calls_in_flight(
    ebpf: &mut Ebpf,
    proc_root: &Path,
    self_tgid: u32,
    ingress_seeds: bool,
) -> Result<(), ProbeError> {
    let now_ns = crate::clock::Clock::monotonic_now();
    let mut calls = seed::blocked_socket_calls(proc_root, self_tgid, now_ns);
    if !ingress_seeds {
        calls.retain(|(_, call)| !seed::receives(call.syscall));
    }
    // Counted before the seeds go in (exits look for seeds while fewer were
    // taken than inserted), then lowered to those that did go in.
    set_seeds_inserted(ebpf, calls.len())?;
    let map = ebpf
        .map_mut(names::ACTIVE_MAP)
        .ok_or(ProbeError::MissingMap(names::ACTIVE_MAP))?;
    let mut active: BpfHashMap<_, u64, [u64; 6]> =
        BpfHashMap::try_from(map).map_err(|source| ProbeError::Map {
            name: names::ACTIVE_MAP,
            source,
        })?;
    let mut seeded = 0usize;
    for (key, call) in &calls {
        // BPF_NOEXIST: in the compat object an enter that ran meanwhile
        // has the fresher arguments.
        if active.insert(key, call.to_words(), 1).is_ok() {
            seeded += 1;
        }
    }
    set_seeds_inserted(ebpf, seeded)?;
    tracing::info!(seeded, "socket syscalls in flight at start seeded");
    Ok(())
}

/// The `sonde_seeds` slot only userspace writes.
fn set_seeds_inserted(ebpf: &mut Ebpf, count: usize) -> Result<(), ProbeError> {
    let map_error = |source| ProbeError::Map {
        name: names::SEEDS_MAP,
        source,
    };
    let map = ebpf
        .map_mut(names::SEEDS_MAP)
        .ok_or(ProbeError::MissingMap(names::SEEDS_MAP))?;
    let mut seeds: BpfArray<_, u64> = BpfArray::try_from(map).map_err(map_error)?;
    seeds
        .set(events::SEEDS_INSERTED, count as u64, 0)
        .map_err(map_error)
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, ProbeError> {
    ebpf.take_map(name).ok_or(ProbeError::MissingMap(name))
}

fn attach_one(
    ebpf: &mut Ebpf,
    program: &str,
    category: &str,
    tracepoint: &str,
) -> Result<(), String> {
    let prog = ebpf
        .program_mut(program)
        .ok_or_else(|| "not in the BPF object".to_string())?;
    let tp: &mut TracePoint = prog.try_into().map_err(|e| format!("{e}"))?;
    tp.load().map_err(|e| format!("load: {e:#}"))?;
    tp.attach(category, tracepoint)
        .map_err(|e| format!("attach: {e:#}"))?;
    Ok(())
}

impl Probes {
    /// Sum over CPUs of each kernel counter, by index.
    pub fn kernel_counters(&self) -> Vec<u64> {
        (0..sonde_ebpf::events::KERNEL_STAT_COUNT)
            .map(|i| {
                self.stats
                    .get(&i, 0)
                    .map(|values| values.iter().sum())
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Forgets kernel connection entries (their process is gone).
    pub fn forget_connections(&mut self, keys: &[(u32, i32)]) {
        for &(tgid, fd) in keys {
            // Already gone (closed in the kernel meanwhile) is fine.
            let _ = self.conns.remove(&conn_map_key(tgid, fd));
            let _ = self.uncopied.remove(&conn_map_key(tgid, fd));
        }
    }

    /// Tells the kernel to stop copying these connections' bytes (no parser
    /// wants them): their calls still carry sizes, so stream positions and
    /// conn_stats stay exact. Returns how many could not be told (they go
    /// on being copied).
    pub fn stop_copying(&mut self, conns: &[ConnId]) -> u64 {
        let mut failed = 0;
        for conn in conns {
            let key = conn_map_key(conn.tgid, conn.fd);
            if let Err(err) = self.uncopied.insert(key, conn.generation, 0) {
                failed += 1;
                tracing::debug!(%err, tgid = conn.tgid, fd = conn.fd, "cannot stop copying a connection");
            }
        }
        if failed < conns.len() as u64 {
            // After the entries: a connection that sees the new epoch finds them.
            let epoch = self.uncopied_epoch.get(&0, 0).unwrap_or(0);
            if let Err(err) = self.uncopied_epoch.set(0, epoch.wrapping_add(1), 0) {
                // Not looked at: the connections go on being copied.
                tracing::debug!(%err, "cannot publish connections to stop copying");
                failed = conns.len() as u64;
            }
        }
        failed
    }

    /// Removes kernel connection entries whose process no longer exists (a lost
    /// process-exit event would otherwise leak them). Returns how many.
    pub fn sweep_dead_connections(&mut self) -> usize {
        let dead: Vec<u64> = self
            .conns
            .keys()
            .filter_map(Result::ok)
            .filter(|key| !process_alive((key & 0xffff_ffff) as u32))
            .collect();
        for key in &dead {
            let _ = self.conns.remove(key);
        }
        dead.len()
    }
}

pub fn process_alive(tgid: u32) -> bool {
    Path::new(&format!("/proc/{tgid}")).exists()
}
