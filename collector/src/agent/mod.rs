//! `sonde agent`: wires the store, the probes, the capture thread, the
//! export pipeline and the API, and owns their lifetimes (start order,
//! shutdown, a capture thread that stops is fatal).

pub mod auth;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use sonde_k8s::MetadataResolver;
use sonde_protocols::http::HttpConfig;
use sonde_query::distributed::{ClusterClientConfig, WorkerConfig, serve_worker};
use sonde_query::engine::QueryEngine;
use sonde_query::pgwire::PgConfig;
use sonde_query::schema::{CAPTURE_STATS, HTTP_EVENTS, PROBE_STATUS, all_tables};
use sonde_query::stats::StatsRegistry;
use sonde_query::store::{StoreConfig, TableStore};
use sonde_web::AppState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::cli::{AgentArgs, WorkerTlsArgs};
use crate::counters::CaptureCounters;
use crate::kernel::loader::{self, ProbeConfig};
use crate::kernel::ring_reader::{self, Capture};
use crate::kernel::{probe_status, tls};
use crate::sessions::SessionConfig;
use crate::tracker::k8s_fields::K8sEnricher;
use crate::tracker::{Tracker, TrackerConfig};

/// How long shutdown waits for queued spans to reach the backend.
const EXPORT_SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

fn http_config(args: &AgentArgs) -> HttpConfig {
    let mut config = HttpConfig {
        body_prefix_bytes: usize::try_from(args.body_prefix_bytes).unwrap_or(usize::MAX),
        ..HttpConfig::default()
    };
    if args.no_default_redaction {
        config.redacted_headers.clear();
    }
    // Stored lowercase by `RedactedNames`.
    config.redacted_headers.extend(&args.redact_headers);
    config
}

/// This node's name: `--node-name` (in Kubernetes, the node the pod runs
/// on), else the host name.
fn node_name(args: &AgentArgs) -> anyhow::Result<String> {
    args.node_name
        .clone()
        .filter(|name| !name.trim().is_empty())
        .or_else(sonde_query::node::host_name)
        .context("no --node-name given and the host name cannot be read")
}

/// Binds an endpoint's listener (`flag` names it in the error).
pub async fn bind(
    addr: std::net::SocketAddr,
    flag: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({flag})"))
}

/// How this process calls workers: the cluster's token, and the CA of
/// `--worker-certificate` for https:// ones.
pub fn worker_client_config(
    tls: &WorkerTlsArgs,
    token: Option<&str>,
) -> anyhow::Result<ClusterClientConfig> {
    let ca_pem = tls
        .worker_certificate
        .as_deref()
        .map(crate::export::client_tls::load_ca_file)
        .transpose()
        .context("--worker-certificate")?;
    Ok(ClusterClientConfig {
        token: token.map(str::to_owned),
        ca_pem,
    })
}

/// The worker endpoint's certificate and key, when TLS is asked for.
fn worker_server_tls(tls: &WorkerTlsArgs) -> anyhow::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let (Some(cert), Some(key)) = (&tls.worker_tls_cert, &tls.worker_tls_key) else {
        return Ok(None);
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    };
    Ok(Some((read(cert)?, read(key)?)))
}

fn store_config(args: &AgentArgs) -> StoreConfig {
    StoreConfig {
        budget_bytes: usize::try_from(args.store_budget_mib << 20).unwrap_or(usize::MAX),
        // capture_stats is small; HTTP is usually the bulk; the other tables
        // (DNS, MySQL, Redis, PostgreSQL, conn_stats) share what is left
        // equally.
        shares: vec![
            (CAPTURE_STATS.to_string(), 0.02),
            (PROBE_STATUS.to_string(), 0.02),
            (HTTP_EVENTS.to_string(), 0.58),
        ],
    }
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let node_name = node_name(&args)?;
    if let Err(set) = sonde_query::node::set_local(&node_name) {
        anyhow::bail!("this process already serves node {set}");
    }
    let stats = Arc::new(StatsRegistry::new());
    let store = Arc::new(TableStore::new(store_config(&args), stats.clone()));
    for (name, schema) in all_tables() {
        store.register(name, schema)?;
    }
    let engine = Arc::new(QueryEngine::new(store.clone()));
    let ready = Arc::new(AtomicBool::new(false));

    let token = args
        .auth_token_file
        .as_deref()
        .map(auth::load_token)
        .transpose()?;
    auth::check_exposure(args.listen, token.as_deref())?;
    if let Some(addr) = args.pg_listen.addr() {
        auth::check_exposure_of("--pg-listen", addr, token.as_deref())?;
    }
    if let Some(addr) = args.worker_listen.addr() {
        auth::check_exposure_of("--worker-listen", addr, token.as_deref())?;
    }
    let worker_client = worker_client_config(&args.worker_tls, token.as_deref())?;
    let worker_tls = worker_server_tls(&args.worker_tls)?;
    // Before any probe: a bad filter or endpoint is reported straight away.
    let mut export = crate::export::start(&args.export, args.node_name.as_deref(), &stats)
        .context("OTLP export settings")?;

    // Bind first: a port already in use fails before any probe is loaded.
    let listener = bind(args.listen, "--listen").await?;
    let pg_listener = match args.pg_listen.addr() {
        Some(addr) => Some(bind(addr, "--pg-listen").await?),
        None => None,
    };
    let worker_listener = match args.worker_listen.addr() {
        Some(addr) => Some(bind(addr, "--worker-listen").await?),
        None => None,
    };

    let probe_config = ProbeConfig {
        max_bytes_per_call: args.max_bytes_per_call,
        ring_buffer_bytes: args.ring_buffer_mib << 20,
        wakeup_bytes: args
            .ring_wakeup_bytes
            .min(u64::from(args.ring_buffer_mib << 20) / 4),
        proc_root: args.proc_root.clone(),
    };
    let (probes, ring) = loader::load_and_attach(&probe_config)?;
    tracing::info!(
        attached = probes.attached.len(),
        failed = probes.failed.len(),
        node = node_name,
        pg = ?args.pg_listen.addr(),
        worker = ?args.worker_listen.addr(),
        "probes attached; serving on http://{}",
        args.listen
    );
    let probes_attached = stats.counter("probes_attached", "Tracepoint programs attached");
    probes_attached.set(probes.attached.len() as u64);
    stats
        .counter(
            "probes_failed",
            "Tracepoint programs that could not be attached",
        )
        .set(probes.failed.len() as u64);
    probe_status::report_tracepoints(&store, &probes.attached, &probes.failed);
    probe_status::report_kernel(&store, &probes.kernel);
    let degraded = degraded_summary(&probes);
    for line in &degraded {
        tracing::warn!("degraded: {line}");
    }

    let tracker_config = TrackerConfig {
        sessions: SessionConfig {
            http: http_config(&args),
        },
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        max_buffered_bytes: usize::try_from(args.max_connection_state_mib << 20)
            .unwrap_or(usize::MAX),
        // The export pipeline (RED metrics always, spans with an endpoint)
        // takes the typed rows of every flush.
        keep_exchanges: true,
        node_name: Some(node_name.clone()),
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::new(tracker_config, CaptureCounters::register(&stats));
    if let Some(resolver) = kubernetes_resolver(&args).await? {
        let resolver = Arc::new(resolver);
        resolver.spawn();
        // Rows get Kubernetes columns once the caches are filled: say when.
        let synced = stats.counter(
            "kubernetes_metadata_synced",
            "1 once pods, services, EndpointSlices and nodes were listed",
        );
        let watched = resolver.clone();
        tokio::spawn(async move {
            while !watched.is_synced() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            synced.set(1);
            tracing::info!("Kubernetes metadata synced");
        });
        tracker = tracker.with_kubernetes(K8sEnricher::new(resolver, args.proc_root.clone()));
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // TLS plaintext: the uprobe attacher runs on its own thread.
    let mut probes = probes;
    let tls_thread = probes.tls_setup.take().and_then(|(ebpf, execs)| {
        tls::spawn(
            ebpf,
            execs,
            store.clone(),
            &stats,
            args.proc_root.clone(),
            shutdown_rx.clone(),
        )
    });
    let capture = Capture {
        probes,
        ring,
        tracker,
        store: store.clone(),
        stats: stats.clone(),
        tap: Some(export.tap.clone()),
        returned_rows: export.returned_rows.take(),
        // Records below the wakeup threshold wait for the collection timer.
        collect_every: (probe_config.wakeup_bytes > 0).then_some(ring_reader::COLLECT_EVERY),
    };
    // The capture thread reports when it ends: before a shutdown that is a
    // failure, and the agent must not keep serving stale data as healthy.
    let (capture_done_tx, capture_done) = tokio::sync::oneshot::channel::<()>();
    let capture_thread = std::thread::Builder::new()
        .name("sonde-capture".into())
        .spawn(move || {
            let result = ring_reader::run_blocking(capture, shutdown_rx);
            let _ = capture_done_tx.send(());
            result
        })
        .context("cannot start the capture thread")?;
    ready.store(true, Ordering::SeqCst);

    let until_shutdown = |tx: &watch::Sender<bool>| {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.changed().await;
        }
    };
    let pg_server = pg_listener.map(|listener| {
        let config = PgConfig {
            token: token.clone(),
            ..PgConfig::default()
        };
        tokio::spawn(sonde_query::pgwire::serve(
            engine.clone(),
            listener,
            config,
            until_shutdown(&shutdown_tx),
        ))
    });
    let worker_server = match worker_listener {
        Some(listener) => {
            let config = WorkerConfig {
                node_name: node_name.clone(),
                token: token.clone(),
                tls: worker_tls,
                client: worker_client,
            };
            Some(
                serve_worker(&engine, listener, config, until_shutdown(&shutdown_tx))
                    .map_err(|err| anyhow::anyhow!("worker endpoint: {err}"))?,
            )
        }
        None => None,
    };

    let mut app = sonde_web::router(AppState {
        engine,
        stats: stats.clone(),
        ready: ready.clone(),
        degraded: degraded.into(),
        extra_metrics: vec![export.red.clone()],
    });
    if let Some(token) = token {
        app = auth::require_token(app, token);
    }
    let mut server_shutdown = shutdown_tx.subscribe();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_shutdown.changed().await;
            })
            .await
    });

    let capture_stopped = tokio::select! {
        signal = wait_for_signal() => {
            signal?;
            false
        }
        _ = capture_done => true,
    };
    if capture_stopped {
        tracing::error!("the capture loop stopped unexpectedly; shutting down");
    } else {
        tracing::info!("shutting down");
    }
    ready.store(false, Ordering::SeqCst);
    let _ = shutdown_tx.send(true);
    let capture_result = tokio::task::spawn_blocking(move || capture_thread.join())
        .await
        .context("joining the capture thread")?;
    if let Some(tls_thread) = tls_thread {
        let _ = tokio::task::spawn_blocking(move || tls_thread.join()).await;
    }
    if let Ok(Err(err)) = server.await {
        tracing::warn!(%err, "API server error at shutdown");
    }
    if let Some(pg_server) = pg_server {
        let _ = pg_server.await;
    }
    if let Some(worker_server) = worker_server
        && let Ok(Err(err)) = worker_server.await
    {
        tracing::warn!(%err, "worker endpoint error at shutdown");
    }
    // The capture thread has dropped its tap: what is queued goes out.
    export.finish(EXPORT_SHUTDOWN_DEADLINE).await;
    log_counters(&stats);
    match capture_result {
        Ok(Ok(())) if capture_stopped => anyhow::bail!("the capture loop stopped before shutdown"),
        Ok(result) => result,
        Err(_) => anyhow::bail!("the capture thread panicked"),
    }
}

/// What `/readyz` lists as degraded: what the kernel lacks and the
/// tracepoints that could not be attached (details in `probe_status`).
fn degraded_summary(probes: &loader::Probes) -> Vec<String> {
    let mut lines = probes.kernel.degraded();
    if !probes.failed.is_empty() {
        let names: Vec<&str> = probes.failed.iter().map(|(p, _)| p.as_str()).collect();
        lines.push(format!(
            "{} of {} tracepoints not attached: {}",
            names.len(),
            names.len() + probes.attached.len(),
            names.join(", ")
        ));
    }
    lines
}

/// The bearer token of `--kubernetes-token-file`, if given.
pub fn kubernetes_token(path: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    path.map(|p| std::fs::read_to_string(p).map(|t| t.trim().to_string()))
        .transpose()
        .context("reading --kubernetes-token-file")
}

/// Pod metadata from the cluster: the in-cluster service account, or an
/// explicit API server. Outside Kubernetes: none, and the columns stay null.
async fn kubernetes_resolver(args: &AgentArgs) -> anyhow::Result<Option<MetadataResolver>> {
    let resolver = match &args.kubernetes_api {
        Some(url) => {
            let token = kubernetes_token(args.kubernetes_token_file.as_deref())?;
            let node = args
                .node_name
                .clone()
                .context("--kubernetes-api needs --node-name (or NODE_NAME)")?;
            Some(MetadataResolver::connect(url, token, None, node).await?)
        }
        None => MetadataResolver::from_environment(args.node_name.clone()).await?,
    };
    if resolver.is_some() {
        tracing::info!(node = ?args.node_name, "Kubernetes metadata enabled");
    }
    Ok(resolver)
}

pub async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// The same numbers as `capture_stats`, in the log, so loss is visible even
/// when nobody queried the agent.
fn log_counters(stats: &StatsRegistry) {
    let lines: Vec<String> = stats
        .snapshot()
        .iter()
        .map(|c| format!("  {:<32} {}", c.name, c.value))
        .collect();
    tracing::info!("capture statistics at shutdown:\n{}", lines.join("\n"));
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn every_table_gets_a_share_of_the_default_budget() {
        let Command::Agent(args) = Cli::parse_from(["sonde", "agent"]).command else {
            unreachable!("parsed the agent subcommand")
        };
        let config = store_config(&args);
        config.validate().unwrap();
        let store = TableStore::new(config, Arc::new(StatsRegistry::new()));
        for (name, schema) in all_tables() {
            store.register(name, schema).unwrap();
        }
        let stats = store.table_stats();
        assert_eq!(stats.len(), 8);
        for table in stats {
            assert!(
                table.budget_bytes >= 20 << 20,
                "{} budget {}",
                table.name,
                table.budget_bytes
            );
        }
    }
}
