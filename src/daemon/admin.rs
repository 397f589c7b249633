//! The admin HTTP listener: `/healthz`, `/readyz`, `/metrics` and (when enabled) `POST /run`.
//!
//! Loopback by default; binding anything else needs `daemon.admin_public = true`. The probes
//! and `/metrics` answer without authentication (kubelets and scrapers must reach them);
//! `POST /run` starts a real cycle against the org, so it needs the run token, answers only
//! when a cycle could actually start, and every request to it is logged with its peer.

use super::metrics::Format;
use super::{DaemonError, Shared};
use crate::config::DaemonSettings;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

/// Binds `daemon.admin_listen` and serves [`router`] in the background; returns the address
/// bound (empty if the system cannot tell).
pub(super) async fn serve(
    settings: &DaemonSettings,
    shared: Arc<Shared>,
) -> Result<String, DaemonError> {
    let listener = tokio::net::TcpListener::bind(&settings.admin_listen)
        .await
        .map_err(|source| DaemonError::AdminListen {
            addr: settings.admin_listen.clone(),
            source,
        })?;
    let local = listener.local_addr().ok();
    let admin_addr = local.map(|a| a.to_string()).unwrap_or_default();
    if local.is_some_and(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            admin = %admin_addr,
            run_endpoint = settings.enable_run_endpoint,
            "the admin listener is not loopback (daemon.admin_public = true): /healthz, /readyz and /metrics answer anyone who reaches it; restrict who can"
        );
    }
    let router = router(shared);
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "admin listener stopped");
        }
    });
    Ok(admin_addr)
}

/// The router over the daemon's shared state. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`: `POST /run` logs its peer.
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

/// Ready = the token in use is valid (or obtainable), the config is valid and the ledger is
/// open.
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

/// Prometheus text 0.0.4, or OpenMetrics when the scraper's `Accept` names it.
async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let format = Format::from_accept(accept);
    match shared.metrics.render(format) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "GET /metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
    }
}

/// The token of an `Authorization: Bearer …` header (empty when there is none).
fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim())
}

/// Asks the scheduler loop for a cycle now. Answers what will happen: 202 only when a cycle
/// can start (the loop applies the same guards again, so a race loses nothing but a run).
async fn run_now(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !shared.run_endpoint_enabled() {
        return (
            StatusCode::NOT_FOUND,
            "POST /run is off (daemon.enable_run_endpoint = false)\n",
        )
            .into_response();
    }
    let token = bearer(&headers);
    if token.is_empty() || !shared.run_token_matches(token) {
        tracing::warn!(%peer, token_given = !token.is_empty(), "POST /run refused: missing or wrong bearer token");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "POST /run needs `Authorization: Bearer <run token>`\n",
        )
            .into_response();
    }
    // Refused here only when no org could start; each org that cannot skips the run itself
    // (logged and counted by its reason), so one org's trouble never refuses another's run.
    let missing = shared.not_ready_for_run();
    if !missing.is_empty() {
        let reasons = missing.join("; ");
        tracing::warn!(%peer, %reasons, "POST /run refused: not ready");
        shared.record_refused_run("not_ready");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reasons}\n"),
        )
            .into_response();
    }
    if shared.cycle_running() {
        tracing::info!(%peer, "POST /run refused: a cycle is already running");
        shared.record_refused_run("overlap");
        return (StatusCode::CONFLICT, "a cycle is already running\n").into_response();
    }
    if let Some(at) = shared.next_start_allowed() {
        let at_text = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let wait = (at - shared.clock.now()).num_seconds().max(1);
        tracing::info!(%peer, not_before = %at_text, "POST /run refused: daemon.min_spacing_secs");
        shared.record_refused_run("min_spacing");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, wait.to_string())],
            format!(
                "no cycle before {at_text} (daemon.min_spacing_secs: cycle starts are at least {} s apart)\n",
                shared.min_spacing_secs()
            ),
        )
            .into_response();
    }
    match shared.request_run() {
        Ok(()) => {
            tracing::info!(%peer, "POST /run accepted: cycle requested");
            (StatusCode::ACCEPTED, "cycle requested\n").into_response()
        }
        Err(reason) => {
            tracing::info!(%peer, reason, "POST /run refused");
            (StatusCode::CONFLICT, format!("{reason}\n")).into_response()
        }
    }
}
