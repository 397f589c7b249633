//! The estimate of tuning's effect per interaction, from sums per unit (skill, or queue for
//! quality) over the baseline and over the experiment.
//!
//! For each arm the per-interaction value is a ratio of sums (Σ handle time ÷ Σ handled).
//! The raw estimate is the difference of the arms' ratios during the experiment; it is
//! adjusted by the same difference over the baseline days, scaled by the regression
//! coefficient of the one on the other (CUPED): random assignment makes the baseline
//! difference zero on average, so the adjustment removes noise, not effect. The variance is
//! a delete-one-unit jackknife within each arm: the units, not the interactions, were
//! randomised, so a busy skill's thousands of interactions count as one draw. The interval
//! uses Student's t on the units' degrees of freedom.

use super::{sequential, Arm, Metric};
use serde::Serialize;
use std::collections::BTreeMap;

/// Sums of one unit over the baseline (`pre`) and the experiment (`post`): `sum` of the
/// metric's raw values (ms, counts, scores) over `n` observations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitObs {
    pub unit: String,
    pub arm: Arm,
    pub pre_sum: f64,
    pub pre_n: f64,
    pub post_sum: f64,
    pub post_n: f64,
}

/// Everything an estimate needs, per metric.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observations {
    /// Days of the experiment covered (ended days since its start).
    pub days: u32,
    pub by_metric: BTreeMap<Metric, Vec<UnitObs>>,
}

/// What an estimate rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub tuned_units: usize,
    pub held_out_units: usize,
    /// Observations (see `per`) in each arm during the experiment.
    pub tuned_n: u64,
    pub held_out_n: u64,
    pub days: u32,
    /// What one observation is.
    pub per: &'static str,
}

/// The plain-language judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    Helps,
    Harms,
    NoDetectableEffectYet,
    NotEnoughData,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    /// For "no detectable effect yet": about how many more days would detect an effect of
    /// the estimate's size (at least the harm bound) with 80 % power; `None` when the days so
    /// far already would have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub more_days: Option<u32>,
    pub text: String,
}

/// The always-valid harm test on one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Harm {
    /// The bound as a share of the held-out arm's level, and in the metric's unit.
    pub bound_share: f64,
    pub bound: f64,
    /// How far the estimate is past the bound in the worse direction (negative: short of it).
    pub excess: f64,
    /// The sequential boundary `excess` must pass.
    pub boundary: f64,
    pub shown: bool,
}

/// The estimated effect of tuning on one metric, per interaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricEffect {
    pub metric: Metric,
    pub unit: &'static str,
    /// Tuned minus held out, per interaction, in `unit`.
    pub estimate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub std_error: f64,
    /// The held-out arm's level during the experiment, in `unit`.
    pub held_out_level: Option<f64>,
    pub sample: Sample,
    pub verdict: Verdict,
    pub harm: Harm,
}

/// `skill-tuner effect`: every judged metric, and the experiment it rests on. Also what the
/// ledger keeps per day (`effect_days`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectReport {
    pub design: String,
    pub start: chrono::NaiveDate,
    /// The last day counted.
    pub through: chrono::NaiveDate,
    pub days: u32,
    pub salt: String,
    pub holdout_share: f64,
    pub tuned_skills: usize,
    pub held_out_skills: usize,
    pub metrics: Vec<MetricEffect>,
    /// Some metric shows harm beyond its bound by the sequential test.
    pub harm_shown: bool,
}

impl EffectReport {
    /// The first metric showing harm, for the pause's reason.
    pub fn harmed(&self) -> Option<&MetricEffect> {
        self.metrics.iter().find(|m| m.harm.shown)
    }

    /// The table `effect` prints.
    pub fn render(&self) -> String {
        let mut out = format!(
            "experiment since {} ({} days through {}): {} skills tuned, {} held out ({}, salt {:?})\n\n",
            self.start,
            self.days,
            self.through,
            self.tuned_skills,
            self.held_out_skills,
            self.design,
            self.salt
        );
        out.push_str(&format!(
            "{:<14} {:>22} {:>26} {:>28}  verdict\n",
            "metric", "effect per interaction", "95 % CI", "sample (tuned / held out)"
        ));
        for m in &self.metrics {
            let sample = format!(
                "{} / {} {}",
                m.sample.tuned_n,
                m.sample.held_out_n,
                short_per(m.metric)
            );
            out.push_str(&format!(
                "{:<14} {:>22} {:>26} {:>28}  {}\n",
                m.metric.label(),
                format!("{:+.2} {}", m.estimate, m.unit),
                format!("{:+.2} to {:+.2}", m.ci_low, m.ci_high),
                sample,
                m.verdict.text
            ));
        }
        out.push_str(&format!(
            "\nunits: {} tuned and {} held-out skills ({}); quality by queues whose skills are all in one arm\n",
            self.metrics
                .first()
                .map_or(0, |m| m.sample.tuned_units),
            self.metrics
                .first()
                .map_or(0, |m| m.sample.held_out_units),
            "intervals count skills, not interactions"
        ));
        if let Some(m) = self.harmed() {
            out.push_str(&format!(
                "harm beyond the bound shows on {} (sequential test): {:+.2} {} past a bound of {:.2} {}\n",
                m.metric.label(),
                m.harm.excess,
                m.unit,
                m.harm.bound,
                m.unit
            ));
        }
        out
    }
}

fn short_per(m: Metric) -> &'static str {
    match m {
        Metric::HandleTime | Metric::TransferRate => "handled",
        Metric::Quality => "evals",
        Metric::Csat => "surveys",
        Metric::ServiceLevel => "offered",
    }
}

/// Per-arm sums and linearised contributions.
struct ArmSums<'a> {
    units: Vec<&'a UnitObs>,
    pre_sum: f64,
    pre_n: f64,
    post_sum: f64,
    post_n: f64,
}

impl<'a> ArmSums<'a> {
    /// The units of `arm` with data, but the one at index `skip` of `obs`.
    fn of(obs: &'a [UnitObs], arm: Arm, skip: Option<usize>) -> Self {
        let units: Vec<&UnitObs> = obs
            .iter()
            .enumerate()
            .filter(|(i, u)| Some(*i) != skip && u.arm == arm && (u.post_n > 0.0 || u.pre_n > 0.0))
            .map(|(_, u)| u)
            .collect();
        let sum = |f: fn(&UnitObs) -> f64| units.iter().map(|u| f(u)).sum::<f64>();
        ArmSums {
            pre_sum: sum(|u| u.pre_sum),
            pre_n: sum(|u| u.pre_n),
            post_sum: sum(|u| u.post_sum),
            post_n: sum(|u| u.post_n),
            units,
        }
    }

    fn post(&self) -> Option<f64> {
        (self.post_n > 0.0).then(|| self.post_sum / self.post_n)
    }

    fn pre(&self) -> Option<f64> {
        (self.pre_n > 0.0).then(|| self.pre_sum / self.pre_n)
    }

    /// Each unit's (post, pre) contribution to its arm's ratios.
    fn influence(&self) -> Vec<(f64, f64)> {
        let (rpost, rpre) = (self.post().unwrap_or(0.0), self.pre());
        self.units
            .iter()
            .map(|u| {
                let a = (u.post_sum - rpost * u.post_n) / self.post_n;
                let b = rpre.map_or(0.0, |r| (u.pre_sum - r * u.pre_n) / self.pre_n);
                (a, b)
            })
            .collect()
    }
}

/// The point estimate of `obs`: (τ̂, the linearised variance, whether the baseline adjusted
/// it, the held-out level); `None` without two units with data in each arm.
fn point(obs: &[UnitObs], skip: Option<usize>) -> Option<(f64, f64, bool, f64)> {
    let t = ArmSums::of(obs, Arm::Tuned, skip);
    let c = ArmSums::of(obs, Arm::HeldOut, skip);
    let (tp, cp) = (t.post()?, c.post()?);
    let with_post = |a: &ArmSums| a.units.iter().filter(|u| u.post_n > 0.0).count();
    if with_post(&t) < 2 || with_post(&c) < 2 {
        return None;
    }
    let (it, ic) = (t.influence(), c.influence());
    let dpost = tp - cp;
    let dpre = match (t.pre(), c.pre()) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    let all = || it.iter().chain(ic.iter());
    let sbb: f64 = all().map(|(_, b)| b * b).sum();
    let sab: f64 = all().map(|(a, b)| a * b).sum();
    let beta = match dpre {
        Some(_) if sbb > 0.0 => sab / sbb,
        _ => 0.0,
    };
    let tau = dpost - beta * dpre.unwrap_or(0.0);
    let var_arm = |inf: &[(f64, f64)]| {
        let n = inf.len() as f64;
        let ss: f64 = inf.iter().map(|(a, b)| (a - beta * b).powi(2)).sum();
        ss * n / (n - 1.0)
    };
    Some((tau, var_arm(&it) + var_arm(&ic), beta != 0.0, cp))
}

/// The raw estimate, before scaling: (τ̂, variance, degrees of freedom, held-out level).
///
/// The variance is the stratified delete-one-unit jackknife (each arm's units left out one at
/// a time, the whole estimate — ratios, baseline coefficient — recomputed): with a few dozen
/// skills of very different sizes and rare events (transfers), the linearised variance runs
/// small, and the jackknife's is the more honest; the linearised one stands in only when too
/// few units leave the jackknife nothing to recompute.
fn raw(obs: &[UnitObs]) -> Option<(f64, f64, f64, f64)> {
    let (tau, linear, adjusted, level) = point(obs, None)?;
    let has_data = |u: &UnitObs| u.post_n > 0.0 || u.pre_n > 0.0;
    let mut variance = 0.0;
    for arm in [Arm::Tuned, Arm::HeldOut] {
        let leave_out: Vec<f64> = obs
            .iter()
            .enumerate()
            .filter(|(_, u)| u.arm == arm && has_data(u))
            .filter_map(|(i, _)| point(obs, Some(i)).map(|p| p.0))
            .collect();
        let n = leave_out.len() as f64;
        if n < 2.0 {
            variance = linear;
            break;
        }
        let mean = leave_out.iter().sum::<f64>() / n;
        variance += (n - 1.0) / n * leave_out.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
    }
    let count = obs.iter().filter(|u| has_data(u)).count() as f64;
    let df = count - if adjusted { 3.0 } else { 2.0 };
    Some((tau, variance, df.max(1.0), level))
}

/// The effect on `metric` with its interval, verdict and harm test. `bound_share` is the harm
/// bound as a share of the held-out level; `alpha` the harm test's error rate for this metric.
pub fn estimate(obs: &Observations, metric: Metric, bound_share: f64, alpha: f64) -> MetricEffect {
    let units = obs.by_metric.get(&metric).map(Vec::as_slice).unwrap_or(&[]);
    let count = |arm: Arm| {
        units
            .iter()
            .filter(|u| u.arm == arm && u.post_n > 0.0)
            .count()
    };
    let n = |arm: Arm| {
        units
            .iter()
            .filter(|u| u.arm == arm)
            .map(|u| u.post_n)
            .sum::<f64>() as u64
    };
    let sample = Sample {
        tuned_units: count(Arm::Tuned),
        held_out_units: count(Arm::HeldOut),
        tuned_n: n(Arm::Tuned),
        held_out_n: n(Arm::HeldOut),
        days: obs.days,
        per: metric.per(),
    };
    let scale = metric.scale();
    let Some((tau, var, df, level)) = raw(units) else {
        return MetricEffect {
            metric,
            unit: metric.unit(),
            estimate: 0.0,
            ci_low: f64::NEG_INFINITY,
            ci_high: f64::INFINITY,
            std_error: f64::INFINITY,
            held_out_level: None,
            sample,
            verdict: Verdict {
                kind: VerdictKind::NotEnoughData,
                more_days: None,
                text: "not enough data yet (each arm needs two units with data)".into(),
            },
            harm: Harm {
                bound_share,
                bound: 0.0,
                excess: 0.0,
                boundary: f64::INFINITY,
                shown: false,
            },
        };
    };
    let (tau, se, level) = (tau * scale, var.sqrt() * scale.abs(), level * scale);
    let t = t_quantile(0.975, df);
    let (lo, hi) = (tau - t * se, tau + t * se);
    let bound = bound_share * level.abs();
    let sign = metric.worse_sign();
    let excess = sign * tau - bound;
    let prior = if bound > 0.0 { bound } else { se.max(1e-12) };
    let boundary = sequential::boundary(se * se, prior, alpha);
    let harm = Harm {
        bound_share,
        bound,
        excess,
        boundary,
        shown: sequential::shows_harm(excess, se * se, prior, alpha),
    };
    let verdict = verdict(metric, tau, lo, hi, se, t, bound, obs.days);
    MetricEffect {
        metric,
        unit: metric.unit(),
        estimate: tau,
        ci_low: lo,
        ci_high: hi,
        std_error: se,
        held_out_level: Some(level),
        sample,
        verdict,
        harm,
    }
}

/// "helps" or "harms" when the interval excludes zero; otherwise how many more days would
/// detect an effect as large as the estimate (at least the harm bound) with 80 % power,
/// assuming the standard error shrinks with the square root of the days.
#[allow(clippy::too_many_arguments)]
pub(crate) fn verdict(
    metric: Metric,
    tau: f64,
    lo: f64,
    hi: f64,
    se: f64,
    t: f64,
    bound: f64,
    days: u32,
) -> Verdict {
    let unit = metric.unit();
    if lo > 0.0 || hi < 0.0 {
        let worse = tau * metric.worse_sign() > 0.0;
        let (kind, word) = if worse {
            (VerdictKind::Harms, "harms")
        } else {
            (VerdictKind::Helps, "helps")
        };
        return Verdict {
            kind,
            more_days: None,
            text: word.into(),
        };
    }
    let size = tau.abs().max(bound);
    let needed = (size > 0.0 && se.is_finite() && days > 0)
        .then(|| ((t + 0.8416) * se / size).powi(2) * f64::from(days));
    let more = needed
        .filter(|&n| n > f64::from(days))
        .map(|n| (n - f64::from(days)).ceil() as u32);
    let text = match (more, needed) {
        (Some(n), _) => format!(
            "no detectable effect yet, need about {n} more days (to detect ±{size:.2} {unit})"
        ),
        // Enough days already: an effect of that size would most likely have shown.
        (None, Some(_)) => {
            format!("no detectable effect (one of ±{size:.2} {unit} would have shown)")
        }
        (None, None) => "no detectable effect yet".into(),
    };
    Verdict {
        kind: VerdictKind::NoDetectableEffectYet,
        more_days: more,
        text,
    }
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Student's t quantile by the Cornish–Fisher expansion around the normal (within 0.5 % of
/// the exact value from 3 degrees of freedom on).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let z = normal_quantile(p);
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * df)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * df.powi(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twenty skills per arm; every tuned skill's handle time is exactly 10 s lower than its
    /// baseline, every held-out skill's unchanged; the skills differ a lot in level.
    fn fixture(effect_ms: f64) -> Observations {
        noisy(effect_ms, 1_000.0)
    }

    /// As [`fixture`], with skills wobbling by ±`wobble` ms between baseline and experiment.
    fn noisy(effect_ms: f64, wobble: f64) -> Observations {
        let mut units = Vec::new();
        for i in 0..40 {
            let arm = if i % 2 == 0 { Arm::Tuned } else { Arm::HeldOut };
            let level = 300_000.0 + 7_000.0 * f64::from(i);
            let wobble = if i % 4 < 2 { wobble } else { -wobble };
            let n = 1_000.0 + 10.0 * f64::from(i);
            let post = level + wobble + if arm == Arm::Tuned { effect_ms } else { 0.0 };
            units.push(UnitObs {
                unit: format!("skill-{i}"),
                arm,
                pre_sum: level * n,
                pre_n: n,
                post_sum: post * n,
                post_n: n,
            });
        }
        Observations {
            days: 14,
            by_metric: [(Metric::HandleTime, units)].into_iter().collect(),
        }
    }

    #[test]
    fn a_known_effect_is_estimated_inside_its_interval_with_the_right_verdict() {
        let e = estimate(&fixture(-10_000.0), Metric::HandleTime, 0.02, 0.01);
        assert!((e.estimate + 10.0).abs() < 0.5, "{e:?}");
        assert!(e.ci_low < -10.0 && -10.0 < e.ci_high, "{e:?}");
        assert_eq!(e.verdict.kind, VerdictKind::Helps);
        assert_eq!(e.sample.tuned_units, 20);
        assert_eq!(e.sample.held_out_units, 20);
        assert!(!e.harm.shown);

        let worse = estimate(&fixture(30_000.0), Metric::HandleTime, 0.02, 0.01);
        assert_eq!(worse.verdict.kind, VerdictKind::Harms);
        assert!(worse.harm.shown, "{:?}", worse.harm);

        // No effect, precisely measured: an effect of the bound's size would have shown.
        let none = estimate(&fixture(0.0), Metric::HandleTime, 0.02, 0.01);
        assert_eq!(none.verdict.kind, VerdictKind::NoDetectableEffectYet);
        assert_eq!(none.verdict.more_days, None, "{none:?}");
        assert!(none
            .verdict
            .text
            .starts_with("no detectable effect (one of ±"));

        // No effect, noisily measured: more days needed, and how many.
        let noisy = estimate(&noisy(0.0, 40_000.0), Metric::HandleTime, 0.02, 0.01);
        assert_eq!(noisy.verdict.kind, VerdictKind::NoDetectableEffectYet);
        let more = noisy.verdict.more_days.unwrap_or(0);
        assert!(more >= 1, "{noisy:?}");
        assert_eq!(
            noisy.verdict.text,
            format!(
                "no detectable effect yet, need about {more} more days (to detect ±{:.2} s)",
                noisy.harm.bound
            )
        );
    }

    #[test]
    fn the_json_names_estimate_interval_sample_and_verdict() {
        let e = estimate(&fixture(-10_000.0), Metric::HandleTime, 0.02, 0.01);
        let v = serde_json::to_value(&e).unwrap();
        for key in [
            "metric",
            "unit",
            "estimate",
            "ci_low",
            "ci_high",
            "std_error",
            "sample",
            "verdict",
            "harm",
        ] {
            assert!(v.get(key).is_some(), "{key} in {v}");
        }
        assert_eq!(v["metric"], "handle_time");
        assert_eq!(v["unit"], "s");
        assert_eq!(v["verdict"]["kind"], "helps");
        assert_eq!(v["sample"]["tuned_units"], 20);
        assert_eq!(v["sample"]["days"], 14);
    }

    #[test]
    fn too_few_units_is_not_enough_data() {
        let mut obs = fixture(0.0);
        if let Some(units) = obs.by_metric.get_mut(&Metric::HandleTime) {
            units.truncate(3);
        }
        let e = estimate(&obs, Metric::HandleTime, 0.02, 0.01);
        assert_eq!(e.verdict.kind, VerdictKind::NotEnoughData);
        assert!(!e.harm.shown);
    }

    #[test]
    fn quantiles_match_the_tables() {
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!((t_quantile(0.975, 10.0) - 2.228).abs() < 0.01);
        assert!((t_quantile(0.975, 40.0) - 2.021).abs() < 0.002);
    }
}
