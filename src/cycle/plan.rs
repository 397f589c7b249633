//! Planning: compare each target with the agent's real current proficiency and apply the
//! guardrails, then decide whether the cycle may apply anything at all (the breaker).
//!
//! Guardrails, in order, for one agent and skill:
//! 1. minimum interactions (else no change);
//! 2. shrinkage toward the skill's population mean (in [`super::score`]);
//! 3. floor and ceiling on the target;
//! 4. smoothing: move `smoothing` of the way from current to target;
//! 5. maximum step per cycle;
//! 6. rounding to the step, toward the current value (so rounding never exceeds the step);
//! 7. dead band: a change smaller than it is not made.

use super::routing::{skill_routing, tunes, SkillRouting};
use super::score::{Score, Scorer};
use crate::config::{BreakerSettings, PolicySettings, SkillPolicy};
use crate::org::{AgentIx, SkillIx, Snapshot};
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a skill is left as it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Keep {
    /// No metrics at all for this agent and skill in the window.
    NoData,
    /// Fewer handled interactions than `min_interactions`.
    TooFewInteractions { have: u64, need: u64 },
    /// The move would be smaller than the dead band (or rounds to nothing).
    DeadBand,
    /// Already at the target.
    AtTarget,
    /// An earlier proposal for this agent and skill waits for review.
    PendingReview,
    /// Every queue of the skill disregards skills (`NONE`): proficiency changes no routing
    /// (unless `policy.tune_without_routing_effect`).
    NoRoutingEffect,
    /// The skill is held out by the running experiment: never changed while it runs.
    HeldOut,
}

impl Keep {
    pub fn label(&self) -> &'static str {
        match self {
            Keep::NoData => "no_data",
            Keep::TooFewInteractions { .. } => "too_few_interactions",
            Keep::DeadBand => "dead_band",
            Keep::AtTarget => "at_target",
            Keep::PendingReview => "pending_review",
            Keep::NoRoutingEffect => "no_routing_effect",
            Keep::HeldOut => "held_out",
        }
    }
}

/// What the plan says for one agent and skill.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    Change { to: f64 },
    Keep(Keep),
}

/// One agent and skill, planned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedItem {
    pub agent: AgentIx,
    pub skill: SkillIx,
    /// The proficiency the plan was computed against (the roster read).
    pub current: f64,
    /// The agent lacks the skill and the change adds it (only with `add_missing_skills`).
    pub adds_skill: bool,
    pub score: Option<Score>,
    pub decision: Decision,
}

impl PlannedItem {
    pub fn target(&self) -> Option<f64> {
        self.score.as_ref().map(|s| s.target)
    }

    pub fn proposed(&self) -> Option<f64> {
        match self.decision {
            Decision::Change { to } => Some(to),
            Decision::Keep(_) => None,
        }
    }
}

/// Why the breaker refused the whole cycle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerTrip {
    pub rule: &'static str,
    pub detail: String,
}

/// The plan of one cycle. Only changes are kept item by item (with their scores, so a
/// person can see why); everything left alone is counted by reason, which keeps a plan of
/// 100 000 agents small.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// The changes, in roster order.
    pub items: Vec<PlannedItem>,
    /// Agent-skill pairs left alone, by [`Keep::label`].
    pub kept: BTreeMap<&'static str, usize>,
    pub breaker: Option<BreakerTrip>,
    pub agents_considered: usize,
    /// In-scope agent-skill pairs the agent holds.
    pub pairs: usize,
    pub pairs_with_data: usize,
    /// Changes that cross a whole-number proficiency (skill-expression groups move agents
    /// in and out of queues at such thresholds).
    pub threshold_crossings: usize,
    /// Per in-scope skill: the queues that requested it, by which method, and whether it
    /// is tuned.
    pub routing: Vec<SkillRouting>,
    /// Whether scores were corrected for case mix.
    pub case_mix: bool,
    /// Per in-scope skill: how many agents hold it at each half star, as the roster read it
    /// (the "before" a report compares the applied changes with).
    pub distribution: Vec<SkillDistribution>,
}

/// Half-star buckets from 0 to 5: a proficiency `p` counts in bucket `round(2p)`.
pub const HALF_STARS: usize = 11;

/// How many agents hold one skill at each half star (0, 0.5, …, 5).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SkillDistribution {
    pub skill: String,
    /// [`HALF_STARS`] counts, bucket `i` holding proficiencies that round to `i / 2`.
    pub half_stars: Vec<u32>,
}

/// The half-star bucket of a proficiency (clamped to 0–5).
pub fn half_star(proficiency: f64) -> usize {
    ((proficiency.clamp(0.0, 5.0) * 2.0).round() as usize).min(HALF_STARS - 1)
}

impl Plan {
    pub fn changes(&self) -> impl Iterator<Item = &PlannedItem> {
        self.items
            .iter()
            .filter(|i| matches!(i.decision, Decision::Change { .. }))
    }

    /// [`Plan::changes`] with each one's index in `items`.
    pub(crate) fn changes_indexed(&self) -> impl Iterator<Item = (usize, &PlannedItem)> {
        self.items
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.decision, Decision::Change { .. }))
    }

    pub(crate) fn agents_changing(&self) -> usize {
        let mut agents: Vec<AgentIx> = self.changes().map(|i| i.agent).collect();
        agents.sort_unstable();
        agents.dedup();
        agents.len()
    }

    pub(crate) fn keep_counts(&self) -> &BTreeMap<&'static str, usize> {
        &self.kept
    }

    /// Turns planned changes into "left alone" where `park` says so.
    pub fn park(&mut self, reason: Keep, mut park: impl FnMut(&PlannedItem) -> bool) {
        let before = self.items.len();
        self.items.retain(|i| !park(i));
        let parked = before - self.items.len();
        if parked > 0 {
            *self.kept.entry(reason.label()).or_insert(0) += parked;
        }
    }
}

/// Applies guardrails 3–7 to a target. Pure: the write path calls it again after a conflict
/// when configured to re-plan from a person's value.
pub fn decide(policy: &SkillPolicy, current: f64, target: f64) -> Decision {
    // NaN compares false everywhere below and would come out as `Change { to: NaN }`:
    // without a real current value and target there is nothing to decide.
    if !current.is_finite() || !target.is_finite() {
        return Decision::Keep(Keep::NoData);
    }
    let target = target.clamp(policy.floor, policy.ceiling);
    let wanted = target - current;
    if wanted.abs() < 1e-9 {
        return Decision::Keep(Keep::AtTarget);
    }
    let step = (wanted * policy.smoothing).clamp(-policy.max_step, policy.max_step);
    let raw = current + step;
    // Round toward the current value so the step bound holds after rounding.
    let grid = policy.round_to;
    let rounded = if step > 0.0 {
        ((raw / grid) + 1e-9).floor() * grid
    } else {
        ((raw / grid) - 1e-9).ceil() * grid
    };
    let rounded = (rounded * 1e9).round() / 1e9;
    let moved = rounded - current;
    if moved * step <= 0.0 || moved.abs() + 1e-9 < policy.dead_band || moved.abs() < 1e-9 {
        return Decision::Keep(Keep::DeadBand);
    }
    Decision::Change {
        to: rounded.clamp(0.0, 5.0),
    }
}

/// Plans every in-scope agent and tunable skill, then runs the breaker.
pub fn plan(snapshot: &Snapshot, policies: &PolicySettings, breaker: &BreakerSettings) -> Plan {
    let scorer = Scorer::new(snapshot, policies);
    let routing = skill_routing(snapshot, policies.tune_without_routing_effect);
    let mut plan = Plan {
        agents_considered: snapshot.agents.len(),
        case_mix: policies.case_mix,
        ..Plan::default()
    };
    let mut held = vec![vec![0u32; HALF_STARS]; snapshot.skills.len()];
    for (ai, agent) in snapshot.agents.iter().enumerate() {
        let mut pairs: Vec<(SkillIx, f64, bool)> =
            agent.skills.iter().map(|(s, p)| (*s, *p, false)).collect();
        if policies.add_missing_skills {
            for skill in agent.skills_with_data() {
                if agent.proficiency(skill).is_none() {
                    pairs.push((skill, 0.0, true));
                }
            }
        }
        for (skill, current, adds_skill) in pairs {
            if !snapshot
                .tunable
                .get(usize::from(skill))
                .copied()
                .unwrap_or(false)
            {
                continue;
            }
            if !adds_skill {
                held[usize::from(skill)][half_star(current)] += 1;
            }
            let policy = policies.for_skill(&snapshot.skills[usize::from(skill)].name);
            let metrics = agent.metrics_for(skill);
            let handled = metrics.map_or(0, |m| m.handled);
            if handled > 0 {
                plan.pairs_with_data += 1;
            }
            let routed = tunes(&routing, skill);
            let score = routed
                .then(|| scorer.score(snapshot, agent, skill))
                .flatten();
            let decision = match (&score, metrics) {
                _ if !routed => Decision::Keep(Keep::NoRoutingEffect),
                (_, None) => Decision::Keep(Keep::NoData),
                (_, Some(m)) if m.handled < policy.min_interactions => {
                    Decision::Keep(Keep::TooFewInteractions {
                        have: m.handled,
                        need: policy.min_interactions,
                    })
                }
                (None, _) => Decision::Keep(Keep::NoData),
                (Some(s), _) => decide(policy, current, s.target),
            };
            if !adds_skill {
                plan.pairs += 1;
            }
            let Decision::Change { to } = decision else {
                if !adds_skill {
                    if let Decision::Keep(keep) = &decision {
                        *plan.kept.entry(keep.label()).or_insert(0) += 1;
                    }
                }
                continue;
            };
            if current.floor() != to.floor() {
                plan.threshold_crossings += 1;
            }
            plan.items.push(PlannedItem {
                agent: ai as AgentIx,
                skill,
                current,
                adds_skill,
                score,
                decision,
            });
        }
    }
    plan.breaker = check_breaker(snapshot, &plan, breaker);
    plan.routing = routing
        .into_iter()
        .zip(&snapshot.tunable)
        .filter_map(|(r, tunable)| tunable.then_some(r))
        .collect();
    plan.distribution = snapshot
        .skills
        .iter()
        .zip(held)
        .zip(&snapshot.tunable)
        .filter(|(_, tunable)| **tunable)
        .map(|((skill, half_stars), _)| SkillDistribution {
            skill: skill.name.clone(),
            half_stars,
        })
        .collect();
    plan
}

/// The blast-radius breaker: too many changes, or metrics that look empty or broken.
fn check_breaker(snapshot: &Snapshot, plan: &Plan, b: &BreakerSettings) -> Option<BreakerTrip> {
    let pairs = plan.pairs;
    if pairs > 0 && plan.pairs_with_data == 0 {
        return Some(BreakerTrip {
            rule: "empty_metrics",
            detail: format!(
                "analytics returned no data for any of {pairs} agent-skill pairs ({} of {} queries empty): treating it as an outage, not as bad performance",
                snapshot.empty_queries, snapshot.queries
            ),
        });
    }
    let agents = plan.agents_considered;
    if agents < b.min_agents || pairs == 0 {
        return None;
    }
    let data_share = plan.pairs_with_data as f64 / pairs as f64;
    if data_share < b.min_data_share {
        return Some(BreakerTrip {
            rule: "sparse_metrics",
            detail: format!(
                "only {:.0}% of agent-skill pairs have metrics (minimum {:.0}%)",
                data_share * 100.0,
                b.min_data_share * 100.0
            ),
        });
    }
    let changing = plan.agents_changing();
    let changed_share = changing as f64 / agents as f64;
    if changed_share > b.max_changed_share {
        return Some(BreakerTrip {
            rule: "mass_change",
            detail: format!(
                "{changing} of {agents} agents ({:.0}%) would change (maximum {:.0}%)",
                changed_share * 100.0,
                b.max_changed_share * 100.0
            ),
        });
    }
    let changes: Vec<&PlannedItem> = plan.changes().collect();
    if changes.len() >= b.min_agents {
        let down = changes
            .iter()
            .filter(|i| i.proposed().is_some_and(|p| p < i.current))
            .count();
        let share = down as f64 / changes.len() as f64;
        if share > b.max_demotion_share {
            return Some(BreakerTrip {
                rule: "mass_demotion",
                detail: format!(
                    "{down} of {} changes ({:.0}%) are demotions (maximum {:.0}%)",
                    changes.len(),
                    share * 100.0,
                    b.max_demotion_share * 100.0
                ),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::{Agent, PairMetrics, QueueCell, Skill, NO_QUEUE};

    fn policy() -> SkillPolicy {
        SkillPolicy {
            smoothing: 1.0,
            max_step: 1.0,
            dead_band: 0.25,
            round_to: 0.25,
            shrinkage: 0.0,
            ..SkillPolicy::default()
        }
    }

    #[test]
    fn max_step_bounds_each_cycle() {
        let p = SkillPolicy {
            max_step: 0.5,
            ..policy()
        };
        assert_eq!(decide(&p, 1.0, 5.0), Decision::Change { to: 1.5 });
        assert_eq!(decide(&p, 4.0, 0.0), Decision::Change { to: 3.5 });
    }

    #[test]
    fn smoothing_moves_part_of_the_way() {
        let p = SkillPolicy {
            smoothing: 0.5,
            ..policy()
        };
        assert_eq!(decide(&p, 2.0, 4.0), Decision::Change { to: 3.0 });
    }

    #[test]
    fn dead_band_ignores_small_moves() {
        let p = SkillPolicy {
            dead_band: 0.5,
            ..policy()
        };
        assert_eq!(decide(&p, 2.0, 2.25), Decision::Keep(Keep::DeadBand));
        assert_eq!(decide(&p, 2.0, 2.0), Decision::Keep(Keep::AtTarget));
        assert_eq!(decide(&p, 2.0, 2.5), Decision::Change { to: 2.5 });
    }

    #[test]
    fn floor_and_ceiling_clamp_the_target() {
        let p = SkillPolicy {
            floor: 1.0,
            ceiling: 3.0,
            ..policy()
        };
        assert_eq!(decide(&p, 2.0, 5.0), Decision::Change { to: 3.0 });
        assert_eq!(decide(&p, 2.0, 0.0), Decision::Change { to: 1.0 });
    }

    #[test]
    fn rounding_never_exceeds_the_step() {
        let p = SkillPolicy {
            max_step: 0.5,
            round_to: 0.25,
            dead_band: 0.0,
            ..policy()
        };
        // From an off-grid 2.1, +0.5 = 2.6 rounds toward current to 2.5.
        assert_eq!(decide(&p, 2.1, 5.0), Decision::Change { to: 2.5 });
        // A move that rounds back past the current value is no move.
        let tiny = SkillPolicy { max_step: 0.1, ..p };
        assert_eq!(decide(&tiny, 2.1, 5.0), Decision::Keep(Keep::DeadBand));
    }

    fn snapshot(agents: Vec<Agent>) -> Snapshot {
        Snapshot {
            skills: vec![Skill {
                id: "s1".into(),
                name: "Billing".into(),
            }],
            tunable: vec![true],
            agents,
            queries: 1,
            ..Snapshot::default()
        }
    }

    fn agent(id: usize, current: f64, metrics: Option<PairMetrics>) -> Agent {
        Agent {
            id: format!("a{id}"),
            name: format!("Agent {id}"),
            manager_id: None,
            skills: vec![(0, current)],
            cells: metrics
                .map(|m| vec![QueueCell::new(0, NO_QUEUE, &m)])
                .unwrap_or_default(),
            quality: None,
            csat: None,
        }
    }

    fn metrics(handled: u64, aht_secs: f64) -> PairMetrics {
        PairMetrics {
            handled,
            handle_ms: handled as f64 * aht_secs * 1000.0,
            transferred: Some(0),
        }
    }

    #[test]
    fn min_interactions_blocks_changes() {
        let s = snapshot(vec![agent(1, 1.0, Some(metrics(5, 200.0)))]);
        let p = plan(&s, &PolicySettings::default(), &BreakerSettings::default());
        assert!(p.items.is_empty());
        assert_eq!(p.kept.get("too_few_interactions"), Some(&1));
    }

    #[test]
    fn empty_analytics_trips_the_breaker_and_demotes_no_one() {
        let agents = (0..50).map(|i| agent(i, 4.0, None)).collect();
        let p = plan(
            &snapshot(agents),
            &PolicySettings::default(),
            &BreakerSettings::default(),
        );
        assert_eq!(p.breaker.as_ref().map(|b| b.rule), Some("empty_metrics"));
        assert_eq!(p.changes().count(), 0);
    }

    #[test]
    fn a_mass_change_trips_the_breaker() {
        // Everyone at 0.0 with great metrics: all would change.
        let agents = (0..20)
            .map(|i| agent(i, 0.0, Some(metrics(100, 200.0))))
            .collect();
        let p = plan(
            &snapshot(agents),
            &PolicySettings::default(),
            &BreakerSettings::default(),
        );
        assert_eq!(p.breaker.as_ref().map(|b| b.rule), Some("mass_change"));
    }

    #[test]
    fn sparse_metrics_trip_the_breaker() {
        let mut agents: Vec<Agent> = (0..20).map(|i| agent(i, 2.0, None)).collect();
        agents[0] = agent(0, 2.0, Some(metrics(100, 600.0)));
        let p = plan(
            &snapshot(agents),
            &PolicySettings::default(),
            &BreakerSettings::default(),
        );
        assert_eq!(p.breaker.as_ref().map(|b| b.rule), Some("sparse_metrics"));
    }

    #[test]
    fn only_skills_the_agent_holds_unless_configured() {
        let mut a = agent(1, 1.0, Some(metrics(100, 200.0)));
        a.skills.clear();
        let s = snapshot(vec![a]);
        let none = plan(&s, &PolicySettings::default(), &BreakerSettings::default());
        assert!(none.items.is_empty());
        let adding = PolicySettings {
            add_missing_skills: true,
            ..PolicySettings::default()
        };
        let some = plan(&s, &adding, &BreakerSettings::default());
        assert_eq!(some.items.len(), 1);
        assert!(some.items[0].adds_skill);
    }
}
