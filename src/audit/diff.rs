//! `diff`: a past run's changes against what the org holds now.

use super::{now_of, org_now, AuditError};
use crate::genesys::GenesysClient;
use crate::history::{ChangeRecord, ChangeStatus, Ledger, RunRecord};
use crate::org::same;
use serde::Serialize;

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
) -> Result<RunDiff, AuditError> {
    let run = ledger.run(run_id)?;
    let changes = ledger.changes(run_id)?;
    let org = org_now(client, &changes).await?;
    let lines = changes
        .into_iter()
        .map(|c| {
            let now = now_of(&org, &c);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
