//! The plan as the rest of the cycle carries it: one ledger row per change, with what its
//! write needs that the ledger does not record.

use super::plan::{Keep, Plan, PlannedItem};
use crate::config::AlertSettings;
use crate::history::{change_id, ChangeRecord, ChangeStatus, ScoreJson};
use crate::org::Snapshot;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One planned change on its way to the ledger, the org and the report.
#[derive(Debug, Clone)]
pub(crate) struct PlannedChange {
    pub record: ChangeRecord,
    /// The plan item it comes from (its score and reason are filled in from it by
    /// [`explain`]).
    pub plan_item: usize,
    /// The agent lacks the skill: the write adds it (`add_missing_skills`).
    pub adds_skill: bool,
    /// The skill-group crossings this change is part of, for people.
    pub crossing: Option<String>,
    /// Not applied: `guard.skill_group_crossings = "block"` stopped it.
    pub blocked: bool,
}

/// Whether a change is big enough to tell a supervisor about (and, with `hold_for_review`,
/// to wait for one): |target − current| ≥ `alerts.threshold`.
pub(super) fn over_threshold(alerts: &AlertSettings, current: f64, target: Option<f64>) -> bool {
    target.is_some_and(|t| (t - current).abs() >= alerts.threshold)
}

/// Changes whose agent and skill have a proposal waiting for review are not re-proposed.
pub(super) fn park_pending_reviews(plan: &mut Plan, snapshot: &Snapshot, held: &[ChangeRecord]) {
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

/// The plan's changes as rows (`planned`, or `held` when waiting for review), without
/// their score and reason yet: at 100 000 agents those texts are tens of MB, and [`explain`]
/// adds them once the snapshot is gone, so the two are never in memory together.
pub(super) fn change_rows(
    snapshot: &Snapshot,
    plan: &Plan,
    alerts: &AlertSettings,
    run_id: i64,
) -> Vec<PlannedChange> {
    // Sized up front: at 100 000 agents a doubling Vec of rows wastes tens of MB.
    let mut rows = Vec::with_capacity(plan.items.len());
    rows.extend(plan.changes_indexed().filter_map(|(plan_item, item)| {
        let to = item.proposed()?;
        let agent = &snapshot.agents[item.agent as usize];
        let skill = &snapshot.skills[usize::from(item.skill)];
        let held = alerts.hold_for_review && over_threshold(alerts, item.current, item.target());
        let record = ChangeRecord {
            change_id: change_id(&agent.id, &skill.id, item.current, to, &snapshot.interval),
            run_id,
            agent_id: agent.id.clone(),
            agent_name: agent.name.clone(),
            skill_id: skill.id.clone(),
            skill_name: skill.name.clone(),
            before: item.current,
            after: to,
            target: item.target(),
            score: None,
            reason: String::new(),
            status: if held {
                ChangeStatus::Held
            } else {
                ChangeStatus::Planned
            },
            correlation_id: None,
            detail: None,
            workitem_id: None,
        };
        Some(PlannedChange {
            record,
            plan_item,
            adds_skill: item.adds_skill,
            crossing: None,
            blocked: false,
        })
    }));
    rows
}

/// Fills in each row's score and reason from its plan item.
pub(super) fn explain(rows: &mut [PlannedChange], plan: &Plan) {
    for row in rows {
        if let Some(item) = plan.items.get(row.plan_item) {
            row.record.score = item.score.as_ref().and_then(ScoreJson::of);
            row.record.reason = reason_of(item);
        }
    }
}

fn reason_of(item: &PlannedItem) -> String {
    match &item.score {
        Some(score) => score.explain(),
        None => "no score".into(),
    }
}

/// Marks every row skipped, with why (the breaker tripped).
pub(super) fn skip_all(rows: &mut [PlannedChange], why: &str) {
    for row in rows {
        row.record.status = ChangeStatus::Skipped;
        row.record.detail = Some(why.to_string());
    }
}

/// Drops the scores once they are in the ledger.
pub(super) fn forget_scores(rows: &mut [PlannedChange]) {
    for row in rows {
        row.record.score = None;
    }
}

/// The managers of the agents that have a change (for assigning review workitems).
pub(super) fn managers_of(
    snapshot: &Snapshot,
    rows: &[PlannedChange],
) -> HashMap<String, Arc<str>> {
    let changing: HashSet<&str> = rows.iter().map(|r| r.record.agent_id.as_str()).collect();
    snapshot
        .agents
        .iter()
        .filter(|a| changing.contains(a.id.as_str()))
        .filter_map(|a| a.manager_id.clone().map(|m| (a.id.clone(), m)))
        .collect()
}
