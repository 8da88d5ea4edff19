//! Who an exchange belongs to: the process of its connection, named by
//! the service naming rules once per connection and shared by all its
//! operations (spans are grouped and RED meters found by it).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sonde_query::records::ConnFields;

/// Who did it: the resource of its spans and metrics.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Process {
    pub service: String,
    pub pid: u32,
    pub comm: String,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub container: Option<String>,
    pub node: Option<String>,
}

/// How processes are named `service.name`.
#[derive(Debug, Clone, Default)]
pub struct ServiceNaming {
    /// Process name → service name, from --service-name.
    pub by_comm: Vec<(String, String)>,
}

impl ServiceNaming {
    fn service(&self, conn: &ConnFields) -> String {
        let comm = conn.comm.as_str();
        if let Some((_, name)) = self.by_comm.iter().find(|(c, _)| c == comm) {
            return name.clone();
        }
        // The Kubernetes service is `namespace/name`; the namespace is its own attribute.
        if let Some(service) = conn.k8s.service.as_deref().filter(|s| !s.is_empty()) {
            return service.rsplit('/').next().unwrap_or(service).to_string();
        }
        if comm.is_empty() {
            "unknown_service".to_string()
        } else {
            comm.to_string()
        }
    }
}

impl Process {
    fn of(conn: &ConnFields, naming: &ServiceNaming) -> Self {
        Process {
            service: naming.service(conn),
            pid: conn.pid,
            comm: conn.comm.clone(),
            pod: conn.k8s.pod.clone(),
            namespace: conn.k8s.namespace.clone(),
            container: conn.k8s.container.clone(),
            // k8s.node.name belongs to pods; every row carries the node it was
            // captured on, also for processes outside Kubernetes.
            node: conn.k8s.pod.as_ref().and(conn.k8s.node.clone()),
        }
    }
}

/// Connections (and then processes) seen before this many are forgotten
/// at once: a cache, so forgetting only costs a rebuild.
const MAX_REMEMBERED_CONNECTIONS: usize = 4096;

/// The process of each connection's rows, named once per connection and
/// shared (one `Arc` per process), so an exchange costs no name copies
/// and equal processes compare by address.
pub struct Processes {
    naming: ServiceNaming,
    /// By the address of the rows' shared connection fields (kept alive
    /// here, so an address is never reused while remembered).
    /// Looked up for every exported row: hashed with foldhash, not SipHash
    /// (the keys are addresses the agent made, not input).
    by_conn: HashMap<usize, (Arc<ConnFields>, Arc<Process>), foldhash::fast::RandomState>,
    interned: HashSet<Arc<Process>>,
}

impl Processes {
    pub fn new(naming: ServiceNaming) -> Self {
        Self {
            naming,
            by_conn: HashMap::default(),
            interned: HashSet::new(),
        }
    }

    pub fn of(&mut self, conn: &Arc<ConnFields>) -> Arc<Process> {
        let address = Arc::as_ptr(conn) as usize;
        if let Some((_, process)) = self.by_conn.get(&address) {
            return Arc::clone(process);
        }
        if self.by_conn.len() >= MAX_REMEMBERED_CONNECTIONS {
            self.by_conn.clear();
            self.interned.clear();
        }
        let process = Process::of(conn, &self.naming);
        let process = match self.interned.get(&process) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared = Arc::new(process);
                self.interned.insert(Arc::clone(&shared));
                shared
            }
        };
        self.by_conn
            .insert(address, (Arc::clone(conn), Arc::clone(&process)));
        process
    }
}
