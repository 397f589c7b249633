//! One adjustment cycle, top to bottom ([`run_cycle`]), one file per stage:
//!
//! 1. [`collect`] the in-scope agents, their current skills and their metrics;
//! 2. [`score`] and 3. [`plan`] with the guardrails, then the blast-radius breaker, and the
//!    [`skillgroups`] crossings the plan would cause (warn, hold or block);
//! 4. apply (`apply.rs`, through the one write path, [`write`]): one bulk write per changed agent,
//!    re-reading first so that a person's edit is never overwritten — after recording the
//!    whole plan in the ledger (write-ahead);
//! 5. [`alert`] supervisors about over-threshold changes (workitems, webhook digest, log);
//! 6. [`report`] what happened, and record it with the run.
//!
//! `plan` mode stops after step 3 and writes nothing to the org. Each stage is handed the
//! settings section it works under, not the whole [`Settings`].

pub mod alert;
mod apply;
pub mod casemix;
pub mod collect;
mod experiment;
pub mod plan;
pub mod report;
pub mod routing;
mod rows;
pub mod score;
pub mod skillgroups;
pub(crate) mod write;

use crate::clock::Clock;
use crate::config::Settings;
use crate::genesys::GenesysClient;
use crate::history::{Ledger, LedgerError, RunMode, RunOutcome, RunTrigger};
use chrono::{DateTime, Utc};
use collect::CollectError;
use report::CycleReport;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;
use write::WritePath;

/// Why the cycle runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Dry run: plan and report, write nothing.
    Plan,
    /// One real cycle from the command line.
    Once,
    /// A cycle of the daemon, and what started it.
    Scheduled(RunTrigger),
}

impl Mode {
    /// The mode the ledger records.
    pub fn run_mode(self) -> RunMode {
        match self {
            Mode::Plan => RunMode::Plan,
            Mode::Once => RunMode::Once,
            Mode::Scheduled(_) => RunMode::Scheduled,
        }
    }

    /// What started the run (recorded with it in the ledger).
    pub fn trigger(self) -> RunTrigger {
        match self {
            Mode::Plan => RunTrigger::Plan,
            Mode::Once => RunTrigger::Once,
            Mode::Scheduled(trigger) => trigger,
        }
    }
}

/// Asks a running cycle to stop starting new writes (SIGTERM). Writes in flight finish.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why a cycle could not run at all (writes it did make are in the ledger either way).
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(transparent)]
    Collect(#[from] CollectError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the config names skills the org does not have:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    UnknownSkills(Vec<crate::config::Problem>),
}

impl CycleError {
    /// True when an API call was given up because the process is stopping.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, CycleError::Collect(CollectError::Api { source, .. }) if source.is_cancelled())
    }
}

/// What every step of one cycle works with, besides its settings.
struct ThisRun<'a> {
    client: &'a GenesysClient,
    ledger: &'a Ledger,
    mode: Mode,
    stop: &'a StopSignal,
    run_id: i64,
    /// Read once when the cycle starts: the window and the due dates agree on "today".
    now: DateTime<Utc>,
}

/// Runs one cycle and returns its report. The report is also recorded in the ledger.
/// `clock` says what "today" is: the metrics window ends at its midnight.
pub async fn run_cycle(
    client: &GenesysClient,
    settings: &Settings,
    ledger: &Ledger,
    mode: Mode,
    stop: &StopSignal,
    clock: &Clock,
) -> Result<CycleReport, CycleError> {
    // One writer per ledger: a cycle that writes to the org holds the ledger's write lock
    // from before it reconciles until its run is recorded, and is refused at once (naming
    // the holder) while anyone else holds it. A dry run writes nothing to the org.
    let _writing = match mode {
        Mode::Plan => None,
        Mode::Once => ledger.lock_for_writing("once")?,
        Mode::Scheduled(trigger) => {
            ledger.lock_for_writing(&format!("scheduled cycle ({trigger})"))?
        }
    };
    let started = Instant::now();
    let stats_before = client.stats();
    reconcile_first(client, ledger).await?;
    let run_id = ledger.begin_run_with_trigger(
        mode.run_mode(),
        mode.trigger(),
        &settings.fingerprint(),
        None,
    )?;
    // Instrumented, not entered: an entered guard held across `.await` leaks the span onto
    // whatever else the thread polls (the daemon's loop logs showed up inside cycles).
    let span = tracing::info_span!("cycle", run_id, mode = mode.run_mode().as_str());
    let now = clock.now();
    let mut report = CycleReport {
        run_id,
        mode: mode.run_mode(),
        started_at: now.to_rfc3339(),
        ..CycleReport::default()
    };
    let run = ThisRun {
        client,
        ledger,
        mode,
        stop,
        run_id,
        now,
    };
    let result = cycle_steps(&run, settings, &mut report)
        .instrument(span.clone())
        .await;
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.api = client.stats().since(&stats_before);
    report.api_calls_total = report.api.total_calls();
    // A shutdown that gave up a call mid-step is an interruption, not a failure: the run is
    // closed (and its lock released) like any other, with what it did recorded.
    let result = match result {
        Err(e) if e.is_cancelled() => {
            report.outcome = RunOutcome::Interrupted;
            report.error = Some(e.to_string());
            Ok(())
        }
        Err(e) => {
            report.outcome = RunOutcome::Failed;
            report.error = Some(e.to_string());
            Err(e)
        }
        Ok(()) => Ok(()),
    };
    // 6. record
    if matches!(result, Err(CycleError::Ledger(_))) {
        // The ledger failed mid-run: some writes may be unmarked. Leave the run unfinished
        // so the next start reconciles it against the org instead of trusting its rows.
        span.in_scope(|| {
            tracing::error!(
                run_id,
                "ledger failed mid-run; leaving the run for reconciliation"
            )
        });
        ledger.abandon_run(run_id);
    } else {
        ledger.finish_run(run_id, report.outcome, &report.summary())?;
    }
    span.in_scope(|| tracing::info!(outcome = %report.outcome, changed = report.agents_changed, conflicts = report.conflicts, failed = report.failed, api_calls = report.api_calls_total, "cycle finished"));
    result.map(|()| report)
}

/// Crash recovery first: a run a crash left unfinished is settled against the org (reads
/// only) before this one plans, so nothing is applied twice or left unrecorded.
async fn reconcile_first(client: &GenesysClient, ledger: &Ledger) -> Result<(), LedgerError> {
    let reconciled = crate::history::reconcile_unfinished(client, ledger).await?;
    if !reconciled.is_empty() {
        let ids = |runs: &mut dyn Iterator<Item = i64>| {
            runs.map(|id| id.to_string()).collect::<Vec<_>>().join(",")
        };
        let closed = ids(&mut reconciled.closed.iter().map(|r| r.run_id));
        let left = ids(&mut reconciled.left_unfinished.iter().map(|r| r.run_id));
        tracing::warn!(closed = %closed, left_unfinished = %left, "reconciled runs left unfinished by an interruption");
    }
    Ok(())
}

/// Steps 1–5; the report says how far they got.
async fn cycle_steps(
    run: &ThisRun<'_>,
    settings: &Settings,
    report: &mut CycleReport,
) -> Result<(), CycleError> {
    let ThisRun {
        client,
        ledger,
        mode,
        stop,
        run_id,
        now,
    } = *run;
    // 1. collect
    let snapshot = collect::collect(
        client,
        &settings.scope,
        &settings.metrics,
        settings.genesys.max_concurrency,
        now,
    )
    .await?;
    report.interval = snapshot.interval.clone();
    let catalogue: Vec<String> = snapshot.skills.iter().map(|s| s.name.clone()).collect();
    let unknown = settings.unknown_skill_names(&catalogue);
    if !unknown.is_empty() {
        return Err(CycleError::UnknownSkills(unknown));
    }
    let groups = skillgroups::read(client, &snapshot)
        .await
        .map_err(|source| CollectError::Api {
            stage: "skill groups",
            source,
        })?;
    // The experiment: which skills are held out, the effect so far, a pause on harm.
    let experiment = experiment::check(run, settings, &snapshot).await?;
    report.experiment = experiment.status.clone();
    let write = WritePath {
        client,
        ledger,
        apply: &settings.apply,
        concurrency: settings.genesys.max_concurrency,
        held_out: experiment.held_out.as_ref(),
    };

    // 2–3. score and plan (proposals held for review wait for it)
    let held = ledger.held_changes()?;
    let planning = Instant::now();
    let mut plan = plan::plan(&snapshot, &settings.policy, &settings.breaker);
    report.plan_ms = planning.elapsed().as_millis() as u64;
    rows::park_pending_reviews(&mut plan, &snapshot, &held);
    let guard = &settings.guard;
    let checked = skillgroups::check(
        &groups,
        &snapshot,
        &plan,
        guard.skill_group_crossings,
        guard.skill_group_match,
    );
    drop(groups);
    if let Some(a) = &experiment.held_out {
        let skills = &snapshot.skills;
        plan.park(plan::Keep::HeldOut, |i| {
            skills
                .get(usize::from(i.skill))
                .is_some_and(|s| a.is_held_out(&s.id))
        });
    }
    let mut rows = rows::change_rows(&snapshot, &plan, &settings.alerts, run_id);
    skillgroups::guard_rows(&mut rows, &checked);
    report.summarise_plan(&plan, &rows, &settings.alerts);
    report.skill_groups = checked.report;
    // From here on the rows carry everything; what alerts still need of the snapshot is
    // taken out, and the snapshot and plan are dropped (at 100 000 agents they are most of
    // the memory): the snapshot first, then the rows get their scores and reasons from the
    // plan, so the snapshot and those texts never take memory at once.
    let managers = rows::managers_of(&snapshot, &rows);
    let breaker = plan.breaker.take();
    drop(snapshot);
    rows::explain(&mut rows, &plan);
    drop(plan);

    // The breaker, or a pause on harm: nothing is applied; the plan is recorded as skipped,
    // and the digest says why.
    let halt = match (breaker, &experiment.paused) {
        (Some(trip), _) => {
            tracing::warn!(rule = trip.rule, detail = %trip.detail, "blast-radius breaker tripped: applying nothing");
            Some((RunOutcome::Breaker, format!("breaker: {}", trip.rule)))
        }
        (None, Some(why)) => {
            tracing::warn!(reason = %why, "tuning is paused on harm: applying nothing");
            Some((
                RunOutcome::Paused,
                format!("paused on harm ({why}); resume with `skill-tuner resume`"),
            ))
        }
        (None, None) => None,
    };
    if let Some((outcome, why)) = halt {
        rows::skip_all(&mut rows, &why);
        ledger.record_plan(rows.iter().map(|r| &r.record))?;
        report.outcome = outcome;
        report.set_lines(rows, &settings.alerts);
        if mode != Mode::Plan {
            alert::send_digest(client, &settings.alerts.webhook, report).await;
        }
        return Ok(());
    }

    // Write-ahead: the whole plan is on disk before the first write. The scores live on in
    // the ledger; at 100 000 agents they are too many to keep in memory as well.
    ledger.record_plan(rows.iter().map(|r| &r.record))?;
    rows::forget_scores(&mut rows);
    if mode == Mode::Plan {
        report.outcome = RunOutcome::DryRun;
        report.set_lines(rows, &settings.alerts);
        return Ok(());
    }

    // 4. apply (earlier proposals approved since, then this plan)
    report.approved_applied =
        apply::resolve_reviews(&write, &settings.alerts.workitem, &held, stop).await?;
    let matching_policy = apply::apply_rows(&write, &settings.policy, &mut rows, stop).await?;
    report.count_settled(&rows, matching_policy);
    apply::warn_of_second_writer(report, &settings.guard);

    // 5. alert
    alert::alert_supervisors(run, &settings.alerts, &managers, &rows, report).await?;
    report.set_lines(rows, &settings.alerts);
    report.partial_if_alerts_failed();
    alert::send_digest(client, &settings.alerts.webhook, report).await;
    report.partial_if_alerts_failed();
    Ok(())
}
