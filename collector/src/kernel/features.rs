//! What the running kernel offers Sonde's BPF programs, probed before they are
//! loaded, and what follows from it: which compiled object to load (one
//! binary runs on every supported kernel), what is degraded, or that the
//! kernel is below the supported minimum (a clear refusal naming what lacks).
//!
//! The two objects are the same C source (`collector-ebpf/bpf/sonde.bpf.c`)
//! built with and without `-DSONDE_COMPAT`. Refused: kernels without BTF, the
//! ring buffer (5.8) or bpf_probe_read_user (5.5). Supported (what
//! scripts/kernel-matrix.sh proves): Linux 5.10 and later with BTF; 5.8 and
//! 5.9 have the features and are let through, untested.

use std::path::Path;

use aya::maps::MapType;
use aya::programs::ProgramType;
use aya::sys::{BpfHelper, is_helper_supported, is_map_supported};
use sonde_query::records::ProbeStatusRow;

/// Overrides the probed choice of object (`full` or `compat`): to run the
/// compat object on a new kernel (tests), or to diagnose a probe's verdict.
pub const VARIANT_ENV: &str = "SONDE_BPF_VARIANT";

/// A kernel capability the BPF programs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Kernel BTF: CO-RE relocations of the kernel structs the programs read.
    Btf,
    /// `BPF_MAP_TYPE_RINGBUF`: how every event reaches userspace.
    RingBuffer,
    /// `bpf_probe_read_user`: copying payloads out of the process.
    ProbeReadUser,
    /// Atomic fetch-and-add (`BPF_ATOMIC | BPF_FETCH`): stream positions.
    AtomicFetch,
    /// `bpf_loop`: the payload copy loop.
    BpfLoop,
}

impl Feature {
    pub const ALL: [Feature; 5] = [
        Feature::Btf,
        Feature::RingBuffer,
        Feature::ProbeReadUser,
        Feature::AtomicFetch,
        Feature::BpfLoop,
    ];

    /// The name in `probe_status.probe`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Btf => "btf",
            Feature::RingBuffer => "ring_buffer",
            Feature::ProbeReadUser => "probe_read_user",
            Feature::AtomicFetch => "atomic_fetch",
            Feature::BpfLoop => "bpf_loop",
        }
    }

    /// What it is and since when the kernel has it.
    pub fn description(self) -> &'static str {
        match self {
            Feature::Btf => "kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF=y)",
            Feature::RingBuffer => "the BPF ring buffer (Linux 5.8)",
            Feature::ProbeReadUser => "the bpf_probe_read_user helper (Linux 5.5)",
            Feature::AtomicFetch => "BPF atomic fetch-and-add (Linux 5.12)",
            Feature::BpfLoop => "the bpf_loop helper (Linux 5.17)",
        }
    }

    /// Without it the agent cannot run at all.
    pub fn required(self) -> bool {
        matches!(
            self,
            Feature::Btf | Feature::RingBuffer | Feature::ProbeReadUser
        )
    }

    /// What changes without it (optional features only).
    pub fn effect_when_missing(self) -> &'static str {
        match self {
            Feature::AtomicFetch => {
                "stream positions are read, then added to: two calls racing on one socket may \
                 overlap (the overlap is dropped and counted in stream_duplicate_bytes)"
            }
            Feature::BpfLoop => {
                "payloads are copied by a bounded loop (same limits, longer verification at load)"
            }
            Feature::Btf | Feature::RingBuffer | Feature::ProbeReadUser => "the agent cannot run",
        }
    }
}

/// Which of the two compiled BPF objects to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `sonde.bpf.o`: bpf_loop and atomic fetch-and-add.
    Full,
    /// `sonde-compat.bpf.o`: neither (Linux 5.8 to 5.16).
    Compat,
}

impl Variant {
    pub fn object(self) -> &'static [u8] {
        match self {
            Variant::Full => sonde_ebpf::BPF_OBJECT,
            Variant::Compat => sonde_ebpf::BPF_OBJECT_COMPAT,
        }
    }

    /// Whether the object stashes the arguments of the calls that receive
    /// on entry (and so takes seeds for them); the default object's exits
    /// read them from the saved registers instead.
    pub fn has_ingress_enters(self) -> bool {
        self == Variant::Compat
    }

    /// The object's tracepoint programs: (program name, category, tracepoint).
    pub fn tracepoints(
        self,
    ) -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
        sonde_ebpf::TRACEPOINTS
            .iter()
            .filter(move |(program, _, _)| {
                self.has_ingress_enters() || !sonde_ebpf::COMPAT_ONLY_TRACEPOINTS.contains(program)
            })
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Variant::Full => "sonde.bpf.o",
            Variant::Compat => "sonde-compat.bpf.o",
        }
    }

    fn from_name(name: &str) -> Option<Variant> {
        match name {
            "full" => Some(Variant::Full),
            "compat" => Some(Variant::Compat),
            _ => None,
        }
    }
}

/// What the probes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFeatures {
    /// `uname -r`.
    pub release: String,
    /// The features the kernel lacks, in [`Feature::ALL`] order.
    pub missing: Vec<Feature>,
}

/// The kernel is below the supported minimum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "kernel not supported: Linux {release} lacks {}; Sonde supports Linux >= 5.10 with BTF (CONFIG_DEBUG_INFO_BTF=y)",
    describe(.missing)
)]
pub struct Unsupported {
    pub release: String,
    pub missing: Vec<Feature>,
}

fn describe(features: &[Feature]) -> String {
    features
        .iter()
        .map(|f| f.description())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// How the agent will run on this kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPlan {
    pub features: KernelFeatures,
    pub variant: Variant,
    /// Set when [`VARIANT_ENV`] chose the variant instead of the probes.
    pub forced: bool,
}

impl KernelFeatures {
    /// Probes the running kernel (loads and unloads tiny BPF programs and
    /// maps: needs the BPF privileges the agent has anyway).
    pub fn probe() -> KernelFeatures {
        let release = kernel_release();
        let missing = Feature::ALL
            .into_iter()
            .filter(|&feature| !probe_one(feature))
            .collect();
        KernelFeatures { release, missing }
    }

    pub fn has(&self, feature: Feature) -> bool {
        !self.missing.contains(&feature)
    }

    /// The object to load, or why this kernel cannot run the agent.
    /// `forced`: the value of [`VARIANT_ENV`], if set.
    pub fn plan(self, forced: Option<&str>) -> Result<KernelPlan, PlanError> {
        let required: Vec<Feature> = self
            .missing
            .iter()
            .copied()
            .filter(|f| f.required())
            .collect();
        if !required.is_empty() {
            return Err(PlanError::Unsupported(Unsupported {
                release: self.release,
                missing: required,
            }));
        }
        if let Some(name) = forced {
            let variant = Variant::from_name(name).ok_or_else(|| PlanError::BadOverride {
                value: name.to_string(),
            })?;
            return Ok(KernelPlan {
                features: self,
                variant,
                forced: true,
            });
        }
        let variant = if self.has(Feature::BpfLoop) && self.has(Feature::AtomicFetch) {
            Variant::Full
        } else {
            Variant::Compat
        };
        Ok(KernelPlan {
            features: self,
            variant,
            forced: false,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    #[error("{VARIANT_ENV}={value:?}: expected `full` or `compat`")]
    BadOverride { value: String },
}

impl KernelPlan {
    /// One line per degradation, for `/readyz` and the log: each missing
    /// optional feature and what it changes. Empty on a kernel with everything.
    pub fn degraded(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .features
            .missing
            .iter()
            .map(|f| format!("no {}: {}", f.name(), f.effect_when_missing()))
            .collect();
        if self.forced {
            lines.push(format!(
                "{} loaded because {VARIANT_ENV} says so",
                self.variant.file_name()
            ));
        }
        lines
    }

    /// `probe_status` rows (kind `kernel`): one per feature (`available` or
    /// `missing`, with its effect) and one for the object loaded.
    pub fn status_rows(&self, time_ns: i64) -> Vec<ProbeStatusRow> {
        let row = |probe: &str, status: &str, detail: String| ProbeStatusRow {
            time_ns,
            kind: "kernel".into(),
            probe: probe.into(),
            target: self.features.release.clone(),
            pid: 0,
            status: status.into(),
            detail,
        };
        let mut rows: Vec<ProbeStatusRow> = Feature::ALL
            .into_iter()
            .map(|f| {
                if self.features.has(f) {
                    row(f.name(), "available", f.description().to_string())
                } else {
                    row(
                        f.name(),
                        "missing",
                        format!("{}: {}", f.description(), f.effect_when_missing()),
                    )
                }
            })
            .collect();
        let why = if self.forced {
            format!("chosen by {VARIANT_ENV}")
        } else {
            match self.variant {
                Variant::Full => "the kernel has bpf_loop and atomic fetch-and-add".to_string(),
                Variant::Compat => "the kernel lacks bpf_loop or atomic fetch-and-add".to_string(),
            }
        };
        rows.push(row(
            "bpf_object",
            "loaded",
            format!("{}: {why}", self.variant.file_name()),
        ));
        rows
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// True if the kernel has `feature`. A probe that cannot decide (an
/// unexpected error) counts as missing, and says why in the log.
fn probe_one(feature: Feature) -> bool {
    let result = match feature {
        Feature::Btf => return Path::new("/sys/kernel/btf/vmlinux").exists(),
        Feature::RingBuffer => is_map_supported(MapType::RingBuf).map_err(|e| e.to_string()),
        Feature::ProbeReadUser => helper(BpfHelper::BPF_FUNC_probe_read_user),
        Feature::BpfLoop => helper(BpfHelper::BPF_FUNC_loop),
        Feature::AtomicFetch => atomic_fetch_supported().map_err(|e| e.to_string()),
    };
    result.unwrap_or_else(|err| {
        tracing::warn!(feature = feature.name(), %err, "kernel feature probe failed; assuming missing");
        false
    })
}

fn helper(helper: BpfHelper) -> Result<bool, String> {
    is_helper_supported(ProgramType::TracePoint, helper).map_err(|e| e.to_string())
}

/// Loads a four-instruction program with an atomic fetch-and-add on the stack
/// (aya has no probe for instruction classes). Kernels before 5.12 reject the
/// instruction with EINVAL ("BPF_STX uses reserved fields").
fn atomic_fetch_supported() -> std::io::Result<bool> {
    /// struct bpf_insn
    #[repr(C)]
    struct Insn {
        code: u8,
        regs: u8, // dst in the low nibble, src in the high one
        off: i16,
        imm: i32,
    }
    /// The BPF_PROG_LOAD part of union bpf_attr; the kernel zero-fills the rest.
    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
    }
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
    const MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
    const STX_DW: u8 = 0x7b; // BPF_STX | BPF_MEM | BPF_DW
    const ATOMIC_DW: u8 = 0xdb; // BPF_STX | BPF_ATOMIC | BPF_DW
    const FETCH_ADD: i32 = 0x01; // BPF_ADD | BPF_FETCH
    const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT
    let insn = |code, dst: u8, src: u8, off, imm| Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    };
    let program = [
        insn(MOV64_IMM, 1, 0, 0, 0),           // r1 = 0
        insn(STX_DW, 10, 1, -8, 0),            // *(u64 *)(r10 - 8) = r1
        insn(MOV64_IMM, 1, 0, 0, 1),           // r1 = 1
        insn(ATOMIC_DW, 10, 1, -8, FETCH_ADD), // r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)
        insn(MOV64_IMM, 0, 0, 0, 0),           // r0 = 0
        insn(EXIT, 0, 0, 0, 0),
    ];
    let license = c"GPL";
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
    };
    // SAFETY: attr points to a valid, initialised BPF_PROG_LOAD attribute whose
    // pointers (instructions, license) outlive the call; the size is its own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoad,
            std::mem::size_of::<ProgLoad>(),
        )
    };
    if fd >= 0 {
        // SAFETY: fd is the program the kernel just returned; closed once.
        unsafe { libc::close(fd as libc::c_int) };
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) => Ok(false),
        _ => Err(err),
    }
}

/// The kernel's plan from [`VARIANT_ENV`] and the probes.
pub fn plan_for_this_kernel() -> Result<KernelPlan, PlanError> {
    let forced = std::env::var(VARIANT_ENV).ok().filter(|v| !v.is_empty());
    KernelFeatures::probe().plan(forced.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(release: &str, missing: &[Feature]) -> KernelFeatures {
        KernelFeatures {
            release: release.into(),
            missing: missing.to_vec(),
        }
    }

    #[test]
    fn a_kernel_with_everything_loads_the_full_object_and_degrades_nothing() {
        let plan = kernel("6.12.117+deb12-amd64", &[]).plan(None).unwrap();
        assert_eq!(plan.variant, Variant::Full);
        assert!(plan.degraded().is_empty());
        let rows = plan.status_rows(7);
        let summary: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.probe.as_str(), r.status.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("btf", "available"),
                ("ring_buffer", "available"),
                ("probe_read_user", "available"),
                ("atomic_fetch", "available"),
                ("bpf_loop", "available"),
                ("bpf_object", "loaded"),
            ]
        );
        assert!(
            rows.iter().all(|r| r.kind == "kernel"
                && r.target == "6.12.117+deb12-amd64"
                && r.time_ns == 7)
        );
        assert_eq!(
            rows[5].detail,
            "sonde.bpf.o: the kernel has bpf_loop and atomic fetch-and-add"
        );
    }

    #[test]
    fn a_kernel_before_5_17_loads_the_compat_object_and_says_what_is_degraded() {
        // 5.10: neither bpf_loop nor atomic fetch.
        let plan = kernel("5.10.0-46-amd64", &[Feature::AtomicFetch, Feature::BpfLoop])
            .plan(None)
            .unwrap();
        assert_eq!(plan.variant, Variant::Compat);
        let degraded = plan.degraded();
        assert_eq!(degraded.len(), 2);
        assert!(degraded[0].starts_with("no atomic_fetch: "), "{degraded:?}");
        assert!(degraded[1].starts_with("no bpf_loop: "), "{degraded:?}");
        let rows = plan.status_rows(0);
        assert_eq!(rows[3].status, "missing");
        assert_eq!(rows[4].status, "missing");
        assert_eq!(
            rows[5].detail,
            "sonde-compat.bpf.o: the kernel lacks bpf_loop or atomic fetch-and-add"
        );
        // 5.12 to 5.16: atomics but no bpf_loop.
        let plan = kernel("5.15.0", &[Feature::BpfLoop]).plan(None).unwrap();
        assert_eq!(plan.variant, Variant::Compat);
        assert_eq!(plan.degraded().len(), 1);
    }

    #[test]
    fn a_kernel_below_the_minimum_is_refused_naming_what_it_lacks() {
        let err = kernel(
            "5.4.0-150-generic",
            &[Feature::RingBuffer, Feature::AtomicFetch, Feature::BpfLoop],
        )
        .plan(None)
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel not supported: Linux 5.4.0-150-generic lacks the BPF ring buffer (Linux 5.8); \
             Sonde supports Linux >= 5.10 with BTF (CONFIG_DEBUG_INFO_BTF=y)"
        );
        let err = kernel("6.1.0", &[Feature::Btf, Feature::ProbeReadUser])
            .plan(Some("full"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel not supported: Linux 6.1.0 lacks kernel BTF (/sys/kernel/btf/vmlinux, \
             CONFIG_DEBUG_INFO_BTF=y) and the bpf_probe_read_user helper (Linux 5.5); \
             Sonde supports Linux >= 5.10 with BTF (CONFIG_DEBUG_INFO_BTF=y)"
        );
    }

    #[test]
    fn only_the_compat_object_stashes_what_is_received_on_entry() {
        let names = |variant: Variant| variant.tracepoints().map(|t| t.0).collect::<Vec<_>>();
        let full = names(Variant::Full);
        let compat = names(Variant::Compat);
        assert_eq!(compat.len(), sonde_ebpf::TRACEPOINTS.len());
        assert_eq!(full.len(), compat.len() - 5);
        for program in ["sys_exit_read", "sys_enter_write", "sys_exit_recvmmsg"] {
            assert!(full.contains(&program), "{program}");
        }
        for program in sonde_ebpf::COMPAT_ONLY_TRACEPOINTS {
            assert!(
                !full.contains(program) && compat.contains(program),
                "{program}"
            );
        }
    }

    #[test]
    fn the_override_chooses_the_object_and_is_reported() {
        let plan = kernel("6.18.0", &[]).plan(Some("compat")).unwrap();
        assert_eq!(plan.variant, Variant::Compat);
        assert!(plan.forced);
        assert_eq!(
            plan.degraded(),
            ["sonde-compat.bpf.o loaded because SONDE_BPF_VARIANT says so"]
        );
        assert_eq!(
            plan.status_rows(0)[5].detail,
            "sonde-compat.bpf.o: chosen by SONDE_BPF_VARIANT"
        );
        let err = kernel("6.18.0", &[]).plan(Some("fast")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "SONDE_BPF_VARIANT=\"fast\": expected `full` or `compat`"
        );
    }

    #[test]
    fn every_feature_is_described_and_only_optional_ones_degrade() {
        for f in Feature::ALL {
            assert!(!f.name().is_empty() && !f.description().is_empty());
        }
        let required: Vec<Feature> = Feature::ALL.into_iter().filter(|f| f.required()).collect();
        assert_eq!(
            required,
            [Feature::Btf, Feature::RingBuffer, Feature::ProbeReadUser]
        );
    }

    /// On the machine running the tests: every feature its version must have
    /// is found (a kernel may have more: vendors backport). The matrix
    /// (scripts/kernel-matrix.sh) checks what older kernels lack. Skipped
    /// without the BPF privileges probing needs.
    #[test]
    fn probing_this_kernel_finds_what_its_version_has() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: probing kernel features needs root");
            return;
        }
        let features = KernelFeatures::probe();
        let (major, minor) = version_of(&features.release);
        for (feature, since) in [
            (Feature::RingBuffer, (5, 8)),
            (Feature::ProbeReadUser, (5, 5)),
            (Feature::AtomicFetch, (5, 12)),
            (Feature::BpfLoop, (5, 17)),
        ] {
            if (major, minor) >= since {
                assert!(features.has(feature), "{feature:?} not found: {features:?}");
            }
        }
    }

    fn version_of(release: &str) -> (u32, u32) {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (major, minor)
    }
}
