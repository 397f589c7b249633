//! Skill-group crossings, found before they happen.
//!
//! A skill (expression) group admits the agents whose skills meet its conditions, and the
//! queues listing it in `memberGroups` take those agents in. So moving a proficiency from
//! 3.0 to 2.5 can take an agent out of a "Spanish ≥ 3" group and its queues without anyone
//! touching a queue. This step reads the groups and their conditions, evaluates each one
//! against every planned agent's proficiencies before and after the plan, and lists the
//! agents the plan moves into or out of a group; `guard.skill_group_crossings` then says
//! whether such a change is applied with a warning, held for review, or blocked.
//!
//! Genesys documents the condition model but not how it is evaluated. Our reading (the
//! simulator's too; `docs/genesys-api.md` §9):
//! - a group's `skillConditions` all hold (the list is an And);
//! - a condition's `operation` combines its entries (routing, then language conditions):
//!   `And` all, `Or` at least one, `Not` none; a condition without entries holds;
//! - an entry holds when the agent holds the skill, the proficiency compares true against
//!   the whole number by `comparator`, and all its `childConditions` hold; an agent without
//!   the skill fails every comparison, `NotEqualTo` included;
//! - fractional proficiencies meet whole numbers as `guard.skill_group_match` says.
//!
//! Languages are never changed and not read (the roster is read with skills only): a
//! language condition is unknown, and a crossing whose answer depends on one is reported as
//! possible (`certain: false`), never left out.
//!
//! Here: reading the groups, checking a plan and guarding its rows; [`conditions`] reads
//! and evaluates conditions, [`crossings`] finds who joins or leaves.

mod conditions;
mod crossings;
#[cfg(test)]
mod tests;

pub use conditions::{
    Comparator, Condition, ConditionError, Direction, Entry, Group, Operation, Subject,
};
use crossings::find;
pub use crossings::{find_crossings, Crossing, CrossingChange};

use super::plan::Plan;
use super::rows::PlannedChange;
use crate::config::{CrossingGuard, ProficiencyMatch};
use crate::genesys::{ApiError, GenesysClient};
use crate::history::ChangeStatus;
use crate::org::{AgentIx, SkillIx, Snapshot};
use crate::text::Printable;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The groups as read for one cycle.
#[derive(Debug, Clone, Default)]
pub struct GroupsRead {
    pub groups: Vec<Group>,
    /// `false`: the listing was refused; no crossing check.
    pub checked: bool,
    /// What people should know: a refused listing, a group left out and why.
    pub notes: Vec<String>,
}

/// Reads the skill groups: one listing (cursor-paged), then each group's conditions — only
/// for groups the listing gave without them (the contract's listing never has them). A
/// refused listing (403, or 404 where the feature is missing) is a warning and no check.
pub async fn read(client: &GenesysClient, snapshot: &Snapshot) -> Result<GroupsRead, ApiError> {
    let listed = match client.list_skill_groups().await {
        Ok(listed) => listed,
        Err(e) if matches!(e.status(), Some(403 | 404)) => {
            tracing::warn!(error = %e, "cannot list skill groups (grant routing:skillGroup:view): planned changes are not checked for skill-group crossings");
            return Ok(GroupsRead {
                notes: vec![format!(
                    "skill groups not read (grant routing:skillGroup:view): no crossing check: {e}"
                )],
                ..GroupsRead::default()
            });
        }
        Err(e) => return Err(e),
    };
    let mut read = GroupsRead {
        checked: true,
        ..GroupsRead::default()
    };
    for listed in listed {
        let api = if listed.skill_conditions.is_some() {
            listed
        } else {
            client.skill_group(&listed.id).await?
        };
        let queues = snapshot
            .queue_skill_groups
            .iter()
            .filter(|(_, g)| *g == api.id)
            .filter_map(|(q, _)| snapshot.queues.get(usize::from(*q)))
            .map(|q| q.name.clone().unwrap_or_else(|| q.id.clone()))
            .collect();
        match Group::from_api(&api, &snapshot.skills, queues) {
            Ok(group) => {
                if group.languages > 0 {
                    read.notes.push(format!(
                        "skill group {} has language conditions: languages are not read, so its crossings are only possible ones",
                        group.name
                    ));
                }
                read.groups.push(group);
            }
            Err(e) => {
                let name = api.name.as_deref().unwrap_or(&api.id);
                tracing::warn!(group = %Printable(name), error = %e, "skill group left out of the crossing check");
                read.notes
                    .push(format!("skill group {name} left out of the check: {e}"));
            }
        }
    }
    Ok(read)
}

/// What the crossing check found and decided, for the report (text and JSON).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct SkillGroupReport {
    /// Whether the groups were read (`false`: the listing was refused or not asked for).
    pub checked: bool,
    /// Groups whose conditions were evaluated.
    pub groups: usize,
    /// `guard.skill_group_crossings`.
    pub guard: CrossingGuard,
    /// `guard.skill_group_match`.
    pub proficiency_match: ProficiencyMatch,
    pub notes: Vec<String>,
    /// Every agent the plan moves into or out of a group.
    pub crossings: Vec<Crossing>,
}

/// The crossings of a plan and, per agent and skill, why the guard stops or marks it.
#[derive(Debug, Default)]
pub(super) struct Checked {
    pub report: SkillGroupReport,
    /// (agent id, skill id) → the crossings its change is part of, for people.
    marked: HashMap<(String, String), String>,
}

/// Checks the plan against the groups. With `hold` or `block`, a change that is part of a
/// crossing is stopped, and the agent's other changes are checked again without it: what is
/// left could cross another group (an Or that one change kept true, say).
pub(super) fn check(
    read: &GroupsRead,
    snapshot: &Snapshot,
    plan: &Plan,
    guard: CrossingGuard,
    m: ProficiencyMatch,
) -> Checked {
    let mut checked = Checked {
        report: SkillGroupReport {
            checked: read.checked,
            groups: read.groups.len(),
            guard,
            proficiency_match: m,
            notes: read.notes.clone(),
            crossings: Vec::new(),
        },
        marked: HashMap::new(),
    };
    let mut stopped: HashSet<(AgentIx, SkillIx)> = HashSet::new();
    let mut seen: HashSet<(AgentIx, usize)> = HashSet::new();
    let mut marks: BTreeMap<(AgentIx, SkillIx), Vec<String>> = BTreeMap::new();
    loop {
        let live: Vec<(AgentIx, SkillIx, f64)> = plan
            .changes()
            .filter(|i| !stopped.contains(&(i.agent, i.skill)))
            .filter_map(|i| Some((i.agent, i.skill, i.proposed()?)))
            .collect();
        let mut more = false;
        for found in find(&read.groups, snapshot, &live, m, guard) {
            if !seen.insert((found.agent, found.group)) {
                continue;
            }
            for &skill in &found.skills {
                marks
                    .entry((found.agent, skill))
                    .or_default()
                    .push(found.crossing.describe());
                if guard != CrossingGuard::Warn {
                    more |= stopped.insert((found.agent, skill));
                }
            }
            checked.report.crossings.push(found.crossing);
        }
        if !more {
            break;
        }
    }
    for ((agent, skill), why) in marks {
        let (Some(a), Some(s)) = (
            snapshot.agents.get(agent as usize),
            snapshot.skills.get(usize::from(skill)),
        ) else {
            continue;
        };
        checked
            .marked
            .insert((a.id.clone(), s.id.clone()), why.join("; "));
    }
    checked
}

/// Applies the guard to the rows: each change that is part of a crossing carries it (for
/// the supervisor's workitem), and is held for review (`hold`) or skipped with the reason
/// recorded (`block`).
pub(super) fn guard_rows(rows: &mut [PlannedChange], checked: &Checked) {
    if checked.marked.is_empty() {
        return;
    }
    let guard = checked.report.guard;
    for row in rows.iter_mut() {
        let key = (row.record.agent_id.clone(), row.record.skill_id.clone());
        let Some(why) = checked.marked.get(&key) else {
            continue;
        };
        row.crossing = Some(why.clone());
        match guard {
            CrossingGuard::Warn => {}
            CrossingGuard::Hold => row.record.status = ChangeStatus::Held,
            CrossingGuard::Block => {
                row.record.status = ChangeStatus::Skipped;
                row.record.detail = Some(format!(
                    "blocked: skill-group crossing (guard.skill_group_crossings = \"block\"): {why}"
                ));
                row.blocked = true;
            }
        }
    }
}
