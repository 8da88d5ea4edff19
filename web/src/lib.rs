//! Sonde's HTTP API: the SQL endpoint, health and readiness probes,
//! Prometheus metrics, and the web dashboard (static files that use the
//! SQL endpoint like any other client). Handlers are thin: the query crate
//! does the work, this crate parses requests and encodes results.

mod dashboard;
mod encode;
mod error;
mod health;
mod metrics;
mod query_api;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use sonde_query::{QueryEngine, StatsRegistry};

/// Largest request body accepted; a query never needs more.
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<QueryEngine>,
    pub stats: Arc<StatsRegistry>,
    /// Set once the eBPF probes are attached; drives `/readyz`.
    pub ready: Arc<AtomicBool>,
    /// What runs degraded (kernel features missing, probes not attached):
    /// `/readyz` lists it, still ready.
    pub degraded: Arc<[String]>,
    /// More metric families for `/metrics` (the RED histograms), rendered
    /// after the counters and store gauges.
    pub extra_metrics: Vec<Arc<dyn PrometheusSource>>,
}

/// Something that writes metric families in the Prometheus text format.
pub trait PrometheusSource: Send + Sync {
    fn render_prometheus(&self, out: &mut String);
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/query", post(query_api::query))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .merge(dashboard::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
