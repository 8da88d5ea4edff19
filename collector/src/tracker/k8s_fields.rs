//! Kubernetes columns of a connection: the traced process's pod (from its
//! cgroup's container id) and the peer's pod and service (from its address).
//! Looked up once per connection, when it opens; cached per process.

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
    /// (pid, process start) → its pod, if any.
    processes: HashMap<(u32, u64), Option<PodMeta>>,
}

impl K8sEnricher {
    pub fn new(resolver: Arc<MetadataResolver>, proc_root: PathBuf) -> Self {
        Self {
            resolver,
            proc_root,
            processes: HashMap::new(),
        }
    }

    fn process_pod(&mut self, pid: u32, proc_start_ns: u64) -> Option<PodMeta> {
        let key = (pid, proc_start_ns);
        if let Some(cached) = self.processes.get(&key) {
            // A process not found before the resolver synced may be found now.
            if cached.is_some() || !self.resolver.is_synced() {
                return cached.clone();
            }
        }
        let pod = container_id_of_pid(&self.proc_root, pid)
            .and_then(|id| self.resolver.pod_for_container(&id));
        if self.processes.len() >= MAX_CACHED_PROCESSES {
            self.processes.clear();
        }
        self.processes.insert(key, pod.clone());
        pod
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
