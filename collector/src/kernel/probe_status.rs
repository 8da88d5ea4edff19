//! `probe_status` rows for the tracepoint programs: what is (and is not)
//! instrumented is queryable. (The TLS attacher adds its own rows.)

use sonde_query::records::{ProbeStatusRow, probe_status_batch};
use sonde_query::schema::PROBE_STATUS;
use sonde_query::store::TableStore;

use super::features::KernelPlan;
use crate::clock::Clock;

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

/// `probe_status` rows for the kernel: each feature probed at start
/// (available or missing, and what its absence changes) and the BPF object
/// chosen.
pub fn report_kernel(store: &TableStore, plan: &KernelPlan) {
    let now = Clock::sample().to_unix_ns(Clock::monotonic_now());
    if let Err(err) = store.append(PROBE_STATUS, probe_status_batch(&plan.status_rows(now))) {
        tracing::error!(%err, "probe_status batch refused by the store");
    }
}
