//! Property tests for the scoring policy: whatever the metrics and a valid policy,
//! `score::score` (and with case mix `score::score_with`) and `plan::decide` stay within
//! [floor, ceiling], never move more than
//! `max_step`, never lower a target because an agent got better, and never panic or
//! produce NaN — not even on NaN, infinite or negative inputs, which a bad analytics answer
//! or a future parser bug could hand them.

use proptest::prelude::*;
use skill_tuner::config::{Component, Components, RelativeRamps, SkillPolicy};
use skill_tuner::cycle::casemix::Expected;
use skill_tuner::cycle::plan::{decide, Decision};
use skill_tuner::cycle::score::{score, score_with, Relative, SkillPopulation};
use skill_tuner::org::{PairMetrics, ScoreStat};

const EPS: f64 = 1e-9;

/// Valid policies (what `Settings::validate` accepts), with the usual component directions:
/// lower handle time and transfer rate are better, higher quality and CSAT are better.
fn policy() -> impl Strategy<Value = SkillPolicy> {
    (
        (0.0..=5.0f64, 0.0..=5.0f64),
        0.01..=1.0f64,
        0.05..=5.0f64,
        0.0..=2.0f64,
        prop::sample::select(vec![0.01, 0.1, 0.25, 0.5, 1.0]),
        0.0..=50.0f64,
        [0.0..=1.0f64, 0.0..=1.0f64, 0.0..=1.0f64, 0.0..=1.0f64],
        (60.0..=600.0f64, 0.0..=0.2f64, 60.0..=99.0f64),
    )
        .prop_map(
            |((a, b), smoothing, max_step, dead_band, round_to, shrinkage, w, (aht, tr, q))| {
                let total: f64 = w.iter().sum();
                let w = if total > 0.0 {
                    w.map(|x| x / total)
                } else {
                    [0.25; 4]
                };
                SkillPolicy {
                    components: Components {
                        handle_time: Some(Component {
                            weight: w[0],
                            target: aht,
                            limit: aht * 2.0,
                        }),
                        transfer_rate: Some(Component {
                            weight: w[1],
                            target: tr,
                            limit: tr + 0.3,
                        }),
                        quality: Some(Component {
                            weight: w[2],
                            target: q,
                            limit: q - 30.0,
                        }),
                        csat: Some(Component {
                            weight: w[3],
                            target: q,
                            limit: q - 40.0,
                        }),
                    },
                    min_interactions: 1,
                    shrinkage,
                    smoothing,
                    max_step,
                    dead_band,
                    round_to,
                    floor: a.min(b),
                    ceiling: a.max(b),
                }
            },
        )
}

fn pair(handled: u64, aht_secs: f64, transferred: u64) -> PairMetrics {
    PairMetrics {
        handled,
        handle_ms: handled as f64 * aht_secs * 1000.0,
        transferred: Some(transferred.min(handled)),
    }
}

fn stat(count: u64, mean: f64) -> Option<ScoreStat> {
    (count > 0).then_some(ScoreStat {
        count,
        sum: count as f64 * mean,
    })
}

fn population() -> impl Strategy<Value = SkillPopulation> {
    (0u64..10_000, 30.0..1500.0f64, 0.0..0.5f64).prop_map(|(handled, aht, tr)| SkillPopulation {
        handled,
        mean_aht_secs: Some(aht),
        mean_transfer_rate: Some(tr),
    })
}

/// Any f64, weighted toward the nasty ones.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        -1e6..1e6f64,
        any::<f64>(),
    ]
}

/// The value a decision leaves the skill at.
fn result_of(d: &Decision, current: f64) -> f64 {
    match d {
        Decision::Change { to } => *to,
        Decision::Keep(_) => current,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// From within [floor, ceiling], a change stays within it, moves at most `max_step`, in
    /// the direction of the target, on the rounding grid.
    #[test]
    fn decide_stays_in_bounds_and_within_one_step(
        p in policy(),
        c in 0.0..=1.0f64,
        target in -1.0..=6.0f64,
    ) {
        let current = p.floor + c * (p.ceiling - p.floor);
        if let Decision::Change { to } = decide(&p, current, target) {
            prop_assert!(to.is_finite());
            prop_assert!(to >= p.floor - EPS && to <= p.ceiling + EPS, "{to} outside [{}, {}]", p.floor, p.ceiling);
            prop_assert!((to - current).abs() <= p.max_step + EPS, "{current} → {to} exceeds {}", p.max_step);
            prop_assert!((to - current).abs() + EPS >= p.dead_band, "{current} → {to} is inside the dead band {}", p.dead_band);
            let clamped = target.clamp(p.floor, p.ceiling);
            prop_assert!((to - current) * (clamped - current) > 0.0, "moved away from the target");
            let steps = to / p.round_to;
            prop_assert!((steps - steps.round()).abs() < 1e-6, "{to} is off the {} grid", p.round_to);
        }
    }

    /// A higher target never leaves the skill lower.
    #[test]
    fn decide_is_monotone_in_the_target(
        p in policy(),
        c in 0.0..=1.0f64,
        t1 in -1.0..=6.0f64,
        t2 in -1.0..=6.0f64,
    ) {
        let current = p.floor + c * (p.ceiling - p.floor);
        let (lo, hi) = (t1.min(t2), t1.max(t2));
        let a = result_of(&decide(&p, current, lo), current);
        let b = result_of(&decide(&p, current, hi), current);
        prop_assert!(a <= b + EPS, "target {lo} → {a}, target {hi} → {b}");
    }

    /// Garbage in (NaN, ∞, negative): no panic, and any change is a real proficiency.
    #[test]
    fn decide_never_panics_or_yields_nan(p in policy(), current in any_f64(), target in any_f64()) {
        if let Decision::Change { to } = decide(&p, current, target) {
            prop_assert!(to.is_finite() && (0.0..=5.0).contains(&to), "{current}, {target} → {to}");
        }
    }

    /// The target is within [floor, ceiling] and the combined score within [0, 1].
    #[test]
    fn score_stays_in_bounds(
        p in policy(),
        handled in 0u64..2_000,
        aht in 0.0..5_000.0f64,
        transferred in 0u64..2_000,
        (qn, qm) in (0u64..50, 0.0..=100.0f64),
        (cn, cm) in (0u64..50, 0.0..=100.0f64),
        pop in population(),
    ) {
        let m = pair(handled, aht, transferred);
        if let Some(s) = score(&p, Some(&m), stat(qn, qm), stat(cn, cm), &pop) {
            prop_assert!(s.target >= p.floor - EPS && s.target <= p.ceiling + EPS, "{} outside [{}, {}]", s.target, p.floor, p.ceiling);
            prop_assert!((0.0..=1.0).contains(&s.combined));
        }
    }

    /// Better handle time, fewer transfers, better quality or CSAT never lower the target.
    #[test]
    fn score_is_monotone_in_each_component(
        p in policy(),
        handled in 1u64..2_000,
        (aht1, aht2) in (0.0..3_000.0f64, 0.0..3_000.0f64),
        (tr1, tr2) in (0u64..2_000, 0u64..2_000),
        (qn, q1, q2) in (1u64..50, 0.0..=100.0f64, 0.0..=100.0f64),
        (cn, c1, c2) in (1u64..50, 0.0..=100.0f64, 0.0..=100.0f64),
        pop in population(),
    ) {
        let target = |aht: f64, tr: u64, q: f64, c: f64| {
            score(&p, Some(&pair(handled, aht, tr)), stat(qn, q), stat(cn, c), &pop)
                .map(|s| s.target)
        };
        let (aht_good, aht_bad) = (aht1.min(aht2), aht1.max(aht2));
        let (tr_good, tr_bad) = (tr1.min(tr2), tr1.max(tr2));
        let (q_good, q_bad) = (q1.max(q2), q1.min(q2));
        let (c_good, c_bad) = (c1.max(c2), c1.min(c2));
        let base = target(aht_bad, tr_bad, q_bad, c_bad);
        for better in [
            target(aht_good, tr_bad, q_bad, c_bad),
            target(aht_bad, tr_good, q_bad, c_bad),
            target(aht_bad, tr_bad, q_good, c_bad),
            target(aht_bad, tr_bad, q_bad, c_good),
        ] {
            prop_assert!(better.unwrap() + EPS >= base.unwrap(), "{better:?} < {base:?}");
        }
    }

    /// With case mix: within bounds, never NaN (whatever the expectation, garbage included),
    /// and a faster agent on the same work never gets a lower target.
    #[test]
    fn case_mix_scores_stay_in_bounds_and_monotone(
        p in policy(),
        handled in 1u64..2_000,
        (aht1, aht2) in (0.0..3_000.0f64, 0.0..3_000.0f64),
        transferred in 0u64..2_000,
        expected_ms in any_f64(),
        expected_transfers in any_f64(),
        pop in population(),
    ) {
        let ramps = RelativeRamps::default();
        let relative = Relative {
            expected: Expected { handled, handle_ms: expected_ms, transfers: expected_transfers },
            ramps: &ramps,
        };
        let target = |aht: f64| {
            score_with(&p, Some(&pair(handled, aht, transferred)), None, None, &pop, Some(relative))
        };
        let (good, bad) = (target(aht1.min(aht2)), target(aht1.max(aht2)));
        for s in good.iter().chain(bad.iter()) {
            prop_assert!(s.combined.is_finite() && (0.0..=1.0).contains(&s.combined), "combined {}", s.combined);
            prop_assert!(s.target >= p.floor - EPS && s.target <= p.ceiling + EPS, "target {}", s.target);
        }
        if let (Some(good), Some(bad)) = (good, bad) {
            prop_assert!(good.target + EPS >= bad.target, "{} < {}", good.target, bad.target);
        }
    }

    /// Garbage metrics (NaN, ∞, negative sums) or population means: no panic, and a score,
    /// when there is one, is finite and within bounds.
    #[test]
    fn score_never_panics_or_yields_nan(
        p in policy(),
        handled in 0u64..100,
        handle_ms in any_f64(),
        transferred in proptest::option::of(0u64..100),
        q in proptest::option::of((0u64..10, any_f64())),
        c in proptest::option::of((0u64..10, any_f64())),
        pop_aht in proptest::option::of(any_f64()),
        pop_tr in proptest::option::of(any_f64()),
    ) {
        let m = PairMetrics { handled, handle_ms, transferred };
        let pop = SkillPopulation { handled: 1000, mean_aht_secs: pop_aht, mean_transfer_rate: pop_tr };
        let q = q.map(|(count, sum)| ScoreStat { count, sum });
        let c = c.map(|(count, sum)| ScoreStat { count, sum });
        if let Some(s) = score(&p, Some(&m), q, c, &pop) {
            prop_assert!(s.combined.is_finite() && (0.0..=1.0).contains(&s.combined), "combined {}", s.combined);
            prop_assert!(s.target.is_finite() && s.target >= p.floor - EPS && s.target <= p.ceiling + EPS, "target {}", s.target);
            for comp in &s.components {
                prop_assert!(comp.normalized.is_finite() && comp.weight.is_finite());
            }
            // The decision on top of it is sound as well.
            if let Decision::Change { to } = decide(&p, 2.5, s.target) {
                prop_assert!(to.is_finite());
            }
        }
    }
}
