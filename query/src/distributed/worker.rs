//! The agent's worker endpoint: runs the query fragments a coordinator
//! sends (scans of this node's store, filters, partial aggregates,
//! shuffles) and streams their results back, over gRPC (Arrow Flight).
//!
//! What it accepts is bounded three ways: the bearer token (required
//! beyond loopback, like the HTTP API), a check of every plan it is sent
//! (only scans of this node's tables and in-memory values as leaves, no
//! writes: a plan cannot read or write files), and the engine's memory
//! pool and query threads, which the fragments share with local queries.

use std::future::Future;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::memory::{DataSourceExec, MemorySourceConfig};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_distributed::{
    DistributedExt, NetworkBoundaryExt, Worker, WorkerPlanRewriteEvent,
    WorkerPlanRewriteEventResponse, WorkerQueryContext,
};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptorLayer;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};

use super::channels::{ClusterChannels, ClusterClientConfig};
use super::scan::ScanCodec;
use crate::engine::QueryEngine;

/// Leaves (plans without children) a worker runs besides network
/// boundaries: the scans [`ScanCodec`] makes, and values computed in
/// memory.
const ALLOWED_LEAVES: &[&str] = &["EmptyExec", "PlaceholderRowExec", "LazyMemoryExec"];

/// A worker's settings.
#[derive(Debug, Clone, Default)]
pub struct WorkerConfig {
    /// This node's name, reported to coordinators.
    pub node_name: String,
    /// Required from callers (`authorization: Bearer …`) when set.
    pub token: Option<String>,
    /// PEM certificate chain and private key: serve TLS.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// How this worker reaches the others (in shuffles).
    pub client: ClusterClientConfig,
}

/// The version string a worker reports: `sonde <version> node=<name>`.
pub(crate) fn worker_version(node_name: &str) -> String {
    format!("sonde {} node={node_name}", env!("CARGO_PKG_VERSION"))
}

/// The node name in a worker's version string.
pub(crate) fn node_of_version(version: &str) -> Option<&str> {
    version
        .split_whitespace()
        .find_map(|word| word.strip_prefix("node="))
}

/// Serves the worker on `listener` until `shutdown` resolves, running
/// the fragments on `engine`'s query threads against its store.
pub fn serve_worker(
    engine: &QueryEngine,
    listener: TcpListener,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<Result<(), String>>, String> {
    let store = engine
        .store()
        .cloned()
        .ok_or("only an agent (with a store) can be a worker")?;
    let channels = ClusterChannels::new(&config.client)?;
    let worker = Worker::from_session_builder(move |ctx: WorkerQueryContext| {
        let store = Arc::clone(&store);
        let channels = channels.clone();
        async move {
            Ok(ctx
                .builder
                .with_distributed_user_codec(ScanCodec::worker(store))
                .with_distributed_channel_resolver(channels)
                .with_distributed_worker_plan_rewrite_handler(check_plan)
                .build())
        }
    })
    .with_runtime_env(engine.runtime_env())
    .with_version(worker_version(&config.node_name));

    let mut server = Server::builder();
    if let Some((cert, key)) = &config.tls {
        server = server
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(|err| format!("worker TLS certificate or key: {err}"))?;
    }
    let token = config.token.clone();
    let router = server
        .layer(InterceptorLayer::new(move |request: Request<()>| {
            authorize(token.as_deref(), request)
        }))
        .add_service(worker.into_worker_server());
    let incoming = TcpIncoming::from(listener);
    Ok(engine.spawn_service(async move {
        router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|err| err.to_string())
    }))
}

/// Lets a call through when no token is required or it carries the token.
fn authorize(token: Option<&str>, request: Request<()>) -> Result<Request<()>, Status> {
    let Some(token) = token else {
        return Ok(request);
    };
    let presented = request
        .metadata()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(given) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => Ok(request),
        _ => Err(Status::unauthenticated("missing or wrong bearer token")),
    }
}

/// Refuses a plan that could read or write anything but this node's
/// tables.
fn check_plan(event: WorkerPlanRewriteEvent) -> Result<WorkerPlanRewriteEventResponse> {
    event.plan.apply(|node| {
        if node.is_network_boundary() {
            return Ok(TreeNodeRecursion::Jump);
        }
        if node.name() == "DataSinkExec" {
            return Err(refused(node.as_ref()));
        }
        if node.children().is_empty() && !allowed_leaf(node.as_ref()) {
            return Err(refused(node.as_ref()));
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(WorkerPlanRewriteEventResponse::new(event.plan))
}

fn allowed_leaf(node: &dyn ExecutionPlan) -> bool {
    if let Some(source) = node.downcast_ref::<DataSourceExec>() {
        return source
            .data_source()
            .downcast_ref::<MemorySourceConfig>()
            .is_some();
    }
    ALLOWED_LEAVES.contains(&node.name())
}

fn refused(node: &dyn ExecutionPlan) -> DataFusionError {
    DataFusionError::Plan(format!(
        "this worker only runs scans of its own tables; refused {}",
        node.name()
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    async fn physical(sql: &str) -> Arc<dyn ExecutionPlan> {
        let ctx = SessionContext::new();
        ctx.sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap()
    }

    fn check(plan: Arc<dyn ExecutionPlan>) -> Result<()> {
        let config = SessionConfig::new();
        check_plan(WorkerPlanRewriteEvent {
            plan,
            session_config: &config,
        })
        .map(|_| ())
    }

    #[tokio::test]
    async fn plans_that_touch_files_are_refused() {
        assert!(check(physical("SELECT 1 + 1").await).is_ok());
        assert!(
            check(physical("SELECT * FROM (VALUES (1), (2)) AS t(x) WHERE x > 1").await).is_ok()
        );
        let dir = std::env::temp_dir().join(format!("sonde-worker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("secret.csv");
        std::fs::write(&csv, "a\n1\n").unwrap();
        let ctx = SessionContext::new();
        ctx.register_csv("secret", csv.to_str().unwrap(), Default::default())
            .await
            .unwrap();
        let plan = ctx
            .sql("SELECT * FROM secret")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let err = check(plan).unwrap_err();
        assert!(err.to_string().contains("refused DataSourceExec"), "{err}");
    }

    #[test]
    fn the_token_is_required_when_set() {
        let with = |value: Option<&str>| {
            let mut request = Request::new(());
            if let Some(value) = value {
                request
                    .metadata_mut()
                    .insert("authorization", value.parse().unwrap());
            }
            request
        };
        assert!(authorize(None, with(None)).is_ok());
        assert!(authorize(Some("secret-token"), with(Some("Bearer secret-token"))).is_ok());
        let err = authorize(Some("secret-token"), with(Some("Bearer wrong"))).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(authorize(Some("secret-token"), with(None)).is_err());
    }

    #[test]
    fn the_version_names_the_node() {
        let version = worker_version("n2");
        assert_eq!(node_of_version(&version), Some("n2"));
        assert_eq!(node_of_version("4.0.0"), None);
    }
}
