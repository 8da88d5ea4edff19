//! Kubernetes columns of a connection: the traced process's pod (from its
//! cgroup's container id) and the peer's pod and service (from its address).
//! Looked up once per connection, when it opens. The process's cgroup is
//! read from /proc once per process (the capture thread must not do file
//! I/O per connection); the container → pod lookup is in memory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use sonde_k8s::{MetadataResolver, PodMeta, container_id_of_pid};
use sonde_query::records::K8sFields;

/// Processes whose pod is remembered; beyond, the cache starts over.
const MAX_CACHED_PROCESSES: usize = 16_384;

pub struct K8sEnricher {
    resolver: Arc<MetadataResolver>,
    /// The host's /proc (in a pod: the host's /proc mounted at /host/proc).
    proc_root: PathBuf,
    /// (pid, process start) → its container id, if it runs in one.
    processes: HashMap<(u32, u64), Option<String>>,
    /// /proc/PID/cgroup files read so far.
    cgroup_reads: u64,
}

impl K8sEnricher {
    pub fn new(resolver: Arc<MetadataResolver>, proc_root: PathBuf) -> Self {
        Self {
            resolver,
            proc_root,
            processes: HashMap::new(),
            cgroup_reads: 0,
        }
    }

    fn process_pod(&mut self, pid: u32, proc_start_ns: u64) -> Option<PodMeta> {
        let key = (pid, proc_start_ns);
        if !self.processes.contains_key(&key) {
            if self.processes.len() >= MAX_CACHED_PROCESSES {
                self.processes.clear();
            }
            let container = container_id_of_pid(&self.proc_root, pid);
            self.cgroup_reads += 1;
            self.processes.insert(key, container);
        }
        // In memory, and asked each time: a pod listed after the process
        // started (or after the resolver synced) is found then.
        let container = self.processes.get(&key)?.as_ref()?;
        self.resolver.pod_for_container(container)
    }

    pub fn fields(&mut self, pid: u32, proc_start_ns: u64, remote_addr: &str) -> K8sFields {
        let own = self.process_pod(pid, proc_start_ns);
        let remote = self.resolver.pod_for_ip(remote_addr);
        K8sFields {
            pod: own.as_ref().map(|p| p.pod.clone()),
            namespace: own.as_ref().map(|p| p.namespace.clone()),
            container: own.as_ref().and_then(|p| p.container.clone()),
            node: own.as_ref().and_then(|p| p.node.clone()),
            service: own.as_ref().and_then(|p| p.service.clone()),
            remote_pod: remote
                .as_ref()
                .map(|p| format!("{}/{}", p.namespace, p.pod)),
            remote_service: self.resolver.service_for_ip(remote_addr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each process's cgroup is read once, whatever its connections: a
    /// process outside any container (no pod) is not read again per
    /// connection, and removing its /proc entry changes nothing.
    #[tokio::test]
    async fn a_process_cgroup_is_read_once() {
        let proc_root = std::env::temp_dir().join(format!("sonde-proc-{}", std::process::id()));
        let dir = proc_root.join("4242");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup"), "0::/user.slice/session-1.scope\n").unwrap();
        // Never spawned: answers from its (empty) caches, no API calls.
        let resolver = MetadataResolver::connect("http://127.0.0.1:9", None, None, "n1".into())
            .await
            .unwrap();
        let mut enricher = K8sEnricher::new(Arc::new(resolver), proc_root.clone());
        let first = enricher.fields(4242, 7, "10.0.0.1");
        std::fs::remove_dir_all(&proc_root).unwrap();
        for _ in 0..3 {
            assert_eq!(enricher.fields(4242, 7, "10.0.0.1"), first);
        }
        assert_eq!(enricher.cgroup_reads, 1);
        assert_eq!(first.pod, None);
        // Another process (or the same pid restarted) is its own entry.
        enricher.fields(4242, 8, "10.0.0.1");
        assert_eq!(enricher.cgroup_reads, 2);
    }
}
