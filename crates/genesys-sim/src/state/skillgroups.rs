//! Skill (expression) groups: named conditions on routing skills that decide, at the moment
//! they are asked, which agents belong to a group — and through `Queue.memberGroups`, to
//! which queues. Membership is computed from the proficiencies in force at each request, so
//! a bulk write moves people in and out.
//!
//! The SDK models the conditions (`SkillGroupCondition`, `SkillGroupRoutingCondition`,
//! `SkillGroupLanguageCondition`) but Genesys documents no evaluation rule. The simulator's
//! reading (the product reads them the same way; `docs/genesys-api.md` §9):
//! - a group's `skillConditions` all hold (the list is an And);
//! - a condition's `operation` combines its entries (routing, then language conditions):
//!   `And` all hold, `Or` at least one, `Not` none; a condition with no entries holds;
//! - an entry holds when the agent holds the skill, its proficiency compares true against the
//!   whole number by `comparator`, and all its `childConditions` hold; an agent without the
//!   skill fails every comparison, `NotEqualTo` included;
//! - a fractional proficiency meets the whole number as [`ProficiencyMatch`] says (default:
//!   as it is, so 2.5 is not `GreaterThanOrEqualTo` 3).
//!
//! Simulated users hold no routing languages, so a language condition never holds here; a
//! condition naming a skill the catalogue lacks never holds either.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::data::rng::{domain, uuid_for};
use crate::state::org::{Queue, Skill};

/// How a fractional proficiency is compared with a condition's whole number. Genesys does
/// not document it; the product has the same three readings (`guard.skill_group_match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProficiencyMatch {
    /// The value as it is: 2.5 is neither 2 nor 3, and below 3.
    #[default]
    Exact,
    /// Whole stars held: 2.5 counts as 2.
    Floor,
    /// The nearest whole number, halves up: 2.5 counts as 3.
    Round,
}

impl ProficiencyMatch {
    pub(crate) fn apply(self, value: f64) -> f64 {
        match self {
            ProficiencyMatch::Exact => value,
            ProficiencyMatch::Floor => (value + 1e-9).floor(),
            ProficiencyMatch::Round => (value + 1e-9).round(),
        }
    }
}

/// `SkillGroupRoutingCondition.comparator` (the same enum for languages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparator {
    EqualTo,
    NotEqualTo,
    LessThan,
    GreaterThan,
    GreaterThanOrEqualTo,
    LessThanOrEqualTo,
}

impl Comparator {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "EqualTo" => Comparator::EqualTo,
            "NotEqualTo" => Comparator::NotEqualTo,
            "LessThan" => Comparator::LessThan,
            "GreaterThan" => Comparator::GreaterThan,
            "GreaterThanOrEqualTo" => Comparator::GreaterThanOrEqualTo,
            "LessThanOrEqualTo" => Comparator::LessThanOrEqualTo,
            _ => return None,
        })
    }

    fn as_api(self) -> &'static str {
        match self {
            Comparator::EqualTo => "EqualTo",
            Comparator::NotEqualTo => "NotEqualTo",
            Comparator::LessThan => "LessThan",
            Comparator::GreaterThan => "GreaterThan",
            Comparator::GreaterThanOrEqualTo => "GreaterThanOrEqualTo",
            Comparator::LessThanOrEqualTo => "LessThanOrEqualTo",
        }
    }

    /// `value` (already matched to whole numbers or not) against `level`.
    fn holds(self, value: f64, level: i64) -> bool {
        const EPS: f64 = 1e-9;
        let level = level as f64;
        match self {
            Comparator::EqualTo => (value - level).abs() < EPS,
            Comparator::NotEqualTo => (value - level).abs() >= EPS,
            Comparator::LessThan => value < level - EPS,
            Comparator::GreaterThan => value > level + EPS,
            Comparator::GreaterThanOrEqualTo => value >= level - EPS,
            Comparator::LessThanOrEqualTo => value <= level + EPS,
        }
    }
}

/// `SkillGroupCondition.operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    And,
    Or,
    Not,
}

impl Operation {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "And" => Operation::And,
            "Or" => Operation::Or,
            "Not" => Operation::Not,
            _ => return None,
        })
    }

    fn as_api(self) -> &'static str {
        match self {
            Operation::And => "And",
            Operation::Or => "Or",
            Operation::Not => "Not",
        }
    }
}

/// What an entry compares: a routing skill of the catalogue (conditions name skills by
/// name), or something no simulated user holds (a language, a skill the catalogue lacks).
#[derive(Debug, Clone)]
pub(crate) enum Subject {
    Skill(u16),
    Unheld { name: String, language: bool },
}

/// One entry of a condition: a routing-skill or language condition.
#[derive(Debug, Clone)]
pub(crate) struct SkillEntry {
    pub(crate) subject: Subject,
    pub(crate) comparator: Comparator,
    pub(crate) proficiency: i64,
    pub(crate) children: Vec<Condition>,
}

/// `SkillGroupCondition`.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    pub(crate) operation: Operation,
    pub(crate) entries: Vec<SkillEntry>,
}

/// A skill group and the queues it feeds.
#[derive(Debug, Clone)]
pub(crate) struct SkillGroup {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) conditions: Vec<Condition>,
    /// Indices of the queues whose `memberGroups` name this group.
    pub(crate) queues: Vec<usize>,
}

fn all_hold(conditions: &[Condition], skills: &[(u16, f64)], m: ProficiencyMatch) -> bool {
    conditions.iter().all(|c| c.holds(skills, m))
}

impl Condition {
    fn holds(&self, skills: &[(u16, f64)], m: ProficiencyMatch) -> bool {
        if self.entries.is_empty() {
            return true;
        }
        let mut each = self.entries.iter().map(|e| e.holds(skills, m));
        match self.operation {
            Operation::And => each.all(|b| b),
            Operation::Or => each.any(|b| b),
            Operation::Not => !each.any(|b| b),
        }
    }

    pub(crate) fn render(&self, skills: &[Skill]) -> Value {
        let language =
            |e: &&SkillEntry| matches!(e.subject, Subject::Unheld { language: true, .. });
        json!({
            "operation": self.operation.as_api(),
            "routingSkillConditions": self.entries.iter().filter(|e| !language(e)).map(|e| e.render(skills)).collect::<Vec<_>>(),
            "languageSkillConditions": self.entries.iter().filter(language).map(|e| e.render(skills)).collect::<Vec<_>>(),
        })
    }

    /// Reads a `SkillGroupCondition` as the API takes it; the error names what is wrong.
    fn parse(v: &Value, skills: &[Skill]) -> Result<Condition, String> {
        let operation = v["operation"]
            .as_str()
            .and_then(Operation::parse)
            .ok_or_else(|| format!("operation must be And, Or or Not, got {}", v["operation"]))?;
        let mut entries = Vec::new();
        for (key, language) in [
            ("routingSkillConditions", false),
            ("languageSkillConditions", true),
        ] {
            for e in v[key].as_array().map(Vec::as_slice).unwrap_or_default() {
                entries.push(SkillEntry::parse(e, language, skills)?);
            }
        }
        Ok(Condition { operation, entries })
    }
}

impl SkillEntry {
    fn holds(&self, skills: &[(u16, f64)], m: ProficiencyMatch) -> bool {
        let Subject::Skill(skill) = self.subject else {
            return false;
        };
        skills
            .iter()
            .find(|(s, _)| *s == skill)
            .is_some_and(|(_, p)| self.comparator.holds(m.apply(*p), self.proficiency))
            && all_hold(&self.children, skills, m)
    }

    fn render(&self, skills: &[Skill]) -> Value {
        let (key, name) = match &self.subject {
            Subject::Skill(s) => (
                "routingSkill",
                skills.get(usize::from(*s)).map_or("", |s| s.name.as_str()),
            ),
            Subject::Unheld { name, language } => (
                if *language {
                    "languageSkill"
                } else {
                    "routingSkill"
                },
                name.as_str(),
            ),
        };
        json!({
            key: name,
            "comparator": self.comparator.as_api(),
            "proficiency": self.proficiency,
            "childConditions": self.children.iter().map(|c| c.render(skills)).collect::<Vec<_>>(),
        })
    }

    fn parse(v: &Value, language: bool, skills: &[Skill]) -> Result<SkillEntry, String> {
        let key = if language {
            "languageSkill"
        } else {
            "routingSkill"
        };
        let name = v[key]
            .as_str()
            .ok_or_else(|| format!("{key} is required"))?
            .to_string();
        let comparator = v["comparator"]
            .as_str()
            .and_then(Comparator::parse)
            .ok_or_else(|| {
                format!(
                    "comparator is not one of the API's, got {}",
                    v["comparator"]
                )
            })?;
        let proficiency = v["proficiency"]
            .as_i64()
            .filter(|p| (0..=5).contains(p))
            .ok_or_else(|| {
                format!(
                    "proficiency must be an integer 0-5, got {}",
                    v["proficiency"]
                )
            })?;
        let children = v["childConditions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|c| Condition::parse(c, skills))
            .collect::<Result<_, _>>()?;
        let subject = match skills.iter().position(|s| s.name == name) {
            Some(i) if !language => Subject::Skill(i as u16),
            _ => Subject::Unheld { name, language },
        };
        Ok(SkillEntry {
            subject,
            comparator,
            proficiency,
            children,
        })
    }
}

impl SkillGroup {
    /// Whether an agent holding `skills` belongs to the group.
    pub(crate) fn admits(&self, skills: &[(u16, f64)], m: ProficiencyMatch) -> bool {
        all_hold(&self.conditions, skills, m)
    }

    /// A group from a `SkillGroup` body as the API takes it (`name`, `description`,
    /// `skillConditions`), fed to the queues at `queues`.
    pub(crate) fn parse(
        id: Uuid,
        body: &Value,
        skills: &[Skill],
        queues: Vec<usize>,
    ) -> Result<SkillGroup, String> {
        let name = body["name"].as_str().ok_or("name is required")?.to_string();
        let conditions = body["skillConditions"]
            .as_array()
            .ok_or("skillConditions is required")?
            .iter()
            .map(|c| Condition::parse(c, skills))
            .collect::<Result<_, _>>()?;
        Ok(SkillGroup {
            id,
            name,
            description: body["description"].as_str().unwrap_or_default().to_string(),
            conditions,
            queues,
        })
    }
}

fn entry(skill: u16, comparator: Comparator, level: i64, children: Vec<Condition>) -> SkillEntry {
    SkillEntry {
        subject: Subject::Skill(skill),
        comparator,
        proficiency: level,
        children,
    }
}

fn and(entries: Vec<SkillEntry>) -> Condition {
    Condition {
        operation: Operation::And,
        entries,
    }
}

/// The open-loop org's groups (sim choice), each made only when the catalogue has every skill
/// it names: "Spanish 3+" feeds the "Sales" queue, "Billing and Claims" (an And) feeds
/// "Billing", "Support, not Sales" (a Not) feeds "Technical Support", and "Retention
/// seniors" (an Or with a nested condition) feeds no queue.
pub(crate) fn default_groups(seed: u64, skills: &[Skill], queues: &[Queue]) -> Vec<SkillGroup> {
    use Comparator::*;
    let skill = |name: &str| skills.iter().position(|s| s.name == name).map(|i| i as u16);
    let queue = |name: &str| queues.iter().position(|q| q.name == name);
    let mut groups = Vec::new();
    let mut add =
        |name: &str, description: &str, conditions: Option<Vec<Condition>>, feeds: &[&str]| {
            if let Some(conditions) = conditions {
                groups.push(SkillGroup {
                    id: uuid_for(seed, domain::SKILL_GROUP, groups.len() as u64),
                    name: name.to_string(),
                    description: description.to_string(),
                    conditions,
                    queues: feeds.iter().filter_map(|q| queue(q)).collect(),
                });
            }
        };
    add(
        "Spanish 3+",
        "Agents with Spanish at 3 or more also take Sales",
        skill("Spanish").map(|s| vec![and(vec![entry(s, GreaterThanOrEqualTo, 3, Vec::new())])]),
        &["Sales"],
    );
    add(
        "Billing and Claims",
        "Billing at 3 or more and Claims at 2 or more",
        skill("Billing").zip(skill("Claims")).map(|(b, c)| {
            vec![and(vec![
                entry(b, GreaterThanOrEqualTo, 3, Vec::new()),
                entry(c, GreaterThanOrEqualTo, 2, Vec::new()),
            ])]
        }),
        &["Billing"],
    );
    add(
        "Support, not Sales",
        "Technical Support at 4 or more, unless Sales is 3 or more",
        skill("Technical Support")
            .zip(skill("Sales"))
            .map(|(t, s)| {
                vec![
                    and(vec![entry(t, GreaterThanOrEqualTo, 4, Vec::new())]),
                    Condition {
                        operation: Operation::Not,
                        entries: vec![entry(s, GreaterThanOrEqualTo, 3, Vec::new())],
                    },
                ]
            }),
        &["Technical Support"],
    );
    add(
        "Retention seniors",
        "Retention above 3 with Billing at 2 or more, or Retention at 5",
        skill("Retention").zip(skill("Billing")).map(|(r, b)| {
            vec![Condition {
                operation: Operation::Or,
                entries: vec![
                    entry(
                        r,
                        GreaterThan,
                        3,
                        vec![and(vec![entry(b, GreaterThanOrEqualTo, 2, Vec::new())])],
                    ),
                    entry(r, EqualTo, 5, Vec::new()),
                ],
            }]
        }),
        &[],
    );
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(conditions: Vec<Condition>) -> SkillGroup {
        SkillGroup {
            id: Uuid::nil(),
            name: "g".into(),
            description: String::new(),
            conditions,
            queues: Vec::new(),
        }
    }

    #[test]
    fn fractional_proficiencies_meet_whole_numbers_as_configured() {
        let g = group(vec![and(vec![entry(
            0,
            Comparator::GreaterThanOrEqualTo,
            3,
            Vec::new(),
        )])]);
        let held = [(0u16, 2.5)];
        assert!(!g.admits(&held, ProficiencyMatch::Exact));
        assert!(!g.admits(&held, ProficiencyMatch::Floor));
        assert!(g.admits(&held, ProficiencyMatch::Round));
        assert!(g.admits(&[(0, 3.0)], ProficiencyMatch::Exact));
        assert!(!g.admits(&[], ProficiencyMatch::Exact), "not held");
    }

    #[test]
    fn not_or_and_children_combine() {
        let not = group(vec![Condition {
            operation: Operation::Not,
            entries: vec![entry(1, Comparator::EqualTo, 2, Vec::new())],
        }]);
        assert!(not.admits(&[(1, 3.0)], ProficiencyMatch::Exact));
        assert!(!not.admits(&[(1, 2.0)], ProficiencyMatch::Exact));
        assert!(
            not.admits(&[], ProficiencyMatch::Exact),
            "no skill: the entry fails, Not holds"
        );
        let or = group(vec![Condition {
            operation: Operation::Or,
            entries: vec![
                entry(
                    0,
                    Comparator::GreaterThan,
                    3,
                    vec![and(vec![entry(1, Comparator::LessThan, 2, Vec::new())])],
                ),
                entry(0, Comparator::EqualTo, 1, Vec::new()),
            ],
        }]);
        assert!(or.admits(&[(0, 4.0), (1, 1.0)], ProficiencyMatch::Exact));
        assert!(
            !or.admits(&[(0, 4.0), (1, 2.0)], ProficiencyMatch::Exact),
            "child fails"
        );
        assert!(or.admits(&[(0, 1.0)], ProficiencyMatch::Exact));
        assert!(group(vec![and(Vec::new())]).admits(&[], ProficiencyMatch::Exact));
    }
}
