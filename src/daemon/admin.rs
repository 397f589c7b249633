//! The admin HTTP listener: `/healthz`, `/readyz`, `/metrics` and (when enabled) `POST /run`.
//!
//! Loopback by default; binding anything else needs `daemon.admin_public = true`. The probes
//! and `/metrics` answer without authentication (kubelets and scrapers must reach them);
//! `POST /run` starts a real cycle against the org, so it needs the run token, answers only
//! when a cycle could actually start, and every request to it is logged with its peer.
//!
//! `POST /run?org=NAME` asks that org alone; an org the daemon does not run is 404 naming
//! the ones it does. Plain `POST /run` asks every org, like SIGUSR1: each org that can start
//! a cycle does, and the answer has one line per org saying what it did (`202` when one
//! started). Refusing it with several orgs would break every script written for one org the
//! day a second is added, and the schedule already starts orgs independently, so one org
//! that cannot start must not keep the others from starting. With one org the answer is
//! that org's line alone, as it always was. Each org's refusals follow the same rules
//! whether it was named or not: its own readiness, its own running cycle, its own
//! `daemon.min_spacing_secs`.

use super::metrics::Format;
use super::shared::RunVerdict;
use super::{DaemonError, Shared};
use crate::config::DaemonSettings;
use axum::extract::{ConnectInfo, RawQuery, State};
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

/// Asks the org loops for a cycle now: the named org's, or every org's (see the module
/// comment). Answers what will happen: 202 only when a cycle can start (the loop applies
/// the same guards again, so a race loses nothing but a run).
async fn run_now(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
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
    let target = match target_org(query.as_deref().unwrap_or_default()) {
        Ok(target) => target,
        Err(why) => {
            tracing::warn!(%peer, %why, "POST /run refused: bad query");
            return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
        }
    };
    let org_field = target.as_deref().map_or("(every org)".into(), shown);
    if let Some(reason) = shared.not_running_reason() {
        tracing::warn!(%peer, org = %org_field, %reason, "POST /run refused: not ready");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response();
    }
    let known = shared.org_names();
    let names = match target {
        Some(name) if known.contains(&name) => vec![name],
        Some(name) => {
            let given = shown(&name);
            tracing::warn!(%peer, org = %given, "POST /run refused: no such org");
            return (
                StatusCode::NOT_FOUND,
                format!(
                    "no org named `{given}` in this daemon (its orgs: {})\n",
                    known.join(", ")
                ),
            )
                .into_response();
        }
        None => known,
    };
    let listed = names.len() > 1 || shared.orgs_listed();
    let mut answers = Vec::new();
    for name in names {
        // `None`: removed by a reload since the names were read; nothing to say about it.
        let Some(verdict) = shared.request_run(&name) else {
            continue;
        };
        log_verdict(peer, &name, &verdict);
        answers.push((name, verdict));
    }
    if answers.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no org is running\n",
        )
            .into_response();
    }
    answer(&answers, listed, shared.clock.now())
}

/// Why a `POST /run` query was refused (400).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum QueryError {
    #[error("`org` needs an org's name: POST /run?org=NAME")]
    EmptyOrg,
    #[error("name one org: POST /run?org=NAME (or none to run every org)")]
    SeveralOrgs,
    #[error("POST /run takes only `org` (POST /run?org=NAME), got `{0}`")]
    Unknown(String),
}

/// The org `?org=NAME` names, if any; anything else in the query is refused, so a typo in
/// the parameter (`?orgs=a`) cannot silently run every org.
fn target_org(query: &str) -> Result<Option<String>, QueryError> {
    let mut org = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "org" if value.is_empty() => return Err(QueryError::EmptyOrg),
            "org" if org.is_some() => return Err(QueryError::SeveralOrgs),
            "org" => org = Some(value.into_owned()),
            other => return Err(QueryError::Unknown(shown(other))),
        }
    }
    Ok(org)
}

/// Longest part of a caller's query echoed back or logged.
const SHOWN_CHARS: usize = 64;

/// A caller-given name as it may be echoed or logged: control and bidi characters escaped,
/// and at most [`SHOWN_CHARS`] characters (a query can be as long as the URI limit allows).
fn shown(name: &str) -> String {
    crate::text::clip(&crate::text::printable(name), SHOWN_CHARS)
}

/// Logs what the request did for one org, with its peer.
fn log_verdict(peer: SocketAddr, org: &str, verdict: &RunVerdict) {
    match verdict {
        RunVerdict::Requested => {
            tracing::info!(%peer, org, "POST /run accepted: cycle requested")
        }
        RunVerdict::NotReady(reasons) => {
            tracing::warn!(%peer, org, reasons = %reasons.join("; "), "POST /run refused: not ready")
        }
        RunVerdict::Running => {
            tracing::info!(%peer, org, "POST /run refused: a cycle is already running")
        }
        RunVerdict::Spaced { at, .. } => {
            let not_before = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            tracing::info!(%peer, org, %not_before, "POST /run refused: daemon.min_spacing_secs")
        }
        RunVerdict::AlreadyRequested => {
            tracing::info!(%peer, org, "POST /run refused: a run is already requested")
        }
    }
}

/// One org's line of the answer (prefixed with its name when the config lists orgs).
fn line(name: &str, verdict: &RunVerdict, listed: bool) -> String {
    let text = match verdict {
        RunVerdict::Requested => "cycle requested".to_string(),
        RunVerdict::NotReady(reasons) => format!("not ready: {}", reasons.join("; ")),
        RunVerdict::Running => "a cycle is already running".to_string(),
        RunVerdict::Spaced { at, spacing_secs } => format!(
            "no cycle before {} (daemon.min_spacing_secs: cycle starts are at least {spacing_secs} s apart)",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        RunVerdict::AlreadyRequested => "a run is already requested".to_string(),
    };
    if listed {
        format!("org `{name}`: {text}\n")
    } else {
        format!("{text}\n")
    }
}

/// The answer to a run request over `answers`: 202 when any org queued a run; else 503
/// when any org may start later (not ready, or spaced: `Retry-After` then says when the
/// soonest may), else 409 (every org is running or has a run queued).
fn answer(
    answers: &[(String, RunVerdict)],
    listed: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Response {
    let body: String = answers
        .iter()
        .map(|(name, verdict)| line(name, verdict, listed))
        .collect();
    let verdicts = || answers.iter().map(|(_, v)| v);
    if verdicts().any(|v| *v == RunVerdict::Requested) {
        return (StatusCode::ACCEPTED, body).into_response();
    }
    let soonest = verdicts()
        .filter_map(|v| match v {
            RunVerdict::Spaced { at, .. } => Some(*at),
            _ => None,
        })
        .min();
    if let Some(at) = soonest {
        let wait = (at - now).num_seconds().max(1);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, wait.to_string())],
            body,
        )
            .into_response();
    }
    if verdicts().any(|v| matches!(v, RunVerdict::NotReady(_))) {
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    (StatusCode::CONFLICT, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_callers_name_is_escaped_and_cut_before_it_is_shown() {
        assert_eq!(shown("brand-a"), "brand-a");
        assert_eq!(shown("a\nb"), "a\\nb");
        let long = "x".repeat(10_000);
        assert_eq!(shown(&long), format!("{}…", "x".repeat(SHOWN_CHARS - 1)));
    }

    #[test]
    fn the_query_names_one_org_or_none_and_nothing_else() {
        assert_eq!(target_org(""), Ok(None));
        assert_eq!(target_org("org=brand-a"), Ok(Some("brand-a".into())));
        assert_eq!(target_org("org=brand%2Da"), Ok(Some("brand-a".into())));
        for bad in ["org=", "org=a&org=b", "orgs=a", "org=a&now=1"] {
            assert!(target_org(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn any_started_org_accepts_else_the_most_hopeful_refusal() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let spaced = RunVerdict::Spaced {
            at: now + chrono::Duration::seconds(90),
            spacing_secs: 300,
        };
        let not_ready = RunVerdict::NotReady(vec!["the history ledger is not open"]);
        let of = |vs: &[RunVerdict]| -> Vec<(String, RunVerdict)> {
            vs.iter()
                .enumerate()
                .map(|(i, v)| (format!("org-{i}"), v.clone()))
                .collect()
        };
        let status = |vs: &[RunVerdict]| answer(&of(vs), true, now).status();
        assert_eq!(
            status(&[RunVerdict::Running, RunVerdict::Requested]),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            status(&[RunVerdict::Running, not_ready.clone()]),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(&[RunVerdict::Running, RunVerdict::AlreadyRequested]),
            StatusCode::CONFLICT
        );
        let throttled = answer(&of(&[not_ready, spaced]), true, now);
        assert_eq!(throttled.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(throttled.headers()[header::RETRY_AFTER], "90");
    }
}
