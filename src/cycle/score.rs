//! Scoring: metrics → a 0..1 score with its components → a target proficiency 0.0–5.0.
//!
//! Each component is normalised with one documented curve, a linear ramp:
//! `1` at `target` or better, `0` at `limit` or worse, linear between; `target < limit`
//! means lower is better (handle time, transfer rate), `target > limit` higher is better
//! (quality, CSAT). The score is the weighted mean of the components that have data
//! (weights renormalised over them), and the target proficiency is `5 × score`, rounded to
//! the policy's step and clamped to its floor and ceiling. Every score keeps its components
//! so a person can see why.
//!
//! With case mix (`policy.case_mix`), handle time and transfers are ramped as ratios instead:
//! the agent's own numbers over what the same work (skill and queue) takes the average agent
//! ([`super::casemix`]), shrunk toward 1 (as expected) by `shrinkage` pseudo-interactions, on
//! `policy.relative`'s ramps. Quality and CSAT keep their absolute ramps.

use super::casemix::{CaseMix, Expected};
use crate::config::{Component, PolicySettings, RelativeRamp, RelativeRamps, SkillPolicy};
use crate::org::{Agent, PairMetrics, ScoreStat, SkillIx, Snapshot};
use serde::Serialize;

/// The linear ramp: 1 at `target` or better, 0 at `limit` or worse.
pub fn ramp(value: f64, target: f64, limit: f64) -> f64 {
    if target == limit {
        return if value == target { 1.0 } else { 0.0 };
    }
    ((value - limit) / (target - limit)).clamp(0.0, 1.0)
}

/// Population means the shrinkage pulls small samples toward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SkillPopulation {
    pub handled: u64,
    pub mean_aht_secs: Option<f64>,
    pub mean_transfer_rate: Option<f64>,
}

/// Per-skill population means, from every in-scope agent's metrics.
pub(crate) fn populations(snapshot: &Snapshot) -> Vec<SkillPopulation> {
    let mut sums = vec![(0u64, 0f64, 0u64); snapshot.skills.len()];
    for agent in &snapshot.agents {
        for c in &agent.cells {
            let s = &mut sums[usize::from(c.skill)];
            s.0 += u64::from(c.handled);
            s.1 += c.handle_ms;
            s.2 += u64::from(c.transferred.unwrap_or(0));
        }
    }
    sums.into_iter()
        .map(|(handled, ms, transferred)| SkillPopulation {
            handled,
            mean_aht_secs: (handled > 0).then(|| ms / handled as f64 / 1000.0),
            mean_transfer_rate: (handled > 0).then(|| transferred as f64 / handled as f64),
        })
        .collect()
}

/// One component of a score, with what went into it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentScore {
    pub name: &'static str,
    /// The agent's own value (seconds, share, or 0–100 score).
    pub observed: f64,
    /// With case mix: what the same work takes the average agent, in `observed`'s unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
    /// What the ramp was applied to: `observed` after shrinkage toward the population mean
    /// or, with case mix, the ratio observed ÷ expected after shrinkage toward 1.
    pub used: f64,
    /// The ramp's output, 0..1.
    pub normalized: f64,
    /// The effective weight after renormalising over components with data.
    pub weight: f64,
}

/// A score and the proficiency it maps to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub components: Vec<ComponentScore>,
    /// Weighted mean of the components, 0..1.
    pub combined: f64,
    /// `5 × combined`, rounded to the step and clamped to floor/ceiling.
    pub target: f64,
    /// Handled interactions behind the per-skill components.
    pub interactions: u64,
}

impl Score {
    /// One line for people: `handle_time 312s→0.98×0.50, transfer_rate 8.0%→0.90×0.30 = 0.93`;
    /// with case mix, `handle_time 540s vs 600s expected ×0.91→0.59×0.50` (the ratio after
    /// shrinkage).
    pub fn explain(&self) -> String {
        let parts: Vec<String> = self
            .components
            .iter()
            .map(|c| match c.expected {
                Some(expected) => format!(
                    "{} {} vs {} expected ×{:.2}→{:.2}×{:.2}",
                    c.name,
                    fmt_value(c.name, c.observed),
                    fmt_value(c.name, expected),
                    c.used,
                    c.normalized,
                    c.weight
                ),
                None => format!(
                    "{} {}→{:.2}×{:.2}",
                    c.name,
                    fmt_value(c.name, c.used),
                    c.normalized,
                    c.weight
                ),
            })
            .collect();
        format!(
            "{} = {:.2} (n={})",
            parts.join(", "),
            self.combined,
            self.interactions
        )
    }
}

fn fmt_value(name: &str, value: f64) -> String {
    match name {
        "handle_time" => format!("{value:.0}s"),
        "transfer_rate" => format!("{:.1}%", value * 100.0),
        _ => format!("{value:.1}"),
    }
}

/// Rounds to the nearest multiple of `step`.
pub fn round_to(value: f64, step: f64) -> f64 {
    if step <= 0.0 {
        return value;
    }
    // Work in integer steps to keep 0.1-style steps exact enough.
    ((value / step).round() * step * 1e9).round() / 1e9
}

/// Mixes `k` pseudo-observations of the population mean into an agent's mean.
fn shrink(observed: f64, n: u64, population: Option<f64>, k: f64) -> f64 {
    match population {
        // A non-finite population mean would poison every agent's value: don't shrink.
        Some(mean) if k > 0.0 && mean.is_finite() => {
            (observed * n as f64 + mean * k) / (n as f64 + k)
        }
        _ => observed,
    }
}

/// What case-mix scoring needs for one agent and skill: what their work was expected to
/// take, and the ramps its ratios go through.
#[derive(Debug, Clone, Copy)]
pub struct Relative<'a> {
    pub expected: Expected,
    pub ramps: &'a RelativeRamps,
}

/// One component's inputs before the ramp.
struct Part {
    name: &'static str,
    weight: f64,
    observed: f64,
    expected: Option<f64>,
    used: f64,
    ramp: (f64, f64),
}

/// Scores one agent on one skill against the components' absolute ramps. `None` when no
/// component has data.
pub fn score(
    policy: &SkillPolicy,
    pair: Option<&PairMetrics>,
    quality: Option<ScoreStat>,
    csat: Option<ScoreStat>,
    population: &SkillPopulation,
) -> Option<Score> {
    score_with(policy, pair, quality, csat, population, None)
}

/// Scores one agent on one skill, handle time and transfers against what their work was
/// expected to take when `relative` is given (case mix). `None` when no component has data.
pub fn score_with(
    policy: &SkillPolicy,
    pair: Option<&PairMetrics>,
    quality: Option<ScoreStat>,
    csat: Option<ScoreStat>,
    population: &SkillPopulation,
    relative: Option<Relative<'_>>,
) -> Option<Score> {
    let mut parts: Vec<(ComponentScore, f64)> = Vec::new();
    let mut push = |part: Option<Part>| {
        let Some(p) = part else {
            return;
        };
        // A NaN, infinite or negative value (a broken analytics answer: times, rates and
        // 0–100 scores are never negative) is no data, not a score — NaN would poison the
        // proficiency, and a negative time would score as the best.
        let sane = |v: f64| v.is_finite() && v >= 0.0;
        if p.weight > 0.0 && sane(p.observed) && sane(p.used) && p.expected.is_none_or(sane) {
            parts.push((
                ComponentScore {
                    name: p.name,
                    observed: p.observed,
                    expected: p.expected,
                    used: p.used,
                    normalized: ramp(p.used, p.ramp.0, p.ramp.1),
                    weight: p.weight,
                },
                p.weight,
            ));
        }
    };
    let handled = pair.map_or(0, |p| p.handled);
    let k = policy.shrinkage;
    let aht = pair.and_then(PairMetrics::aht_secs);
    let transfer = pair.and_then(PairMetrics::transfer_rate);
    let absolute = |name, comp: Option<Component>, observed: Option<f64>, mean: Option<f64>| {
        let (c, observed) = (comp?, observed?);
        Some(Part {
            name,
            weight: c.weight,
            observed,
            expected: None,
            used: shrink(observed, handled, mean, k),
            ramp: (c.target, c.limit),
        })
    };
    let against =
        |name, comp: Option<Component>, observed: Option<f64>, expected: f64, r: RelativeRamp| {
            let (c, observed) = (comp?, observed?);
            // Nothing expected (no transfers anywhere in this work): no measure of the agent.
            (expected > 0.0).then(|| Part {
                name,
                weight: c.weight,
                observed,
                expected: Some(expected),
                used: shrink(observed / expected, handled, Some(1.0), k),
                ramp: (r.target, r.limit),
            })
        };
    let (handle_part, transfer_part) = match relative {
        Some(Relative { expected: e, ramps }) if e.handled > 0 => (
            against(
                "handle_time",
                policy.components.handle_time,
                aht,
                e.handle_ms / e.handled as f64 / 1000.0,
                ramps.handle_time,
            ),
            against(
                "transfer_rate",
                policy.components.transfer_rate,
                transfer,
                e.transfers / e.handled as f64,
                ramps.transfer_rate,
            ),
        ),
        _ => (
            absolute(
                "handle_time",
                policy.components.handle_time,
                aht,
                population.mean_aht_secs,
            ),
            absolute(
                "transfer_rate",
                policy.components.transfer_rate,
                transfer,
                population.mean_transfer_rate,
            ),
        ),
    };
    push(handle_part);
    push(transfer_part);
    let unshrunk = |name, comp: Option<Component>, value: Option<f64>| {
        let (c, observed) = (comp?, value?);
        Some(Part {
            name,
            weight: c.weight,
            observed,
            expected: None,
            used: observed,
            ramp: (c.target, c.limit),
        })
    };
    let q = quality.and_then(|q| q.mean());
    push(unshrunk("quality", policy.components.quality, q));
    let c = csat.and_then(|c| c.mean());
    push(unshrunk("csat", policy.components.csat, c));

    let total: f64 = parts.iter().map(|(_, w)| w).sum();
    if parts.is_empty() || total <= 0.0 {
        return None;
    }
    let mut combined = 0.0;
    let components = parts
        .into_iter()
        .map(|(mut c, w)| {
            c.weight = w / total;
            combined += c.normalized * c.weight;
            c
        })
        .collect();
    let combined = combined.clamp(0.0, 1.0);
    let target = round_to(5.0 * combined, policy.round_to).clamp(policy.floor, policy.ceiling);
    Some(Score {
        components,
        combined,
        target,
        interactions: handled,
    })
}

/// Scores agents of one snapshot: what scoring needs beyond one agent — each skill's
/// population and, with case mix, the fitted demand of every skill on every queue — made once.
#[derive(Debug, Clone)]
pub struct Scorer<'a> {
    policies: &'a PolicySettings,
    populations: Vec<SkillPopulation>,
    case_mix: Option<CaseMix>,
}

impl<'a> Scorer<'a> {
    pub fn new(snapshot: &Snapshot, policies: &'a PolicySettings) -> Self {
        Self {
            policies,
            populations: populations(snapshot),
            case_mix: policies.case_mix.then(|| CaseMix::estimate(snapshot)),
        }
    }

    /// The fitted demands, with case mix.
    pub fn case_mix(&self) -> Option<&CaseMix> {
        self.case_mix.as_ref()
    }

    /// Scores `agent` on `skill` under the skill's policy (`None`: no component has data).
    pub fn score(&self, snapshot: &Snapshot, agent: &Agent, skill: SkillIx) -> Option<Score> {
        let policy = self
            .policies
            .for_skill(&snapshot.skills.get(usize::from(skill))?.name);
        let relative = self.case_mix.as_ref().and_then(|fit| {
            Some(Relative {
                expected: fit.expected(agent, skill)?,
                ramps: &self.policies.relative,
            })
        });
        score_with(
            policy,
            agent.metrics_for(skill).as_ref(),
            agent.quality,
            agent.csat,
            self.populations.get(usize::from(skill))?,
            relative,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SkillPolicy {
        SkillPolicy {
            shrinkage: 0.0,
            ..SkillPolicy::default()
        }
    }

    #[test]
    fn ramp_runs_both_ways() {
        assert_eq!(ramp(300.0, 300.0, 900.0), 1.0);
        assert_eq!(ramp(900.0, 300.0, 900.0), 0.0);
        assert_eq!(ramp(600.0, 300.0, 900.0), 0.5);
        assert_eq!(ramp(100.0, 300.0, 900.0), 1.0);
        assert_eq!(ramp(75.0, 90.0, 60.0), 0.5);
        assert_eq!(ramp(95.0, 90.0, 60.0), 1.0);
    }

    #[test]
    fn weights_renormalise_over_components_with_data() {
        let pair = PairMetrics {
            handled: 40,
            handle_ms: 40.0 * 600_000.0,
            transferred: Some(8),
        };
        // No quality data: handle time (0.5) and transfers (0.3) share the weight 5:3.
        let s = score(
            &policy(),
            Some(&pair),
            None,
            None,
            &SkillPopulation::default(),
        )
        .unwrap();
        assert_eq!(s.components.len(), 2);
        let aht = &s.components[0];
        assert_eq!(aht.name, "handle_time");
        assert!((aht.weight - 0.625).abs() < 1e-9);
        assert!((aht.normalized - 0.5).abs() < 1e-9);
        // transfer rate 0.2: (0.2-0.35)/(0.05-0.35) = 0.5
        let expected = 0.5;
        assert!((s.combined - expected).abs() < 1e-9, "{}", s.combined);
        assert_eq!(s.target, 2.5);
        assert!(s.explain().contains("handle_time 600s"), "{}", s.explain());
    }

    #[test]
    fn negative_metrics_are_no_data_not_the_best_score() {
        let broken = PairMetrics {
            handled: 40,
            handle_ms: -1000.0,
            transferred: Some(0),
        };
        let s = score(
            &policy(),
            Some(&broken),
            None,
            None,
            &SkillPopulation::default(),
        )
        .unwrap();
        assert!(
            s.components.iter().all(|c| c.name != "handle_time"),
            "{s:?}"
        );
    }

    #[test]
    fn no_data_means_no_score_not_zero() {
        assert!(score(&policy(), None, None, None, &SkillPopulation::default()).is_none());
        let empty = PairMetrics::default();
        assert!(score(
            &policy(),
            Some(&empty),
            None,
            None,
            &SkillPopulation::default()
        )
        .is_none());
    }

    #[test]
    fn shrinkage_pulls_small_samples_to_the_mean() {
        let p = SkillPolicy {
            shrinkage: 20.0,
            ..SkillPolicy::default()
        };
        let pop = SkillPopulation {
            handled: 1000,
            mean_aht_secs: Some(600.0),
            mean_transfer_rate: Some(0.2),
        };
        let fast_few = PairMetrics {
            handled: 5,
            handle_ms: 5.0 * 300_000.0,
            transferred: None,
        };
        let s = score(&p, Some(&fast_few), None, None, &pop).unwrap();
        // (300*5 + 600*20) / 25 = 540
        assert!((s.components[0].used - 540.0).abs() < 1e-9);
        assert_eq!(s.components[0].observed, 300.0);
    }

    fn relative(expected_aht_secs: f64, expected_rate: f64, handled: u64) -> Relative<'static> {
        static RAMPS: std::sync::OnceLock<RelativeRamps> = std::sync::OnceLock::new();
        Relative {
            expected: Expected {
                handled,
                handle_ms: handled as f64 * expected_aht_secs * 1000.0,
                transfers: handled as f64 * expected_rate,
            },
            ramps: RAMPS.get_or_init(RelativeRamps::default),
        }
    }

    #[test]
    fn case_mix_ramps_the_ratio_to_what_the_work_demands() {
        let pair = PairMetrics {
            handled: 80,
            handle_ms: 80.0 * 480_000.0,
            transferred: Some(8),
        };
        let p = SkillPolicy {
            shrinkage: 20.0,
            ..SkillPolicy::default()
        };
        let s = score_with(
            &p,
            Some(&pair),
            None,
            None,
            &SkillPopulation::default(),
            Some(relative(600.0, 0.05, 80)),
        )
        .unwrap();
        let aht = &s.components[0];
        // 480 s against 600 s expected: 0.8, shrunk toward 1 by 20 of 100: 0.84 → ramp
        // (1.5 − 0.84) / (1.5 − 0.5) = 0.66.
        assert_eq!((aht.observed, aht.expected), (480.0, Some(600.0)));
        assert!((aht.used - 0.84).abs() < 1e-9, "{aht:?}");
        assert!((aht.normalized - 0.66).abs() < 1e-9);
        // 10 % against 5 %: 2.0, shrunk to 1.8 → (2 − 1.8) / 2 = 0.1.
        let tr = &s.components[1];
        assert!((tr.used - 1.8).abs() < 1e-9 && (tr.normalized - 0.1).abs() < 1e-9);
        assert_eq!(
            s.explain(),
            "handle_time 480s vs 600s expected ×0.84→0.66×0.62, transfer_rate 10.0% vs 5.0% expected ×1.80→0.10×0.37 = 0.45 (n=80)"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["components"][0]["expected"], 600.0);
        // Quality keeps its absolute ramp, with no `expected`.
        let q = score_with(
            &p,
            Some(&pair),
            Some(ScoreStat {
                count: 4,
                sum: 300.0,
            }),
            None,
            &SkillPopulation::default(),
            Some(relative(600.0, 0.05, 80)),
        )
        .unwrap();
        assert_eq!(q.components[2].name, "quality");
        assert_eq!(q.components[2].expected, None);
        assert!(serde_json::to_value(&q).unwrap()["components"][2]
            .get("expected")
            .is_none());
    }

    #[test]
    fn nothing_expected_is_no_measure_of_the_agent() {
        // No transfers anywhere in this work: the transfer component has no data, and the
        // weights renormalise over the rest.
        let pair = PairMetrics {
            handled: 50,
            handle_ms: 50.0 * 600_000.0,
            transferred: None,
        };
        let s = score_with(
            &policy(),
            Some(&pair),
            None,
            None,
            &SkillPopulation::default(),
            Some(relative(600.0, 0.0, 50)),
        )
        .unwrap();
        assert_eq!(s.components.len(), 1);
        assert_eq!(s.components[0].weight, 1.0);
        assert_eq!(s.combined, 0.5, "as the work demands");
        assert_eq!(s.target, 2.5);
    }

    #[test]
    fn target_respects_floor_ceiling_and_step() {
        let p = SkillPolicy {
            floor: 1.0,
            ceiling: 4.0,
            round_to: 0.5,
            ..policy()
        };
        let great = PairMetrics {
            handled: 50,
            handle_ms: 50.0 * 100_000.0,
            transferred: Some(0),
        };
        assert_eq!(
            score(&p, Some(&great), None, None, &SkillPopulation::default())
                .unwrap()
                .target,
            4.0
        );
        let awful = PairMetrics {
            handled: 50,
            handle_ms: 50.0 * 2_000_000.0,
            transferred: Some(50),
        };
        assert_eq!(
            score(&p, Some(&awful), None, None, &SkillPopulation::default())
                .unwrap()
                .target,
            1.0
        );
        assert_eq!(round_to(2.74, 0.5), 2.5);
        assert_eq!(round_to(2.76, 0.25), 2.75);
    }
}
