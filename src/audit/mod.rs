//! The audit commands above the ledger: `history`, `show`, `diff`, `rollback`, `export` and
//! `report --html`.
//!
//! Each returns plain data (serialisable for `--json`) and has a `render_*` function for
//! people; the CLI only prints. Only `diff` and `rollback` talk to the org, and only
//! `rollback` writes to it — through the cycle's one write path, so a value a person (or a
//! later run) set since is never overwritten.

mod diff;
mod export;
mod html;
mod render;
mod rollback;

pub use diff::{diff, DiffLine, DiffStatus, RunDiff};
pub use export::{export, ExportFormat, UnknownFormat, CSV_HEADER};
pub use html::{html_report, run_page, RunPage};
pub use render::{render_diff, render_history, render_rollback, render_show};
pub use rollback::{rollback, RollbackLine, RollbackReport};

use crate::genesys::{ApiError, GenesysClient};
use crate::history::{
    ChangeRecord, Ledger, LedgerError, RunMode, RunOutcome, RunRecord, RunTrigger,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Why an audit command could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
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
    pub mode: RunMode,
    /// What started it (`None` for daemon runs recorded before triggers were).
    pub trigger: Option<RunTrigger>,
    pub outcome: Option<RunOutcome>,
    pub rollback_of: Option<i64>,
    pub changes: usize,
    /// Count of changes per status (`applied`, `conflict`, …).
    pub statuses: BTreeMap<String, usize>,
}

/// The most recent `limit` runs, newest first, with their changes counted by status.
pub fn history(ledger: &Ledger, limit: usize) -> Result<Vec<RunLine>, AuditError> {
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

/// The held-out units each recorded experiment holds, by salt: `(salt, names)`.
pub fn held_out_units(ledger: &Ledger) -> Result<Vec<(String, Vec<String>)>, AuditError> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for u in ledger.assignments()? {
        if u.arm != "held_out" {
            continue;
        }
        match out.last_mut() {
            Some((salt, names)) if *salt == u.salt => names.push(u.unit_name),
            _ => out.push((u.salt, vec![u.unit_name])),
        }
    }
    Ok(out)
}

/// A run and its changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    pub run: RunRecord,
    pub changes: Vec<ChangeRecord>,
}

pub fn show(ledger: &Ledger, run_id: i64) -> Result<RunDetail, AuditError> {
    Ok(RunDetail {
        run: ledger.run(run_id)?,
        changes: ledger.changes(run_id)?,
    })
}

/// What the org holds now for each agent of `changes` (skill id → proficiency), one read
/// per agent.
async fn org_now(
    client: &GenesysClient,
    changes: &[ChangeRecord],
) -> Result<HashMap<String, HashMap<String, f64>>, ApiError> {
    let mut ids: Vec<&str> = changes.iter().map(|c| c.agent_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = HashMap::new();
    for id in ids {
        out.insert(id.to_string(), client.user_proficiencies(id).await?);
    }
    Ok(out)
}

/// The value the org holds now for `change`'s agent and skill (`None`: no such skill).
fn now_of(org: &HashMap<String, HashMap<String, f64>>, change: &ChangeRecord) -> Option<f64> {
    org.get(&change.agent_id)
        .and_then(|skills| skills.get(&change.skill_id))
        .copied()
}
