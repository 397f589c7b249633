//! Reconciliation of runs a crash left unfinished (kill -9, power loss, a panic).
//!
//! The ledger is write-ahead: a run's plan is on disk before its first write, and each
//! change is marked only after the API answered. A crash between a write and its mark leaves
//! rows `planned` whose fate is unknown. The org knows it: for each such row we read the
//! agent's skills and compare with the row's `before` and `after`. This only reads — it
//! never writes to the org — so the next cycle plans from the truth and nothing is applied
//! twice or left unrecorded.

use super::{ChangeRecord, ChangeStatus, Ledger, LedgerError, RunMode, RunOutcome};
use crate::genesys::GenesysClient;
use crate::org::same;
use serde::Serialize;
use std::collections::BTreeMap;

/// What reconciliation found for one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReconciledRun {
    pub run_id: i64,
    pub mode: RunMode,
    /// Found holding the planned value: the write landed before the interruption.
    pub applied: usize,
    /// Found holding the value the plan started from: never written.
    pub skipped: usize,
    /// Found holding something else: a person (or another tool) changed it.
    pub conflict: usize,
}

/// A run that could not be reconciled now (it stays unfinished and is retried next start).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnreconciledRun {
    pub run_id: i64,
    pub error: String,
}

/// Everything one reconciliation pass did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReconcileReport {
    /// Runs closed as [`RunOutcome::Interrupted`].
    pub closed: Vec<ReconciledRun>,
    /// Runs left unfinished because the org could not be read.
    pub left_unfinished: Vec<UnreconciledRun>,
}

impl ReconcileReport {
    /// Whether there was nothing to reconcile.
    pub fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.left_unfinished.is_empty()
    }
}

/// Closes every unfinished run, marking each of its `planned` changes from the org's current
/// state: `applied` (org holds `after`), `skipped` (org holds `before`) or `conflict`.
/// Dry runs (`plan`) wrote nothing and are simply closed. Never writes to the org.
///
/// A run whose agents cannot all be read keeps its unmarked rows and stays unfinished, so
/// the next start retries it; the rows that could be decided are marked anyway (marking is
/// idempotent).
pub async fn reconcile_unfinished(
    client: &GenesysClient,
    ledger: &Ledger,
) -> Result<ReconcileReport, LedgerError> {
    let mut report = ReconcileReport::default();
    for run in ledger.unfinished_runs()? {
        if ledger.is_live(run.id)? {
            // In progress here or in another process (which holds its lock): not ours.
            tracing::debug!(
                run_id = run.id,
                "unfinished run is still in progress; not reconciling it"
            );
            continue;
        }
        let mut found = ReconciledRun {
            run_id: run.id,
            mode: run.mode,
            applied: 0,
            skipped: 0,
            conflict: 0,
        };
        if run.mode == RunMode::Plan {
            // A dry run writes nothing to the org: its `planned` rows are the whole story.
            let note = summary(&found, "dry run interrupted");
            ledger.finish_run(run.id, RunOutcome::Interrupted, &note)?;
            report.closed.push(found);
            continue;
        }
        let changes = ledger.changes(run.id)?;
        let mut by_agent: BTreeMap<&str, Vec<&ChangeRecord>> = BTreeMap::new();
        for change in changes.iter().filter(|c| c.status == ChangeStatus::Planned) {
            by_agent.entry(&change.agent_id).or_default().push(change);
        }
        let mut read_errors = Vec::new();
        for (agent_id, rows) in by_agent {
            let skills = match client.user_proficiencies(agent_id).await {
                Ok(skills) => skills,
                Err(e) => {
                    tracing::warn!(run_id = run.id, agent = agent_id, error = %e, "cannot read an agent to reconcile an interrupted run; will retry at the next start");
                    read_errors.push(format!("agent {agent_id}: {e}"));
                    continue;
                }
            };
            for row in rows {
                let now = skills.get(&row.skill_id).copied();
                let (status, detail) = match now {
                    Some(v) if same(v, row.after) => (
                        ChangeStatus::Applied,
                        "confirmed after an interruption".to_string(),
                    ),
                    // An added skill (`add_missing_skills`) is planned from 0.0: absent
                    // from the org means it was never written.
                    Some(v) if same(v, row.before) => (
                        ChangeStatus::Skipped,
                        "not applied before the interruption".to_string(),
                    ),
                    None if same(row.before, 0.0) => (
                        ChangeStatus::Skipped,
                        "not applied before the interruption".to_string(),
                    ),
                    other => (
                        ChangeStatus::Conflict,
                        format!(
                            "after an interruption the org holds {}, neither the planned {:.2} nor the original {:.2}; left alone",
                            other.map_or("no such skill".to_string(), |v| format!("{v:.2}")),
                            row.after,
                            row.before
                        ),
                    ),
                };
                match status {
                    ChangeStatus::Applied => found.applied += 1,
                    ChangeStatus::Skipped => found.skipped += 1,
                    _ => found.conflict += 1,
                }
                ledger.mark(
                    run.id,
                    &[row.change_id.as_str()],
                    status,
                    None,
                    Some(&detail),
                )?;
            }
        }
        if read_errors.is_empty() {
            ledger.finish_run(
                run.id,
                RunOutcome::Interrupted,
                &summary(&found, "reconciled against the org after an interruption"),
            )?;
            report.closed.push(found);
        } else {
            report.left_unfinished.push(UnreconciledRun {
                run_id: run.id,
                error: read_errors.join("; "),
            });
        }
    }
    Ok(report)
}

fn summary(found: &ReconciledRun, note: &str) -> serde_json::Value {
    serde_json::json!({
        "reconciled": true,
        "note": note,
        "applied": found.applied,
        "skipped": found.skipped,
        "conflicts": found.conflict,
    })
}
