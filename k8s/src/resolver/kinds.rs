//! The four watched resources: where each lives in the API and how one of
//! its objects becomes a cache entry.

use std::net::IpAddr;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{MetadataResolver, ResolverConfig, write};
use crate::cgroup::bare_container_id;
use crate::model;
use crate::store::{
    EndpointEntry, IpStore, ObjKey, PodEntry, PodStore, SliceEntry, SliceStore, parse_ip,
};

pub(super) const ALL_KINDS: u8 = 0b1111;

/// One watched resource: where it lives and how an object becomes a cache
/// entry.
pub(super) trait Kind: Send + Sync + 'static {
    const NAME: &'static str;
    const PATH: &'static str;
    const SYNC_BIT: u8;
    type Object: DeserializeOwned + Send;
    type Key: Send;
    type Entry: Send;

    fn field_selector(_resolver: &MetadataResolver) -> Option<String> {
        None
    }
    fn cap(config: &ResolverConfig) -> usize;
    /// `None`: the object has no name. `Some((key, None))`: it exists but
    /// is not cached (e.g. a headless service), so any old version goes.
    fn convert(
        resolver: &MetadataResolver,
        object: Self::Object,
    ) -> Option<(Self::Key, Option<Self::Entry>)>;
    /// Replaces the cache; returns how many entries did not fit.
    fn replace_all(resolver: &MetadataResolver, entries: Vec<Self::Entry>) -> u64;
    fn upsert(resolver: &MetadataResolver, entry: Self::Entry) -> bool;
    fn remove(resolver: &MetadataResolver, key: &Self::Key);
}

fn object_key(metadata: Option<&model::ObjectMeta>) -> Option<ObjKey> {
    let metadata = metadata?;
    let name = metadata.name.as_deref().filter(|n| !n.is_empty())?;
    Some(ObjKey::new(
        metadata.namespace.as_deref().unwrap_or(""),
        name,
    ))
}

fn parse_ips<'a>(addresses: impl IntoIterator<Item = &'a str>) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = addresses.into_iter().filter_map(parse_ip).collect();
    ips.sort_unstable();
    ips.dedup();
    ips
}

pub(super) struct Pods;

impl Kind for Pods {
    const NAME: &'static str = "pods";
    const PATH: &'static str = "/api/v1/pods";
    const SYNC_BIT: u8 = 0b0001;
    type Object = model::Pod;
    type Key = ObjKey;
    type Entry = PodEntry;

    fn field_selector(resolver: &MetadataResolver) -> Option<String> {
        // Only this node's pods: memory and API load independent of the
        // cluster's size.
        Some(format!("spec.nodeName={}", resolver.node_name))
    }

    fn cap(config: &ResolverConfig) -> usize {
        config.max_pods
    }

    fn convert(resolver: &MetadataResolver, pod: model::Pod) -> Option<(ObjKey, Option<PodEntry>)> {
        let key = object_key(pod.metadata.as_ref())?;
        let spec = pod.spec.unwrap_or_default();
        let node = spec.node_name.unwrap_or_default();
        if node != resolver.node_name {
            // The field selector already filters; a proxy that ignores it
            // must not fill the cache with the whole cluster.
            return Some((key, None));
        }
        let status = pod.status.unwrap_or_default();
        let finished = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
        let ips = if spec.host_network.unwrap_or(false) || finished {
            Vec::new()
        } else {
            let listed = status
                .pod_ips
                .iter()
                .flatten()
                .filter_map(|e| e.ip.as_deref());
            parse_ips(status.pod_ip.as_deref().into_iter().chain(listed))
        };
        let containers = [
            status.container_statuses,
            status.init_container_statuses,
            status.ephemeral_container_statuses,
        ]
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|c| {
            let id = bare_container_id(c.container_id.as_deref()?);
            let name = c.name?;
            (!id.is_empty()).then(|| (Box::from(id), Arc::from(name)))
        })
        .collect();
        let entry = PodEntry {
            key: key.clone(),
            node: Some(Arc::from(node)),
            ips,
            containers,
        };
        Some((key, Some(entry)))
    }

    fn replace_all(resolver: &MetadataResolver, entries: Vec<PodEntry>) -> u64 {
        let mut store = PodStore::default();
        let cap = resolver.config.max_pods;
        let dropped = entries
            .into_iter()
            .filter(|e| !store.upsert(e.clone(), cap))
            .count();
        *write(&resolver.pods) = store;
        dropped as u64
    }

    fn upsert(resolver: &MetadataResolver, entry: PodEntry) -> bool {
        write(&resolver.pods).upsert(entry, resolver.config.max_pods)
    }

    fn remove(resolver: &MetadataResolver, key: &ObjKey) {
        write(&resolver.pods).remove(key);
    }
}

pub(super) struct Services;

impl Kind for Services {
    const NAME: &'static str = "services";
    const PATH: &'static str = "/api/v1/services";
    const SYNC_BIT: u8 = 0b0010;
    type Object = model::Service;
    type Key = ObjKey;
    type Entry = (ObjKey, Vec<IpAddr>);

    fn cap(config: &ResolverConfig) -> usize {
        config.max_services
    }

    fn convert(
        _: &MetadataResolver,
        service: model::Service,
    ) -> Option<(ObjKey, Option<Self::Entry>)> {
        let key = object_key(service.metadata.as_ref())?;
        let spec = service.spec.unwrap_or_default();
        // "None" (headless) does not parse as an address and drops out.
        let listed = spec.cluster_ips.iter().flatten().map(String::as_str);
        let ips = parse_ips(spec.cluster_ip.as_deref().into_iter().chain(listed));
        let entry = (!ips.is_empty()).then(|| (key.clone(), ips));
        Some((key, entry))
    }

    fn replace_all(resolver: &MetadataResolver, entries: Vec<Self::Entry>) -> u64 {
        let mut store = IpStore::default();
        let cap = resolver.config.max_services;
        let dropped = entries
            .into_iter()
            .filter(|(k, ips)| !store.upsert(k.clone(), ips.clone(), cap))
            .count();
        *write(&resolver.services) = store;
        dropped as u64
    }

    fn upsert(resolver: &MetadataResolver, (key, ips): Self::Entry) -> bool {
        write(&resolver.services).upsert(key, ips, resolver.config.max_services)
    }

    fn remove(resolver: &MetadataResolver, key: &ObjKey) {
        write(&resolver.services).remove(key);
    }
}

pub(super) struct Slices;

/// The label EndpointSlice controllers put on a slice to name its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

impl Kind for Slices {
    const NAME: &'static str = "endpointslices";
    const PATH: &'static str = "/apis/discovery.k8s.io/v1/endpointslices";
    const SYNC_BIT: u8 = 0b0100;
    type Object = model::EndpointSlice;
    type Key = ObjKey;
    type Entry = SliceEntry;

    fn cap(config: &ResolverConfig) -> usize {
        config.max_endpoint_slices
    }

    fn convert(
        _: &MetadataResolver,
        slice: model::EndpointSlice,
    ) -> Option<(ObjKey, Option<SliceEntry>)> {
        let metadata = slice.metadata.unwrap_or_default();
        let key = object_key(Some(&metadata))?;
        let service = metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(SERVICE_NAME_LABEL))
            .filter(|name| !name.is_empty())
            .map(|name| ObjKey::new(&key.namespace, name));
        let Some(service) = service else {
            return Some((key, None));
        };
        let endpoints: Vec<EndpointEntry> = slice
            .endpoints
            .into_iter()
            .flatten()
            .filter_map(|endpoint| {
                let ips = parse_ips(endpoint.addresses.iter().flatten().map(String::as_str));
                if ips.is_empty() {
                    return None;
                }
                let pod = endpoint.target_ref.and_then(|target| {
                    if target.kind.as_deref() != Some("Pod") {
                        return None;
                    }
                    let name = target.name.filter(|n| !n.is_empty())?;
                    let namespace = target
                        .namespace
                        .unwrap_or_else(|| key.namespace.to_string());
                    Some(ObjKey::new(&namespace, &name))
                });
                Some(EndpointEntry {
                    ips,
                    pod,
                    node: endpoint.node_name.filter(|n| !n.is_empty()).map(Arc::from),
                })
            })
            .collect();
        let entry = (!endpoints.is_empty()).then(|| SliceEntry {
            key: key.clone(),
            service,
            endpoints,
        });
        Some((key, entry))
    }

    fn replace_all(resolver: &MetadataResolver, entries: Vec<SliceEntry>) -> u64 {
        let mut store = SliceStore::default();
        let (max_slices, max_endpoints) = (
            resolver.config.max_endpoint_slices,
            resolver.config.max_endpoints,
        );
        let dropped = entries
            .into_iter()
            .filter(|e| !store.upsert(e.clone(), max_slices, max_endpoints))
            .count();
        *write(&resolver.slices) = store;
        dropped as u64
    }

    fn upsert(resolver: &MetadataResolver, entry: SliceEntry) -> bool {
        let config = &resolver.config;
        write(&resolver.slices).upsert(entry, config.max_endpoint_slices, config.max_endpoints)
    }

    fn remove(resolver: &MetadataResolver, key: &ObjKey) {
        write(&resolver.slices).remove(key);
    }
}

pub(super) struct Nodes;

impl Kind for Nodes {
    const NAME: &'static str = "nodes";
    const PATH: &'static str = "/api/v1/nodes";
    const SYNC_BIT: u8 = 0b1000;
    type Object = model::Node;
    type Key = Arc<str>;
    type Entry = (Arc<str>, Vec<IpAddr>);

    fn cap(config: &ResolverConfig) -> usize {
        config.max_nodes
    }

    fn convert(_: &MetadataResolver, node: model::Node) -> Option<(Arc<str>, Option<Self::Entry>)> {
        let name: Arc<str> = Arc::from(node.metadata?.name.filter(|n| !n.is_empty())?);
        let addresses = node.status.and_then(|s| s.addresses).unwrap_or_default();
        let ips = parse_ips(
            addresses
                .iter()
                .filter(|a| matches!(a.address_type.as_deref(), Some("InternalIP" | "ExternalIP")))
                .filter_map(|a| a.address.as_deref()),
        );
        let entry = (!ips.is_empty()).then(|| (name.clone(), ips));
        Some((name, entry))
    }

    fn replace_all(resolver: &MetadataResolver, entries: Vec<Self::Entry>) -> u64 {
        let mut store = IpStore::default();
        let cap = resolver.config.max_nodes;
        let dropped = entries
            .into_iter()
            .filter(|(k, ips)| !store.upsert(k.clone(), ips.clone(), cap))
            .count();
        *write(&resolver.nodes) = store;
        dropped as u64
    }

    fn upsert(resolver: &MetadataResolver, (name, ips): Self::Entry) -> bool {
        write(&resolver.nodes).upsert(name, ips, resolver.config.max_nodes)
    }

    fn remove(resolver: &MetadataResolver, key: &Arc<str>) {
        write(&resolver.nodes).remove(key);
    }
}
