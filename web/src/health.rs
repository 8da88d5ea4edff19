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
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "probes not attached")
    }
}
