//! `rollback`: restores what a run replaced, where the org still holds the run's values.

use super::{now_of, org_now, AuditError};
use crate::config::Settings;
use crate::cycle::write::{changed_since, Outcome, Purpose, WriteItem, WritePath};
use crate::cycle::StopSignal;
use crate::genesys::GenesysClient;
use crate::history::{
    change_id, reconcile_unfinished, ChangeRecord, ChangeStatus, Ledger, RunMode, RunOutcome,
};
use crate::org::same;
use serde::Serialize;
use std::collections::HashMap;

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
    pub outcome: RunOutcome,
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
) -> Result<RollbackReport, AuditError> {
    // A real rollback writes to the org: never alongside a daemon's cycle or `once` (the
    // write lock, refused at once and naming the holder). A dry run only reads.
    let _writing = if dry_run {
        None
    } else {
        ledger.lock_for_writing(&format!("rollback of run #{run_id}"))?
    };
    let mut run = ledger.run(run_id)?;
    if run.mode == RunMode::Plan {
        return Err(AuditError::Refused(format!(
            "run #{run_id} was a dry run (plan): it changed nothing to roll back"
        )));
    }
    if run.mode == RunMode::Rollback {
        return Err(AuditError::Refused(format!(
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
            return Err(AuditError::Refused(format!("run #{run_id} {why}")));
        }
        // Settle what the interruption left (reads only), so we know what was applied.
        reconcile_unfinished(client, ledger).await?;
        run = ledger.run(run_id)?;
        if run.finished_at.is_none() {
            return Err(AuditError::Refused(format!(
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
        // A real rollback says below how it ended.
        outcome: RunOutcome::DryRun,
        restored: Vec::new(),
        left_alone: Vec::new(),
        failed: Vec::new(),
    };

    if dry_run {
        let org = org_now(client, &applied).await?;
        for c in &applied {
            let now = now_of(&org, c);
            if now.is_some_and(|v| same(v, c.after)) {
                report.restored.push(rollback_line(c, now, None));
            } else {
                report
                    .left_alone
                    .push(rollback_line(c, now, Some(changed_since(run_id, now))));
            }
        }
        return Ok(report);
    }
    if applied.is_empty() {
        report.outcome = RunOutcome::NothingToDo;
        return Ok(report);
    }

    // Write-ahead: the rollback's plan is on disk before its first write.
    let new_run = ledger.begin_run(RunMode::Rollback, &settings.fingerprint(), Some(run_id))?;
    report.run_id = Some(new_run);
    let experiment = crate::experiment::Assignment::of(&settings.experiment);
    let write = WritePath {
        client,
        ledger,
        apply: &settings.apply,
        concurrency: settings.genesys.max_concurrency,
        held_out: experiment.as_ref(),
    };
    let result = apply_rollback(&write, run_id, new_run, &applied, &mut report).await;
    if result.is_err() {
        // Some writes may be unmarked: let reconciliation settle this rollback run.
        ledger.abandon_run(new_run);
    }
    result?;
    Ok(report)
}

/// The rollback after its run is begun: write-ahead rows, the writes (marked as they
/// answer), finish.
async fn apply_rollback(
    write: &WritePath<'_>,
    run_id: i64,
    new_run: i64,
    applied: &[ChangeRecord],
    report: &mut RollbackReport,
) -> Result<(), AuditError> {
    let tag = format!("rollback-of-{run_id}");
    // Each row of the rollback beside the change it undoes.
    let rows: Vec<(ChangeRecord, &ChangeRecord)> = applied
        .iter()
        .map(|c| {
            let row = ChangeRecord {
                change_id: change_id(&c.agent_id, &c.skill_id, c.after, c.before, &tag),
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
            };
            (row, c)
        })
        .collect();
    write.ledger.record_plan(rows.iter().map(|(row, _)| row))?;

    // The re-read before each write is what protects later edits: a skill no longer at the
    // run's `after` is a conflict and is left alone, whatever the daemon's own settings say.
    let items: Vec<WriteItem> = rows
        .iter()
        .map(|(row, _)| WriteItem {
            run_id: new_run,
            change_id: &row.change_id,
            agent_id: &row.agent_id,
            skill_id: &row.skill_id,
            before: row.before,
            after: row.after,
            adds_skill: false,
            replan: None,
        })
        .collect();
    let undone: HashMap<&str, &ChangeRecord> = rows
        .iter()
        .map(|(row, original)| (row.change_id.as_str(), *original))
        .collect();
    let purpose = Purpose::Rollback { of: run_id };
    // Nothing stops a rollback part-way but the client's own shutdown.
    let never = StopSignal::default();
    for written in write.write_batch(purpose, &items, &never).await? {
        let Some(original) = undone.get(written.item.change_id) else {
            continue;
        };
        let detail = written.recorded.map(|(_, detail)| detail);
        match written.outcome {
            Outcome::Applied { value, .. } => {
                report
                    .restored
                    .push(rollback_line(original, Some(value), None));
            }
            Outcome::Conflict { found } => {
                report
                    .left_alone
                    .push(rollback_line(original, found, detail));
            }
            Outcome::HeldOut => {
                report
                    .left_alone
                    .push(rollback_line(original, Some(original.after), detail));
            }
            Outcome::Failed { .. } | Outcome::NotSent { .. } | Outcome::Stopped => {
                report.failed.push(rollback_line(original, None, detail));
            }
        }
    }
    report.outcome = if report.failed.is_empty() {
        RunOutcome::Ok
    } else {
        RunOutcome::Partial
    };
    write.ledger.finish_run(
        new_run,
        report.outcome,
        &serde_json::json!({
            "rollback_of": run_id,
            "restored": report.restored.len(),
            "left_alone": report.left_alone.len(),
            "failed": report.failed.len(),
        }),
    )?;
    Ok(())
}

pub(super) fn rollback_line(
    c: &ChangeRecord,
    now: Option<f64>,
    detail: Option<String>,
) -> RollbackLine {
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
