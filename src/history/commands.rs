//! The history commands: `history`, `show`, `diff`, `rollback` and `export`.
//!
//! Each returns plain data (serialisable for `--json`) and has a `render_*` function for
//! people; the CLI only prints. Only `diff` and `rollback` talk to the org, and only
//! `rollback` writes to it — through the same re-read-before-write path as a cycle, so a
//! value a person (or a later run) set since is never overwritten.

use super::reconcile::reconcile_unfinished;
use super::{ChangeRecord, ChangeStatus, Ledger, LedgerError, RunRecord};
use crate::apply::{self, same, Outcome, WriteItem};
use crate::config::{OnConflict, Settings};
use crate::genesys::{ApiError, GenesysClient};
use crate::text::Printable as P;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write;

/// Why a history command could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("reading the org: {0}")]
    Api(#[from] ApiError),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding the export: {0}")]
    Json(#[from] serde_json::Error),
    /// The request makes no sense or is unsafe for this run (the message says why).
    #[error("{0}")]
    Refused(String),
}

/// One run, one line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunLine {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub mode: String,
    /// What started it (`None` for daemon runs recorded before triggers were).
    pub trigger: Option<String>,
    pub outcome: Option<String>,
    pub rollback_of: Option<i64>,
    pub changes: usize,
    /// Count of changes per status (`applied`, `conflict`, …).
    pub statuses: BTreeMap<String, usize>,
}

/// The most recent `limit` runs, newest first, with their changes counted by status.
pub fn history(ledger: &Ledger, limit: usize) -> Result<Vec<RunLine>, HistoryError> {
    let mut lines = Vec::new();
    for run in ledger.recent_runs(limit)? {
        let changes = ledger.changes(run.id)?;
        let mut statuses = BTreeMap::new();
        for c in &changes {
            *statuses.entry(c.status.as_str().to_string()).or_insert(0) += 1;
        }
        lines.push(RunLine {
            id: run.id,
            started_at: run.started_at,
            finished_at: run.finished_at,
            mode: run.mode,
            trigger: run.trigger,
            outcome: run.outcome,
            rollback_of: run.rollback_of,
            changes: changes.len(),
            statuses,
        });
    }
    Ok(lines)
}

pub fn render_history(lines: &[RunLine]) -> String {
    if lines.is_empty() {
        return "no runs recorded yet\n".into();
    }
    let mut out = String::new();
    for l in lines {
        let counts = l
            .statuses
            .iter()
            .map(|(s, n)| format!("{} {n}", P(s)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            out,
            "#{:<5} {}  {:<9} {:<8} {:<12} {:>4} changes",
            l.id,
            P(&l.started_at),
            P(&l.mode),
            P(l.trigger.as_deref().unwrap_or("-")),
            P(l.outcome.as_deref().unwrap_or("unfinished")),
            l.changes
        );
        if !counts.is_empty() {
            let _ = write!(out, " ({counts})");
        }
        if let Some(of) = l.rollback_of {
            let _ = write!(out, "  rollback of #{of}");
        }
        out.push('\n');
    }
    out
}

/// A run and its changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    pub run: RunRecord,
    pub changes: Vec<ChangeRecord>,
}

pub fn show(ledger: &Ledger, run_id: i64) -> Result<RunDetail, HistoryError> {
    Ok(RunDetail {
        run: ledger.run(run_id)?,
        changes: ledger.changes(run_id)?,
    })
}

pub fn render_show(detail: &RunDetail) -> String {
    let r = &detail.run;
    let mut out = format!(
        "run #{} ({}, trigger {}), started {}, finished {}, outcome {}, config {}\n",
        r.id,
        P(&r.mode),
        P(r.trigger.as_deref().unwrap_or("unknown")),
        P(&r.started_at),
        P(r.finished_at.as_deref().unwrap_or("-")),
        P(r.outcome.as_deref().unwrap_or("unfinished")),
        P(&r.config_hash)
    );
    if let Some(of) = r.rollback_of {
        let _ = writeln!(out, "a rollback of run #{of}");
    }
    if detail.changes.is_empty() {
        out.push_str("no changes\n");
    }
    for c in &detail.changes {
        let _ = writeln!(
            out,
            "  {:<9} {} / {}: {:.2} -> {:.2}{}",
            c.status.as_str(),
            P(&c.agent_name),
            P(&c.skill_name),
            c.before,
            c.after,
            c.correlation_id
                .as_deref()
                .map(|id| format!("  (correlation id {})", P(id)))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "            why: {}", P(&c.reason));
        if let Some(d) = &c.detail {
            let _ = writeln!(out, "            {}", P(d));
        }
    }
    out
}

/// How a change of a past run relates to what the org holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffStatus {
    /// Applied, and the org still holds the run's `after`.
    StillApplied,
    /// Applied, and the org now holds something else (a person or a later run).
    ChangedSince,
    /// Applied, and the org is back at the run's `before` (e.g. rolled back).
    Reverted,
    /// The run never applied it (dry run, conflict, failure, skipped, held).
    NotApplied,
}

impl DiffStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffStatus::StillApplied => "still_applied",
            DiffStatus::ChangedSince => "changed_since",
            DiffStatus::Reverted => "reverted",
            DiffStatus::NotApplied => "not_applied",
        }
    }
}

/// One change of a run against the org's current value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffLine {
    pub change_id: String,
    pub agent_id: String,
    pub agent_name: String,
    pub skill_id: String,
    pub skill_name: String,
    pub before: f64,
    pub after: f64,
    /// What the org holds now (`None`: the agent no longer has the skill).
    pub now: Option<f64>,
    pub recorded_status: ChangeStatus,
    pub status: DiffStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDiff {
    pub run: RunRecord,
    pub lines: Vec<DiffLine>,
}

/// What `run` changed versus what the org holds now (reads each agent once; writes nothing).
pub async fn diff(
    client: &GenesysClient,
    ledger: &Ledger,
    run_id: i64,
) -> Result<RunDiff, HistoryError> {
    let run = ledger.run(run_id)?;
    let changes = ledger.changes(run_id)?;
    let current = read_agents(client, changes.iter().map(|c| c.agent_id.as_str())).await?;
    let lines = changes
        .into_iter()
        .map(|c| {
            let now = current
                .get(&c.agent_id)
                .and_then(|skills| skills.get(&c.skill_id))
                .copied();
            let status = diff_status(&c, now);
            DiffLine {
                change_id: c.change_id,
                agent_id: c.agent_id,
                agent_name: c.agent_name,
                skill_id: c.skill_id,
                skill_name: c.skill_name,
                before: c.before,
                after: c.after,
                now,
                recorded_status: c.status,
                status,
            }
        })
        .collect();
    Ok(RunDiff { run, lines })
}

fn diff_status(change: &ChangeRecord, now: Option<f64>) -> DiffStatus {
    if change.status != ChangeStatus::Applied {
        return DiffStatus::NotApplied;
    }
    match now {
        Some(v) if same(v, change.after) => DiffStatus::StillApplied,
        Some(v) if same(v, change.before) => DiffStatus::Reverted,
        _ => DiffStatus::ChangedSince,
    }
}

pub fn render_diff(diff: &RunDiff) -> String {
    let mut out = format!(
        "run #{} ({}) versus the org now: before -> after (now)\n",
        diff.run.id,
        P(&diff.run.mode)
    );
    if diff.lines.is_empty() {
        out.push_str("no changes\n");
    }
    for l in &diff.lines {
        let _ = writeln!(
            out,
            "  {:<13} {} / {}: {:.2} -> {:.2} (now {})",
            l.status.as_str(),
            P(&l.agent_name),
            P(&l.skill_name),
            l.before,
            l.after,
            l.now.map_or("no such skill".into(), |v| format!("{v:.2}"))
        );
    }
    out
}

/// Each agent's current skills (skill id → proficiency), one read per agent.
async fn read_agents<'a>(
    client: &GenesysClient,
    agents: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, HashMap<String, f64>>, ApiError> {
    let mut ids: Vec<&str> = agents.collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = HashMap::new();
    for id in ids {
        let skills = client.user_skills(id).await?;
        out.insert(
            id.to_string(),
            skills.into_iter().map(|s| (s.id, s.proficiency)).collect(),
        );
    }
    Ok(out)
}

/// One skill a rollback restores or leaves alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackLine {
    pub agent_id: String,
    pub agent_name: String,
    pub skill_id: String,
    pub skill_name: String,
    /// The rolled-back run's `after` (what we expect to find).
    pub from: f64,
    /// The rolled-back run's `before` (what we restore).
    pub to: f64,
    /// What the org held when checked (`None` when unknown or the skill is gone).
    pub now: Option<f64>,
    pub detail: Option<String>,
}

/// What a rollback did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackReport {
    pub rollback_of: i64,
    /// The rollback's own run (none for a dry run).
    pub run_id: Option<i64>,
    pub dry_run: bool,
    /// `ok`, `partial` (some writes failed), `nothing_to_do`, or `dry_run`.
    pub outcome: String,
    pub restored: Vec<RollbackLine>,
    /// Changed since the run by a person or a later run: not touched.
    pub left_alone: Vec<RollbackLine>,
    pub failed: Vec<RollbackLine>,
}

/// Restores the `before` value of each `applied` change of `run_id` whose skill still holds
/// the run's `after`; anything changed since (by a person or a later run) is left alone and
/// listed. The rollback is itself a run (`mode = rollback`, `rollback_of = run_id`), recorded
/// write-ahead like a cycle. With `dry_run` it only reads: nothing is recorded or written.
///
/// Refused: dry runs (they changed nothing), unfinished runs that cannot be reconciled yet,
/// and rollbacks themselves. Undoing a rollback would re-apply a past model output outside
/// any cycle — without today's data, guardrails or breaker — so the way forward after a
/// rollback is a new cycle (`once`), which plans from the current data.
pub async fn rollback(
    client: &GenesysClient,
    settings: &Settings,
    ledger: &Ledger,
    run_id: i64,
    dry_run: bool,
) -> Result<RollbackReport, HistoryError> {
    // A real rollback writes to the org: never alongside a daemon's cycle or `once` (the
    // write lock, refused at once and naming the holder). A dry run only reads.
    let _writing = if dry_run {
        None
    } else {
        ledger.lock_for_writing(&format!("rollback of run #{run_id}"))?
    };
    let mut run = ledger.run(run_id)?;
    if run.mode == "plan" {
        return Err(HistoryError::Refused(format!(
            "run #{run_id} was a dry run (plan): it changed nothing to roll back"
        )));
    }
    if run.mode == "rollback" {
        return Err(HistoryError::Refused(format!(
            "run #{run_id} is itself a rollback (of #{}); rolling it back would re-apply old model output outside a cycle. Run `once` to plan from current data instead",
            run.rollback_of.map_or("?".into(), |r| r.to_string())
        )));
    }
    if run.finished_at.is_none() {
        if dry_run {
            // A run another process is still writing is not "interrupted": say which it is.
            let why = if ledger.is_live(run_id)? {
                "is still in progress in another skill-tuner (see `history`); roll it back once it has finished"
            } else {
                "is unfinished (interrupted); it is reconciled at the next cycle or real rollback, so a dry run cannot tell yet what it applied"
            };
            return Err(HistoryError::Refused(format!("run #{run_id} {why}")));
        }
        // Settle what the interruption left (reads only), so we know what was applied.
        reconcile_unfinished(client, ledger).await?;
        run = ledger.run(run_id)?;
        if run.finished_at.is_none() {
            return Err(HistoryError::Refused(format!(
                "run #{run_id} is unfinished and could not be reconciled against the org yet; try again later"
            )));
        }
    }
    let applied: Vec<ChangeRecord> = ledger
        .changes(run_id)?
        .into_iter()
        .filter(|c| c.status == ChangeStatus::Applied)
        .collect();
    let mut report = RollbackReport {
        rollback_of: run_id,
        run_id: None,
        dry_run,
        outcome: String::new(),
        restored: Vec::new(),
        left_alone: Vec::new(),
        failed: Vec::new(),
    };
    let line = rollback_line;

    if dry_run {
        let current = read_agents(client, applied.iter().map(|c| c.agent_id.as_str())).await?;
        for c in &applied {
            let now = current
                .get(&c.agent_id)
                .and_then(|s| s.get(&c.skill_id))
                .copied();
            if now.is_some_and(|v| same(v, c.after)) {
                report.restored.push(line(c, now, None));
            } else {
                report
                    .left_alone
                    .push(line(c, now, Some(changed_since(run_id, now))));
            }
        }
        report.outcome = "dry_run".into();
        return Ok(report);
    }
    if applied.is_empty() {
        report.outcome = "nothing_to_do".into();
        return Ok(report);
    }

    // Write-ahead: the rollback's plan is on disk before its first write.
    let new_run = ledger.begin_run("rollback", &settings.fingerprint(), Some(run_id))?;
    report.run_id = Some(new_run);
    let result = apply_rollback(
        client,
        settings,
        ledger,
        run_id,
        new_run,
        &applied,
        &mut report,
    )
    .await;
    if result.is_err() {
        // Some writes may be unmarked: let reconciliation settle this rollback run.
        ledger.abandon_run(new_run);
    }
    result?;
    Ok(report)
}

/// The rollback after its run is begun: write-ahead rows, writes, marks, finish.
#[allow(clippy::too_many_arguments)]
async fn apply_rollback(
    client: &GenesysClient,
    settings: &Settings,
    ledger: &Ledger,
    run_id: i64,
    new_run: i64,
    applied: &[ChangeRecord],
    report: &mut RollbackReport,
) -> Result<(), HistoryError> {
    let line = rollback_line;
    let tag = format!("rollback-of-{run_id}");
    let rows: Vec<ChangeRecord> = applied
        .iter()
        .map(|c| ChangeRecord {
            change_id: crate::cycle::change_id(&c.agent_id, &c.skill_id, c.after, c.before, &tag),
            run_id: new_run,
            agent_id: c.agent_id.clone(),
            agent_name: c.agent_name.clone(),
            skill_id: c.skill_id.clone(),
            skill_name: c.skill_name.clone(),
            before: c.after,
            after: c.before,
            target: None,
            score: None,
            reason: format!(
                "rollback of run #{run_id} (change {}): restore {:.2}",
                c.change_id, c.before
            ),
            status: ChangeStatus::Planned,
            correlation_id: None,
            detail: None,
            workitem_id: None,
        })
        .collect();
    ledger.record_plan(&rows)?;

    // The re-read before each write is what protects later edits: a skill no longer at the
    // run's `after` is a conflict and is left alone, whatever the daemon's own settings say.
    let apply_settings = crate::config::ApplySettings {
        verify_before_write: true,
        on_conflict: OnConflict::Skip,
        ..settings.apply.clone()
    };
    let mut by_agent: BTreeMap<&str, Vec<WriteItem>> = BTreeMap::new();
    for row in &rows {
        by_agent.entry(&row.agent_id).or_default().push(WriteItem {
            change_id: row.change_id.clone(),
            skill_id: row.skill_id.clone(),
            before: row.before,
            after: row.after,
            held: true,
            target: None,
            policy: settings.policy.for_skill(&row.skill_name),
        });
    }
    let apply_settings = &apply_settings;
    let mut writes = stream::iter(by_agent)
        .map(|(agent_id, items)| async move {
            apply::write_agent(client, apply_settings, agent_id, &items).await
        })
        .buffer_unordered(settings.genesys.max_concurrency.max(1));
    let by_id: HashMap<&str, (&ChangeRecord, &ChangeRecord)> = rows
        .iter()
        .zip(applied)
        .map(|(row, original)| (row.change_id.as_str(), (row, original)))
        .collect();
    while let Some(outcomes) = writes.next().await {
        for (change_id, outcome) in outcomes {
            let Some((row, original)) = by_id.get(change_id.as_str()) else {
                continue;
            };
            let (status, correlation, detail) = match outcome {
                Outcome::Applied {
                    value,
                    correlation_id,
                } => {
                    report.restored.push(line(original, Some(value), None));
                    (
                        ChangeStatus::Applied,
                        correlation_id,
                        format!("restored {value:.2}"),
                    )
                }
                Outcome::Conflict { found } => {
                    let why = changed_since(run_id, found);
                    report
                        .left_alone
                        .push(line(original, found, Some(why.clone())));
                    (ChangeStatus::Conflict, None, why)
                }
                Outcome::Failed {
                    error,
                    correlation_id,
                } => {
                    report
                        .failed
                        .push(line(original, None, Some(error.clone())));
                    (ChangeStatus::Failed, correlation_id, error)
                }
                Outcome::NotSent { reason } => {
                    report
                        .failed
                        .push(line(original, None, Some(reason.clone())));
                    (ChangeStatus::Failed, None, reason)
                }
            };
            ledger.mark(
                new_run,
                &[row.change_id.as_str()],
                status,
                correlation.as_deref(),
                Some(&detail),
            )?;
        }
    }
    report.outcome = if report.failed.is_empty() {
        "ok".into()
    } else {
        "partial".into()
    };
    ledger.finish_run(
        new_run,
        &report.outcome,
        &serde_json::json!({
            "rollback_of": run_id,
            "restored": report.restored.len(),
            "left_alone": report.left_alone.len(),
            "failed": report.failed.len(),
        }),
    )?;
    Ok(())
}

fn rollback_line(c: &ChangeRecord, now: Option<f64>, detail: Option<String>) -> RollbackLine {
    RollbackLine {
        agent_id: c.agent_id.clone(),
        agent_name: c.agent_name.clone(),
        skill_id: c.skill_id.clone(),
        skill_name: c.skill_name.clone(),
        from: c.after,
        to: c.before,
        now,
        detail,
    }
}

fn changed_since(run_id: i64, now: Option<f64>) -> String {
    format!(
        "changed since run #{run_id} (now {}); left alone",
        now.map_or("no such skill".into(), |v| format!("{v:.2}"))
    )
}

pub fn render_rollback(r: &RollbackReport) -> String {
    let mut out = match (r.dry_run, r.run_id) {
        (true, _) => format!(
            "rollback of run #{} (dry run: nothing written or recorded)\n",
            r.rollback_of
        ),
        (false, Some(id)) => format!(
            "rollback of run #{}, recorded as run #{id}: {}\n",
            r.rollback_of,
            P(&r.outcome)
        ),
        (false, None) => format!(
            "rollback of run #{}: {} (no applied changes)\n",
            r.rollback_of,
            P(&r.outcome)
        ),
    };
    let verb = if r.dry_run {
        "would restore"
    } else {
        "restored"
    };
    let _ = writeln!(out, "{verb}: {}", r.restored.len());
    for l in &r.restored {
        let _ = writeln!(
            out,
            "  {} / {}: {:.2} -> {:.2}",
            P(&l.agent_name),
            P(&l.skill_name),
            l.from,
            l.to
        );
    }
    let _ = writeln!(
        out,
        "left alone (changed since by a person or a later run): {}",
        r.left_alone.len()
    );
    for l in &r.left_alone {
        let _ = writeln!(
            out,
            "  {} / {}: run set {:.2}, org now holds {}",
            P(&l.agent_name),
            P(&l.skill_name),
            l.from,
            l.now.map_or("no such skill".into(), |v| format!("{v:.2}"))
        );
    }
    if !r.failed.is_empty() {
        let _ = writeln!(out, "failed: {}", r.failed.len());
        for l in &r.failed {
            let _ = writeln!(
                out,
                "  {} / {}: {}",
                P(&l.agent_name),
                P(&l.skill_name),
                P(l.detail.as_deref().unwrap_or(""))
            );
        }
    }
    out
}

/// Export formats for audits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(ExportFormat::Csv),
            "json" => Ok(ExportFormat::Json),
            other => Err(format!("unknown export format `{other}` (csv or json)")),
        }
    }
}

/// One change with its run's context: a flat row, the same in CSV and JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportRow {
    pub run_id: i64,
    pub run_mode: String,
    /// What started the run (empty when unknown).
    pub run_trigger: Option<String>,
    pub run_started_at: String,
    pub run_finished_at: Option<String>,
    pub run_outcome: Option<String>,
    pub rollback_of: Option<i64>,
    pub change_id: String,
    pub agent_id: String,
    pub agent_name: String,
    pub skill_id: String,
    pub skill_name: String,
    pub before: f64,
    pub after: f64,
    pub target: Option<f64>,
    pub status: ChangeStatus,
    pub correlation_id: Option<String>,
    pub detail: Option<String>,
    pub workitem_id: Option<String>,
    pub reason: String,
    pub score: Option<super::ScoreJson>,
}

/// The CSV header, in [`ExportRow`] field order.
pub const CSV_HEADER: [&str; 21] = [
    "run_id",
    "run_mode",
    "run_trigger",
    "run_started_at",
    "run_finished_at",
    "run_outcome",
    "rollback_of",
    "change_id",
    "agent_id",
    "agent_name",
    "skill_id",
    "skill_name",
    "before",
    "after",
    "target",
    "status",
    "correlation_id",
    "detail",
    "workitem_id",
    "reason",
    "score",
];

/// Every change row in the ledger, oldest first, with its run's mode and timestamps.
pub fn export_rows(ledger: &Ledger) -> Result<Vec<ExportRow>, HistoryError> {
    let runs: HashMap<i64, RunRecord> = ledger.all_runs()?.into_iter().map(|r| (r.id, r)).collect();
    Ok(ledger
        .all_changes()?
        .into_iter()
        .map(|c| {
            let run = runs.get(&c.run_id);
            ExportRow {
                run_id: c.run_id,
                run_mode: run.map(|r| r.mode.clone()).unwrap_or_default(),
                run_trigger: run.and_then(|r| r.trigger.clone()),
                run_started_at: run.map(|r| r.started_at.clone()).unwrap_or_default(),
                run_finished_at: run.and_then(|r| r.finished_at.clone()),
                run_outcome: run.and_then(|r| r.outcome.clone()),
                rollback_of: run.and_then(|r| r.rollback_of),
                change_id: c.change_id,
                agent_id: c.agent_id,
                agent_name: c.agent_name,
                skill_id: c.skill_id,
                skill_name: c.skill_name,
                before: c.before,
                after: c.after,
                target: c.target,
                status: c.status,
                correlation_id: c.correlation_id,
                detail: c.detail,
                workitem_id: c.workitem_id,
                reason: c.reason,
                score: c.score,
            }
        })
        .collect())
}

/// Writes every change row as CSV (RFC 4180: header, CRLF-free `\n` lines, fields quoted
/// when needed) or as one JSON array. Returns how many rows were written.
pub fn export(
    ledger: &Ledger,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<usize, HistoryError> {
    let rows = export_rows(ledger)?;
    match format {
        ExportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)?;
        }
        ExportFormat::Csv => {
            write_csv_record(out, CSV_HEADER.iter().map(|h| h.to_string()))?;
            for r in &rows {
                // Text cells are neutralised (see `spreadsheet_safe`); numbers stay numbers.
                let text = |v: &str| spreadsheet_safe(v).into_owned();
                let opt = |v: &Option<String>| text(v.as_deref().unwrap_or_default());
                let fields = [
                    r.run_id.to_string(),
                    text(&r.run_mode),
                    opt(&r.run_trigger),
                    text(&r.run_started_at),
                    opt(&r.run_finished_at),
                    opt(&r.run_outcome),
                    r.rollback_of.map(|v| v.to_string()).unwrap_or_default(),
                    text(&r.change_id),
                    text(&r.agent_id),
                    text(&r.agent_name),
                    text(&r.skill_id),
                    text(&r.skill_name),
                    r.before.to_string(),
                    r.after.to_string(),
                    r.target.map(|v| v.to_string()).unwrap_or_default(),
                    r.status.as_str().to_string(),
                    opt(&r.correlation_id),
                    opt(&r.detail),
                    opt(&r.workitem_id),
                    text(&r.reason),
                    text(r.score.as_ref().map(|s| s.get()).unwrap_or_default()),
                ];
                write_csv_record(out, fields.into_iter())?;
            }
        }
    }
    out.flush()?;
    Ok(rows.len())
}

fn write_csv_record(
    out: &mut dyn Write,
    fields: impl Iterator<Item = String>,
) -> std::io::Result<()> {
    let line = fields.map(|f| csv_field(&f)).collect::<Vec<_>>().join(",");
    writeln!(out, "{line}")
}

/// A text cell a spreadsheet will not run: one starting with `=`, `+`, `-`, `@`, tab or CR is
/// a formula to Excel, LibreOffice and Google Sheets (`=HYPERLINK(…)`, `+cmd|' /C calc'!A0`),
/// so it gets a leading `'` (OWASP's CSV-injection rule). Agent and skill names come from the
/// org, where anyone with admin rights can edit them.
pub fn spreadsheet_safe(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Quotes a field when it holds a comma, a quote, a line break or edge spaces; quotes are
/// doubled (RFC 4180). Reasons and details are free text, so this matters.
pub fn csv_field(field: &str) -> String {
    let needs =
        field.contains([',', '"', '\n', '\r']) || field.starts_with(' ') || field.ends_with(' ');
    if needs {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field(" edge"), "\" edge\"");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn formula_cells_are_neutralised() {
        for (raw, safe) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
        ] {
            assert_eq!(spreadsheet_safe(raw), safe);
        }
        for plain in ["Rosa Patel", "a=b", "", "3.5", "{\"score\":1}"] {
            assert!(
                matches!(spreadsheet_safe(plain), Cow::Borrowed(_)),
                "{plain}"
            );
        }
    }

    #[test]
    fn diff_status_follows_the_org_value() {
        let change = ChangeRecord {
            change_id: "c".into(),
            run_id: 1,
            agent_id: "a".into(),
            agent_name: "A".into(),
            skill_id: "s".into(),
            skill_name: "S".into(),
            before: 2.0,
            after: 3.0,
            target: None,
            score: None,
            reason: String::new(),
            status: ChangeStatus::Applied,
            correlation_id: None,
            detail: None,
            workitem_id: None,
        };
        assert_eq!(diff_status(&change, Some(3.0)), DiffStatus::StillApplied);
        assert_eq!(diff_status(&change, Some(2.0)), DiffStatus::Reverted);
        assert_eq!(diff_status(&change, Some(4.0)), DiffStatus::ChangedSince);
        assert_eq!(diff_status(&change, None), DiffStatus::ChangedSince);
        let conflict = ChangeRecord {
            status: ChangeStatus::Conflict,
            ..change
        };
        assert_eq!(diff_status(&conflict, Some(3.0)), DiffStatus::NotApplied);
    }

    #[test]
    fn human_renderings_escape_names_details_and_reasons() {
        let hostile = "Eve\x1b]0;pwned\x07\u{202e}\r\nFORGED";
        let change = ChangeRecord {
            change_id: "c".into(),
            run_id: 1,
            agent_id: "a".into(),
            agent_name: hostile.into(),
            skill_id: "s".into(),
            skill_name: hostile.into(),
            before: 2.0,
            after: 3.0,
            target: None,
            score: None,
            reason: hostile.into(),
            status: ChangeStatus::Failed,
            correlation_id: Some(hostile.into()),
            detail: Some(hostile.into()),
            workitem_id: None,
        };
        let run = RunRecord {
            id: 1,
            started_at: "t".into(),
            finished_at: None,
            mode: "once".into(),
            trigger: Some(hostile.into()),
            config_hash: "h".into(),
            outcome: Some(hostile.into()),
            summary: None,
            rollback_of: None,
        };
        let line = rollback_line(&change, Some(3.0), Some(hostile.into()));
        let rollback = RollbackReport {
            rollback_of: 1,
            run_id: Some(2),
            dry_run: false,
            outcome: hostile.into(),
            restored: vec![line.clone()],
            left_alone: vec![line.clone()],
            failed: vec![line],
        };
        let diff = RunDiff {
            run: run.clone(),
            lines: vec![DiffLine {
                change_id: "c".into(),
                agent_id: "a".into(),
                agent_name: hostile.into(),
                skill_id: "s".into(),
                skill_name: hostile.into(),
                before: 2.0,
                after: 3.0,
                now: None,
                recorded_status: ChangeStatus::Applied,
                status: DiffStatus::ChangedSince,
            }],
        };
        let history_line = RunLine {
            id: 1,
            started_at: "t".into(),
            finished_at: None,
            mode: "once".into(),
            trigger: Some(hostile.into()),
            outcome: Some(hostile.into()),
            rollback_of: None,
            changes: 1,
            statuses: BTreeMap::new(),
        };
        for text in [
            render_show(&RunDetail {
                run,
                changes: vec![change],
            }),
            render_diff(&diff),
            render_rollback(&rollback),
            render_history(&[history_line]),
        ] {
            assert!(
                !text
                    .chars()
                    .any(|c| c != '\n' && crate::text::needs_escape(c)),
                "{text:?}"
            );
            assert!(!text.lines().any(|l| l.starts_with("FORGED")), "{text}");
        }
    }

    #[test]
    fn export_formats_parse() {
        assert_eq!("CSV".parse::<ExportFormat>(), Ok(ExportFormat::Csv));
        assert_eq!("json".parse::<ExportFormat>(), Ok(ExportFormat::Json));
        assert!("xml".parse::<ExportFormat>().is_err());
    }
}
