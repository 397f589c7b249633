//! The admin HTTP listener: `/healthz`, `/readyz`, `/metrics` and (when enabled) `POST /run`.
//!
//! Loopback by default: it exposes counters and, optionally, a way to start a cycle, neither
//! of which belongs on a network without something in front of it.

use super::Shared;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The router over the daemon's shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/run", post(run_now))
        .with_state(shared)
}

/// Alive = the scheduler loop has turned recently (a wedged loop fails liveness).
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let age = shared.heartbeat_age();
    if age <= super::HEALTHY_HEARTBEAT_AGE {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("scheduler loop silent for {}s\n", age.as_secs()),
        )
            .into_response()
    }
}

/// Ready = a token was obtained, the config is valid and the ledger is open.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let missing = shared.not_ready_reasons();
    if missing.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", missing.join("; ")),
        )
            .into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let body = shared.metrics.render(&shared.live_view());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Asks the scheduler loop for a cycle now; the loop applies the same overlap guard.
async fn run_now(State(shared): State<Arc<Shared>>) -> Response {
    if !shared.run_endpoint_enabled() {
        return (
            StatusCode::NOT_FOUND,
            "POST /run is off (daemon.enable_run_endpoint = false)\n",
        )
            .into_response();
    }
    if shared.cycle_running() {
        return (StatusCode::CONFLICT, "a cycle is already running\n").into_response();
    }
    match shared.request_run() {
        Ok(()) => (StatusCode::ACCEPTED, "cycle requested\n").into_response(),
        Err(reason) => (StatusCode::CONFLICT, format!("{reason}\n")).into_response(),
    }
}
