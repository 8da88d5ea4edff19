//! The in-memory caches behind the resolver, with their lookup indexes.
//!
//! Pure data structures (no I/O, no locking): the resolver wraps each in a
//! lock and feeds it from the watch loop. Every store has a cap on the
//! objects it keeps; an object beyond the cap is not stored and the caller
//! counts it, so a huge cluster costs a bounded amount of memory and the
//! loss shows in [`crate::ResolverStats::objects_dropped`].
//!
//! Indexes only ever point at objects present in the store: an update first
//! removes the old version's index entries (those still pointing at it),
//! then adds the new ones.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

/// `namespace/name` of a namespaced object. `Arc<str>` because the same
/// names sit in several indexes and are cloned into every lookup result.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ObjKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: Arc::from(namespace),
            name: Arc::from(name),
        }
    }
}

impl fmt::Display for ObjKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Parses an address as the agent or the API server writes it. IPv4-mapped
/// IPv6 (`::ffff:10.0.0.1`, what a dual-stack socket reports for an IPv4
/// peer) becomes the IPv4 address, so both spellings find the same pod.
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(s);
    let ip: IpAddr = s.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    })
}

/// A pod of this node, reduced to what lookups return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodEntry {
    pub key: ObjKey,
    pub node: Option<Arc<str>>,
    /// Addresses that identify this pod alone: empty for host-network pods
    /// (they share the node's address) and for finished pods (their address
    /// may already belong to a new pod).
    pub ips: Vec<IpAddr>,
    /// (bare container id, container name), init and ephemeral containers
    /// included.
    pub containers: Vec<(Box<str>, Arc<str>)>,
}

#[derive(Debug, Default)]
pub(crate) struct PodStore {
    pods: HashMap<ObjKey, PodEntry>,
    by_container: HashMap<Box<str>, (ObjKey, Arc<str>)>,
    by_ip: HashMap<IpAddr, ObjKey>,
}

impl PodStore {
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Inserts or replaces a pod. `false` (and the store unchanged) when the
    /// pod is new and the store already holds `cap` pods.
    pub fn upsert(&mut self, entry: PodEntry, cap: usize) -> bool {
        let exists = self.pods.contains_key(&entry.key);
        if !exists && self.pods.len() >= cap {
            return false;
        }
        self.remove(&entry.key);
        for (id, name) in &entry.containers {
            self.by_container
                .insert(id.clone(), (entry.key.clone(), name.clone()));
        }
        for ip in &entry.ips {
            // Newest wins: a new pod may get the address of one still
            // terminating.
            self.by_ip.insert(*ip, entry.key.clone());
        }
        self.pods.insert(entry.key.clone(), entry);
        true
    }

    pub fn remove(&mut self, key: &ObjKey) {
        let Some(old) = self.pods.remove(key) else {
            return;
        };
        for (id, _) in &old.containers {
            if self.by_container.get(id).is_some_and(|(k, _)| k == key) {
                self.by_container.remove(id);
            }
        }
        for ip in &old.ips {
            if self.by_ip.get(ip) == Some(key) {
                self.by_ip.remove(ip);
            }
        }
    }

    pub fn by_container(&self, id: &str) -> Option<(&PodEntry, &Arc<str>)> {
        let (key, container) = self.by_container.get(id)?;
        Some((self.pods.get(key)?, container))
    }

    pub fn by_ip(&self, ip: &IpAddr) -> Option<&PodEntry> {
        self.pods.get(self.by_ip.get(ip)?)
    }
}

/// Objects known by their addresses: services (cluster IPs) and nodes.
#[derive(Debug)]
pub(crate) struct IpStore<K> {
    objects: HashMap<K, Vec<IpAddr>>,
    by_ip: HashMap<IpAddr, K>,
}

impl<K> Default for IpStore<K> {
    fn default() -> Self {
        Self {
            objects: HashMap::new(),
            by_ip: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> IpStore<K> {
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Inserts or replaces; an object without addresses is removed instead
    /// (nothing could find it). `false` when it is new and the store is full.
    pub fn upsert(&mut self, key: K, ips: Vec<IpAddr>, cap: usize) -> bool {
        let exists = self.objects.contains_key(&key);
        self.remove(&key);
        if ips.is_empty() {
            return true;
        }
        if !exists && self.objects.len() >= cap {
            return false;
        }
        for ip in &ips {
            self.by_ip.insert(*ip, key.clone());
        }
        self.objects.insert(key, ips);
        true
    }

    pub fn remove(&mut self, key: &K) {
        let Some(old) = self.objects.remove(key) else {
            return;
        };
        for ip in &old {
            if self.by_ip.get(ip) == Some(key) {
                self.by_ip.remove(ip);
            }
        }
    }

    pub fn by_ip(&self, ip: &IpAddr) -> Option<&K> {
        self.by_ip.get(ip)
    }
}

/// An EndpointSlice of a Service, reduced to addresses and their pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SliceEntry {
    pub key: ObjKey,
    pub service: ObjKey,
    pub endpoints: Vec<EndpointEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EndpointEntry {
    pub ips: Vec<IpAddr>,
    /// The pod behind the endpoint (`targetRef` of kind Pod).
    pub pod: Option<ObjKey>,
    pub node: Option<Arc<str>>,
}

/// What an address is an endpoint of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IpRef {
    pub slice: ObjKey,
    pub service: ObjKey,
    pub pod: Option<ObjKey>,
    pub node: Option<Arc<str>>,
}

#[derive(Debug, Default)]
pub(crate) struct SliceStore {
    slices: HashMap<ObjKey, SliceEntry>,
    endpoints: usize,
    /// Sorted by slice key, so "the first service of an address" does not
    /// depend on the order events arrived in.
    by_ip: HashMap<IpAddr, Vec<IpRef>>,
    /// pod → (slice, service), sorted by slice key.
    by_pod: HashMap<ObjKey, Vec<(ObjKey, ObjKey)>>,
}

impl SliceStore {
    pub fn len(&self) -> usize {
        self.slices.len()
    }

    pub fn endpoint_count(&self) -> usize {
        self.endpoints
    }

    /// Inserts or replaces a slice. When the new version does not fit (more
    /// than `max_slices` slices or `max_endpoints` endpoints in all), the old
    /// version is removed too rather than left stale, and `false` returned.
    pub fn upsert(&mut self, entry: SliceEntry, max_slices: usize, max_endpoints: usize) -> bool {
        self.remove(&entry.key);
        if self.slices.len() >= max_slices
            || self.endpoints.saturating_add(entry.endpoints.len()) > max_endpoints
        {
            return false;
        }
        for endpoint in &entry.endpoints {
            let reference = IpRef {
                slice: entry.key.clone(),
                service: entry.service.clone(),
                pod: endpoint.pod.clone(),
                node: endpoint.node.clone(),
            };
            for ip in &endpoint.ips {
                let refs = self.by_ip.entry(*ip).or_default();
                let at = refs.partition_point(|r| r.slice <= entry.key);
                refs.insert(at, reference.clone());
            }
            if let Some(pod) = &endpoint.pod {
                let services = self.by_pod.entry(pod.clone()).or_default();
                if !services.iter().any(|(slice, _)| *slice == entry.key) {
                    let at = services.partition_point(|(slice, _)| *slice <= entry.key);
                    services.insert(at, (entry.key.clone(), entry.service.clone()));
                }
            }
        }
        self.endpoints += entry.endpoints.len();
        self.slices.insert(entry.key.clone(), entry);
        true
    }

    pub fn remove(&mut self, key: &ObjKey) {
        let Some(old) = self.slices.remove(key) else {
            return;
        };
        self.endpoints = self.endpoints.saturating_sub(old.endpoints.len());
        for endpoint in &old.endpoints {
            for ip in &endpoint.ips {
                if let Some(refs) = self.by_ip.get_mut(ip) {
                    refs.retain(|r| r.slice != *key);
                    if refs.is_empty() {
                        self.by_ip.remove(ip);
                    }
                }
            }
            if let Some(pod) = &endpoint.pod
                && let Some(services) = self.by_pod.get_mut(pod)
            {
                services.retain(|(slice, _)| slice != key);
                if services.is_empty() {
                    self.by_pod.remove(pod);
                }
            }
        }
    }

    pub fn refs_for_ip(&self, ip: &IpAddr) -> &[IpRef] {
        self.by_ip.get(ip).map_or(&[], Vec::as_slice)
    }

    pub fn first_service_of_pod(&self, pod: &ObjKey) -> Option<&ObjKey> {
        self.by_pod.get(pod)?.first().map(|(_, service)| service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        parse_ip(s).unwrap()
    }

    fn pod(name: &str, ips: &[&str], containers: &[(&str, &str)]) -> PodEntry {
        PodEntry {
            key: ObjKey::new("default", name),
            node: Some(Arc::from("node-1")),
            ips: ips.iter().map(|s| ip(s)).collect(),
            containers: containers
                .iter()
                .map(|(id, name)| (Box::from(*id), Arc::from(*name)))
                .collect(),
        }
    }

    #[test]
    fn ip_spellings() {
        assert_eq!(parse_ip("10.0.0.1"), parse_ip("::ffff:10.0.0.1"));
        assert_eq!(parse_ip(" [fd00::1] "), parse_ip("fd00::1"));
        assert_eq!(parse_ip("not an ip"), None);
        assert_eq!(parse_ip(""), None);
    }

    #[test]
    fn pod_updates_move_indexes() {
        let mut store = PodStore::default();
        assert!(store.upsert(pod("a", &["10.0.0.1"], &[("c1", "app")]), 10));
        assert!(store.upsert(pod("a", &["10.0.0.2"], &[("c2", "app")]), 10));
        assert!(store.by_ip(&ip("10.0.0.1")).is_none());
        assert!(store.by_container("c1").is_none());
        assert_eq!(store.by_ip(&ip("10.0.0.2")).unwrap().key.name.as_ref(), "a");
        assert_eq!(store.by_container("c2").unwrap().1.as_ref(), "app");
        store.remove(&ObjKey::new("default", "a"));
        assert_eq!(store.len(), 0);
        assert!(store.by_ip(&ip("10.0.0.2")).is_none());
    }

    #[test]
    fn address_reuse_keeps_the_newest_pod() {
        let mut store = PodStore::default();
        store.upsert(pod("old", &["10.0.0.1"], &[]), 10);
        store.upsert(pod("new", &["10.0.0.1"], &[]), 10);
        store.remove(&ObjKey::new("default", "old"));
        assert_eq!(
            store.by_ip(&ip("10.0.0.1")).unwrap().key.name.as_ref(),
            "new"
        );
    }

    #[test]
    fn caps_drop_new_objects_only() {
        let mut store = PodStore::default();
        assert!(store.upsert(pod("a", &["10.0.0.1"], &[]), 1));
        assert!(!store.upsert(pod("b", &["10.0.0.2"], &[]), 1));
        assert!(store.upsert(pod("a", &["10.0.0.3"], &[]), 1), "update fits");
        assert_eq!(store.len(), 1);
        assert!(store.by_ip(&ip("10.0.0.2")).is_none());

        let mut services = IpStore::default();
        assert!(services.upsert(ObjKey::new("ns", "s1"), vec![ip("10.96.0.1")], 1));
        assert!(!services.upsert(ObjKey::new("ns", "s2"), vec![ip("10.96.0.2")], 1));
        assert!(
            services.upsert(ObjKey::new("ns", "s1"), vec![], 1),
            "headless: removed"
        );
        assert_eq!(services.len(), 0);
        assert!(services.by_ip(&ip("10.96.0.1")).is_none());
    }

    fn slice(name: &str, service: &str, endpoints: &[(&str, Option<&str>)]) -> SliceEntry {
        SliceEntry {
            key: ObjKey::new("default", name),
            service: ObjKey::new("default", service),
            endpoints: endpoints
                .iter()
                .map(|(addr, pod)| EndpointEntry {
                    ips: vec![ip(addr)],
                    pod: pod.map(|p| ObjKey::new("default", p)),
                    node: None,
                })
                .collect(),
        }
    }

    #[test]
    fn slices_index_addresses_and_pods_in_slice_order() {
        let mut store = SliceStore::default();
        assert!(store.upsert(slice("web-x1", "web", &[("10.0.0.1", Some("a"))]), 10, 10));
        assert!(store.upsert(slice("api-k2", "api", &[("10.0.0.1", Some("a"))]), 10, 10));
        let refs = store.refs_for_ip(&ip("10.0.0.1"));
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].service.to_string(), "default/api");
        let a = ObjKey::new("default", "a");
        assert_eq!(
            store.first_service_of_pod(&a).unwrap().to_string(),
            "default/api"
        );
        store.remove(&ObjKey::new("default", "api-k2"));
        assert_eq!(
            store.first_service_of_pod(&a).unwrap().to_string(),
            "default/web"
        );
        assert_eq!(store.endpoint_count(), 1);
        store.remove(&ObjKey::new("default", "web-x1"));
        assert!(store.refs_for_ip(&ip("10.0.0.1")).is_empty());
        assert!(store.first_service_of_pod(&a).is_none());
        assert_eq!(store.endpoint_count(), 0);
    }

    #[test]
    fn slice_over_the_endpoint_cap_removes_the_stale_version() {
        let mut store = SliceStore::default();
        assert!(store.upsert(slice("web-x1", "web", &[("10.0.0.1", None)]), 10, 2));
        let bigger = slice(
            "web-x1",
            "web",
            &[("10.0.0.1", None), ("10.0.0.2", None), ("10.0.0.3", None)],
        );
        assert!(!store.upsert(bigger, 10, 2));
        assert_eq!(store.len(), 0);
        assert!(store.refs_for_ip(&ip("10.0.0.1")).is_empty());
    }
}
