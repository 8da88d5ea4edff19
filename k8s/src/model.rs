//! Serde mirrors of the few Kubernetes API fields the resolver uses.
//!
//! Everything is optional and unknown fields are ignored: the API server
//! omits empty fields, may send `null`, and adds fields over versions. A
//! missing field must degrade a lookup, never fail a whole list.

use std::collections::HashMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectMeta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub labels: Option<HashMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListMeta {
    pub resource_version: Option<String>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct List<T> {
    #[serde(default)]
    pub metadata: Option<ListMeta>,
    #[serde(default = "Option::default")]
    pub items: Option<Vec<T>>,
}

/// One line of a watch stream. `object` is kept as a JSON value because its
/// type depends on `type`: the resource for ADDED/MODIFIED/DELETED/BOOKMARK,
/// a `Status` for ERROR.
#[derive(Debug, Deserialize)]
pub(crate) struct WatchEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default)]
    pub object: serde_json::Value,
}

/// `meta.k8s.io/v1` Status, as sent with error codes and ERROR watch events.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Status {
    pub code: Option<u16>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Pod {
    pub metadata: Option<ObjectMeta>,
    pub spec: Option<PodSpec>,
    pub status: Option<PodStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodSpec {
    pub node_name: Option<String>,
    pub host_network: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodStatus {
    pub phase: Option<String>,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pub pod_ips: Option<Vec<IpEntry>>,
    pub container_statuses: Option<Vec<ContainerStatus>>,
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
    pub ephemeral_container_statuses: Option<Vec<ContainerStatus>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct IpEntry {
    pub ip: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContainerStatus {
    pub name: Option<String>,
    #[serde(rename = "containerID")]
    pub container_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Service {
    pub metadata: Option<ObjectMeta>,
    pub spec: Option<ServiceSpec>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ServiceSpec {
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct EndpointSlice {
    pub metadata: Option<ObjectMeta>,
    pub endpoints: Option<Vec<Endpoint>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Endpoint {
    pub addresses: Option<Vec<String>>,
    pub target_ref: Option<ObjectReference>,
    pub node_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ObjectReference {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Node {
    pub metadata: Option<ObjectMeta>,
    pub status: Option<NodeStatus>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NodeStatus {
    pub addresses: Option<Vec<NodeAddress>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NodeAddress {
    #[serde(rename = "type")]
    pub address_type: Option<String>,
    pub address: Option<String>,
}
