//! Which queues use each skill, and whether a skill's proficiency can change routing at all.
//!
//! Genesys routes by proficiency only on queues whose `skillEvaluationMethod` is `BEST` (best
//! available skills: among the longest-idle eligible agents, the highest proficiency). `ALL`
//! routes to the longest idle of those holding every requested skill, and `NONE` disregards
//! skills. The queue listing carries the method but no skills: which skills a queue serves is
//! learned from analytics, the queues where each skill's interactions were requested.

use crate::org::{EvaluationMethod, QueueIx, SkillIx, Snapshot, NO_QUEUE};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a skill's proficiency does to routing, judged from the queues that requested it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingEffect {
    /// At least one of its queues ranks agents by proficiency (`BEST`).
    Ranked,
    /// Its queues match skills without ranking them (`ALL`, perhaps with `NONE`): holding
    /// the skill matters, and proficiency thresholds (skill-expression groups) may; tuned.
    Matched,
    /// Every one of its queues disregards skills (`NONE`): proficiency changes no routing.
    NoRoutingEffect,
    /// No queue data (its interactions named no queue, or a queue's method is not known):
    /// tuned as before queues were read.
    Unknown,
}

impl RoutingEffect {
    /// For people: what the effect means for tuning.
    pub fn describe(self) -> &'static str {
        match self {
            RoutingEffect::Ranked => "proficiency ranks agents",
            RoutingEffect::Matched => "skills matched, proficiency not ranked",
            RoutingEffect::NoRoutingEffect => "no routing effect",
            RoutingEffect::Unknown => "no queue data",
        }
    }
}

/// One queue that requested a skill in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueUse {
    pub queue_id: String,
    /// `None` for a queue the listing does not show.
    pub queue: Option<String>,
    /// `NONE`, `BEST` or `ALL`; `None` when not known.
    pub method: Option<EvaluationMethod>,
    /// Interactions of the in-scope agents on it, for this skill.
    pub interactions: u64,
}

/// How one skill is routed, and whether the plan tunes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillRouting {
    pub skill: String,
    /// Busiest first.
    pub queues: Vec<QueueUse>,
    /// Interactions that named no queue.
    pub without_queue: u64,
    pub effect: RoutingEffect,
    pub tuned: bool,
}

/// Per skill of the snapshot (all of them, by index): its queues and routing effect.
/// `tune_without_effect` says whether skills with no routing effect are tuned anyway.
pub fn skill_routing(snapshot: &Snapshot, tune_without_effect: bool) -> Vec<SkillRouting> {
    let mut used: Vec<BTreeMap<QueueIx, u64>> = vec![BTreeMap::new(); snapshot.skills.len()];
    for agent in &snapshot.agents {
        for cell in &agent.cells {
            if let Some(per_queue) = used.get_mut(usize::from(cell.skill)) {
                *per_queue.entry(cell.queue).or_insert(0) += u64::from(cell.handled);
            }
        }
    }
    snapshot
        .skills
        .iter()
        .zip(used)
        .map(|(skill, mut per_queue)| {
            let without_queue = per_queue.remove(&NO_QUEUE).unwrap_or(0);
            let mut queues: Vec<QueueUse> = per_queue
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .filter_map(|(q, interactions)| {
                    let queue = snapshot.queues.get(usize::from(q))?;
                    Some(QueueUse {
                        queue_id: queue.id.clone(),
                        queue: queue.name.clone(),
                        method: queue.method,
                        interactions,
                    })
                })
                .collect();
            queues.sort_by(|a, b| {
                b.interactions
                    .cmp(&a.interactions)
                    .then_with(|| a.queue_id.cmp(&b.queue_id))
            });
            let effect = effect_of(&queues);
            SkillRouting {
                skill: skill.name.clone(),
                tuned: effect != RoutingEffect::NoRoutingEffect || tune_without_effect,
                queues,
                without_queue,
                effect,
            }
        })
        .collect()
}

/// The rule: any `BEST` queue → ranked; else any unknown method (or no queue) → unknown;
/// else all `NONE` → no routing effect; else (some `ALL`) → matched.
fn effect_of(queues: &[QueueUse]) -> RoutingEffect {
    let has = |m: Option<EvaluationMethod>| queues.iter().any(|q| q.method == m);
    if has(Some(EvaluationMethod::Best)) {
        RoutingEffect::Ranked
    } else if queues.is_empty() || has(None) {
        RoutingEffect::Unknown
    } else if queues
        .iter()
        .all(|q| q.method == Some(EvaluationMethod::None))
    {
        RoutingEffect::NoRoutingEffect
    } else {
        RoutingEffect::Matched
    }
}

/// Whether the plan may change `skill`, by the routing rule.
pub(crate) fn tunes(routing: &[SkillRouting], skill: SkillIx) -> bool {
    routing.get(usize::from(skill)).is_none_or(|r| r.tuned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::{Agent, Queue, QueueCell, Skill};

    fn snapshot(methods: &[Option<EvaluationMethod>], cells: Vec<QueueCell>) -> Snapshot {
        Snapshot {
            skills: (0..3)
                .map(|i| Skill {
                    id: format!("s{i}"),
                    name: format!("Skill {i}"),
                })
                .collect(),
            tunable: vec![true; 3],
            queues: methods
                .iter()
                .enumerate()
                .map(|(i, m)| Queue {
                    id: format!("q{i}"),
                    name: Some(format!("Queue {i}")),
                    method: *m,
                })
                .collect(),
            queues_listed: true,
            agents: vec![Agent {
                id: "a".into(),
                name: "A".into(),
                manager_id: None,
                skills: vec![(0, 1.0), (1, 1.0), (2, 1.0)],
                cells,
                quality: None,
                csat: None,
            }],
            ..Snapshot::default()
        }
    }

    fn cell(skill: SkillIx, queue: QueueIx, handled: u32) -> QueueCell {
        QueueCell {
            skill,
            queue,
            handled,
            transferred: Some(0),
            handle_ms: 1.0,
        }
    }

    #[test]
    fn only_skills_whose_every_queue_ignores_skills_have_no_routing_effect() {
        use EvaluationMethod::{All, Best, None as Disregard};
        let s = snapshot(
            &[Some(Best), Some(Disregard), Some(All), Some(Disregard)],
            vec![
                // Skill 0: a NONE queue and a BEST one → ranked.
                cell(0, 1, 50),
                cell(0, 0, 10),
                // Skill 1: two NONE queues (and queue-less work) → no routing effect.
                cell(1, 1, 30),
                cell(1, 3, 20),
                cell(1, NO_QUEUE, 5),
                // Skill 2: ALL and NONE → matched.
                cell(2, 2, 5),
                cell(2, 3, 5),
            ],
        );
        let r = skill_routing(&s, false);
        assert_eq!(r[0].effect, RoutingEffect::Ranked);
        assert_eq!(r[0].queues[0].queue_id, "q1", "busiest first");
        assert_eq!(r[1].effect, RoutingEffect::NoRoutingEffect);
        assert!(!r[1].tuned);
        assert_eq!(r[1].without_queue, 5);
        assert_eq!(r[2].effect, RoutingEffect::Matched);
        assert!(r[0].tuned && r[2].tuned);
        assert!(!tunes(&r, 1) && tunes(&r, 0) && tunes(&r, 9));
        assert!(skill_routing(&s, true)[1].tuned, "configurable");
    }

    #[test]
    fn without_queue_data_or_known_methods_a_skill_is_tuned_as_before() {
        let s = snapshot(
            &[None, Some(EvaluationMethod::None)],
            vec![cell(0, NO_QUEUE, 50), cell(1, 0, 5), cell(1, 1, 5)],
        );
        let r = skill_routing(&s, false);
        assert_eq!(r[0].effect, RoutingEffect::Unknown);
        assert!(r[0].queues.is_empty());
        // A queue whose method is unknown might rank: not "no effect".
        assert_eq!(r[1].effect, RoutingEffect::Unknown);
        assert_eq!(r[2].effect, RoutingEffect::Unknown, "no data at all");
        assert!(r.iter().all(|r| r.tuned));
    }
}
