//! Starting, polling and finishing the one cycle that may run at a time.

use super::current::Current;
use super::shared::Shared;
use crate::cycle::report::CycleReport;
use crate::cycle::{run_cycle, CycleError, Mode, StopSignal};
use crate::genesys::GenesysClient;
use crate::history::RunTrigger;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;
use tracing::Instrument;

type CycleFuture = Pin<Box<dyn Future<Output = (Result<CycleReport, CycleError>, f64)>>>;

/// The running cycle. Polled by the loop itself rather than spawned (see the module comment
/// of [`super`]).
pub(super) struct Running {
    pub future: CycleFuture,
    pub stop: StopSignal,
    /// The client the cycle uses (a reload may have replaced `Current`'s since): shutdown
    /// ends its waits.
    pub client: GenesysClient,
    /// The cycle's span (with its `cycle_id`), for the loop's own lines about it.
    pub span: tracing::Span,
    /// What started it and when, for the STATUS line; `announced` once that line was sent.
    pub trigger: &'static str,
    pub since: DateTime<Utc>,
    pub announced: bool,
}

/// Starts a cycle unless one is running, the last started less than the minimum spacing
/// ago, or the daemon is not ready: each refusal is logged and counted by its reason.
pub(super) fn try_start(
    running: &mut Option<Running>,
    cur: &mut Current,
    shared: &Shared,
    trigger: RunTrigger,
    tick: String,
) {
    let trigger_name = trigger.as_str();
    let org = cur.name().to_string();
    let key = cur.settings.org.clone();
    let key = key.as_deref();
    if running.is_some() {
        tracing::warn!(
            trigger = trigger_name,
            tick,
            "a cycle is still running: this run is skipped (cycles never overlap)"
        );
        shared.metrics.record_skipped_tick(key, "overlap");
        return;
    }
    if let Some(at) = shared.org_next_start_allowed(&org) {
        tracing::warn!(
            trigger = trigger_name,
            tick,
            not_before = %at.to_rfc3339(),
            min_spacing_secs = shared.org_min_spacing_secs(&org),
            "the last cycle started less than daemon.min_spacing_secs ago: this run is skipped"
        );
        shared.metrics.record_skipped_tick(key, "min_spacing");
        return;
    }
    if !cur.ready(shared) {
        tracing::warn!(
            trigger = trigger_name,
            tick,
            reasons = %shared.org_not_ready_reasons(&org).join("; "),
            "not ready: this run is skipped"
        );
        shared.metrics.record_skipped_tick(key, "not_ready");
        return;
    }
    *running = Some(start_cycle(cur, trigger, shared));
}

pub(super) fn start_cycle(cur: &Current, trigger: RunTrigger, shared: &Shared) -> Running {
    let stop = StopSignal::default();
    let client = cur.client.clone();
    let cycle_client = client.clone();
    let settings = cur.settings.clone();
    let ledger = cur.ledger.clone();
    let clock = cur.clock.clone();
    let cycle_stop = stop.clone();
    let cycle_id = uuid::Uuid::new_v4();
    let span = tracing::info_span!("cycle", %cycle_id, trigger = trigger.as_str());
    span.in_scope(|| tracing::info!("cycle starting"));
    shared.cycle_started(cur.name());
    let future = Box::pin(
        async move {
            let started = Instant::now();
            let result = match ledger {
                Some(ledger) => {
                    run_cycle(
                        &client,
                        &settings,
                        &ledger,
                        Mode::Scheduled(trigger),
                        &cycle_stop,
                        &clock,
                    )
                    .await
                }
                // `ready` checked the ledger; kept total rather than panicking.
                None => Err(CycleError::Ledger(crate::history::LedgerError::NotFound(
                    "the ledger is not open".into(),
                ))),
            };
            (result, started.elapsed().as_secs_f64())
        }
        .instrument(span.clone()),
    );
    Running {
        future,
        stop,
        client: cycle_client,
        span,
        trigger: trigger.as_str(),
        since: cur.clock.now(),
        announced: false,
    }
}

/// Counts and logs one of `org`'s finished cycles (call it in the cycle's span).
pub(super) fn finish_cycle(
    shared: &Shared,
    org: (&str, Option<&str>),
    result: Result<CycleReport, CycleError>,
    secs: f64,
) {
    let (name, key) = org;
    shared.cycle_ended(name);
    match result {
        Ok(report) => {
            shared.metrics.record_cycle(key, &report);
            tracing::info!(
                run_id = report.run_id,
                outcome = %report.outcome,
                changed = report.agents_changed,
                conflicts = report.conflicts,
                failed = report.failed,
                duration_secs = secs,
                "cycle done"
            );
        }
        Err(e) => {
            shared.metrics.record_cycle_error(key, secs);
            tracing::error!(error = %e, duration_secs = secs, "cycle failed");
        }
    }
}

/// The running cycle's end, or never.
pub(super) async fn poll_running(
    running: &mut Option<Running>,
) -> (Result<CycleReport, CycleError>, f64, tracing::Span) {
    match running {
        Some(run) => {
            let (result, secs) = (&mut run.future).await;
            (result, secs, run.span.clone())
        }
        None => std::future::pending().await,
    }
}
