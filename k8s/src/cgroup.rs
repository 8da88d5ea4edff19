//! Container ids from `/proc/<pid>/cgroup`.
//!
//! Every container runtime puts a container's processes in a cgroup whose
//! last path component carries the 64-hex-digit container id, in one of a few
//! spellings that depend on the runtime and on the cgroup driver:
//!
//! | runtime / driver            | component                          |
//! |-----------------------------|------------------------------------|
//! | containerd, systemd driver  | `cri-containerd-<id>.scope`        |
//! | CRI-O, systemd driver       | `crio-<id>.scope`                  |
//! | Docker, systemd driver      | `docker-<id>.scope`                |
//! | Podman, systemd driver      | `libpod-<id>.scope`                |
//! | any runtime, cgroupfs driver| `<id>` (`/kubepods/<qos>/pod<uid>/<id>`, `/docker/<id>`) |
//!
//! The path is scanned from the leaf up, so a process in a sub-cgroup of its
//! container (`.../cri-containerd-<id>.scope/init.scope`) still resolves, and
//! in nested setups (kind: pods inside a Docker container) the innermost
//! container wins. Paths seen from another cgroup namespace start with `/..`
//! components; those are skipped like any other non-matching component.

use std::io::Read;
use std::path::Path;

/// `/proc/<pid>/cgroup` is a few hundred bytes; the cap only guards against a
/// pathological file (a bind mount, a fuzzed proc root in tests).
const MAX_CGROUP_FILE_BYTES: u64 = 64 * 1024;

/// Runtime prefixes of a container's systemd scope name.
const SCOPE_PREFIXES: [&str; 4] = ["cri-containerd-", "crio-", "docker-", "libpod-"];

/// The container id (64 lowercase hex digits) named in the contents of a
/// `/proc/<pid>/cgroup` file, cgroup v1 or v2, or `None` when the process is
/// not in a container (or in one this parser does not know). Never panics.
pub fn container_id_from_cgroup(contents: &str) -> Option<String> {
    contents.lines().find_map(|line| {
        // "hierarchy-id:controllers:path"; the path is everything after the
        // second ':' (cgroup v2's line is "0::path").
        let mut fields = line.splitn(3, ':');
        let (_hierarchy, _controllers) = (fields.next()?, fields.next()?);
        let path = fields.next()?;
        container_id_from_path(path.trim_end())
    })
}

/// [`container_id_from_cgroup`] of `<proc_root>/<pid>/cgroup`. `None` when the
/// file cannot be read (the process exited, no permission) or names no
/// container. `proc_root` is the host's `/proc` as mounted in the agent's
/// container (the DaemonSet mounts it at `/host/proc`).
pub fn container_id_of_pid(proc_root: &Path, pid: u32) -> Option<String> {
    let path = proc_root.join(pid.to_string()).join("cgroup");
    let file = std::fs::File::open(path).ok()?;
    let mut contents = String::new();
    file.take(MAX_CGROUP_FILE_BYTES)
        .read_to_string(&mut contents)
        .ok()?;
    container_id_from_cgroup(&contents)
}

fn container_id_from_path(path: &str) -> Option<String> {
    path.rsplit('/').find_map(id_from_component)
}

fn id_from_component(component: &str) -> Option<String> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    // conmon (CRI-O, Podman) is the runtime's monitor of a container, not a
    // process inside it: attributing it to the container would be wrong.
    if name.contains("-conmon-") || name.starts_with("conmon-") {
        return None;
    }
    let id = SCOPE_PREFIXES
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .unwrap_or(name);
    is_container_id(id).then(|| id.to_owned())
}

/// Exactly 64 lowercase hex digits: what containerd, CRI-O and Docker use.
/// Requiring the full length keeps pod uids (36 chars with dashes), systemd
/// unit names and other hex-looking components from matching.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Normalises a container id as Kubernetes reports it in a pod's status
/// (`containerd://<id>`, `cri-o://<id>`, `docker://<id>`) or as this module
/// returns it (`<id>`) to the bare id.
pub(crate) fn bare_container_id(id: &str) -> &str {
    match id.split_once("://") {
        Some((_, rest)) => rest,
        None => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8f6b5a1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90";
    const OUTER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// (case, /proc/<pid>/cgroup contents, expected id)
    fn cases() -> Vec<(&'static str, String, Option<&'static str>)> {
        vec![
            (
                "v2 containerd systemd driver",
                format!(
                    "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6b1c7f0e_4c5d_4e0a_9d3b_2f1a0e9c8b7d.slice/cri-containerd-{ID}.scope\n"
                ),
                Some(ID),
            ),
            (
                "v2 containerd cgroupfs driver",
                format!("0::/kubepods/besteffort/pod6b1c7f0e-4c5d-4e0a-9d3b-2f1a0e9c8b7d/{ID}\n"),
                Some(ID),
            ),
            (
                "v2 CRI-O systemd driver",
                format!(
                    "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6b1c7f0e_4c5d_4e0a_9d3b_2f1a0e9c8b7d.slice/crio-{ID}.scope\n"
                ),
                Some(ID),
            ),
            (
                "v2 CRI-O conmon is not the container",
                format!(
                    "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6b1c7f0e_4c5d_4e0a_9d3b_2f1a0e9c8b7d.slice/crio-conmon-{ID}.scope\n"
                ),
                None,
            ),
            (
                "v2 Docker systemd driver",
                format!("0::/system.slice/docker-{ID}.scope\n"),
                Some(ID),
            ),
            (
                "v2 Podman",
                format!("0::/machine.slice/libpod-{ID}.scope/container\n"),
                Some(ID),
            ),
            (
                "v2 sub-cgroup inside the container",
                format!("0::/system.slice/docker-{ID}.scope/init.scope\n"),
                Some(ID),
            ),
            (
                "v2 read from another cgroup namespace",
                format!(
                    "0::/../../kubepods-besteffort.slice/kubepods-besteffort-pod6b1c7f0e_4c5d_4e0a_9d3b_2f1a0e9c8b7d.slice/cri-containerd-{ID}.scope\n"
                ),
                Some(ID),
            ),
            (
                "v2 kind: pod inside a Docker container, innermost wins",
                format!(
                    "0::/system.slice/docker-{OUTER}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod6b1c7f0e_4c5d_4e0a_9d3b_2f1a0e9c8b7d.slice/cri-containerd-{ID}.scope\n"
                ),
                Some(ID),
            ),
            (
                "v1 containerd cgroupfs driver (k3s, GKE)",
                format!(
                    "12:pids:/kubepods/burstable/pod6b1c7f0e-4c5d-4e0a-9d3b-2f1a0e9c8b7d/{ID}\n\
                     11:memory:/kubepods/burstable/pod6b1c7f0e-4c5d-4e0a-9d3b-2f1a0e9c8b7d/{ID}\n\
                     10:cpu,cpuacct:/kubepods/burstable/pod6b1c7f0e-4c5d-4e0a-9d3b-2f1a0e9c8b7d/{ID}\n\
                     1:name=systemd:/kubepods/burstable/pod6b1c7f0e-4c5d-4e0a-9d3b-2f1a0e9c8b7d/{ID}\n"
                ),
                Some(ID),
            ),
            (
                "v1 containerd systemd driver, first lines at the root",
                format!(
                    "12:rdma:/\n\
                     11:hugetlb:/kubepods.slice/kubepods-pod6b1c7f0e_4c5d_4e0a_9d3b_2f1a0e9c8b7d.slice/cri-containerd-{ID}.scope\n\
                     1:name=systemd:/kubepods.slice/kubepods-pod6b1c7f0e_4c5d_4e0a_9d3b_2f1a0e9c8b7d.slice/cri-containerd-{ID}.scope\n\
                     0::/\n"
                ),
                Some(ID),
            ),
            (
                "v1 Docker cgroupfs driver",
                format!(
                    "13:name=systemd:/docker/{ID}\n\
                     4:memory:/docker/{ID}\n\
                     3:cpu,cpuacct:/docker/{ID}\n"
                ),
                Some(ID),
            ),
            (
                "v1 CRI-O systemd driver",
                format!(
                    "9:devices:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6b1c7f0e_4c5d_4e0a_9d3b_2f1a0e9c8b7d.slice/crio-{ID}.scope\n"
                ),
                Some(ID),
            ),
            (
                "v2 host process in a systemd service",
                "0::/system.slice/nginx.service\n".to_string(),
                None,
            ),
            (
                "v2 host process in a user session",
                "0::/user.slice/user-1000.slice/session-2.scope\n".to_string(),
                None,
            ),
            (
                "v1 host process",
                "12:pids:/user.slice/user-0.slice/session-1.scope\n\
                 1:name=systemd:/user.slice/user-0.slice/session-1.scope\n\
                 0::/user.slice/user-0.slice/session-1.scope\n"
                    .to_string(),
                None,
            ),
            (
                "v2 kubepods pod-level cgroup (no container yet)",
                "0::/kubepods.slice/kubepods-pod6b1c7f0e_4c5d_4e0a_9d3b_2f1a0e9c8b7d.slice\n"
                    .to_string(),
                None,
            ),
            ("root cgroup", "0::/\n".to_string(), None),
            ("empty file", String::new(), None),
            (
                "garbage",
                "not a cgroup file\n::::\n:\n0:\n\u{1F980}:x:\u{1F980}\n".to_string(),
                None,
            ),
            (
                "63 hex digits is not an id",
                format!("0::/docker/{}\n", &ID[1..]),
                None,
            ),
            (
                "uppercase hex is not an id",
                format!("0::/docker/{}\n", ID.to_uppercase()),
                None,
            ),
            (
                "CRLF line endings",
                format!("0::/system.slice/docker-{ID}.scope\r\n"),
                Some(ID),
            ),
        ]
    }

    #[test]
    fn container_ids_from_real_format_samples() {
        for (case, contents, expected) in cases() {
            assert_eq!(
                container_id_from_cgroup(&contents).as_deref(),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn no_panic_on_any_prefix_of_the_samples() {
        // Truncated reads (a process exiting mid-read) must not panic, and a
        // prefix that still contains the whole id line still resolves.
        for (_, contents, _) in cases() {
            for end in (0..=contents.len()).filter(|&i| contents.is_char_boundary(i)) {
                let _ = container_id_from_cgroup(&contents[..end]);
            }
        }
    }

    #[test]
    fn reads_the_file_under_a_proc_root() {
        let root = std::env::temp_dir().join(format!("sonde-k8s-proc-{}", std::process::id()));
        let pid_dir = root.join("4242");
        std::fs::create_dir_all(&pid_dir).unwrap();
        std::fs::write(
            pid_dir.join("cgroup"),
            format!("0::/system.slice/docker-{ID}.scope\n"),
        )
        .unwrap();
        assert_eq!(container_id_of_pid(&root, 4242).as_deref(), Some(ID));
        assert_eq!(container_id_of_pid(&root, 4243), None, "missing pid");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn reads_this_process_without_panicking() {
        // Whatever this test runs in (container or not), reading the real
        // /proc must give an id or None, never an error or a panic.
        let id = container_id_of_pid(Path::new("/proc"), std::process::id());
        if let Some(id) = id {
            assert!(is_container_id(&id));
        }
    }

    #[test]
    fn bare_ids_from_pod_status() {
        assert_eq!(bare_container_id(&format!("containerd://{ID}")), ID);
        assert_eq!(bare_container_id(&format!("cri-o://{ID}")), ID);
        assert_eq!(bare_container_id(&format!("docker://{ID}")), ID);
        assert_eq!(bare_container_id(ID), ID);
    }
}
