//! Crossings: the agents a plan moves into or out of a group, found by evaluating each
//! group before and after all of one agent's planned changes.

use super::conditions::{Direction, Group};
use crate::config::{CrossingGuard, ProficiencyMatch};
use crate::cycle::plan::Plan;
use crate::org::{AgentIx, SkillIx, Snapshot};
use serde::Serialize;
use std::collections::BTreeMap;

/// One planned skill change behind a crossing.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CrossingChange {
    pub skill: String,
    /// `None`: the change adds the skill.
    pub from: Option<f64>,
    pub to: f64,
}

/// An agent the plan moves into or out of a skill group (and the queues it feeds).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Crossing {
    pub agent_id: String,
    pub agent: String,
    pub group_id: String,
    pub group: String,
    pub direction: Direction,
    /// `false`: it depends on a language condition, which is not known here.
    pub certain: bool,
    /// The queues whose `memberGroups` list the group.
    pub queues: Vec<String>,
    /// The agent's planned changes to skills the group's conditions name.
    pub changes: Vec<CrossingChange>,
    /// What the guard made of these changes.
    pub action: CrossingGuard,
}

impl Crossing {
    /// For people: "leaves skill group Spanish 3+ (queues: Sales)". Names are not escaped
    /// here (the ledger and JSON keep them exact); callers that print escape.
    pub fn describe(&self) -> String {
        let queues = if self.queues.is_empty() {
            "no queue".to_string()
        } else {
            format!("queues: {}", self.queues.join(", "))
        };
        format!(
            "{}{} skill group {} ({queues})",
            if self.certain { "" } else { "possibly " },
            self.direction.as_str(),
            self.group
        )
    }
}

/// A crossing with the indices the guard works with.
pub(super) struct Found {
    pub(super) agent: AgentIx,
    pub(super) group: usize,
    pub(super) skills: Vec<SkillIx>,
    pub(super) crossing: Crossing,
}

/// Every crossing that `changes` (agent, skill, new value) would cause, agent by agent (all
/// of one agent's changes together), group by group.
pub(super) fn find(
    groups: &[Group],
    snapshot: &Snapshot,
    changes: &[(AgentIx, SkillIx, f64)],
    m: ProficiencyMatch,
    action: CrossingGuard,
) -> Vec<Found> {
    let mut by_agent: BTreeMap<AgentIx, Vec<(SkillIx, f64)>> = BTreeMap::new();
    for &(agent, skill, to) in changes {
        by_agent.entry(agent).or_default().push((skill, to));
    }
    let mut found = Vec::new();
    for (ai, moves) in by_agent {
        let Some(agent) = snapshot.agents.get(ai as usize) else {
            continue;
        };
        let before = &agent.skills;
        let mut after = before.clone();
        for &(skill, to) in &moves {
            match after.iter_mut().find(|(s, _)| *s == skill) {
                Some(held) => held.1 = to,
                None => after.push((skill, to)),
            }
        }
        for (gi, group) in groups.iter().enumerate() {
            let skills: Vec<SkillIx> = moves
                .iter()
                .map(|(s, _)| *s)
                .filter(|s| group.skills.binary_search(s).is_ok())
                .collect();
            if skills.is_empty() {
                continue;
            }
            let Some((direction, certain)) = group.crossing(before, &after, m) else {
                continue;
            };
            let changes = moves
                .iter()
                .filter(|(s, _)| skills.contains(s))
                .map(|&(s, to)| CrossingChange {
                    skill: snapshot
                        .skills
                        .get(usize::from(s))
                        .map_or_else(String::new, |k| k.name.clone()),
                    from: agent.proficiency(s),
                    to,
                })
                .collect();
            found.push(Found {
                agent: ai,
                group: gi,
                skills,
                crossing: Crossing {
                    agent_id: agent.id.clone(),
                    agent: agent.name.clone(),
                    group_id: group.id.clone(),
                    group: group.name.clone(),
                    direction,
                    certain,
                    queues: group.queues.clone(),
                    changes,
                    action,
                },
            });
        }
    }
    found
}

/// Every crossing the plan's changes cause, agent by agent.
pub fn find_crossings(
    groups: &[Group],
    snapshot: &Snapshot,
    plan: &Plan,
    m: ProficiencyMatch,
) -> Vec<Crossing> {
    let changes: Vec<(AgentIx, SkillIx, f64)> = plan
        .changes()
        .filter_map(|i| Some((i.agent, i.skill, i.proposed()?)))
        .collect();
    find(groups, snapshot, &changes, m, CrossingGuard::Warn)
        .into_iter()
        .map(|f| f.crossing)
        .collect()
}
