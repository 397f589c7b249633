//! What the twin keeps of a day: one compact record per membership (agent × queue ×
//! requested skill) and one per pool (queue × requested skill), never the interactions
//! themselves. A record converts to the [`Stat`] arrays the analytics engine folds, so the
//! open-loop and the twin answer with the same metric names and JSON.

use crate::data::synth::{ConvDay, ConvMetric, EvalDay, Stat, SurveyDay, CONV_METRICS};

/// `sum`, `min`, `max` of a timer in ms; its count lives in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timer {
    sum: u32,
    min: u32,
    max: u32,
}

impl Timer {
    const EMPTY: Timer = Timer {
        sum: 0,
        min: u32::MAX,
        max: 0,
    };

    fn add(&mut self, v: u32) {
        self.sum = self.sum.saturating_add(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn stat(&self, count: u64) -> Stat {
        if count == 0 {
            return Stat::default();
        }
        Stat {
            count,
            sum: i64::from(self.sum),
            min: i64::from(self.min),
            max: i64::from(self.max),
        }
    }
}

/// `sum`, `min`, `max` of a 0–100 score; its count lives in the record. Packed: six bytes
/// instead of eight, three times per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, packed(2))]
pub(crate) struct Score {
    sum: u32,
    min: u8,
    max: u8,
}

impl Score {
    const EMPTY: Score = Score {
        sum: 0,
        min: u8::MAX,
        max: 0,
    };

    fn add(&mut self, v: u8) {
        let (sum, min, max) = (self.sum, self.min, self.max);
        self.sum = sum.saturating_add(u32::from(v));
        self.min = min.min(v);
        self.max = max.max(v);
    }

    fn sum(&self) -> u32 {
        self.sum
    }

    fn stat(&self, count: u64) -> Stat {
        if count == 0 {
            return Stat::default();
        }
        let (sum, min, max) = (self.sum, self.min, self.max);
        Stat {
            count,
            sum: i64::from(sum),
            min: i64::from(min),
            max: i64::from(max),
        }
    }
}

/// One handled interaction, as the records take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handled {
    pub(crate) handle: u32,
    pub(crate) talk: u32,
    /// 0: never put on hold.
    pub(crate) held: u32,
    pub(crate) acw: u32,
    pub(crate) alert: u32,
    /// Time in queue plus ring time (`tAnswered`).
    pub(crate) answered: u32,
    pub(crate) transferred: bool,
    pub(crate) blind: bool,
    /// `(total score, critical score)` when the interaction was evaluated.
    pub(crate) evaluation: Option<(u8, u8)>,
    /// `(survey score, NPS answer)` when the customer answered the survey.
    pub(crate) survey: Option<(u8, Option<u8>)>,
}

/// One day of one membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PairDay {
    handle: Timer,
    talk: Timer,
    held: Timer,
    acw: Timer,
    alert: Timer,
    answered: Timer,
    eval_score: Score,
    eval_critical: Score,
    survey_score: Score,
    pub(crate) n: u16,
    n_held: u16,
    pub(crate) transferred: u16,
    blind: u16,
    pub(crate) evaluations: u16,
    pub(crate) surveys: u16,
    nps: u16,
    promoters: u16,
    detractors: u16,
}

impl PairDay {
    pub(crate) const EMPTY: PairDay = PairDay {
        handle: Timer::EMPTY,
        talk: Timer::EMPTY,
        held: Timer::EMPTY,
        acw: Timer::EMPTY,
        alert: Timer::EMPTY,
        answered: Timer::EMPTY,
        eval_score: Score::EMPTY,
        eval_critical: Score::EMPTY,
        survey_score: Score::EMPTY,
        n: 0,
        n_held: 0,
        transferred: 0,
        blind: 0,
        evaluations: 0,
        surveys: 0,
        nps: 0,
        promoters: 0,
        detractors: 0,
    };

    pub(crate) fn add(&mut self, h: &Handled) {
        self.n = self.n.saturating_add(1);
        self.handle.add(h.handle);
        self.talk.add(h.talk);
        if h.held > 0 {
            self.n_held = self.n_held.saturating_add(1);
            self.held.add(h.held);
        }
        self.acw.add(h.acw);
        self.alert.add(h.alert);
        self.answered.add(h.answered);
        if h.transferred {
            self.transferred = self.transferred.saturating_add(1);
            if h.blind {
                self.blind = self.blind.saturating_add(1);
            }
        }
        if let Some((score, critical)) = h.evaluation {
            self.evaluations = self.evaluations.saturating_add(1);
            self.eval_score.add(score);
            self.eval_critical.add(critical);
        }
        if let Some((score, nps)) = h.survey {
            self.surveys = self.surveys.saturating_add(1);
            self.survey_score.add(score);
            if let Some(nps) = nps {
                self.nps = self.nps.saturating_add(1);
                if nps >= 9 {
                    self.promoters = self.promoters.saturating_add(1);
                } else if nps <= 6 {
                    self.detractors = self.detractors.saturating_add(1);
                }
            }
        }
    }

    pub(crate) fn handle_sum(&self) -> u64 {
        u64::from(self.handle.sum)
    }

    pub(crate) fn eval_sum(&self) -> u64 {
        u64::from(self.eval_score.sum())
    }

    pub(crate) fn survey_sum(&self) -> u64 {
        u64::from(self.survey_score.sum())
    }

    /// The agent-side conversation metrics, in [`CONV_METRICS`] order (`nOffered` is
    /// queue-side and `nOutbound` is not modelled: both empty).
    pub(crate) fn conv(&self) -> ConvDay {
        let mut out = [Stat::default(); CONV_METRICS.len()];
        let n = u64::from(self.n);
        let held = u64::from(self.n_held);
        let set = |out: &mut ConvDay, m: ConvMetric, s: Stat| out[m as usize] = s;
        set(&mut out, ConvMetric::THandle, self.handle.stat(n));
        set(&mut out, ConvMetric::TTalk, self.talk.stat(n));
        set(&mut out, ConvMetric::TTalkComplete, self.talk.stat(n));
        set(&mut out, ConvMetric::THeld, self.held.stat(held));
        set(&mut out, ConvMetric::THeldComplete, self.held.stat(held));
        set(&mut out, ConvMetric::TAcw, self.acw.stat(n));
        set(&mut out, ConvMetric::TAnswered, self.answered.stat(n));
        set(&mut out, ConvMetric::TAlert, self.alert.stat(n));
        out[ConvMetric::NConnected as usize].add_count(n);
        out[ConvMetric::NTransferred as usize].add_count(u64::from(self.transferred));
        out[ConvMetric::NBlindTransferred as usize].add_count(u64::from(self.blind));
        out[ConvMetric::NConsultTransferred as usize]
            .add_count(u64::from(self.transferred - self.blind));
        out
    }

    /// `nEvaluations`, `oTotalScore`, `oTotalCriticalScore`.
    pub(crate) fn evaluations(&self) -> EvalDay {
        let n = u64::from(self.evaluations);
        let mut count = Stat::default();
        count.add_count(n);
        [count, self.eval_score.stat(n), self.eval_critical.stat(n)]
    }

    /// `nSurveyResponses`, `oSurveyTotalScore`, `nSurveyNpsResponses`,
    /// `nSurveyNpsPromoters`, `nSurveyNpsDetractors`.
    pub(crate) fn surveys(&self) -> SurveyDay {
        let n = u64::from(self.surveys);
        let counter = |k: u16| {
            let mut s = Stat::default();
            s.add_count(u64::from(k));
            s
        };
        [
            counter(self.surveys),
            self.survey_score.stat(n),
            counter(self.nps),
            counter(self.promoters),
            counter(self.detractors),
        ]
    }
}

/// One day of one pool: what the queue saw, whoever answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PoolDay {
    pub(crate) offered: u32,
    pub(crate) answered: u32,
    pub(crate) abandoned: u32,
    /// Answered within the service-level threshold (20 s).
    pub(crate) answered_in_sl: u32,
    pub(crate) wait_ms: u64,
}

impl PoolDay {
    /// The queue-side conversation metrics: `nOffered`, and `oServiceLevel` as a count of
    /// offered (its denominator) with the answered-within-threshold count as its sum (its
    /// numerator), so days and pools add up.
    pub(crate) fn conv(&self) -> ConvDay {
        let mut out = [Stat::default(); CONV_METRICS.len()];
        out[ConvMetric::NOffered as usize].add_count(u64::from(self.offered));
        if self.offered > 0 {
            let within = i64::from(self.answered_in_sl);
            out[ConvMetric::OServiceLevel as usize] = Stat {
                count: u64::from(self.offered),
                sum: within,
                min: within,
                max: within,
            };
        }
        out
    }
}

/// Everything kept of one simulated day.
#[derive(Debug, Clone)]
pub(crate) struct DayData {
    pub(crate) pairs: Box<[PairDay]>,
    pub(crate) pools: Box<[PoolDay]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_the_summary_of_what_it_took() {
        let mut d = PairDay::EMPTY;
        assert!(d.conv().iter().all(|s| s.count == 0));
        let call = |handle, held, transferred, blind| Handled {
            handle,
            talk: handle - held - 100,
            held,
            acw: 100,
            alert: 3_000,
            answered: 9_000,
            transferred,
            blind,
            evaluation: None,
            survey: Some((90, Some(10))),
        };
        d.add(&call(600_000, 0, true, true));
        d.add(&call(300_000, 20_000, true, false));
        d.add(&call(400_000, 0, false, false));
        let c = d.conv();
        let h = c[ConvMetric::THandle as usize];
        assert_eq!(
            (h.count, h.sum, h.min, h.max),
            (3, 1_300_000, 300_000, 600_000)
        );
        assert_eq!(c[ConvMetric::THeld as usize].count, 1);
        assert_eq!(c[ConvMetric::NTransferred as usize].count, 2);
        assert_eq!(c[ConvMetric::NBlindTransferred as usize].count, 1);
        assert_eq!(c[ConvMetric::NConsultTransferred as usize].count, 1);
        assert_eq!(c[ConvMetric::NOffered as usize].count, 0);
        assert_eq!(d.surveys()[3].count, 3);
        assert!(d.evaluations().iter().all(|s| s.count == 0));
        // Kept small: at 10 000 agents a day of records is a few MB.
        assert!(std::mem::size_of::<PairDay>() <= 108);
    }
}
