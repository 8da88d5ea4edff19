//! Kubernetes metadata for Sonde's rows: which pod, namespace, container,
//! node and service a captured process or a remote address belongs to.
//!
//! Two halves:
//! - [`container_id_from_cgroup`] / [`container_id_of_pid`]: a process's
//!   container id from `/proc/<pid>/cgroup` (pure parsing, no API access).
//! - [`MetadataResolver`]: caches of Kubernetes objects kept current with
//!   list + watch, and lookups by container id ([`MetadataResolver::pod_for_container`])
//!   and by address ([`MetadataResolver::pod_for_ip`],
//!   [`MetadataResolver::service_for_ip`]).
//!
//! What is watched, and why that much:
//! - pods with `fieldSelector=spec.nodeName=<this node>`: the processes the
//!   agent sees run on this node, so one node's pods (≈ 100) are enough to
//!   map container ids, and the cost does not grow with the cluster;
//! - services (cluster IPs) and EndpointSlices (pod addresses behind each
//!   service, with the pod and node names): the *remote* side of a
//!   connection is often a pod on another node or a cluster IP;
//! - nodes (their addresses only): a node's address is shared by every
//!   host-network pod on it, so it must never be attributed to one of them.
//!
//! [`ServiceEndpoints`] lists one Service's ready endpoints (the agents'
//! headless Service, for the coordinator).
//!
//! Each cache has a cap ([`ResolverConfig`]); objects beyond it are counted
//! in [`ResolverStats::objects_dropped`], never silently lost. Lists are paged
//! and response bodies capped, so neither a big cluster nor a bad response
//! can take the agent's memory.
//!
//! # Why a small client on reqwest, not `kube` + `k8s-openapi`
//! `kube` is the standard client and the right one for controllers, but the
//! agent needs four read-only resources and about fifteen of their fields.
//! `k8s-openapi` generates every type of the whole API (a crate that alone
//! takes minutes to build on the project's 2-core machines and adds
//! megabytes to the binary), and `kube-runtime` brings its own stack on top.
//! reqwest is already in the workspace for the CLI; with rustls (ring
//! provider, roots supplied by hand from the service account's `ca.crt`) it
//! needs no OpenSSL in the image. The price is this crate's own list/watch
//! loop (≈ 300 lines: paging, resource versions, 410 Gone re-lists,
//! bookmarks, backoff), which the tests exercise against recorded API
//! responses. No HTTP/2, no client certificates, no kubeconfig: in a pod
//! none is needed.
//!
//! # Names
//! [`PodMeta::pod`] is the pod's name alone; services are `namespace/name`
//! (as Pixie's `service` column); [`PodMeta::node`] is an `Option` because a
//! remote endpoint may have no `nodeName`.

mod cgroup;
mod client;
mod endpoints;
mod error;
mod model;
mod resolver;
mod store;

pub use cgroup::{container_id_from_cgroup, container_id_of_pid};
pub use endpoints::{ServiceEndpoint, ServiceEndpoints};
pub use error::K8sError;
pub use resolver::{MetadataResolver, PodMeta, ResolverConfig, ResolverStats, SERVICE_ACCOUNT_DIR};
