//! Liveness and readiness probes.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

/// Alive as long as the server answers.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Ready once the probes are attached: before that, queries return nothing.
/// A degraded agent is ready too; the body says what is degraded.
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    if !state.ready.load(Ordering::Acquire) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "probes not attached".into(),
        )
    } else if state.degraded.is_empty() {
        (StatusCode::OK, "ready".into())
    } else {
        (
            StatusCode::OK,
            format!("ready; degraded: {}", state.degraded.join("; ")),
        )
    }
}
