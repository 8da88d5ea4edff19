//! The resolver against a fake API server on 127.0.0.1 that answers with
//! responses in the Kubernetes API's wire format (tests/fixtures: lists,
//! line-delimited watch streams with MODIFIED/DELETED/BOOKMARK events and a
//! 410 Gone ERROR event). Lookups are asserted exactly. No network beyond
//! loopback.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use sonde_k8s::{MetadataResolver, PodMeta, ResolverConfig};

const PODS: &str = "/api/v1/pods";
const SERVICES: &str = "/api/v1/services";
const SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";
const NODES: &str = "/api/v1/nodes";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn container_id(name: &str) -> String {
    let ids: HashMap<String, String> =
        serde_json::from_str(&fixture("container-ids.json")).unwrap();
    ids[name].clone()
}

/// One canned answer.
enum Reply {
    /// Status code and JSON body.
    Json(u16, String),
    /// A watch stream: these chunks, a few ms apart, then the end of the
    /// response, or (`hold`) a connection kept open with nothing more.
    Watch { chunks: Vec<String>, hold: bool },
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    query: HashMap<String, String>,
    authorization: Option<String>,
}

impl Seen {
    fn is_watch(&self) -> bool {
        self.query.get("watch").is_some_and(|v| v == "true")
    }
}

#[derive(Default)]
struct FakeApi {
    /// ("list" | "watch", path) → answers in order. An exhausted list queue
    /// answers 503; an exhausted watch queue holds the connection open.
    replies: Mutex<HashMap<(&'static str, String), VecDeque<Reply>>>,
    seen: Mutex<Vec<Seen>>,
}

impl FakeApi {
    fn list(&self, path: &str, status: u16, body: String) -> &Self {
        self.push("list", path, Reply::Json(status, body))
    }

    fn watch(&self, path: &str, chunks: Vec<String>, hold: bool) -> &Self {
        self.push("watch", path, Reply::Watch { chunks, hold })
    }

    fn watch_status(&self, path: &str, status: u16, body: String) -> &Self {
        self.push("watch", path, Reply::Json(status, body))
    }

    fn push(&self, kind: &'static str, path: &str, reply: Reply) -> &Self {
        self.replies
            .lock()
            .unwrap()
            .entry((kind, path.to_owned()))
            .or_default()
            .push_back(reply);
        self
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

async fn answer(
    State(api): State<Arc<FakeApi>>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let seen = Seen {
        path: request.uri().path().to_owned(),
        query,
        authorization: request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let kind = if seen.is_watch() { "watch" } else { "list" };
    api.seen.lock().unwrap().push(seen.clone());
    let reply = api
        .replies
        .lock()
        .unwrap()
        .get_mut(&(kind, seen.path.clone()))
        .and_then(VecDeque::pop_front);
    let reply = reply.unwrap_or_else(|| match kind {
        "watch" => Reply::Watch {
            chunks: Vec::new(),
            hold: true,
        },
        _ => Reply::Json(
            503,
            status_json(503, "ServiceUnavailable", "no more canned lists"),
        ),
    });
    match reply {
        Reply::Json(status, body) => Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap(),
        Reply::Watch { chunks, hold } => {
            let chunks = futures::stream::iter(chunks).then(|chunk| async move {
                // Separate writes, so lines really arrive split.
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok::<_, Infallible>(Bytes::from(chunk))
            });
            let body = if hold {
                Body::from_stream(chunks.chain(futures::stream::pending()))
            } else {
                Body::from_stream(chunks)
            };
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .unwrap()
        }
    }
}

fn status_json(code: u16, reason: &str, message: &str) -> String {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    })
    .to_string()
}

fn empty_list(kind: &str, rv: &str) -> String {
    serde_json::json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": []}).to_string()
}

async fn serve(api: Arc<FakeApi>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(answer).with_state(api);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn test_config() -> ResolverConfig {
    ResolverConfig {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..ResolverConfig::default()
    }
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Splits a watch stream into chunks that cut lines in the middle.
fn split_chunks(stream: &str, size: usize) -> Vec<String> {
    stream
        .as_bytes()
        .chunks(size)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect()
}

fn meta(
    pod: &str,
    namespace: &str,
    node: Option<&str>,
    service: Option<&str>,
    container: Option<&str>,
) -> PodMeta {
    PodMeta {
        pod: pod.into(),
        namespace: namespace.into(),
        node: node.map(Into::into),
        service: service.map(Into::into),
        container: container.map(Into::into),
    }
}

#[tokio::test]
async fn resolves_from_lists_and_watch_events_and_relists_on_410() {
    let api = Arc::new(FakeApi::default());
    api.list(PODS, 200, fixture("pods-list-1.json"))
        .watch(
            PODS,
            split_chunks(&fixture("pods-watch-1.jsonl"), 700),
            false,
        )
        .list(PODS, 200, fixture("pods-list-2.json"))
        .watch(PODS, vec![], true);
    api.list(SERVICES, 200, fixture("services-list.json"))
        .watch(SERVICES, vec![fixture("services-watch.jsonl")], true);
    api.list(SLICES, 200, fixture("endpointslices-list-page-1.json"))
        .list(SLICES, 200, fixture("endpointslices-list-page-2.json"))
        .watch(
            SLICES,
            split_chunks(&fixture("endpointslices-watch.jsonl"), 333),
            true,
        );
    api.list(NODES, 200, fixture("nodes-list.json"));
    let addr = serve(Arc::clone(&api)).await;

    let resolver = MetadataResolver::connect(
        &format!("http://{addr}"),
        Some("test-token".into()),
        None,
        "node-1".into(),
    )
    .await
    .unwrap()
    .with_config(test_config());
    let resolver = Arc::new(resolver);
    assert!(!resolver.is_synced());
    assert_eq!(
        resolver.pod_for_container(&container_id("web")),
        None,
        "nothing before spawn"
    );
    let task = resolver.spawn();

    // The last event of each stream applied, and the pods re-listed and
    // watched again after the 410.
    eventually("the relisted pods watched again", || {
        api.seen_at(PODS).iter().any(|s| {
            s.is_watch() && s.query.get("resourceVersion").map(String::as_str) == Some("2000")
        })
    })
    .await;
    eventually("the api slice added", || {
        resolver.service_for_ip("10.244.1.40").is_some()
    })
    .await;
    eventually("kube-dns deleted", || {
        resolver.service_for_ip("10.96.0.10").is_none()
    })
    .await;
    assert!(resolver.is_synced());

    // By container id, this node's pods.
    let web = |container: &str| {
        meta(
            "web-7d4b9c8f6-abcde",
            "default",
            Some("node-1"),
            Some("default/web"),
            Some(container),
        )
    };
    assert_eq!(
        resolver.pod_for_container(&container_id("web-restarted")),
        Some(web("web"))
    );
    assert_eq!(
        resolver.pod_for_container(&format!("containerd://{}", container_id("web-restarted"))),
        Some(web("web"))
    );
    assert_eq!(
        resolver.pod_for_container(&container_id("web")),
        None,
        "replaced by the restart"
    );
    assert_eq!(
        resolver.pod_for_container(&container_id("istio-proxy")),
        Some(web("istio-proxy"))
    );
    assert_eq!(
        resolver.pod_for_container(&container_id("init")),
        Some(web("init"))
    );
    assert_eq!(
        resolver.pod_for_container(&container_id("kube-proxy")),
        Some(meta(
            "kube-proxy-x2x9z",
            "kube-system",
            Some("node-1"),
            None,
            Some("kube-proxy")
        ))
    );
    assert_eq!(
        resolver.pod_for_container(&container_id("api")),
        Some(meta(
            "api-5f6d7c8b9-fghij",
            "default",
            Some("node-1"),
            Some("default/api"),
            Some("api")
        ))
    );
    assert_eq!(
        resolver.pod_for_container(&container_id("cache")),
        Some(meta(
            "cache-0",
            "default",
            Some("node-1"),
            None,
            Some("cache")
        )),
        "only in the re-list"
    );
    assert_eq!(
        resolver.pod_for_container(&container_id("batch")),
        None,
        "DELETED event"
    );
    assert_eq!(
        resolver.pod_for_container(&container_id("old")),
        None,
        "absent from the re-list"
    );
    assert_eq!(resolver.pod_for_container("not-an-id"), None);

    // By address.
    let web_by_ip = meta(
        "web-7d4b9c8f6-abcde",
        "default",
        Some("node-1"),
        Some("default/web"),
        None,
    );
    assert_eq!(resolver.pod_for_ip("10.244.1.10"), Some(web_by_ip.clone()));
    assert_eq!(resolver.pod_for_ip("::ffff:10.244.1.10"), Some(web_by_ip));
    assert_eq!(
        resolver.pod_for_ip("10.244.3.7"),
        Some(meta(
            "web-7d4b9c8f6-pqrst",
            "default",
            Some("node-3"),
            Some("default/web"),
            None
        )),
        "remote pod added to the slice by a MODIFIED event"
    );
    assert_eq!(
        resolver.pod_for_ip("10.244.2.21"),
        None,
        "removed from the slice by the MODIFIED event"
    );
    assert_eq!(
        resolver.pod_for_ip("10.244.2.5"),
        Some(meta(
            "coredns-5d78c9869d-2bq9l",
            "kube-system",
            Some("node-2"),
            Some("kube-system/kube-dns"),
            None
        )),
        "from the second page of the paged list"
    );
    assert_eq!(
        resolver.pod_for_ip("10.244.1.20"),
        None,
        "finished pod's address is not its own"
    );
    assert_eq!(
        resolver.pod_for_ip("192.168.1.11"),
        None,
        "node address, though a host-network endpoint"
    );
    assert_eq!(resolver.pod_for_ip("192.168.1.12"), None);
    assert_eq!(
        resolver.pod_for_ip("10.244.9.9"),
        None,
        "slice without a service label"
    );
    assert_eq!(resolver.pod_for_ip("10.0.0.99"), None);
    assert_eq!(resolver.pod_for_ip("not an address"), None);

    assert_eq!(
        resolver.service_for_ip("10.96.10.10").as_deref(),
        Some("default/web")
    );
    assert_eq!(
        resolver.service_for_ip("10.96.20.20").as_deref(),
        Some("default/api"),
        "ADDED event"
    );
    assert_eq!(
        resolver.service_for_ip("10.96.0.1").as_deref(),
        Some("default/kubernetes")
    );
    assert_eq!(resolver.service_for_ip("10.96.0.10"), None, "DELETED event");
    assert_eq!(
        resolver.service_for_ip("10.244.3.7").as_deref(),
        Some("default/web")
    );
    assert_eq!(
        resolver.service_for_ip("192.168.1.10").as_deref(),
        Some("default/kubernetes"),
        "API server endpoint"
    );
    assert_eq!(
        resolver.service_for_ip("192.168.1.11"),
        None,
        "node address"
    );
    assert_eq!(resolver.service_for_ip("None"), None);

    assert_eq!(
        resolver.node_for_ip("203.0.113.12").as_deref(),
        Some("node-2")
    );
    assert_eq!(
        resolver.node_for_ip("192.168.1.11").as_deref(),
        Some("node-1")
    );
    assert_eq!(resolver.node_for_ip("10.244.1.10"), None);

    let stats = resolver.stats();
    assert!(stats.synced);
    assert_eq!(stats.pods, 4);
    assert_eq!(
        stats.services, 3,
        "web, kubernetes, api (headless web-headless not cached)"
    );
    assert_eq!(stats.endpoint_slices, 5);
    assert_eq!(stats.nodes, 2);
    assert_eq!(stats.relists, 5, "pods twice, services, slices, nodes once");
    assert_eq!(stats.api_errors, 0, "a 410 is routine, not an error");
    assert_eq!(stats.objects_dropped, 0);
    assert_eq!(stats.events, 7);

    // What was asked, and how.
    let seen = api.seen();
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer test-token")),
        "{seen:?}"
    );
    let pods = api.seen_at(PODS);
    let kinds: Vec<(bool, Option<&str>)> = pods
        .iter()
        .map(|s| {
            (
                s.is_watch(),
                s.query.get("resourceVersion").map(String::as_str),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (false, None),
            (true, Some("1000")),
            (false, None),
            (true, Some("2000"))
        ]
    );
    for request in &pods {
        assert_eq!(
            request.query.get("fieldSelector").map(String::as_str),
            Some("spec.nodeName=node-1")
        );
    }
    assert_eq!(pods[0].query.get("limit").map(String::as_str), Some("500"));
    assert_eq!(
        pods[1].query.get("allowWatchBookmarks").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        pods[1].query.get("timeoutSeconds").map(String::as_str),
        Some("290")
    );
    let slices = api.seen_at(SLICES);
    assert_eq!(slices[0].query.get("continue"), None);
    assert_eq!(
        slices[1].query.get("continue").map(String::as_str),
        Some(
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NjAwLCJzdGFydCI6ImRlZmF1bHQvd2ViLWFiYzEyXHUwMDAwIn0"
        )
    );
    assert!(slices[2].is_watch());
    assert_eq!(
        slices[2].query.get("resourceVersion").map(String::as_str),
        Some("600")
    );
    assert_eq!(
        api.seen_at(SERVICES)[0].query.get("fieldSelector"),
        None,
        "services cluster-wide"
    );

    task.abort();
}

fn minimal_world(api: &FakeApi) {
    api.list(PODS, 200, empty_list("PodList", "10"));
    api.list(SERVICES, 200, empty_list("ServiceList", "10"));
    api.list(SLICES, 200, empty_list("EndpointSliceList", "10"));
    api.list(NODES, 200, empty_list("NodeList", "10"));
}

async fn start(
    api: &Arc<FakeApi>,
    config: ResolverConfig,
) -> (Arc<MetadataResolver>, tokio::task::JoinHandle<()>) {
    let addr = serve(Arc::clone(api)).await;
    let resolver =
        MetadataResolver::connect(&format!("http://{addr}"), None, None, "node-1".into())
            .await
            .unwrap()
            .with_config(config);
    let resolver = Arc::new(resolver);
    let task = resolver.spawn();
    (resolver, task)
}

#[tokio::test]
async fn errors_are_retried_with_backoff_and_counted() {
    let api = Arc::new(FakeApi::default());
    // Services: forbidden (RBAC not applied yet), then a server error, then
    // fine; its first watch answers 410 at once, which re-lists.
    api.list(SERVICES, 403, status_json(403, "Forbidden", "services is forbidden: User \"system:serviceaccount:sonde:sonde\" cannot list resource \"services\""))
        .list(SERVICES, 500, "not json at all".into())
        .list(SERVICES, 200, fixture("services-list.json"))
        .watch_status(SERVICES, 410, status_json(410, "Expired", "too old resource version"))
        .list(SERVICES, 200, fixture("services-list.json"));
    api.list(PODS, 200, empty_list("PodList", "10"))
        .list(SLICES, 200, empty_list("EndpointSliceList", "10"))
        .list(NODES, 200, empty_list("NodeList", "10"));
    let (resolver, task) = start(&api, test_config()).await;

    eventually("synced after the errors", || resolver.is_synced()).await;
    eventually("re-listed after the 410 answer", || {
        api.seen_at(SERVICES).len() >= 6
    })
    .await;
    assert_eq!(
        resolver.service_for_ip("10.96.10.10").as_deref(),
        Some("default/web")
    );
    let stats = resolver.stats();
    assert_eq!(stats.api_errors, 2, "403 and 500; the 410 is routine");
    assert_eq!(stats.relists, 5);
    task.abort();
}

#[tokio::test]
async fn caps_bound_the_caches_and_count_the_rest() {
    let api = Arc::new(FakeApi::default());
    minimal_world(&api);
    api.replies.lock().unwrap().clear();
    api.list(PODS, 200, fixture("pods-list-1.json"))
        .list(SERVICES, 200, fixture("services-list.json"))
        .list(SLICES, 200, empty_list("EndpointSliceList", "10"))
        .list(NODES, 200, fixture("nodes-list.json"));
    let config = ResolverConfig {
        max_pods: 2,
        max_services: 1,
        max_nodes: 1,
        ..test_config()
    };
    let (resolver, task) = start(&api, config).await;
    eventually("synced", || resolver.is_synced()).await;
    let stats = resolver.stats();
    assert_eq!((stats.pods, stats.services, stats.nodes), (2, 1, 1));
    assert_eq!(
        stats.objects_dropped,
        2 + 2 + 1,
        "pods, services (of 3 with an address), nodes"
    );
    task.abort();
}

#[tokio::test]
async fn bad_watch_streams_relist() {
    let api = Arc::new(FakeApi::default());
    minimal_world(&api);
    // A malformed line, then (after the re-list) an event over the size cap.
    api.watch(
        PODS,
        vec!["{\"type\":\"ADDED\",\"object\":{\"metadata\":\n".into()],
        true,
    )
    .list(PODS, 200, empty_list("PodList", "20"))
    .watch(
        PODS,
        vec![format!(
            "{{\"type\":\"ADDED\",\"object\":{{\"metadata\":{{\"name\":\"{}\"}}}}}}\n",
            "x".repeat(200_000)
        )],
        true,
    )
    .list(PODS, 200, fixture("pods-list-2.json"));
    let config = ResolverConfig {
        max_event_bytes: 64 * 1024,
        ..test_config()
    };
    let (resolver, task) = start(&api, config).await;
    eventually("the third pod list applied", || {
        resolver.pod_for_container(&container_id("cache")).is_some()
    })
    .await;
    let watches: Vec<_> = api
        .seen_at(PODS)
        .into_iter()
        .filter(Seen::is_watch)
        .collect();
    assert_eq!(
        watches[0].query.get("resourceVersion").map(String::as_str),
        Some("10")
    );
    assert_eq!(
        watches[1].query.get("resourceVersion").map(String::as_str),
        Some("20")
    );
    assert_eq!(
        resolver.stats().api_errors,
        2,
        "decode error and oversized event"
    );
    task.abort();
}

#[tokio::test]
async fn a_watch_resumes_from_the_last_version_after_a_dropped_connection() {
    let api = Arc::new(FakeApi::default());
    minimal_world(&api);
    // The stream ends after a bookmark (the server's timeoutSeconds, or a
    // dropped connection): the next watch starts from the bookmark.
    api.watch(NODES, vec!["{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"77\"}}}\n".into()], false);
    let (resolver, task) = start(&api, test_config()).await;
    eventually("second node watch", || {
        api.seen_at(NODES).iter().filter(|s| s.is_watch()).count() >= 2
    })
    .await;
    let watches: Vec<_> = api
        .seen_at(NODES)
        .into_iter()
        .filter(Seen::is_watch)
        .collect();
    assert_eq!(
        watches[1].query.get("resourceVersion").map(String::as_str),
        Some("77")
    );
    assert_eq!(resolver.stats().relists, 4, "no re-list needed");
    task.abort();
}

// ---- TLS: the in-cluster path (https + the service account's CA) ----------

struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that rejects our certificate fails the handshake:
            // wait for the next one.
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

async fn serve_tls(api: Arc<FakeApi>) -> SocketAddr {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = CertificateDer::from_pem_slice(fixture("apiserver.crt").as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(fixture("apiserver.key").as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    };
    let app = Router::new().fallback(answer).with_state(api);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn https_with_the_cluster_ca() {
    let api = Arc::new(FakeApi::default());
    minimal_world(&api);
    api.replies
        .lock()
        .unwrap()
        .remove(&("list", NODES.to_owned()));
    api.list(NODES, 200, fixture("nodes-list.json"));
    let addr = serve_tls(Arc::clone(&api)).await;
    let url = format!("https://127.0.0.1:{}", addr.port());

    let resolver = MetadataResolver::connect(
        &url,
        Some("tls-token".into()),
        Some(fixture("apiserver.crt").into_bytes()),
        "node-1".into(),
    )
    .await
    .unwrap()
    .with_config(test_config());
    let resolver = Arc::new(resolver);
    let task = resolver.spawn();
    eventually("synced over TLS", || resolver.is_synced()).await;
    assert_eq!(
        resolver.node_for_ip("192.168.1.12").as_deref(),
        Some("node-2")
    );
    assert!(
        api.seen()
            .iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer tls-token"))
    );
    task.abort();

    // A client trusting another CA never gets an answer.
    let other = Arc::new(FakeApi::default());
    minimal_world(&other);
    let addr = serve_tls(Arc::clone(&other)).await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let untrusting = MetadataResolver::connect(
        &url,
        None,
        Some(fixture("other-ca.crt").into_bytes()),
        "node-1".into(),
    )
    .await
    .unwrap()
    .with_config(test_config());
    let untrusting = Arc::new(untrusting);
    let task = untrusting.spawn();
    eventually("handshake failures counted", || {
        untrusting.stats().api_errors >= 4
    })
    .await;
    assert!(!untrusting.is_synced());
    assert!(other.seen().is_empty(), "no request got through");
    task.abort();
}
