//! Compiles the C BPF programs with clang into `$OUT_DIR/sonde.bpf.o`.
//!
//! The programs are C rather than Rust (aya-ebpf) because building BPF from Rust
//! needs the rust-src component, which these machines cannot install. clang gets
//! `-g` because aya reads the `.maps` definitions from BTF.

use std::env;
use std::path::PathBuf;
use std::process::Command;

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
    let object = out_dir.join("sonde.bpf.o");
    let output = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-D__TARGET_ARCH_{target_arch}"))
        .arg("-I")
        .arg(&bpf_dir)
        .arg("-c")
        .arg(bpf_dir.join("sonde.bpf.c"))
        .arg("-o")
        .arg(&object)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "sonde-ebpf: cannot run `{clang}` ({err}). Install clang and libbpf-dev \
                 (Debian/Ubuntu: apt-get install clang libbpf-dev) or set SONDE_CLANG."
            )
        });
    if !output.status.success() {
        panic!(
            "sonde-ebpf: clang failed to compile bpf/sonde.bpf.c:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
