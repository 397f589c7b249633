//! A skill group's conditions as we read them, and their evaluation against one agent's
//! proficiencies (the rules are in the parent module's documentation).

use crate::config::ProficiencyMatch;
use crate::genesys::models::{SkillGroup as ApiGroup, SkillGroupCondition, SkillGroupEntry};
use crate::org::{Skill, SkillIx};
use serde::Serialize;

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
    pub(super) skills: Vec<SkillIx>,
    /// Language conditions in it (unknown when evaluated).
    pub(super) languages: usize,
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
    pub(super) fn crossing(
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
