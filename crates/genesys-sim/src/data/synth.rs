//! Per-day synthetic performance numbers, derived on demand.
//!
//! Nothing here is stored: each (agent, skill, UTC day) is a pure function of the seed, so
//! any day in the past or future can be answered and memory stays flat at any org size.
//! Better agents (higher latent ability) handle faster, transfer less and score higher.

use crate::data::rng::{domain, Rng};

/// One statistical summary, as the aggregates API reports it (`count`, `sum`, `min`, `max`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) count: u64,
    pub(crate) sum: i64,
    pub(crate) min: i64,
    pub(crate) max: i64,
}

impl Stat {
    /// Adds one observation.
    pub(crate) fn observe(&mut self, v: i64) {
        if self.count == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        self.sum += v;
    }

    /// Adds `n` occurrences of a pure counter metric (only `count` is meaningful).
    pub(crate) fn add_count(&mut self, n: u64) {
        self.count += n;
    }

    pub(crate) fn merge(&mut self, o: &Stat) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *o;
            return;
        }
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.count += o.count;
        self.sum += o.sum;
    }
}

/// Traits of one agent, independent of skill.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AgentTraits {
    /// General latent ability (≈ N(0,1)).
    pub(crate) general: f64,
    /// Mean conversations per weekday per held skill.
    pub(crate) volume: f64,
    /// New agents have very few conversations.
    pub(crate) newcomer: bool,
}

/// Traits of one (agent, skill) pair.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PairTraits {
    /// Latent ability at this skill (≈ N(0,1), correlated with the agent's general ability).
    pub(crate) ability: f64,
    /// Some agents hold a skill on which they never get conversations.
    pub(crate) dormant: bool,
}

pub(crate) fn agent_traits(seed: u64, user: u32) -> AgentTraits {
    let mut r = Rng::keyed(&[seed, domain::AGENT_TRAITS, user as u64]);
    let general = r.normal();
    let newcomer = r.chance(0.05);
    let volume = if newcomer {
        r.range(0.05, 0.25)
    } else {
        r.range(1.0, 7.0)
    };
    AgentTraits {
        general,
        volume,
        newcomer,
    }
}

pub(crate) fn pair_traits(seed: u64, user: u32, skill: u16, agent: &AgentTraits) -> PairTraits {
    let mut r = Rng::keyed(&[seed, domain::PAIR_TRAITS, user as u64, skill as u64]);
    let ability = (0.6 * agent.general + 0.8 * r.normal()).clamp(-3.0, 3.0);
    let dormant = r.chance(0.07);
    PairTraits { ability, dormant }
}

/// Monday = 0 … Sunday = 6, for a day number counted from 1970-01-01 (a Thursday).
fn weekday(day: i64) -> i64 {
    (day + 3).rem_euclid(7)
}

fn day_factor(day: i64) -> f64 {
    if weekday(day) >= 5 {
        0.25
    } else {
        1.0
    }
}

/// The conversation metrics the simulator produces data for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConvMetric {
    THandle,
    TTalk,
    TTalkComplete,
    THeld,
    THeldComplete,
    TAcw,
    TAnswered,
    TAlert,
    NConnected,
    NOffered,
    NTransferred,
    NBlindTransferred,
    NConsultTransferred,
    NOutbound,
    /// Queue side: offered interactions answered within the service-level threshold
    /// (`numerator`) out of those offered (`denominator`).
    OServiceLevel,
}

/// Names and metrics, in the index order of [`ConvDay`].
pub(crate) const CONV_METRICS: [(&str, ConvMetric); 15] = [
    ("tHandle", ConvMetric::THandle),
    ("tTalk", ConvMetric::TTalk),
    ("tTalkComplete", ConvMetric::TTalkComplete),
    ("tHeld", ConvMetric::THeld),
    ("tHeldComplete", ConvMetric::THeldComplete),
    ("tAcw", ConvMetric::TAcw),
    ("tAnswered", ConvMetric::TAnswered),
    ("tAlert", ConvMetric::TAlert),
    ("nConnected", ConvMetric::NConnected),
    ("nOffered", ConvMetric::NOffered),
    ("nTransferred", ConvMetric::NTransferred),
    ("nBlindTransferred", ConvMetric::NBlindTransferred),
    ("nConsultTransferred", ConvMetric::NConsultTransferred),
    ("nOutbound", ConvMetric::NOutbound),
    ("oServiceLevel", ConvMetric::OServiceLevel),
];

/// One day of one (agent, skill): a [`Stat`] per entry of [`CONV_METRICS`].
pub(crate) type ConvDay = [Stat; CONV_METRICS.len()];

/// Conversations handled by `user` on `skill` during UTC day `day`.
pub(crate) fn conv_day(
    seed: u64,
    user: u32,
    skill: u16,
    day: i64,
    agent: &AgentTraits,
    pair: &PairTraits,
) -> ConvDay {
    let mut out = [Stat::default(); CONV_METRICS.len()];
    if pair.dormant {
        return out;
    }
    let mut r = Rng::keyed(&[
        seed,
        domain::CONV_DAY,
        user as u64,
        skill as u64,
        day as u64,
    ]);
    let mean = agent.volume * day_factor(day);
    let n = r.binomial(15, (mean / 15.0).min(1.0));
    let ability = pair.ability;
    let aht_s = (570.0 - 110.0 * ability).clamp(240.0, 900.0);
    let p_hold = (0.3 - 0.06 * ability).clamp(0.05, 0.6);
    let p_transfer = (0.12 - 0.04 * ability).clamp(0.01, 0.35);
    let idx = |m: ConvMetric| m as usize;
    for _ in 0..n {
        let handle = (aht_s * r.range(0.55, 1.45) * 1000.0).round() as i64;
        let acw = (handle as f64 * r.range(0.10, 0.22)).round() as i64;
        let held = if r.chance(p_hold) {
            (handle as f64 * r.range(0.04, 0.18)).round() as i64
        } else {
            0
        };
        let talk = handle - acw - held;
        let alert = (r.range(2.0, 12.0) * 1000.0).round() as i64;
        let answered = alert + (r.range(0.0, 60.0) * 1000.0).round() as i64;
        out[idx(ConvMetric::THandle)].observe(handle);
        out[idx(ConvMetric::TTalk)].observe(talk);
        out[idx(ConvMetric::TTalkComplete)].observe(talk);
        if held > 0 {
            out[idx(ConvMetric::THeld)].observe(held);
            out[idx(ConvMetric::THeldComplete)].observe(held);
        }
        out[idx(ConvMetric::TAcw)].observe(acw);
        out[idx(ConvMetric::TAlert)].observe(alert);
        out[idx(ConvMetric::TAnswered)].observe(answered);
        out[idx(ConvMetric::NConnected)].add_count(1);
        out[idx(ConvMetric::NOffered)].add_count(1);
        if r.chance(p_transfer) {
            out[idx(ConvMetric::NTransferred)].add_count(1);
            if r.chance(0.5) {
                out[idx(ConvMetric::NBlindTransferred)].add_count(1);
            } else {
                out[idx(ConvMetric::NConsultTransferred)].add_count(1);
            }
        }
    }
    if !agent.newcomer {
        let outbound = r.binomial(2, 0.1 * day_factor(day));
        out[idx(ConvMetric::NOutbound)].add_count(outbound as u64);
    }
    out
}

/// Evaluation metrics with data, in [`EvalDay`] index order.
pub(crate) const EVAL_METRICS: [&str; 3] = ["nEvaluations", "oTotalScore", "oTotalCriticalScore"];
pub(crate) type EvalDay = [Stat; EVAL_METRICS.len()];

/// Quality evaluations of `user` released on `day` (a few a week, scores track ability).
pub(crate) fn eval_day(seed: u64, user: u32, day: i64, agent: &AgentTraits) -> EvalDay {
    let mut out = [Stat::default(); EVAL_METRICS.len()];
    let mut r = Rng::keyed(&[seed, domain::EVAL_DAY, user as u64, day as u64]);
    let p = if weekday(day) >= 5 { 0.0 } else { 0.45 };
    if agent.newcomer || !r.chance(p) {
        return out;
    }
    let score = (78.0 + 7.0 * agent.general + 6.0 * r.normal())
        .round()
        .clamp(0.0, 100.0) as i64;
    let critical = (88.0 + 5.0 * agent.general + 5.0 * r.normal())
        .round()
        .clamp(0.0, 100.0) as i64;
    out[0].add_count(1);
    out[1].observe(score);
    out[2].observe(critical);
    out
}

/// Survey metrics with data, in [`SurveyDay`] index order.
pub(crate) const SURVEY_METRICS: [&str; 5] = [
    "nSurveyResponses",
    "oSurveyTotalScore",
    "nSurveyNpsResponses",
    "nSurveyNpsPromoters",
    "nSurveyNpsDetractors",
];
pub(crate) type SurveyDay = [Stat; SURVEY_METRICS.len()];

/// Survey responses about `user` on `day`: sparse, scores track ability.
pub(crate) fn survey_day(seed: u64, user: u32, day: i64, agent: &AgentTraits) -> SurveyDay {
    let mut out = [Stat::default(); SURVEY_METRICS.len()];
    let mut r = Rng::keyed(&[seed, domain::SURVEY_DAY, user as u64, day as u64]);
    let p = (0.04 * agent.volume * day_factor(day)).min(0.5);
    let responses = r.binomial(3, p);
    for _ in 0..responses {
        let score = (72.0 + 9.0 * agent.general + 15.0 * r.normal())
            .round()
            .clamp(0.0, 100.0) as i64;
        out[0].add_count(1);
        out[1].observe(score);
        if r.chance(0.8) {
            let nps = (score as f64 / 10.0 + r.normal()).round().clamp(0.0, 10.0) as i64;
            out[2].add_count(1);
            if nps >= 9 {
                out[3].add_count(1);
            } else if nps <= 6 {
                out[4].add_count(1);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn better_agents_handle_faster_and_transfer_less() {
        let agent = AgentTraits {
            general: 0.0,
            volume: 6.0,
            newcomer: false,
        };
        let strong = PairTraits {
            ability: 2.0,
            dormant: false,
        };
        let weak = PairTraits {
            ability: -2.0,
            dormant: false,
        };
        let mut s = [Stat::default(); 2];
        let mut t = [Stat::default(); 2];
        for day in 20_000..20_200 {
            let a = conv_day(1, 1, 1, day, &agent, &strong);
            let b = conv_day(1, 1, 1, day, &agent, &weak);
            s[0].merge(&a[0]);
            t[0].merge(&b[0]);
            s[1].merge(&a[ConvMetric::NTransferred as usize]);
            t[1].merge(&b[ConvMetric::NTransferred as usize]);
        }
        let aht = |x: &Stat| x.sum as f64 / x.count as f64;
        assert!(aht(&s[0]) < aht(&t[0]));
        assert!((s[1].count as f64 / s[0].count as f64) < (t[1].count as f64 / t[0].count as f64));
        assert!(s[0].min >= 240_000 * 55 / 100 - 1 && t[0].max <= 900_000 * 145 / 100 + 1);
    }

    #[test]
    fn dormant_pairs_have_no_data() {
        let agent = agent_traits(1, 1);
        let pair = PairTraits {
            ability: 0.0,
            dormant: true,
        };
        assert!(conv_day(1, 1, 1, 20_000, &agent, &pair)
            .iter()
            .all(|s| s.count == 0));
    }
}
