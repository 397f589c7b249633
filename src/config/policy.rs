//! What a cycle touches (`[scope]`), measures (`[metrics]`) and decides (`[policy]`,
//! `[breaker]`, `[apply]`, `[guard]`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which agents and skills a cycle may touch.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScopeSettings {
    /// Division ids; empty = every division.
    pub divisions: Vec<String>,
    /// Group ids whose individual members are in scope; empty = no group filter.
    pub groups: Vec<String>,
    /// Queue ids whose members are in scope; empty = no queue filter.
    pub queues: Vec<String>,
    /// User ids always in scope (if active and holding skills).
    pub include_users: Vec<String>,
    /// User ids never touched.
    pub exclude_users: Vec<String>,
    /// Skill names to tune; empty = every skill.
    pub skills: Vec<String>,
    /// Skill names never touched.
    pub exclude_skills: Vec<String>,
}

/// What is measured, over which window.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Whole days before today (UTC midnight) that the metrics cover.
    pub lookback_days: u32,
    /// Time zone in which analytics buckets days (IANA name).
    pub time_zone: String,
    /// Media types to count (`voice`, `chat`, …); empty = all.
    pub media_types: Vec<String>,
    /// Query `evaluations/aggregates` for quality scores.
    pub evaluations: bool,
    /// Query `surveys/aggregates` for CSAT-like scores.
    pub surveys: bool,
    /// `userId` predicates per analytics query (documented as at most 100 for user-status
    /// aggregates only; `docs/genesys-api.md` §6).
    pub users_per_query: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            lookback_days: 14,
            time_zone: "UTC".into(),
            media_types: Vec::new(),
            evaluations: true,
            surveys: false,
            users_per_query: 100,
        }
    }
}

/// How a metric is normalised to 0..1: 1 at `target` or better, 0 at `limit` or worse,
/// linear between. `target < limit` means lower is better (handle time, transfers).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub weight: f64,
    pub target: f64,
    pub limit: f64,
}

/// The scoring components, each optional. A `components` table lists exactly the
/// components used (absent = not used); without the table the defaults below apply.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Components {
    /// Average handle time in seconds (tHandle sum / count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle_time: Option<Component>,
    /// Transferred share of handled conversations (nTransferred / tHandle count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_rate: Option<Component>,
    /// Average evaluation score 0–100 (oTotalScore), per agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Component>,
    /// Average survey score 0–100 (oSurveyTotalScore), per agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<Component>,
}

impl Default for Components {
    fn default() -> Self {
        Self {
            handle_time: Some(Component {
                weight: 0.5,
                target: 300.0,
                limit: 900.0,
            }),
            transfer_rate: Some(Component {
                weight: 0.3,
                target: 0.05,
                limit: 0.35,
            }),
            quality: Some(Component {
                weight: 0.2,
                target: 90.0,
                limit: 60.0,
            }),
            csat: None,
        }
    }
}

/// The scoring policy and its guardrails, for one skill or as the default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SkillPolicy {
    pub components: Components,
    /// Fewer handled interactions for an agent and skill → no change.
    pub min_interactions: u64,
    /// Pseudo-interactions of the skill's population mean mixed into each agent's metrics
    /// (empirical-Bayes shrinkage: small samples move toward the mean). 0 = off.
    pub shrinkage: f64,
    /// Share of the way from current to target moved in one cycle (1 = all the way).
    pub smoothing: f64,
    /// Largest change in one cycle.
    pub max_step: f64,
    /// Changes smaller than this are not made.
    pub dead_band: f64,
    /// Proficiencies are multiples of this.
    pub round_to: f64,
    pub floor: f64,
    pub ceiling: f64,
}

impl Default for SkillPolicy {
    fn default() -> Self {
        Self {
            components: Components::default(),
            min_interactions: 20,
            shrinkage: 20.0,
            smoothing: 0.5,
            max_step: 0.5,
            dead_band: 0.25,
            round_to: 0.25,
            floor: 0.0,
            ceiling: 5.0,
        }
    }
}

/// A ramp over a ratio: 1 at `target` or better, 0 at `limit` or worse (lower is better).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelativeRamp {
    pub target: f64,
    pub limit: f64,
}

/// The ramps of case-mix scoring: an agent's observed ÷ expected handle time and transfers,
/// where "expected" is what the same work (skill and queue) takes the average agent.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RelativeRamps {
    /// Handle time ÷ expected: 1 at half the expected time, 0 at one and a half times it,
    /// so an agent exactly as fast as the work demands scores 0.5 (2.5 stars).
    pub handle_time: RelativeRamp,
    /// Transfers ÷ expected: 1 at none, 0 at twice the expected number.
    pub transfer_rate: RelativeRamp,
}

impl Default for RelativeRamps {
    fn default() -> Self {
        Self {
            handle_time: RelativeRamp {
                target: 0.5,
                limit: 1.5,
            },
            transfer_rate: RelativeRamp {
                target: 0.0,
                limit: 2.0,
            },
        }
    }
}

/// The default policy plus per-skill overrides (by skill name; whole-policy replacement).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    pub default: SkillPolicy,
    pub skills: BTreeMap<String, SkillPolicy>,
    /// Also add skills an agent does not hold yet (off: only re-rate held skills).
    pub add_missing_skills: bool,
    /// Score handle time and transfers against what each queue's work demands (observed ÷
    /// expected, on [`PolicySettings::relative`]) instead of the components' absolute
    /// ramps. Off: the absolute ramps, exactly as before.
    pub case_mix: bool,
    /// The ramps of case-mix scoring (the components keep their weights).
    pub relative: RelativeRamps,
    /// Also tune skills whose every queue ignores skills (`skillEvaluationMethod` NONE):
    /// their proficiency changes no routing, so by default they are left alone.
    pub tune_without_routing_effect: bool,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            default: SkillPolicy::default(),
            skills: BTreeMap::new(),
            add_missing_skills: false,
            case_mix: true,
            relative: RelativeRamps::default(),
            tune_without_routing_effect: false,
        }
    }
}

impl PolicySettings {
    pub fn for_skill(&self, skill_name: &str) -> &SkillPolicy {
        self.skills.get(skill_name).unwrap_or(&self.default)
    }
}

/// When the cycle refuses to apply anything.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Trip when more than this share of in-scope agents would change.
    pub max_changed_share: f64,
    /// Trip when fewer than this share of in-scope agent-skill pairs have any metrics
    /// (an analytics outage must never demote everyone).
    pub min_data_share: f64,
    /// Trip when more than this share of the changes are demotions.
    pub max_demotion_share: f64,
    /// The share checks apply only from this many in-scope agents up (tiny orgs are noisy).
    pub min_agents: usize,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            max_changed_share: 0.5,
            min_data_share: 0.3,
            max_demotion_share: 0.8,
            min_agents: 10,
        }
    }
}

/// What to do when a person changed a skill between our read and our write.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnConflict {
    /// Leave the person's value, record a conflict.
    #[default]
    Skip,
    /// Re-plan the skill from the person's value (guardrails apply again).
    Replan,
}

/// How changes are written.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApplySettings {
    /// Re-read each agent's skills right before writing (one GET per changed agent) so a
    /// person's edit is never overwritten. Off saves that call but trusts the roster read.
    pub verify_before_write: bool,
    pub on_conflict: OnConflict,
    /// Re-read and re-decide this many times on a 409.
    pub max_conflict_retries: u32,
}

impl Default for ApplySettings {
    fn default() -> Self {
        Self {
            verify_before_write: true,
            on_conflict: OnConflict::Skip,
            max_conflict_retries: 3,
        }
    }
}

/// What a planned change that moves an agent into or out of a skill group (and so a queue)
/// comes to.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CrossingGuard {
    /// Apply it, and tell the supervisor (workitem, digest, log).
    #[default]
    Warn,
    /// Propose it in a review workitem; apply it once approved (needs alerts.workitem).
    Hold,
    /// Do not apply it; the ledger records why.
    Block,
}

impl CrossingGuard {
    pub fn as_str(self) -> &'static str {
        match self {
            CrossingGuard::Warn => "warn",
            CrossingGuard::Hold => "hold",
            CrossingGuard::Block => "block",
        }
    }
}

/// How a fractional proficiency meets a skill-group condition's whole number (`proficiency`
/// is an integer 0–5 there, while skills hold values like 2.5). Genesys does not document it.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProficiencyMatch {
    /// The value as it is: 2.5 is below 3 and neither 2 nor 3.
    #[default]
    Exact,
    /// Whole stars held: 2.5 counts as 2.
    Floor,
    /// The nearest whole number, halves up: 2.5 counts as 3.
    Round,
}

impl ProficiencyMatch {
    pub fn as_str(self) -> &'static str {
        match self {
            ProficiencyMatch::Exact => "exact",
            ProficiencyMatch::Floor => "floor",
            ProficiencyMatch::Round => "round",
        }
    }

    /// The value a condition compares.
    pub fn apply(self, value: f64) -> f64 {
        match self {
            ProficiencyMatch::Exact => value,
            ProficiencyMatch::Floor => (value + 1e-9).floor(),
            ProficiencyMatch::Round => (value + 1e-9).round(),
        }
    }
}

/// Signs that something else writes to the org too, and changes whose effect reaches past
/// the skill itself.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GuardSettings {
    /// Warn when at least this share of a cycle's conflicts (and at least 5) found exactly
    /// the value this policy would have written: the mark of a second tuner with a ledger
    /// of its own, which no lock can see.
    pub second_writer_warn_share: f64,
    /// A change that moves an agent into or out of a skill group: warn, hold or block.
    pub skill_group_crossings: CrossingGuard,
    /// How fractional proficiencies meet the groups' whole-number conditions.
    pub skill_group_match: ProficiencyMatch,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            second_writer_warn_share: 0.5,
            skill_group_crossings: CrossingGuard::Warn,
            skill_group_match: ProficiencyMatch::Exact,
        }
    }
}
