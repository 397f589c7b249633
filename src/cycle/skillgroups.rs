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

use super::plan::Plan;
use super::rows::PlannedChange;
use crate::config::{CrossingGuard, ProficiencyMatch};
use crate::genesys::models::{SkillGroup as ApiGroup, SkillGroupCondition, SkillGroupEntry};
use crate::genesys::{ApiError, GenesysClient};
use crate::history::ChangeStatus;
use crate::org::{AgentIx, Skill, SkillIx, Snapshot};
use crate::text::Printable;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// `comparator` of a routing or language condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    EqualTo,
    NotEqualTo,
    LessThan,
    GreaterThan,
    GreaterThanOrEqualTo,
    LessThanOrEqualTo,
}

impl Comparator {
    /// The API's spelling; `None` for a value the contract does not list.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "EqualTo" => Self::EqualTo,
            "NotEqualTo" => Self::NotEqualTo,
            "LessThan" => Self::LessThan,
            "GreaterThan" => Self::GreaterThan,
            "GreaterThanOrEqualTo" => Self::GreaterThanOrEqualTo,
            "LessThanOrEqualTo" => Self::LessThanOrEqualTo,
            _ => return None,
        })
    }

    /// `value` (already matched to whole numbers or not) against the whole number `level`.
    pub fn holds(self, value: f64, level: i64) -> bool {
        const EPS: f64 = 1e-9;
        let level = level as f64;
        match self {
            Self::EqualTo => (value - level).abs() < EPS,
            Self::NotEqualTo => (value - level).abs() >= EPS,
            Self::LessThan => value < level - EPS,
            Self::GreaterThan => value > level + EPS,
            Self::GreaterThanOrEqualTo => value >= level - EPS,
            Self::LessThanOrEqualTo => value <= level + EPS,
        }
    }
}

/// `operation` of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    And,
    Or,
    Not,
}

/// What an entry compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A skill of the catalogue (conditions name skills by name).
    Skill(SkillIx),
    /// A skill the catalogue lacks: nobody holds it.
    Unknown,
    /// A language: not read, so unknown.
    Language,
}

/// A routing or language condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub subject: Subject,
    pub comparator: Comparator,
    pub level: i64,
    pub children: Vec<Condition>,
}

/// A `SkillGroupCondition`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub operation: Operation,
    pub entries: Vec<Entry>,
}

/// Why a group's conditions cannot be evaluated (the group is then left out, and said so).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConditionError {
    #[error("operation {0:?} is not And, Or or Not")]
    Operation(Option<String>),
    #[error("comparator {0:?} is not one the API lists")]
    Comparator(Option<String>),
    #[error("a condition names no skill or language")]
    NoSubject,
    #[error("proficiency {0:?} is not a whole number from 0 to 5")]
    Level(Option<i64>),
    #[error("no conditions (the listing gave none and the group was not read)")]
    Missing,
}

/// A skill group ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub conditions: Vec<Condition>,
    /// Names of the queues whose `memberGroups` list it.
    pub queues: Vec<String>,
    /// Skills its conditions name (a change to another skill cannot move anyone).
    skills: Vec<SkillIx>,
    /// Language conditions in it (unknown when evaluated).
    languages: usize,
}

/// Language conditions of one group beyond which their combinations are not enumerated
/// (the rest count as not met; the answer is "possible" either way).
const LANGUAGE_COMBINATIONS_UP_TO: usize = 10;

impl Group {
    /// From the API's `SkillGroup` (with its conditions), skills resolved by name
    /// (case-insensitively when no name matches exactly).
    pub fn from_api(
        api: &ApiGroup,
        catalogue: &[Skill],
        queues: Vec<String>,
    ) -> Result<Group, ConditionError> {
        let conditions = api
            .skill_conditions
            .as_deref()
            .ok_or(ConditionError::Missing)?
            .iter()
            .map(|c| condition(c, catalogue))
            .collect::<Result<Vec<_>, _>>()?;
        let mut group = Group {
            id: api.id.clone(),
            name: api.name.clone().unwrap_or_else(|| api.id.clone()),
            conditions,
            queues,
            skills: Vec::new(),
            languages: 0,
        };
        let mut skills = Vec::new();
        let mut languages = 0;
        visit(&group.conditions, &mut |e| match e.subject {
            Subject::Skill(s) => skills.push(s),
            Subject::Language => languages += 1,
            Subject::Unknown => {}
        });
        skills.sort_unstable();
        skills.dedup();
        group.skills = skills;
        group.languages = languages;
        Ok(group)
    }

    /// Whether an agent holding `held` is in the group, given the truth values of its
    /// language conditions (bit i: the i-th in document order).
    fn admits(&self, held: &[(SkillIx, f64)], m: ProficiencyMatch, languages: u32) -> bool {
        let mut eval = Eval {
            held,
            m,
            languages,
            next_language: 0,
        };
        eval.all(&self.conditions)
    }

    /// Whether moving from `before` to `after` takes the agent into or out of the group,
    /// and whether that is certain (it is not when the answer depends on a language).
    fn crossing(
        &self,
        before: &[(SkillIx, f64)],
        after: &[(SkillIx, f64)],
        m: ProficiencyMatch,
    ) -> Option<(Direction, bool)> {
        let bits = self.languages.min(LANGUAGE_COMBINATIONS_UP_TO);
        let mut found: Option<Direction> = None;
        let mut all_cross_alike = true;
        for languages in 0..(1u32 << bits) {
            let (was, is) = (
                self.admits(before, m, languages),
                self.admits(after, m, languages),
            );
            let here = match (was, is) {
                (false, true) => Some(Direction::Joins),
                (true, false) => Some(Direction::Leaves),
                _ => None,
            };
            match (here, found) {
                (Some(d), None) => found = Some(d),
                (Some(d), Some(f)) if d == f => {}
                _ => all_cross_alike = false,
            }
        }
        found.map(|d| (d, self.languages == 0 || all_cross_alike))
    }
}

fn visit(conditions: &[Condition], f: &mut impl FnMut(&Entry)) {
    for c in conditions {
        for e in &c.entries {
            f(e);
            visit(&e.children, f);
        }
    }
}

fn condition(c: &SkillGroupCondition, catalogue: &[Skill]) -> Result<Condition, ConditionError> {
    let operation = match c.operation.as_deref() {
        Some("And") => Operation::And,
        Some("Or") => Operation::Or,
        Some("Not") => Operation::Not,
        other => return Err(ConditionError::Operation(other.map(str::to_string))),
    };
    let entries = c
        .routing_skill_conditions
        .iter()
        .map(|e| entry(e, false, catalogue))
        .chain(
            c.language_skill_conditions
                .iter()
                .map(|e| entry(e, true, catalogue)),
        )
        .collect::<Result<_, _>>()?;
    Ok(Condition { operation, entries })
}

fn entry(
    e: &SkillGroupEntry,
    language: bool,
    catalogue: &[Skill],
) -> Result<Entry, ConditionError> {
    let comparator = e
        .comparator
        .as_deref()
        .and_then(Comparator::parse)
        .ok_or_else(|| ConditionError::Comparator(e.comparator.clone()))?;
    let level = e
        .proficiency
        .filter(|p| (0..=5).contains(p))
        .ok_or(ConditionError::Level(e.proficiency))?;
    let subject = if language {
        e.language_skill.as_ref().ok_or(ConditionError::NoSubject)?;
        Subject::Language
    } else {
        let name = e
            .routing_skill
            .as_deref()
            .ok_or(ConditionError::NoSubject)?;
        catalogue
            .iter()
            .position(|s| s.name == name)
            .or_else(|| {
                catalogue
                    .iter()
                    .position(|s| s.name.eq_ignore_ascii_case(name))
            })
            .and_then(|i| SkillIx::try_from(i).ok())
            .map_or(Subject::Unknown, Subject::Skill)
    };
    let children = e
        .child_conditions
        .iter()
        .map(|c| condition(c, catalogue))
        .collect::<Result<_, _>>()?;
    Ok(Entry {
        subject,
        comparator,
        level,
        children,
    })
}

/// One evaluation: every entry is evaluated (no short cut), so the language conditions are
/// met in the same order every time.
struct Eval<'a> {
    held: &'a [(SkillIx, f64)],
    m: ProficiencyMatch,
    languages: u32,
    next_language: usize,
}

impl Eval<'_> {
    fn all(&mut self, conditions: &[Condition]) -> bool {
        let each: Vec<bool> = conditions.iter().map(|c| self.condition(c)).collect();
        each.into_iter().all(|b| b)
    }

    fn condition(&mut self, c: &Condition) -> bool {
        let each: Vec<bool> = c.entries.iter().map(|e| self.entry(e)).collect();
        if each.is_empty() {
            return true;
        }
        match c.operation {
            Operation::And => each.into_iter().all(|b| b),
            Operation::Or => each.into_iter().any(|b| b),
            Operation::Not => !each.into_iter().any(|b| b),
        }
    }

    fn entry(&mut self, e: &Entry) -> bool {
        let own = match e.subject {
            Subject::Skill(skill) => self
                .held
                .iter()
                .find(|(s, _)| *s == skill)
                .is_some_and(|(_, p)| e.comparator.holds(self.m.apply(*p), e.level)),
            Subject::Unknown => false,
            Subject::Language => {
                let i = self.next_language;
                self.next_language += 1;
                i < 32 && (self.languages >> i) & 1 == 1
            }
        };
        let children = self.all(&e.children);
        own && children
    }
}

/// Into the group, or out of it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Joins,
    Leaves,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Joins => "joins",
            Direction::Leaves => "leaves",
        }
    }
}

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
struct Found {
    agent: AgentIx,
    group: usize,
    skills: Vec<SkillIx>,
    crossing: Crossing,
}

/// Every crossing that `changes` (agent, skill, new value) would cause, agent by agent (all
/// of one agent's changes together), group by group.
fn find(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cycle::plan::{Decision, PlannedItem};
    use crate::genesys::models::SkillGroup as ApiGroup;
    use crate::org::Agent;
    use serde_json::json;

    fn catalogue() -> Vec<Skill> {
        ["Spanish", "Billing", "Claims", "Sales"]
            .iter()
            .enumerate()
            .map(|(i, n)| Skill {
                id: format!("s{i}"),
                name: n.to_string(),
            })
            .collect()
    }

    fn group(name: &str, conditions: serde_json::Value) -> Group {
        let api: ApiGroup = serde_json::from_value(json!({
            "id": format!("g-{name}"), "name": name, "skillConditions": conditions
        }))
        .unwrap();
        Group::from_api(&api, &catalogue(), vec![format!("Q {name}")]).unwrap()
    }

    fn leaf(skill: &str, comparator: &str, level: i64) -> serde_json::Value {
        json!({"routingSkill": skill, "comparator": comparator, "proficiency": level})
    }

    fn cond(op: &str, entries: Vec<serde_json::Value>) -> serde_json::Value {
        json!({"operation": op, "routingSkillConditions": entries, "languageSkillConditions": []})
    }

    fn agent(i: usize, skills: &[(SkillIx, f64)]) -> Agent {
        Agent {
            id: format!("a{i}"),
            name: format!("Agent {i}"),
            manager_id: None,
            skills: skills.to_vec(),
            metrics: Vec::new(),
            cells: Vec::new(),
            quality: None,
            csat: None,
        }
    }

    fn change(agent: AgentIx, skill: SkillIx, current: f64, to: f64) -> PlannedItem {
        PlannedItem {
            agent,
            skill,
            current,
            adds_skill: false,
            score: None,
            decision: Decision::Change { to },
        }
    }

    /// Groups covering every comparator, And/Or/Not and nesting, and agents whose planned
    /// changes do or do not move them: the finder must list exactly the expected crossings.
    #[test]
    fn the_finder_finds_exactly_the_crossings_of_a_known_fixture() {
        let groups = vec![
            // 0: Spanish ≥ 3.
            group(
                "spanish",
                json!([cond(
                    "And",
                    vec![leaf("Spanish", "GreaterThanOrEqualTo", 3)]
                )]),
            ),
            // 1: Billing ≥ 3 And Claims > 1.
            group(
                "billing-claims",
                json!([cond(
                    "And",
                    vec![
                        leaf("Billing", "GreaterThanOrEqualTo", 3),
                        leaf("Claims", "GreaterThan", 1)
                    ]
                )]),
            ),
            // 2: Billing ≤ 2, and Not Sales = 4.
            group(
                "junior-not-sales4",
                json!([
                    cond("And", vec![leaf("Billing", "LessThanOrEqualTo", 2)]),
                    cond("Not", vec![leaf("Sales", "EqualTo", 4)])
                ]),
            ),
            // 3: Or(Claims < 2 with child [Sales ≠ 3], Spanish = 5).
            group(
                "or-nested",
                json!([cond(
                    "Or",
                    vec![
                        json!({"routingSkill": "Claims", "comparator": "LessThan", "proficiency": 2,
                           "childConditions": [cond("And", vec![leaf("Sales", "NotEqualTo", 3)])]}),
                        leaf("Spanish", "EqualTo", 5),
                    ]
                )]),
            ),
        ];
        let snapshot = Snapshot {
            skills: catalogue(),
            agents: vec![
                // 0: Spanish 3.0 → 2.5 leaves "spanish" (fractional below the whole number).
                agent(0, &[(0, 3.0)]),
                // 1: Spanish 3.5 → 3.0 stays in "spanish": no crossing.
                agent(1, &[(0, 3.5)]),
                // 2: Claims 1.0 → 1.5 joins billing-claims (> 1); "or-nested": Claims < 2
                //    still holds (1.5), so no crossing there.
                agent(2, &[(1, 3.0), (2, 1.0), (3, 1.0)]),
                // 3: Sales 4 → 3.5 joins junior-not-sales4 (Not EqualTo 4 now holds), and
                //    "or-nested": Claims 1 < 2 with child Sales ≠ 3: 3.5 ≠ 3 held before (4)
                //    and after → no crossing.
                agent(3, &[(1, 2.0), (2, 1.0), (3, 4.0)]),
                // 4: Sales 3.5 → 3.0 leaves "or-nested" (child Sales ≠ 3 fails).
                agent(4, &[(2, 1.0), (3, 3.5)]),
                // 5: Spanish 4.5 → 5.0 joins "or-nested" (Spanish = 5) and stays in "spanish".
                agent(5, &[(0, 4.5), (2, 3.0)]),
                // 6: Billing 2.0 → 2.5 leaves junior-not-sales4 (LessThanOrEqualTo 2).
                agent(6, &[(1, 2.0)]),
                // 7: Spanish 1.0 → 1.5 moves it nowhere.
                agent(7, &[(0, 1.0), (3, 2.0)]),
            ],
            ..Snapshot::default()
        };
        let plan = Plan {
            items: vec![
                change(0, 0, 3.0, 2.5),
                change(1, 0, 3.5, 3.0),
                change(2, 2, 1.0, 1.5),
                change(3, 3, 4.0, 3.5),
                change(4, 3, 3.5, 3.0),
                change(5, 0, 4.5, 5.0),
                change(6, 1, 2.0, 2.5),
                change(7, 0, 1.0, 1.5),
            ],
            ..Plan::default()
        };
        let found: Vec<(String, String, Direction)> =
            find_crossings(&groups, &snapshot, &plan, ProficiencyMatch::Exact)
                .into_iter()
                .map(|c| {
                    assert!(c.certain);
                    (c.agent_id, c.group, c.direction)
                })
                .collect();
        let expected = vec![
            ("a0".into(), "spanish".into(), Direction::Leaves),
            ("a2".into(), "billing-claims".into(), Direction::Joins),
            ("a3".into(), "junior-not-sales4".into(), Direction::Joins),
            ("a4".into(), "or-nested".into(), Direction::Leaves),
            ("a5".into(), "or-nested".into(), Direction::Joins),
            ("a6".into(), "junior-not-sales4".into(), Direction::Leaves),
        ];
        assert_eq!(found, expected);
    }

    #[test]
    fn the_fractional_boundary_follows_the_configured_match() {
        let g = vec![group(
            "spanish",
            json!([cond(
                "And",
                vec![leaf("Spanish", "GreaterThanOrEqualTo", 3)]
            )]),
        )];
        let snapshot = Snapshot {
            skills: catalogue(),
            agents: vec![agent(0, &[(0, 3.0)]), agent(1, &[(0, 3.75)])],
            ..Snapshot::default()
        };
        let plan = Plan {
            items: vec![change(0, 0, 3.0, 2.5), change(1, 0, 3.75, 2.75)],
            ..Plan::default()
        };
        let who = |m| -> Vec<String> {
            find_crossings(&g, &snapshot, &plan, m)
                .into_iter()
                .map(|c| c.agent_id)
                .collect()
        };
        // 2.5 and 2.75 are below 3 as they are, and 2 as whole stars.
        assert_eq!(who(ProficiencyMatch::Exact), ["a0", "a1"]);
        assert_eq!(who(ProficiencyMatch::Floor), ["a0", "a1"]);
        // Rounded, 2.5 counts as 3 (stays), 2.75 as 3 (stays): no crossing.
        assert!(who(ProficiencyMatch::Round).is_empty());
        // Every comparator at the boundary, values as they are.
        use Comparator::*;
        assert!(EqualTo.holds(3.0, 3) && !EqualTo.holds(2.5, 3));
        assert!(NotEqualTo.holds(2.5, 3) && !NotEqualTo.holds(3.0, 3));
        assert!(LessThan.holds(2.5, 3) && !LessThan.holds(3.0, 3));
        assert!(GreaterThan.holds(3.5, 3) && !GreaterThan.holds(3.0, 3));
        assert!(GreaterThanOrEqualTo.holds(3.0, 3) && !GreaterThanOrEqualTo.holds(2.99, 3));
        assert!(LessThanOrEqualTo.holds(3.0, 3) && !LessThanOrEqualTo.holds(3.01, 3));
    }

    #[test]
    fn a_language_condition_makes_a_crossing_possible_not_certain() {
        let g = vec![group(
            "spanish-or-lang",
            json!([{"operation": "And",
                    "routingSkillConditions": [leaf("Billing", "GreaterThanOrEqualTo", 3)],
                    "languageSkillConditions": [{"languageSkill": "French", "comparator": "GreaterThan", "proficiency": 2}]}]),
        )];
        let snapshot = Snapshot {
            skills: catalogue(),
            agents: vec![agent(0, &[(1, 3.0)])],
            ..Snapshot::default()
        };
        let plan = Plan {
            items: vec![change(0, 1, 3.0, 2.0)],
            ..Plan::default()
        };
        let found = find_crossings(&g, &snapshot, &plan, ProficiencyMatch::Exact);
        assert_eq!(found.len(), 1);
        assert!(!found[0].certain, "in the group only if French > 2");
        assert!(found[0].describe().starts_with("possibly leaves"));
    }

    #[test]
    fn unknown_comparators_are_refused_by_name_and_terraform_child_objects_read() {
        let bad: ApiGroup =
            serde_json::from_value(json!({"id": "g", "name": "g", "skillConditions": [
            cond("And", vec![leaf("Billing", "Roughly", 3)])]}))
            .unwrap();
        assert_eq!(
            Group::from_api(&bad, &catalogue(), Vec::new()),
            Err(ConditionError::Comparator(Some("Roughly".into())))
        );
        let listing_only: ApiGroup =
            serde_json::from_value(json!({"id": "g", "name": "g"})).unwrap();
        assert_eq!(
            Group::from_api(&listing_only, &catalogue(), Vec::new()),
            Err(ConditionError::Missing)
        );
        // `childConditions` as one object, as Genesys' Terraform examples write it.
        let g = group(
            "object-child",
            json!([cond(
                "And",
                vec![
                    json!({"routingSkill": "Billing", "comparator": "GreaterThan", "proficiency": 2,
                "childConditions": cond("And", vec![leaf("Claims", "GreaterThan", 1)])})
                ]
            )]),
        );
        assert_eq!(g.conditions[0].entries[0].children.len(), 1);
    }
}
