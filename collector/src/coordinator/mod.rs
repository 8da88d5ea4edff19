//! `sonde coordinator`: one SQL view of every agent. It plans each query
//! over the agents' worker endpoints (see `sonde_query::distributed`) and
//! serves the same HTTP API, dashboard and PostgreSQL endpoint as an
//! agent. It captures nothing and keeps no rows.

pub mod peers;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use sonde_query::QueryEngine;
use sonde_query::distributed::{Cluster, ClusterClientConfig};
use sonde_query::pgwire::PgConfig;
use sonde_query::schema::all_tables;
use sonde_query::stats::StatsRegistry;
use sonde_web::AppState;
use tokio::sync::watch;

use crate::agent::{auth, bind, wait_for_signal, worker_client_config};
use crate::cli::CoordinatorArgs;

pub async fn run(args: CoordinatorArgs) -> anyhow::Result<()> {
    let token = args
        .auth_token_file
        .as_deref()
        .map(auth::load_token)
        .transpose()?;
    auth::check_exposure(args.listen, token.as_deref())?;
    if let Some(addr) = args.pg_listen.addr() {
        auth::check_exposure_of("--pg-listen", addr, token.as_deref())?;
    }
    let client: ClusterClientConfig = worker_client_config(&args.worker_tls, token.as_deref())?;
    let peers = peers::from_args(&args).await?;
    let tables = all_tables()
        .into_iter()
        .map(|(name, schema)| (name.to_owned(), schema))
        .collect();
    let cluster = Cluster::new(
        peers,
        tables,
        &client,
        Duration::from_millis(args.peer_timeout_ms),
    )
    .map_err(|err| anyhow::anyhow!("worker client settings: {err}"))?;
    let engine = Arc::new(QueryEngine::cluster(Arc::new(cluster)));

    let listener = bind(args.listen, "--listen").await?;
    let pg_listener = match args.pg_listen.addr() {
        Some(addr) => Some(bind(addr, "--pg-listen").await?),
        None => None,
    };
    let (shutdown_tx, _) = watch::channel(false);
    let shutdown = |tx: &watch::Sender<bool>| {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.changed().await;
        }
    };
    let pg = pg_listener.map(|listener| {
        let config = PgConfig {
            token: token.clone(),
            ..PgConfig::default()
        };
        tokio::spawn(sonde_query::pgwire::serve(
            Arc::clone(&engine),
            listener,
            config,
            shutdown(&shutdown_tx),
        ))
    });
    let mut app = sonde_web::router(AppState {
        engine,
        stats: Arc::new(StatsRegistry::new()),
        ready: Arc::new(AtomicBool::new(true)),
        extra_metrics: Vec::new(),
        // Nothing of its own can run degraded: it captures nothing.
        degraded: Vec::new().into(),
    });
    if let Some(token) = token {
        app = auth::require_token(app, token);
    }
    tracing::info!(
        pg = ?args.pg_listen.addr(),
        "coordinator serving on http://{}",
        args.listen
    );
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown(&shutdown_tx))
            .into_future(),
    );
    wait_for_signal().await?;
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    if let Some(pg) = pg {
        let _ = pg.await;
    }
    server
        .await
        .context("joining the API server")?
        .context("API server")?;
    Ok(())
}
