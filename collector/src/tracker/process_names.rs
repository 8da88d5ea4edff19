//! Process names of connections whose open event was lost (the kernel sends
//! the name with the open): read from /proc once per process, not once per
//! connection, since the capture thread must not do file I/O per event.

use std::collections::HashMap;

use sonde_ebpf::events::ConnId;

/// Processes whose name is remembered; beyond, the cache starts over.
const MAX_PROCESSES: usize = 16_384;

#[derive(Debug, Default)]
pub(super) struct ProcessNames {
    /// (pid, process start) → its name ("" when it could not be read).
    names: HashMap<(u32, u64), String>,
    /// /proc/PID/comm files read so far.
    reads: u64,
}

impl ProcessNames {
    pub(super) fn comm(&mut self, id: &ConnId) -> String {
        let key = (id.tgid, id.proc_start_ns);
        if let Some(name) = self.names.get(&key) {
            return name.clone();
        }
        if self.names.len() >= MAX_PROCESSES {
            self.names.clear();
        }
        self.reads += 1;
        let name = std::fs::read_to_string(format!("/proc/{}/comm", id.tgid))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default();
        self.names.insert(key, name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_is_read_once() {
        let mut names = ProcessNames::default();
        let me = ConnId {
            tgid: std::process::id(),
            fd: 3,
            proc_start_ns: 1,
            generation: 1,
        };
        let expected = std::fs::read_to_string("/proc/self/comm").unwrap();
        for fd in 3..10 {
            assert_eq!(names.comm(&ConnId { fd, ..me }), expected.trim_end());
        }
        assert_eq!(names.reads, 1);
        let gone = ConnId {
            tgid: u32::MAX,
            ..me
        };
        assert_eq!(names.comm(&gone), "");
        assert_eq!(names.comm(&gone), "");
        assert_eq!(names.reads, 2);
    }
}
