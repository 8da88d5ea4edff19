//! Compiles the C BPF programs with clang, twice: `$OUT_DIR/sonde.bpf.o` for
//! kernels with bpf_loop and atomic fetch-and-add (Linux >= 5.17), and
//! `$OUT_DIR/sonde-compat.bpf.o` (`-DSONDE_COMPAT`) for older ones. The agent
//! probes the kernel and loads one of them (see `sonde.bpf.c`).
//!
//! The programs are C rather than Rust (aya-ebpf) because building BPF from Rust
//! needs the rust-src component, which these machines cannot install. clang gets
//! `-g` because aya reads the `.maps` definitions from BTF.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (object file, extra clang arguments)
const OBJECTS: &[(&str, &[&str])] = &[
    ("sonde.bpf.o", &[]),
    ("sonde-compat.bpf.o", &["-DSONDE_COMPAT"]),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let bpf_dir = manifest_dir.join("bpf");
    for file in ["sonde.bpf.c", "sonde_events.h", "vmlinux.h"] {
        println!("cargo:rerun-if-changed={}", bpf_dir.join(file).display());
    }
    println!("cargo:rerun-if-env-changed=SONDE_CLANG");

    let target_arch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86",
        Ok(other) => panic!(
            "sonde-ebpf: no vmlinux.h for target arch {other}; only x86_64 is supported for now"
        ),
        Err(_) => panic!("CARGO_CFG_TARGET_ARCH is not set"),
    };
    let clang = env::var("SONDE_CLANG").unwrap_or_else(|_| "clang".to_string());
    for (object, defines) in OBJECTS {
        compile(
            &clang,
            target_arch,
            &bpf_dir,
            &out_dir.join(object),
            defines,
        );
    }
}

fn compile(clang: &str, target_arch: &str, bpf_dir: &Path, object: &Path, defines: &[&str]) {
    let output = Command::new(clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-D__TARGET_ARCH_{target_arch}"))
        .args(defines)
        .arg("-I")
        .arg(bpf_dir)
        .arg("-c")
        .arg(bpf_dir.join("sonde.bpf.c"))
        .arg("-o")
        .arg(object)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "sonde-ebpf: cannot run `{clang}` ({err}). Install clang and libbpf-dev \
                 (Debian/Ubuntu: apt-get install clang libbpf-dev) or set SONDE_CLANG."
            )
        });
    if !output.status.success() {
        panic!(
            "sonde-ebpf: clang failed to compile bpf/sonde.bpf.c {defines:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
