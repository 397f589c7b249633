//! One adjustment cycle, top to bottom:
//!
//! 1. **collect** the in-scope agents, their current skills and their metrics;
//! 2. **score** and 3. **plan** with the guardrails, then the blast-radius breaker;
//! 4. **apply** one bulk write per changed agent, re-reading first so that a person's edit
//!    is never overwritten — after recording the whole plan in the ledger (write-ahead);
//! 5. **alert** supervisors about over-threshold changes (workitems, webhook digest, log);
//! 6. **report** what happened.
//!
//! `plan` mode stops after step 3 and writes nothing to the org.

use crate::alert::{self, AlertItem, Filed};
use crate::apply::{self, Outcome, WriteItem};
use crate::clock::Clock;
use crate::collect::{self, CollectError};
use crate::config::{OnConflict, Settings};
use crate::genesys::GenesysClient;
use crate::history::{ChangeRecord, ChangeStatus, Ledger, LedgerError};
use crate::org::Snapshot;
use crate::plan::{self, Keep, Plan, PlannedItem};
use crate::report::{ChangeLine, CycleReport};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing::Instrument;

/// Why the cycle runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Dry run: plan and report, write nothing.
    Plan,
    /// One real cycle from the command line.
    Once,
    /// A cycle of the daemon, and what started it.
    Scheduled(Trigger),
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plan => "plan",
            Mode::Once => "once",
            Mode::Scheduled(_) => "scheduled",
        }
    }

    /// What started the run (recorded with it in the ledger).
    pub fn trigger(self) -> Trigger {
        match self {
            Mode::Plan => Trigger::Plan,
            Mode::Once => Trigger::Once,
            Mode::Scheduled(trigger) => trigger,
        }
    }
}

/// What started a run. The ledger records it, so an audit can tell a cron tick from a
/// person's `POST /run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A tick of `daemon.schedule`.
    Schedule,
    /// `daemon.run_on_start`.
    Startup,
    /// SIGUSR1.
    Signal,
    /// `POST /run` on the admin listener.
    Http,
    /// `skill-tuner once`.
    Once,
    /// `skill-tuner plan`.
    Plan,
    /// `skill-tuner rollback`.
    Rollback,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Startup => "startup",
            Trigger::Signal => "signal",
            Trigger::Http => "http",
            Trigger::Once => "once",
            Trigger::Plan => "plan",
            Trigger::Rollback => "rollback",
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

/// Our id for a change: the same inputs give the same id, so a retried or restarted cycle
/// recognises its own workitems (`externalTag`) and ledger rows.
pub fn change_id(
    agent_id: &str,
    skill_id: &str,
    before: f64,
    after: f64,
    interval: &str,
) -> String {
    let text = format!("{agent_id}|{skill_id}|{before:.4}|{after:.4}|{interval}");
    format!("st-{:016x}", crate::hash::fnv1a64(&text))
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
            ledger.lock_for_writing(&format!("scheduled cycle ({})", trigger.as_str()))?
        }
    };
    let started = std::time::Instant::now();
    let stats_before = client.stats();
    // Crash recovery first: a run a crash left unfinished is settled against the org (reads
    // only) before this one plans, so nothing is applied twice or left unrecorded.
    let reconciled = crate::history::reconcile_unfinished(client, ledger).await?;
    if !reconciled.is_empty() {
        let ids = |runs: &mut dyn Iterator<Item = i64>| {
            runs.map(|id| id.to_string()).collect::<Vec<_>>().join(",")
        };
        let closed = ids(&mut reconciled.closed.iter().map(|r| r.run_id));
        let left = ids(&mut reconciled.left_unfinished.iter().map(|r| r.run_id));
        tracing::warn!(closed = %closed, left_unfinished = %left, "reconciled runs left unfinished by an interruption");
    }
    let run_id = ledger.begin_run_with_trigger(
        mode.as_str(),
        mode.trigger().as_str(),
        &settings.fingerprint(),
        None,
    )?;
    // Instrumented, not entered: an entered guard held across `.await` leaks the span onto
    // whatever else the thread polls (the daemon's loop logs showed up inside cycles).
    let span = tracing::info_span!("cycle", run_id, mode = mode.as_str());
    let now = clock.now();
    let mut report = CycleReport {
        run_id,
        mode: mode.as_str().into(),
        started_at: now.to_rfc3339(),
        ..CycleReport::default()
    };
    let run = ThisRun {
        client,
        settings,
        ledger,
        mode,
        stop,
        run_id,
        now,
    };
    let result = cycle_steps(&run, &mut report)
        .instrument(span.clone())
        .await;
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.api = client.stats().since(&stats_before);
    report.api_calls_total = report.api.total_calls();
    // A shutdown that gave up a call mid-step is an interruption, not a failure: the run is
    // closed (and its lock released) like any other, with what it did recorded.
    let result = match result {
        Err(e) if e.is_cancelled() => {
            report.outcome = crate::history::reconcile::INTERRUPTED.into();
            report.error = Some(e.to_string());
            Ok(())
        }
        Err(e) => {
            report.outcome = "failed".into();
            report.error = Some(e.to_string());
            Err(e)
        }
        Ok(()) => Ok(()),
    };
    let summary = serde_json::to_value(summary_of(&report)).unwrap_or_default();
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
        ledger.finish_run(run_id, &report.outcome, &summary)?;
    }
    span.in_scope(|| tracing::info!(outcome = %report.outcome, changed = report.agents_changed, conflicts = report.conflicts, failed = report.failed, api_calls = report.api_calls_total, "cycle finished"));
    result.map(|()| report)
}

/// What every step of one cycle works with.
struct ThisRun<'a> {
    client: &'a GenesysClient,
    settings: &'a Settings,
    ledger: &'a Ledger,
    mode: Mode,
    stop: &'a StopSignal,
    run_id: i64,
    /// Read once when the cycle starts: the window and the due dates agree on "today".
    now: DateTime<Utc>,
}

async fn cycle_steps(run: &ThisRun<'_>, report: &mut CycleReport) -> Result<(), CycleError> {
    let ThisRun {
        client,
        settings,
        ledger,
        mode,
        stop,
        run_id,
        now,
    } = *run;
    let concurrency = settings.genesys.max_concurrency;

    // 1. collect
    let snapshot =
        collect::collect(client, &settings.scope, &settings.metrics, concurrency, now).await?;
    report.interval = snapshot.interval.clone();
    let catalogue: Vec<String> = snapshot.skills.iter().map(|s| s.name.clone()).collect();
    let unknown = settings.unknown_skill_names(&catalogue);
    if !unknown.is_empty() {
        return Err(CycleError::UnknownSkills(unknown));
    }

    // 2–3. score and plan (held proposals wait for their review)
    let held = ledger.held_changes()?;
    let planning = std::time::Instant::now();
    let mut plan = plan::plan(&snapshot, &settings.policy, &settings.breaker);
    report.plan_ms = planning.elapsed().as_millis() as u64;
    park_pending_reviews(&mut plan, &snapshot, &held);
    let mut rows = change_rows(&snapshot, &plan, settings, run_id);
    summarise_plan(report, &plan, &rows, settings.alerts.threshold);
    // From here on the rows carry everything; what apply and alert still need of the
    // snapshot is taken out, and the snapshot and plan are dropped (at 100 000 agents they
    // are most of the memory).
    let added = skills_to_add(&plan, &rows);
    let managers = managers_of(&snapshot, &rows);
    let breaker = plan.breaker.clone();
    drop(plan);
    drop(snapshot);

    if let Some(trip) = breaker {
        tracing::warn!(rule = trip.rule, detail = %trip.detail, "blast-radius breaker tripped: applying nothing");
        for row in &mut rows {
            row.status = ChangeStatus::Skipped;
            row.detail = Some(format!("breaker: {}", trip.rule));
        }
        let skipped = rows;
        ledger.record_plan(&skipped)?;
        report.outcome = "breaker".into();
        set_lines(report, skipped, settings);
        if mode != Mode::Plan {
            send_digest(client, settings, report).await;
        }
        return Ok(());
    }

    // Write-ahead: the whole plan is on disk before the first write. The scores live on in
    // the ledger; at 100 000 agents they are too many to keep in memory as well.
    ledger.record_plan(&rows)?;
    for row in &mut rows {
        row.score = None;
    }
    if mode == Mode::Plan {
        report.outcome = "dry_run".into();
        set_lines(report, rows, settings);
        return Ok(());
    }

    // 4. apply (earlier proposals approved since, then this plan)
    let approved = resolve_reviews(client, settings, ledger, &held).await?;
    report.approved_applied = approved;
    let outcomes = apply_rows(client, settings, ledger, &rows, &added, stop, run_id).await?;
    let mut final_rows = rows;
    for row in &mut final_rows {
        if let Some(settled) = outcomes.get(&row.change_id) {
            row.status = settled.status;
            row.detail.clone_from(&settled.detail);
        }
    }
    report.conflicts = final_rows
        .iter()
        .filter(|r| r.status == ChangeStatus::Conflict)
        .count();
    report.conflicts_matching_policy = outcomes.values().filter(|s| s.matches_policy).count();
    warn_of_second_writer(report, settings.guard.second_writer_warn_share);
    report.failed = final_rows
        .iter()
        .filter(|r| r.status == ChangeStatus::Failed)
        .count();
    // Agents skipped here were stopped by a shutdown (before their write, or while it waited):
    // the run was interrupted, whatever else happened.
    let stopped = final_rows.iter().any(|r| r.status == ChangeStatus::Skipped);
    report.outcome = if stopped {
        crate::history::reconcile::INTERRUPTED.into()
    } else if report.failed > 0 {
        "partial".into()
    } else {
        "ok".into()
    };

    // 5. alert
    alert_supervisors(run, &managers, &final_rows, report).await?;
    set_lines(report, final_rows, settings);
    partial_if_alerts_failed(report);
    send_digest(client, settings, report).await;
    partial_if_alerts_failed(report);
    Ok(())
}

/// A second writer is suspected only from this many conflicts at the policy's own value
/// up: a few can be people who happened to agree with the policy.
pub const SECOND_WRITER_MIN_CONFLICTS: usize = 5;

/// Whether `matching` of a cycle's `conflicts` finding exactly what this policy would have
/// written point to another tuner writing to the org (see `guard.second_writer_warn_share`).
pub fn second_writer_suspected(matching: usize, conflicts: usize, share: f64) -> bool {
    matching >= SECOND_WRITER_MIN_CONFLICTS && matching as f64 >= share * conflicts as f64
}

/// Warns (once per cycle) when the conflicts look like another tuner's writes rather than
/// people's: with its own ledger it cannot be locked out, so saying so is all we can do.
fn warn_of_second_writer(report: &CycleReport, share: f64) {
    if second_writer_suspected(report.conflicts_matching_policy, report.conflicts, share) {
        tracing::warn!(
            conflicts = report.conflicts,
            conflicts_matching_policy = report.conflicts_matching_policy,
            "{} of this cycle's {} conflicts found exactly the value this policy would have written: another tuner (a second skill-tuner with its own ledger?) is probably writing to this org. Its writes are recorded here as people's edits and this ledger no longer matches the org; run one skill-tuner per org",
            report.conflicts_matching_policy,
            report.conflicts
        );
    }
}

/// An alert that never reached a supervisor (a workitem, the digest) is a part of the cycle
/// that failed: the cycle is `partial`, not `ok`.
fn partial_if_alerts_failed(report: &mut CycleReport) {
    let failed = report.alerts.workitems_failed > 0
        || report.alerts.webhook.as_deref().is_some_and(|w| w != "ok");
    if failed && report.outcome == "ok" {
        report.outcome = "partial".into();
    }
}

/// Changes whose agent and skill have a proposal waiting for review are not re-proposed.
fn park_pending_reviews(plan: &mut Plan, snapshot: &Snapshot, held: &[ChangeRecord]) {
    let waiting: HashSet<(&str, &str)> = held
        .iter()
        .map(|h| (h.agent_id.as_str(), h.skill_id.as_str()))
        .collect();
    if waiting.is_empty() {
        return;
    }
    plan.park(Keep::PendingReview, |item| {
        let agent = &snapshot.agents[item.agent as usize].id;
        let skill = &snapshot.skills[usize::from(item.skill)].id;
        waiting.contains(&(agent.as_str(), skill.as_str()))
    });
}

/// Ledger rows for the plan's changes (`planned`, or `held` when waiting for review).
fn change_rows(
    snapshot: &Snapshot,
    plan: &Plan,
    settings: &Settings,
    run_id: i64,
) -> Vec<ChangeRecord> {
    // Sized up front: at 100 000 agents a doubling Vec of rows wastes tens of MB.
    let mut rows = Vec::with_capacity(plan.items.len());
    rows.extend(plan.changes().filter_map(|item| {
        let to = item.proposed()?;
        let agent = &snapshot.agents[item.agent as usize];
        let skill = &snapshot.skills[usize::from(item.skill)];
        let over = item.gap() >= settings.alerts.threshold;
        let held = over && settings.alerts.hold_for_review;
        Some(ChangeRecord {
            change_id: change_id(&agent.id, &skill.id, item.current, to, &snapshot.interval),
            run_id,
            agent_id: agent.id.clone(),
            agent_name: agent.name.clone(),
            skill_id: skill.id.clone(),
            skill_name: skill.name.clone(),
            before: item.current,
            after: to,
            target: item.target(),
            score: item.score.as_ref().and_then(crate::history::ScoreJson::of),
            reason: reason_of(item),
            status: if held {
                ChangeStatus::Held
            } else {
                ChangeStatus::Planned
            },
            correlation_id: None,
            detail: None,
            workitem_id: None,
        })
    }));
    rows
}

fn reason_of(item: &PlannedItem) -> String {
    match &item.score {
        Some(score) => score.explain(),
        None => "no score".into(),
    }
}

fn summarise_plan(report: &mut CycleReport, plan: &Plan, rows: &[ChangeRecord], threshold: f64) {
    report.agents_considered = plan.agents_considered;
    report.agents_changed = plan.agents_changing();
    report.skills_up = rows.iter().filter(|r| r.after > r.before).count();
    report.skills_down = rows.iter().filter(|r| r.after < r.before).count();
    report.held_for_review = rows
        .iter()
        .filter(|r| r.status == ChangeStatus::Held)
        .count();
    report.alerts.over_threshold = plan.changes().filter(|i| i.gap() >= threshold).count();
    report.threshold_crossings = plan.threshold_crossings;
    report.breaker = plan.breaker.clone();
    let mut skipped = BTreeMap::new();
    for (label, n) in plan.keep_counts().iter().map(|(k, v)| (*k, *v)) {
        if matches!(label, "dead_band" | "at_target") {
            report.unchanged += n;
        } else {
            skipped.insert(label.to_string(), n);
        }
    }
    report.skipped = skipped;
}

/// The report's change lines, made from the rows (consumed: their strings move, not copy).
fn set_lines(report: &mut CycleReport, rows: Vec<ChangeRecord>, settings: &Settings) {
    report.changes = rows
        .into_iter()
        .map(|r| ChangeLine {
            alert: r
                .target
                .is_some_and(|t| (t - r.before).abs() >= settings.alerts.threshold),
            status: r.status.as_str().into(),
            reason: match r.detail {
                Some(d) => format!("{} [{d}]", r.reason),
                None => r.reason,
            },
            change_id: r.change_id,
            agent_id: r.agent_id,
            agent: r.agent_name,
            skill: r.skill_name,
            current: r.before,
            target: r.target,
            proposed: r.after,
        })
        .collect();
}

/// Change ids that add a skill the agent does not hold yet (`add_missing_skills`).
fn skills_to_add(plan: &Plan, rows: &[ChangeRecord]) -> HashSet<String> {
    // Rows are made from `plan.changes()` one for one, in order.
    rows.iter()
        .zip(plan.changes())
        .filter(|(_, item)| !item.held)
        .map(|(row, _)| row.change_id.clone())
        .collect()
}

/// The managers of the agents that have a change (for assigning review workitems).
fn managers_of(snapshot: &Snapshot, rows: &[ChangeRecord]) -> HashMap<String, Arc<str>> {
    let changing: HashSet<&str> = rows.iter().map(|r| r.agent_id.as_str()).collect();
    snapshot
        .agents
        .iter()
        .filter(|a| changing.contains(a.id.as_str()))
        .filter_map(|a| a.manager_id.clone().map(|m| (a.id.clone(), m)))
        .collect()
}

/// How one planned change ended.
struct Settled {
    status: ChangeStatus,
    detail: Option<String>,
    /// A conflict whose current value is exactly what this policy would have written.
    matches_policy: bool,
}

/// Whether a value found in place of a planned change is exactly what this policy would
/// itself have written: the planned value, or with re-plan on conflict the target. Another
/// tuner with the same policy writes just that; a person rarely does.
fn would_have_written(item: &WriteItem, found: f64, on_conflict: OnConflict) -> bool {
    apply::same(found, item.after)
        || (on_conflict == OnConflict::Replan && item.target.is_some_and(|t| apply::same(found, t)))
}

/// Writes the plan's `planned` rows, one bulk write per agent, concurrently within the
/// client's limits. Each agent's outcome is recorded as soon as the API answered.
#[allow(clippy::too_many_arguments)]
async fn apply_rows(
    client: &GenesysClient,
    settings: &Settings,
    ledger: &Ledger,
    rows: &[ChangeRecord],
    added: &HashSet<String>,
    stop: &StopSignal,
    run_id: i64,
) -> Result<BTreeMap<String, Settled>, CycleError> {
    let held: HashSet<&str> = rows
        .iter()
        .filter(|r| r.status == ChangeStatus::Held)
        .map(|r| r.change_id.as_str())
        .collect();
    let mut by_agent: BTreeMap<&str, Vec<WriteItem>> = BTreeMap::new();
    for row in rows.iter().filter(|r| !held.contains(r.change_id.as_str())) {
        by_agent
            .entry(row.agent_id.as_str())
            .or_default()
            .push(WriteItem {
                change_id: row.change_id.clone(),
                skill_id: row.skill_id.clone(),
                before: row.before,
                after: row.after,
                held: !added.contains(&row.change_id),
                target: row.target,
                policy: settings.policy.for_skill(&row.skill_name),
            });
    }
    let mut results = BTreeMap::new();
    let mut writes = stream::iter(by_agent)
        .map(|(agent_id, items)| async move {
            if stop.is_requested() {
                let skipped = items
                    .iter()
                    .map(|i| (i.change_id.clone(), None, false))
                    .collect::<Vec<_>>();
                return (agent_id, skipped);
            }
            let outcomes = apply::write_agent(client, &settings.apply, agent_id, &items).await;
            let matching: HashSet<String> = outcomes
                .iter()
                .filter_map(|(id, outcome)| match outcome {
                    Outcome::Conflict { found: Some(found) } => items
                        .iter()
                        .find(|i| &i.change_id == id)
                        .filter(|i| would_have_written(i, *found, settings.apply.on_conflict))
                        .map(|_| id.clone()),
                    _ => None,
                })
                .collect();
            (
                agent_id,
                outcomes
                    .into_iter()
                    .map(|(id, o)| {
                        let matches_policy = matching.contains(&id);
                        (id, Some(o), matches_policy)
                    })
                    .collect(),
            )
        })
        .buffer_unordered(settings.genesys.max_concurrency.max(1));
    while let Some((agent_id, outcomes)) = writes.next().await {
        for (change_id, outcome, matches_policy) in outcomes {
            let (status, correlation, detail) = match outcome {
                None => (
                    ChangeStatus::Skipped,
                    None,
                    Some("shutdown requested before this agent's write".to_string()),
                ),
                Some(Outcome::Applied {
                    value,
                    correlation_id,
                }) => (
                    ChangeStatus::Applied,
                    correlation_id,
                    Some(format!("applied {value:.2}")),
                ),
                Some(Outcome::Conflict { found }) => (
                    ChangeStatus::Conflict,
                    None,
                    Some(format!(
                        "a person set {} since our read; left alone",
                        found.map_or("nothing".into(), |f| format!("{f:.2}"))
                    )),
                ),
                Some(Outcome::Failed {
                    error,
                    correlation_id,
                }) => {
                    tracing::warn!(agent = agent_id, %error, "write failed");
                    (ChangeStatus::Failed, correlation_id, Some(error))
                }
                Some(Outcome::NotSent { reason }) => (
                    ChangeStatus::Skipped,
                    None,
                    Some(format!("shutdown: not written ({reason})")),
                ),
            };
            ledger.mark(
                run_id,
                &[change_id.as_str()],
                status,
                correlation.as_deref(),
                detail.as_deref(),
            )?;
            results.insert(
                change_id,
                Settled {
                    status,
                    detail,
                    matches_policy,
                },
            );
        }
    }
    Ok(results)
}

/// Applies earlier held proposals whose workitem was closed as approved (if the skill still
/// holds the value they were planned from); marks rejected ones. Returns how many applied.
async fn resolve_reviews(
    client: &GenesysClient,
    settings: &Settings,
    ledger: &Ledger,
    held: &[ChangeRecord],
) -> Result<usize, CycleError> {
    let w = &settings.alerts.workitem;
    if held.is_empty() || !w.enabled {
        return Ok(0);
    }
    let statuses = match client.worktype_statuses(&w.worktype_id).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the worktype's statuses; held changes stay held");
            return Ok(0);
        }
    };
    let approved_ids: HashSet<String> = statuses
        .iter()
        .filter(|s| {
            w.approved_statuses
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&s.name))
        })
        .map(|s| s.id.clone())
        .collect();
    let tags: Vec<String> = held.iter().map(|h| h.change_id.clone()).collect();
    let items = match client
        .workitems_by_external_tag(&w.worktype_id, &tags)
        .await
    {
        Ok(items) => items,
        Err(e) => {
            tracing::warn!(error = %e, "cannot query review workitems; held changes stay held");
            return Ok(0);
        }
    };
    let mut applied = 0;
    for change in held {
        let Some(item) = items
            .iter()
            .find(|i| i.external_tag.as_deref() == Some(change.change_id.as_str()))
        else {
            continue;
        };
        if item.status_category.as_deref() != Some("Closed") {
            continue;
        }
        let approved = item
            .status
            .as_ref()
            .is_some_and(|s| approved_ids.contains(&s.id));
        if !approved {
            ledger.mark(
                change.run_id,
                &[change.change_id.as_str()],
                ChangeStatus::Rejected,
                None,
                Some("review workitem closed without approval"),
            )?;
            continue;
        }
        let policy = settings.policy.for_skill(&change.skill_name);
        let write = WriteItem {
            change_id: change.change_id.clone(),
            skill_id: change.skill_id.clone(),
            before: change.before,
            after: change.after,
            held: true,
            target: change.target,
            policy,
        };
        // Approval is for exactly this change: a person's edit since is never overwritten.
        let apply_settings = crate::config::ApplySettings {
            verify_before_write: true,
            on_conflict: crate::config::OnConflict::Skip,
            ..settings.apply.clone()
        };
        let outcome = apply::write_agent(
            client,
            &apply_settings,
            &change.agent_id,
            std::slice::from_ref(&write),
        )
        .await;
        let (status, correlation, detail) = match outcome.into_iter().next().map(|(_, o)| o) {
            Some(Outcome::Applied { correlation_id, .. }) => {
                applied += 1;
                (
                    ChangeStatus::Applied,
                    correlation_id,
                    "approved in review; applied".to_string(),
                )
            }
            Some(Outcome::Conflict { .. }) => (
                ChangeStatus::Conflict,
                None,
                "approved, but a person changed the skill since; left alone".to_string(),
            ),
            Some(Outcome::Failed {
                error,
                correlation_id,
            }) => (ChangeStatus::Failed, correlation_id, error),
            // Stopping: the approved change stays held for the next cycle.
            Some(Outcome::NotSent { .. }) | None => continue,
        };
        ledger.mark(
            change.run_id,
            &[change.change_id.as_str()],
            status,
            correlation.as_deref(),
            Some(&detail),
        )?;
    }
    Ok(applied)
}

/// Files workitems for over-threshold changes (applied or held) and logs every one.
async fn alert_supervisors(
    run: &ThisRun<'_>,
    managers: &HashMap<String, Arc<str>>,
    rows: &[ChangeRecord],
    report: &mut CycleReport,
) -> Result<(), CycleError> {
    let (client, settings, ledger, run_id) = (run.client, run.settings, run.ledger, run.run_id);
    let items: Vec<AlertItem> = rows
        .iter()
        .filter(|r| matches!(r.status, ChangeStatus::Applied | ChangeStatus::Held))
        .filter(|r| {
            r.target
                .is_some_and(|t| (t - r.before).abs() >= settings.alerts.threshold)
        })
        .map(|r| AlertItem {
            change_id: r.change_id.clone(),
            agent_id: r.agent_id.clone(),
            agent_name: r.agent_name.clone(),
            manager_id: managers.get(&r.agent_id).map(|m| m.to_string()),
            skill_name: r.skill_name.clone(),
            current: r.before,
            target: r.target.unwrap_or(r.after),
            proposed: r.after,
            held_for_review: r.status == ChangeStatus::Held,
            explanation: r.reason.clone(),
        })
        .collect();
    report.alerts.over_threshold = items.len();
    for item in &items {
        tracing::info!(agent = %crate::text::Printable(&item.agent_name), skill = %crate::text::Printable(&item.skill_name), current = item.current, target = item.target, proposed = item.proposed, held = item.held_for_review, "over-threshold change");
    }
    if !settings.alerts.workitem.enabled {
        return Ok(());
    }
    let results = alert::file_workitems(client, &settings.alerts, &items, run.now).await;
    let mut recorded = Vec::with_capacity(results.len());
    for (change_id, filed) in &results {
        match filed {
            Filed::Created(id) => {
                report.alerts.workitems_created += 1;
                recorded.push((change_id.as_str(), id.as_str()));
            }
            Filed::AlreadyThere(id) => {
                report.alerts.workitems_existing += 1;
                recorded.push((change_id.as_str(), id.as_str()));
            }
            Filed::Failed(_) => report.alerts.workitems_failed += 1,
        }
    }
    ledger.set_workitems(run_id, &recorded)?;
    Ok(())
}

/// Posts the webhook digest through the API client's HTTP client: the same proxy and trust.
async fn send_digest(client: &GenesysClient, settings: &Settings, report: &mut CycleReport) {
    let hook = &settings.alerts.webhook;
    if !hook.enabled {
        return;
    }
    let body = alert::digest_body(hook.format, report);
    report.alerts.webhook = Some(
        match alert::post_webhook(client.http(), &hook.url, &body).await {
            Ok(()) => "ok".into(),
            Err(e) => {
                tracing::warn!(error = %e, "webhook digest failed");
                e
            }
        },
    );
}

/// The counts stored with the run (no per-change lines; those are in `changes`).
fn summary_of(report: &CycleReport) -> serde_json::Value {
    serde_json::json!({
        "agents_considered": report.agents_considered,
        "agents_changed": report.agents_changed,
        "skills_up": report.skills_up,
        "skills_down": report.skills_down,
        "unchanged": report.unchanged,
        "skipped": report.skipped,
        "conflicts": report.conflicts,
        "conflicts_matching_policy": report.conflicts_matching_policy,
        "failed": report.failed,
        "held_for_review": report.held_for_review,
        "approved_applied": report.approved_applied,
        "breaker": report.breaker,
        "alerts": report.alerts,
        "api_calls": report.api_calls_total,
        "error": report.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_suspected_from_5_matching_and_the_configured_share() {
        assert!(!second_writer_suspected(4, 4, 0.5));
        assert!(second_writer_suspected(5, 10, 0.5));
        assert!(!second_writer_suspected(5, 11, 0.5));
        assert!(second_writer_suspected(5, 5, 1.0));
        assert!(!second_writer_suspected(9, 10, 1.0));
        assert!(second_writer_suspected(5, 100, 0.0));
    }
}
