//! Compiles the C BPF programs with clang, twice: `$OUT_DIR/sonde.bpf.o` for
//! kernels with bpf_loop and atomic fetch-and-add (Linux >= 5.17), and
//! `$OUT_DIR/sonde-compat.bpf.o` (`-DSONDE_COMPAT`) for older ones (the agent
//! probes the kernel and loads one of them, see `sonde.bpf.c`). It also
//! generates `$OUT_DIR/sonde_events.rs` from `bpf/sonde_events.h`: every
//! `enum` value and numeric `#define` as a constant, and the size and field
//! offsets of every struct as the C compiler lays them out (a host program
//! built from the header prints them). `src/events.rs` takes its constants
//! from there and asserts its `#[repr(C)]` mirrors against those offsets, so
//! the two sides cannot drift apart.
//!
//! The programs are C rather than Rust (aya-ebpf) because building BPF from Rust
//! needs the rust-src component, which these machines cannot install. clang gets
//! `-g` because aya reads the `.maps` definitions from BTF.

use std::env;
use std::fmt::Write as _;
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
        run(
            Command::new(&clang)
                .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
                .arg(format!("-D__TARGET_ARCH_{target_arch}"))
                .args(*defines)
                .arg("-I")
                .arg(&bpf_dir)
                .arg("-c")
                .arg(bpf_dir.join("sonde.bpf.c"))
                .arg("-o")
                .arg(out_dir.join(object)),
            &clang,
            &format!("compile bpf/sonde.bpf.c {defines:?}"),
        );
    }

    let header = std::fs::read_to_string(bpf_dir.join("sonde_events.h"))
        .expect("sonde-ebpf: read bpf/sonde_events.h");
    let generated = generate_events_rs(&header, &bpf_dir, &out_dir, &clang);
    std::fs::write(out_dir.join("sonde_events.rs"), generated)
        .expect("sonde-ebpf: write sonde_events.rs");
}

fn run(command: &mut Command, program: &str, what: &str) -> Vec<u8> {
    let output = command.output().unwrap_or_else(|err| {
        panic!(
            "sonde-ebpf: cannot run `{program}` ({err}). Install clang and libbpf-dev \
             (Debian/Ubuntu: apt-get install clang libbpf-dev) or set SONDE_CLANG."
        )
    });
    if !output.status.success() {
        panic!(
            "sonde-ebpf: failed to {what}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.stdout
}

/// The header without comments.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, tail)| tail);
            out.push(' ');
        } else if let Some(after) = rest.strip_prefix("//") {
            rest = after.split_once('\n').map_or("", |(_, tail)| tail);
            out.push('\n');
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// `#define NAME <number>` lines (decimal or hex).
fn defines(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.trim().strip_prefix("#define")?.split_whitespace();
            let name = words.next()?;
            let value = words.next()?;
            let value = match value.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok()?,
                None => value.parse().ok()?,
            };
            Some((name.to_string(), value))
        })
        .collect()
}

/// The bodies of `<keyword> name { ... }` blocks.
fn blocks<'a>(text: &'a str, keyword: &str) -> Vec<(String, &'a str)> {
    let mut out = Vec::new();
    let mut rest = text;
    let opener = format!("{keyword} ");
    while let Some(at) = rest.find(&opener) {
        let after = &rest[at + opener.len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let tail = after[name.len()..].trim_start();
        match (tail.strip_prefix('{'), tail.find('}')) {
            (Some(body), Some(end)) if !name.is_empty() => {
                out.push((name, &body[..end - 1]));
                rest = &tail[end..];
            }
            _ => rest = after,
        }
    }
    out
}

/// Enumerators with their values (implicit values count up from the last).
fn enumerators(body: &str) -> Vec<(String, u64)> {
    let mut next = 0u64;
    body.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (name, value) = match item.split_once('=') {
                Some((name, value)) => {
                    let value = value.trim();
                    let value = match value.strip_prefix("0x") {
                        Some(hex) => u64::from_str_radix(hex, 16),
                        None => value.parse(),
                    }
                    .unwrap_or_else(|_| panic!("sonde-ebpf: enum value `{item}` is not a number"));
                    (name.trim(), value)
                }
                None => (item, next),
            };
            next = value + 1;
            (name.to_string(), value)
        })
        .collect()
}

/// Field names of a struct body (`type name;`, `type name[N];`).
fn fields(body: &str) -> Vec<String> {
    body.split(';')
        .map(str::trim)
        .filter(|decl| !decl.is_empty())
        .map(|decl| {
            let decl = decl.split('[').next().unwrap_or(decl);
            decl.split_whitespace()
                .last()
                .expect("a declaration has a name")
                .to_string()
        })
        .collect()
}

fn generate_events_rs(header: &str, bpf_dir: &Path, out_dir: &Path, clang: &str) -> String {
    let text = strip_comments(header);
    let mut rs =
        String::from("// Generated by collector-ebpf/build.rs from bpf/sonde_events.h.\n\n");
    for (name, value) in defines(&text) {
        let _ = writeln!(rs, "pub const {name}: u64 = {value};");
    }
    for (_, body) in blocks(&text, "enum") {
        for (name, value) in enumerators(body) {
            let _ = writeln!(rs, "pub const {name}: u64 = {value};");
        }
    }

    // The layouts as the C compiler sees them: a host program prints them.
    let structs = blocks(&text, "struct");
    let mut probe = String::from(
        "#include <linux/types.h>\n#include <stddef.h>\n#include <stdio.h>\n#include \"sonde_events.h\"\nint main(void) {\n",
    );
    for (name, body) in &structs {
        let _ = writeln!(
            probe,
            "  printf(\"pub mod {name} {{\\n    pub const SIZE: usize = %zu;\\n\", sizeof(struct {name}));"
        );
        let names = fields(body);
        let _ = writeln!(
            probe,
            "  printf(\"    pub const FIELDS: usize = {};\\n\");",
            names.len()
        );
        for field in names {
            let _ = writeln!(
                probe,
                "  printf(\"    pub const {field}: usize = %zu;\\n\", offsetof(struct {name}, {field}));"
            );
        }
        probe.push_str("  printf(\"}\\n\");\n");
    }
    probe.push_str("  return 0;\n}\n");
    let source = out_dir.join("layout_probe.c");
    let binary = out_dir.join("layout_probe");
    std::fs::write(&source, probe).expect("sonde-ebpf: write layout_probe.c");
    run(
        Command::new(clang)
            .arg("-I")
            .arg(bpf_dir)
            .arg(&source)
            .arg("-o")
            .arg(&binary),
        clang,
        "compile the layout probe of sonde_events.h",
    );
    let layouts = run(
        &mut Command::new(&binary),
        "layout_probe",
        "run the layout probe",
    );
    rs.push_str("\n/// Sizes and field offsets of the header's structs (fields named as in C).\n#[allow(non_camel_case_types, non_upper_case_globals)]\npub mod layout {\n");
    rs.push_str(&String::from_utf8(layouts).expect("layout probe prints UTF-8"));
    rs.push_str("}\n");
    rs
}
