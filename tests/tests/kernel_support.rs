//! End to end: the agent's kernel support on this machine's kernel. The
//! compat BPF object (what kernels 5.8 to 5.16 load) captures the same rows
//! as the full one, and a kernel below the minimum is refused with a message
//! naming what it lacks. Older kernels themselves are checked under qemu by
//! scripts/kernel-matrix.sh.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sonde_e2e::{Agent, curl, ebpf_available, free_port, sonde_binary};

const WAIT: Duration = Duration::from_secs(20);

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// 20 000 bytes whose every 10-byte line says where it is: a chunk copied to
/// the wrong place, or lost, changes the text.
fn numbered_body() -> String {
    (0..2000).map(|i| format!("{i:09}\n")).collect()
}

#[test]
fn the_compat_object_captures_multi_chunk_payloads_on_this_kernel() {
    if !ebpf_available() {
        return;
    }
    let body = numbered_body();
    // The whole body is kept, so the table shows every copied byte.
    let agent = Agent::start_with_env(
        "compat",
        &["--body-prefix-bytes", "20000"],
        &[("SONDE_BPF_VARIANT", "compat")],
    );
    let port = free_port();
    // python's http.server writes the file in one send (3 kernel chunks of
    // 8 KiB); curl reads it in 16 KiB reads (2 chunks each).
    let _server = sonde_e2e::servers::python_http_server("compat", port, &body);
    assert_eq!(curl(&[&format!("http://127.0.0.1:{port}/hello.txt")]), body);

    let sql = format!(
        "SELECT trace_role, req_path, resp_status, resp_body_size, resp_body FROM http_events \
         WHERE (trace_role = 'client' AND remote_port = {port}) \
         OR (trace_role = 'server' AND local_port = {port}) ORDER BY trace_role"
    );
    let rows = agent.wait_rows(&sql, 2, WAIT);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, role) in rows.iter().zip(["client", "server"]) {
        assert_eq!(s(&row[0]), role);
        assert_eq!(s(&row[1]), "/hello.txt");
        assert_eq!(row[2].as_i64(), Some(200));
        assert_eq!(row[3].as_i64(), Some(20_000));
        assert!(
            s(&row[4]) == body,
            "{role}: the body differs from what was sent"
        );
    }

    let object = agent.query(
        "SELECT status, detail FROM probe_status WHERE kind = 'kernel' AND probe = 'bpf_object'",
    );
    assert_eq!(
        object,
        [[
            Value::from("loaded"),
            Value::from("sonde-compat.bpf.o: chosen by SONDE_BPF_VARIANT")
        ]]
    );
    let attached = agent.query(
        "SELECT count(*) FROM probe_status WHERE kind = 'tracepoint' AND status = 'attached'",
    );
    assert_eq!(attached[0][0].as_i64(), Some(32), "{attached:?}");
    let readyz = reqwest::blocking::get(format!("{}/readyz", agent.url))
        .and_then(|r| r.text())
        .expect("readyz");
    assert_eq!(
        readyz,
        "ready; degraded: sonde-compat.bpf.o loaded because SONDE_BPF_VARIANT says so"
    );
}

#[test]
fn a_kernel_without_btf_is_refused_naming_what_it_lacks() {
    if !ebpf_available() {
        return;
    }
    // The agent in a mount namespace of its own where /sys/kernel/btf is an
    // empty directory: what it sees on a kernel built without BTF.
    let port = free_port();
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs none /sys/kernel/btf && exec \"$0\" agent --listen \"$1\"")
        .arg(sonde_binary())
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run unshare");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the agent ran without BTF:\n{stderr}"
    );
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let expected = format!(
        "sonde: kernel not supported: Linux {} lacks kernel BTF (/sys/kernel/btf/vmlinux, \
         CONFIG_DEBUG_INFO_BTF=y); Sonde supports Linux >= 5.10 with BTF (CONFIG_DEBUG_INFO_BTF=y)\n",
        release.trim()
    );
    assert!(stderr.ends_with(&expected), "stderr:\n{stderr}");
}
