//! [`MetadataResolver`]: caches of this node's pods and of the cluster's
//! services, endpoint slices and nodes, kept current by list + watch, and
//! the lookups the agent calls per connection.

use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

mod kinds;

use kinds::{ALL_KINDS, Kind, Nodes, Pods, Services, Slices};

use crate::cgroup::bare_container_id;
use crate::client::{ApiClient, TokenSource};
use crate::error::K8sError;
use crate::model;
use crate::store::{IpStore, ObjKey, PodEntry, PodStore, SliceStore, parse_ip};

/// TCP + TLS connection set-up to the API server; it answers in
/// milliseconds when reachable at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where Kubernetes mounts a pod's service-account credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The Kubernetes identity of a process or of an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodMeta {
    /// Pod name (without the namespace).
    pub pod: String,
    pub namespace: String,
    /// The node the pod runs on. Always known for this node's pods; for a
    /// remote pod it comes from its endpoint's `nodeName`, which may be unset.
    pub node: Option<String>,
    /// `namespace/name` of a Service selecting the pod (the first by
    /// EndpointSlice name when there are several).
    pub service: Option<String>,
    /// Container name: known when the lookup was by container id, `None` for
    /// lookups by address (a pod's containers share its address).
    pub container: Option<String>,
}

/// Caps and timings. The defaults fit a large cluster (the caps bound memory
/// to a few tens of MiB at worst); tests shrink the timings.
#[derive(Clone, Debug)]
pub struct ResolverConfig {
    /// Pods of this node kept (the kubelet's own default limit is 110).
    pub max_pods: usize,
    /// Services with a cluster IP kept.
    pub max_services: usize,
    /// EndpointSlices kept.
    pub max_endpoint_slices: usize,
    /// Endpoints kept over all slices (about 250 bytes each with their
    /// indexes: 25 MiB at the default).
    pub max_endpoints: usize,
    /// Nodes kept (only their addresses).
    pub max_nodes: usize,
    /// `limit` of each list request: bounds the size of one response.
    pub page_size: u32,
    /// Cap on one list page's body.
    pub max_list_bytes: usize,
    /// Cap on one watch event (one object; etcd limits objects to 1.5 MiB).
    pub max_event_bytes: usize,
    /// `timeoutSeconds` of a watch; the server ends it then and it is
    /// resumed from the last resource version.
    pub watch_timeout: Duration,
    /// Timeout of one list request (one page).
    pub request_timeout: Duration,
    /// First retry delay after an error; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            max_pods: 4_096,
            max_services: 50_000,
            max_endpoint_slices: 50_000,
            max_endpoints: 100_000,
            max_nodes: 20_000,
            page_size: 500,
            max_list_bytes: 64 << 20,
            max_event_bytes: 8 << 20,
            watch_timeout: Duration::from_secs(290),
            request_timeout: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Counters and sizes, for the agent's own telemetry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// Every cache has completed its first list.
    pub synced: bool,
    pub pods: usize,
    pub services: usize,
    pub endpoint_slices: usize,
    pub endpoints: usize,
    pub nodes: usize,
    /// Completed lists (the first one of each cache included).
    pub relists: u64,
    /// Watch events applied.
    pub events: u64,
    /// Failed requests and error events (each is logged).
    pub api_errors: u64,
    /// Objects not cached because a cap was reached.
    pub objects_dropped: u64,
}

/// Kubernetes metadata for the rows of one node. `Send + Sync`: lookups take
/// a read lock on one or two small maps and clone a few short strings.
#[derive(Debug)]
pub struct MetadataResolver {
    client: ApiClient,
    node_name: String,
    config: ResolverConfig,
    pods: RwLock<PodStore>,
    services: RwLock<IpStore<ObjKey>>,
    slices: RwLock<SliceStore>,
    nodes: RwLock<IpStore<Arc<str>>>,
    synced: AtomicU8,
    relists: AtomicU64,
    events: AtomicU64,
    api_errors: AtomicU64,
    objects_dropped: AtomicU64,
}

impl MetadataResolver {
    /// In a pod: the API server from `KUBERNETES_SERVICE_HOST`/`_PORT`, the
    /// service account's token (re-read as the kubelet rotates it) and CA.
    /// Outside a cluster (no such variables, or no mounted token) → `Ok(None)`,
    /// and the Kubernetes columns stay null. `node_name` defaults to the
    /// `NODE_NAME` variable; in a cluster without either it is an error.
    pub async fn from_environment(node_name: Option<String>) -> Result<Option<Self>, K8sError> {
        from_environment_at(
            |name| std::env::var(name).ok(),
            Path::new(SERVICE_ACCOUNT_DIR),
            node_name,
        )
    }

    /// An explicit API server, for tests and out-of-cluster use. Plain
    /// `http://` is accepted; `https://` needs `ca_pem`.
    pub async fn connect(
        api_base_url: &str,
        token: Option<String>,
        ca_pem: Option<Vec<u8>>,
        node_name: String,
    ) -> Result<Self, K8sError> {
        let token = token.map_or(TokenSource::None, TokenSource::Static);
        Self::new(api_base_url, token, ca_pem.as_deref(), node_name)
    }

    fn new(
        api_base_url: &str,
        token: TokenSource,
        ca_pem: Option<&[u8]>,
        node_name: String,
    ) -> Result<Self, K8sError> {
        if node_name.trim().is_empty() {
            return Err(K8sError::NoNodeName);
        }
        let config = ResolverConfig::default();
        let client = ApiClient::new(api_base_url, token, ca_pem, CONNECT_TIMEOUT)?;
        Ok(Self {
            client,
            node_name,
            config,
            pods: RwLock::default(),
            services: RwLock::default(),
            slices: RwLock::default(),
            nodes: RwLock::default(),
            synced: AtomicU8::new(0),
            relists: AtomicU64::new(0),
            events: AtomicU64::new(0),
            api_errors: AtomicU64::new(0),
            objects_dropped: AtomicU64::new(0),
        })
    }

    /// Replaces the caps and timings; call before [`Self::spawn`].
    #[must_use]
    pub fn with_config(mut self, config: ResolverConfig) -> Self {
        self.config = config;
        self
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Starts the watch loops (pods of this node, services, endpoint slices,
    /// nodes) on the current tokio runtime. They run until the handle is
    /// aborted, retrying with backoff on any error: lookups answer `None`
    /// for what is not (yet) known, never block.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let resolver = Arc::clone(self);
        tokio::spawn(async move {
            tokio::join!(
                Arc::clone(&resolver).run::<Pods>(),
                Arc::clone(&resolver).run::<Services>(),
                Arc::clone(&resolver).run::<Slices>(),
                resolver.run::<Nodes>(),
            );
        })
    }

    /// Every cache has completed its first list.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire) == ALL_KINDS
    }

    pub fn stats(&self) -> ResolverStats {
        let slices = read(&self.slices);
        ResolverStats {
            synced: self.is_synced(),
            pods: read(&self.pods).len(),
            services: read(&self.services).len(),
            endpoint_slices: slices.len(),
            endpoints: slices.endpoint_count(),
            nodes: read(&self.nodes).len(),
            relists: self.relists.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            api_errors: self.api_errors.load(Ordering::Relaxed),
            objects_dropped: self.objects_dropped.load(Ordering::Relaxed),
        }
    }

    /// The pod of a container of this node, by the id from
    /// [`crate::container_id_of_pid`] (`containerd://<id>` also accepted).
    pub fn pod_for_container(&self, container_id: &str) -> Option<PodMeta> {
        let id = bare_container_id(container_id.trim());
        let pods = read(&self.pods);
        let (entry, container) = pods.by_container(id)?;
        Some(self.pod_meta(entry, Some(container)))
    }

    /// The pod that owns an address: a pod of this node, or a remote pod that
    /// is an endpoint of some Service. `None` for a node's own address (host
    /// network traffic is not one pod's), for an address several pods share,
    /// and for remote pods behind no Service (only this node's pods are
    /// watched, to keep memory independent of cluster size).
    pub fn pod_for_ip(&self, ip: &str) -> Option<PodMeta> {
        let ip = parse_ip(ip)?;
        if let Some(entry) = read(&self.pods).by_ip(&ip) {
            return Some(self.pod_meta(entry, None));
        }
        if read(&self.nodes).by_ip(&ip).is_some() {
            return None;
        }
        let slices = read(&self.slices);
        let mut refs = slices.refs_for_ip(&ip).iter().filter(|r| r.pod.is_some());
        let first = refs.next()?;
        if refs.any(|r| r.pod != first.pod) {
            return None;
        }
        let pod = first.pod.as_ref()?;
        Some(PodMeta {
            pod: pod.name.to_string(),
            namespace: pod.namespace.to_string(),
            node: first.node.as_deref().map(str::to_owned),
            service: Some(first.service.to_string()),
            container: None,
        })
    }

    /// `namespace/name` of the Service an address belongs to: a cluster IP,
    /// or the address of one of its endpoints. `None` for a node's address.
    pub fn service_for_ip(&self, ip: &str) -> Option<String> {
        let ip = parse_ip(ip)?;
        if let Some(service) = read(&self.services).by_ip(&ip) {
            return Some(service.to_string());
        }
        if read(&self.nodes).by_ip(&ip).is_some() {
            return None;
        }
        let slices = read(&self.slices);
        slices
            .refs_for_ip(&ip)
            .first()
            .map(|r| r.service.to_string())
    }

    /// The node whose InternalIP or ExternalIP this is.
    pub fn node_for_ip(&self, ip: &str) -> Option<String> {
        let ip = parse_ip(ip)?;
        read(&self.nodes).by_ip(&ip).map(|name| name.to_string())
    }

    fn pod_meta(&self, entry: &PodEntry, container: Option<&Arc<str>>) -> PodMeta {
        let service = {
            let slices = read(&self.slices);
            slices
                .first_service_of_pod(&entry.key)
                .or_else(|| {
                    entry
                        .ips
                        .iter()
                        .find_map(|ip| slices.refs_for_ip(ip).first().map(|r| &r.service))
                })
                .map(ObjKey::to_string)
        };
        PodMeta {
            pod: entry.key.name.to_string(),
            namespace: entry.key.namespace.to_string(),
            node: entry.node.as_deref().map(str::to_owned),
            service,
            container: container.map(|c| c.to_string()),
        }
    }

    // ---- watch loop --------------------------------------------------------

    async fn run<K: Kind>(self: Arc<Self>) {
        let mut backoff = Backoff::new(self.config.initial_backoff, self.config.max_backoff);
        loop {
            let mut resource_version = match self.relist::<K>().await {
                Ok(rv) => rv,
                Err(err) => {
                    self.api_error::<K>("list", &err);
                    backoff.wait().await;
                    continue;
                }
            };
            backoff.reset();
            loop {
                let started = Instant::now();
                match self.watch_once::<K>(&mut resource_version).await {
                    Ok(events) => {
                        // A watch the server ends at once, again and again
                        // (a misbehaving proxy), must not become a busy loop.
                        if events == 0 && started.elapsed() < Duration::from_secs(1) {
                            backoff.wait().await;
                        } else {
                            backoff.reset();
                        }
                    }
                    Err(K8sError::Gone { .. }) => {
                        tracing::debug!(resource = K::NAME, "watch expired (410 Gone); re-listing");
                        break;
                    }
                    Err(err) if is_transient(&err) => {
                        // Resume from the last version seen; if that has
                        // expired meanwhile the server answers 410.
                        self.api_error::<K>("watch", &err);
                        backoff.wait().await;
                    }
                    Err(err) => {
                        self.api_error::<K>("watch", &err);
                        backoff.wait().await;
                        break;
                    }
                }
            }
        }
    }

    fn api_error<K: Kind>(&self, operation: &str, err: &K8sError) {
        self.api_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(resource = K::NAME, operation, error = %err, "Kubernetes API request failed; retrying");
    }

    /// Lists every page, then swaps the cache whole: objects deleted while
    /// no watch was running disappear. Returns the list's resource version.
    async fn relist<K: Kind>(&self) -> Result<String, K8sError> {
        let cap = K::cap(&self.config);
        let mut entries = Vec::new();
        let mut dropped = 0u64;
        let mut continue_token: Option<String> = None;
        let resource_version = loop {
            let mut query = vec![("limit", self.config.page_size.to_string())];
            if let Some(selector) = K::field_selector(self) {
                query.push(("fieldSelector", selector));
            }
            if let Some(token) = continue_token.take() {
                query.push(("continue", token));
            }
            let page: model::List<K::Object> = self
                .client
                .list_page(
                    K::PATH,
                    &query,
                    self.config.max_list_bytes,
                    self.config.request_timeout,
                )
                .await?;
            for object in page.items.unwrap_or_default() {
                if let Some((_, Some(entry))) = K::convert(self, object) {
                    // Stop collecting at the cap: the list of a huge cluster
                    // must not be held whole in memory.
                    if entries.len() < cap {
                        entries.push(entry);
                    } else {
                        dropped += 1;
                    }
                }
            }
            let metadata = page.metadata.unwrap_or_default();
            match metadata.continue_token.filter(|t| !t.is_empty()) {
                Some(token) => continue_token = Some(token),
                None => {
                    break metadata
                        .resource_version
                        .filter(|rv| !rv.is_empty())
                        .ok_or_else(|| K8sError::Protocol {
                            url: K::PATH.to_owned(),
                            message: "list response without a resourceVersion".into(),
                        })?;
                }
            }
        };
        dropped += K::replace_all(self, entries);
        if dropped > 0 {
            self.objects_dropped.fetch_add(dropped, Ordering::Relaxed);
            tracing::warn!(
                resource = K::NAME,
                dropped,
                "cache cap reached; some objects are not resolved"
            );
        }
        self.relists.fetch_add(1, Ordering::Relaxed);
        self.synced.fetch_or(K::SYNC_BIT, Ordering::AcqRel);
        Ok(resource_version)
    }

    /// One watch from `resource_version`, which follows the events. Returns
    /// the number of events once the server ends the watch.
    async fn watch_once<K: Kind>(&self, resource_version: &mut String) -> Result<u64, K8sError> {
        let mut query = vec![
            ("watch", "true".to_owned()),
            ("resourceVersion", resource_version.clone()),
            ("allowWatchBookmarks", "true".to_owned()),
            (
                "timeoutSeconds",
                self.config.watch_timeout.as_secs().max(1).to_string(),
            ),
        ];
        if let Some(selector) = K::field_selector(self) {
            query.push(("fieldSelector", selector));
        }
        let mut events = 0u64;
        let watch = async {
            let mut stream = self
                .client
                .watch(K::PATH, &query, self.config.max_event_bytes)
                .await?;
            while let Some(event) = stream.next_event().await? {
                self.apply::<K>(event, resource_version)?;
                events += 1;
            }
            Ok::<(), K8sError>(())
        };
        // The server ends the watch after timeoutSeconds; this bounds a
        // connection that went silent without closing (a dead peer). Either
        // way the watch resumes from the last version seen.
        let limit = self.config.watch_timeout + Duration::from_secs(30);
        match tokio::time::timeout(limit, watch).await {
            Ok(Err(err)) => Err(err),
            Ok(Ok(())) | Err(_) => Ok(events),
        }
    }

    fn apply<K: Kind>(
        &self,
        event: model::WatchEvent,
        resource_version: &mut String,
    ) -> Result<(), K8sError> {
        let decode = |source| K8sError::Decode {
            what: "watch event object",
            url: K::PATH.to_owned(),
            source,
        };
        match event.event_type.as_str() {
            "ADDED" | "MODIFIED" | "DELETED" => {
                let rv = object_resource_version(&event.object);
                let deleted = event.event_type == "DELETED";
                let object: K::Object = serde_json::from_value(event.object).map_err(decode)?;
                match K::convert(self, object) {
                    Some((_, Some(entry))) if !deleted => {
                        let stored = K::upsert(self, entry);
                        self.objects_dropped
                            .fetch_add(u64::from(!stored), Ordering::Relaxed);
                    }
                    // Deleted, or no longer cacheable (a service made
                    // headless, a slice losing its service label).
                    Some((key, _)) => K::remove(self, &key),
                    None => {}
                }
                if let Some(rv) = rv {
                    *resource_version = rv;
                }
                self.events.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            "BOOKMARK" => {
                if let Some(rv) = object_resource_version(&event.object) {
                    *resource_version = rv;
                }
                Ok(())
            }
            "ERROR" => {
                let status: model::Status =
                    serde_json::from_value(event.object).unwrap_or_default();
                if status.code == Some(410) {
                    return Err(K8sError::Gone {
                        url: K::PATH.to_owned(),
                    });
                }
                Err(K8sError::Status {
                    url: K::PATH.to_owned(),
                    status: status.code.unwrap_or(0),
                    message: status
                        .message
                        .or(status.reason)
                        .unwrap_or_else(|| "watch ERROR event".into()),
                })
            }
            other => {
                tracing::debug!(
                    resource = K::NAME,
                    event = other,
                    "ignoring unknown watch event type"
                );
                Ok(())
            }
        }
    }
}

fn object_resource_version(object: &serde_json::Value) -> Option<String> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(serde_json::Value::as_str)
        .filter(|rv| !rv.is_empty())
        .map(str::to_owned)
}

/// Connection-level failures and overload answers: worth resuming the same
/// watch. Anything else (a decode error, a forbidden answer) re-lists.
fn is_transient(err: &K8sError) -> bool {
    match err {
        K8sError::Http { .. } => true,
        K8sError::Status { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

/// The environment-reading half of [`MetadataResolver::from_environment`],
/// with the environment and the service-account directory as parameters.
pub(crate) fn from_environment_at(
    env: impl Fn(&str) -> Option<String>,
    service_account_dir: &Path,
    node_name: Option<String>,
) -> Result<Option<MetadataResolver>, K8sError> {
    let non_empty = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let (Some(host), Some(port)) = (
        non_empty(env("KUBERNETES_SERVICE_HOST")),
        non_empty(env("KUBERNETES_SERVICE_PORT")),
    ) else {
        return Ok(None);
    };
    let token_path = service_account_dir.join("token");
    if !token_path.exists() {
        // automountServiceAccountToken: false, or a non-Kubernetes container
        // that happens to have the variables: no metadata, not an error.
        tracing::info!(path = %token_path.display(), "no service account token; Kubernetes metadata disabled");
        return Ok(None);
    }
    let node_name = non_empty(node_name)
        .or_else(|| non_empty(env("NODE_NAME")))
        .ok_or(K8sError::NoNodeName)?;
    let ca_path = service_account_dir.join("ca.crt");
    let ca = std::fs::read(&ca_path).map_err(|source| K8sError::ReadFile {
        what: "service account CA certificate",
        path: ca_path,
        source,
    })?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]") // IPv6 service address
    } else {
        host
    };
    MetadataResolver::new(
        &format!("https://{host}:{port}"),
        TokenSource::file(token_path),
        Some(&ca),
        node_name,
    )
    .map(Some)
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // A panic while a cache was being written leaves it consistent enough to
    // read (indexes may point at a missing object, which lookups tolerate).
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Exponential backoff with jitter, so that the agents of every node do not
/// retry against a recovering API server in lockstep.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }

    async fn wait(&mut self) {
        // Between half and all of the current delay; the low bits of the
        // clock are random enough to spread the nodes apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
        tokio::time::sleep(self.next.mul_f64(fraction)).await;
        self.next = (self.next * 2).min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sonde-k8s-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    // A self-signed test certificate (CN=sonde-test-apiserver, SAN
    // 127.0.0.1), the same one tests/resolver.rs serves TLS with.
    const TEST_CA: &str = include_str!("../tests/fixtures/apiserver.crt");

    #[test]
    fn outside_a_cluster_there_is_no_resolver() {
        let dir = temp_dir("nocluster");
        let resolver = from_environment_at(env(&[]), &dir, Some("node-1".into())).unwrap();
        assert!(resolver.is_none());
        // Variables but no mounted token: not an error either.
        let vars = env(&[
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
        ]);
        assert!(
            from_environment_at(vars, &dir, Some("node-1".into()))
                .unwrap()
                .is_none()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn in_a_cluster_the_node_name_is_required() {
        let dir = temp_dir("nonode");
        std::fs::write(dir.join("token"), "t0ken\n").unwrap();
        std::fs::write(dir.join("ca.crt"), TEST_CA).unwrap();
        let vars = || {
            env(&[
                ("KUBERNETES_SERVICE_HOST", "fd00::1"),
                ("KUBERNETES_SERVICE_PORT", "443"),
            ])
        };
        let err = from_environment_at(vars(), &dir, None).unwrap_err();
        assert!(matches!(err, K8sError::NoNodeName), "{err}");
        let with_node = env(&[
            ("KUBERNETES_SERVICE_HOST", "fd00::1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("NODE_NAME", "node-7"),
        ]);
        let resolver = from_environment_at(with_node, &dir, None).unwrap().unwrap();
        assert_eq!(resolver.node_name(), "node-7");
        std::fs::remove_file(dir.join("ca.crt")).unwrap();
        let err = from_environment_at(vars(), &dir, Some("node-1".into())).unwrap_err();
        assert!(matches!(err, K8sError::ReadFile { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn connect_rejects_unusable_settings() {
        let bad = [
            ("not a url", None),
            ("ftp://127.0.0.1:1", None),
            ("https://127.0.0.1:6443", None),
        ];
        for (url, ca) in bad {
            let err = MetadataResolver::connect(url, None, ca, "n".into())
                .await
                .unwrap_err();
            assert!(matches!(err, K8sError::Config(_)), "{url}: {err}");
        }
        let err = MetadataResolver::connect(
            "https://127.0.0.1:6443",
            None,
            Some(b"garbage".to_vec()),
            "n".into(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, K8sError::Tls(_)), "{err}");
        let err = MetadataResolver::connect("http://127.0.0.1:1", None, None, " ".into())
            .await
            .unwrap_err();
        assert!(matches!(err, K8sError::NoNodeName), "{err}");
    }

    #[test]
    fn token_file_is_read_and_kept_on_transient_errors() {
        let dir = temp_dir("token");
        let path = dir.join("token");
        std::fs::write(&path, "first\n").unwrap();
        let source = TokenSource::file(path.clone());
        assert_eq!(source.token().unwrap().as_deref(), Some("first"));
        std::fs::remove_file(&path).unwrap();
        // Still cached (and would be kept after the refresh interval too).
        assert_eq!(source.token().unwrap().as_deref(), Some("first"));
        let missing = TokenSource::file(path);
        assert!(missing.token().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
