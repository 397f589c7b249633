//! Step 4, apply: earlier proposals approved in review since, then this cycle's plan, both
//! through the one [`write`](super::write) path; and the warning when the conflicts found
//! look like another tuner's writes.

use super::report::CycleReport;
use super::rows::PlannedChange;
use super::write::{Outcome, Purpose, Replan, WriteItem, WritePath};
use super::{CycleError, StopSignal};
use crate::config::{GuardSettings, OnConflict, PolicySettings, WorkitemSettings};
use crate::history::{ChangeRecord, ChangeStatus};
use crate::org::same;
use std::collections::{HashMap, HashSet};

/// Writes the rows that are `planned` (not those held for review or blocked) and settles each row's
/// status and detail as the ledger now has them. Returns how many conflicts found exactly
/// the value this policy would have written.
pub(super) async fn apply_rows(
    write: &WritePath<'_>,
    policies: &PolicySettings,
    rows: &mut [PlannedChange],
    stop: &StopSignal,
) -> Result<usize, CycleError> {
    let items: Vec<WriteItem> = rows
        .iter()
        .filter(|r| r.record.status == ChangeStatus::Planned)
        .map(|r| {
            let c = &r.record;
            WriteItem {
                run_id: c.run_id,
                change_id: &c.change_id,
                agent_id: &c.agent_id,
                skill_id: &c.skill_id,
                before: c.before,
                after: c.after,
                adds_skill: r.adds_skill,
                replan: c.target.map(|target| Replan {
                    target,
                    policy: policies.for_skill(&c.skill_name),
                }),
            }
        })
        .collect();
    let mut matching_policy = 0;
    let mut settled: HashMap<String, (ChangeStatus, String)> = HashMap::new();
    for w in write.write_batch(Purpose::Plan, &items, stop).await? {
        if let Outcome::Conflict { found: Some(found) } = w.outcome {
            if would_have_written(w.item, found, write.apply.on_conflict) {
                matching_policy += 1;
            }
        }
        if let Some(recorded) = w.recorded {
            settled.insert(w.item.change_id.to_string(), recorded);
        }
    }
    drop(items);
    for row in rows.iter_mut() {
        if let Some((status, detail)) = settled.remove(&row.record.change_id) {
            row.record.status = status;
            row.record.detail = Some(detail);
        }
    }
    Ok(matching_policy)
}

/// Whether a value found in place of a planned change is exactly what this policy would
/// itself have written: the planned value, or with re-plan on conflict the target. Another
/// tuner with the same policy writes just that; a person rarely does.
fn would_have_written(item: &WriteItem, found: f64, on_conflict: OnConflict) -> bool {
    same(found, item.after)
        || (on_conflict == OnConflict::Replan && item.replan.is_some_and(|r| same(found, r.target)))
}

/// Applies earlier held proposals whose workitem was closed as approved (if the skill still
/// holds the value they were planned from); marks rejected ones. Returns how many applied.
pub(super) async fn resolve_reviews(
    write: &WritePath<'_>,
    w: &WorkitemSettings,
    held: &[ChangeRecord],
    stop: &StopSignal,
) -> Result<usize, CycleError> {
    if held.is_empty() || !w.enabled {
        return Ok(0);
    }
    let client = write.client;
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
    let mut approved = Vec::new();
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
        if item
            .status
            .as_ref()
            .is_some_and(|s| approved_ids.contains(&s.id))
        {
            approved.push(WriteItem {
                run_id: change.run_id,
                change_id: &change.change_id,
                agent_id: &change.agent_id,
                skill_id: &change.skill_id,
                before: change.before,
                after: change.after,
                // The ledger does not record whether a change adds the skill: an approved
                // addition finds no skill where one was planned, and is left alone.
                adds_skill: false,
                replan: None,
            });
        } else {
            write.ledger.mark(
                change.run_id,
                &[change.change_id.as_str()],
                ChangeStatus::Rejected,
                None,
                Some("review workitem closed without approval"),
            )?;
        }
    }
    // Approval is for exactly this change: a person's edit since is never overwritten.
    let written = write.write_batch(Purpose::Review, &approved, stop).await?;
    Ok(written
        .iter()
        .filter(|w| matches!(w.outcome, Outcome::Applied { .. }))
        .count())
}

/// A second writer is suspected only from this many conflicts at the policy's own value
/// up: a few can be people who happened to agree with the policy.
const SECOND_WRITER_MIN_CONFLICTS: usize = 5;

/// Whether `matching` of a cycle's `conflicts` finding exactly what this policy would have
/// written point to another tuner writing to the org (see `guard.second_writer_warn_share`).
fn second_writer_suspected(matching: usize, conflicts: usize, share: f64) -> bool {
    matching >= SECOND_WRITER_MIN_CONFLICTS && matching as f64 >= share * conflicts as f64
}

/// Warns (once per cycle) when the conflicts look like another tuner's writes rather than
/// people's: with its own ledger it cannot be locked out, so saying so is all we can do.
pub(super) fn warn_of_second_writer(report: &CycleReport, guard: &GuardSettings) {
    let share = guard.second_writer_warn_share;
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
