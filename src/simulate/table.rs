//! What `simulate` measures: the weekly contact-center metrics of each policy, the share of
//! the static→oracle gap that `tuned` closes, and the table people read.

use genesys_sim::{gini, Totals};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::policies::Policy;

/// The outcome metrics the gap is measured on. The work-share Gini is not one of them: it is
/// a constraint (routing may concentrate work, within limits), not a goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    Aht,
    TransferRate,
    Quality,
    Csat,
    ServiceLevel,
    Asa,
    Abandonment,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::Aht,
        Metric::TransferRate,
        Metric::Quality,
        Metric::Csat,
        Metric::ServiceLevel,
        Metric::Asa,
        Metric::Abandonment,
    ];

    /// The key in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Aht => "aht",
            Metric::TransferRate => "transfer_rate",
            Metric::Quality => "quality",
            Metric::Csat => "csat",
            Metric::ServiceLevel => "service_level",
            Metric::Asa => "asa",
            Metric::Abandonment => "abandonment",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Metric::Aht => "AHT (s)",
            Metric::TransferRate => "transfer rate",
            Metric::Quality => "quality",
            Metric::Csat => "CSAT",
            Metric::ServiceLevel => "service level 20 s",
            Metric::Asa => "ASA (s)",
            Metric::Abandonment => "abandonment",
        }
    }

    /// +1 when more is better, −1 when less is.
    pub fn direction(self) -> f64 {
        match self {
            Metric::Quality | Metric::Csat | Metric::ServiceLevel => 1.0,
            Metric::Aht | Metric::TransferRate | Metric::Asa | Metric::Abandonment => -1.0,
        }
    }

    pub fn of(self, t: &Totals) -> Option<f64> {
        match self {
            Metric::Aht => t.aht_secs(),
            Metric::TransferRate => t.transfer_rate(),
            Metric::Quality => t.quality(),
            Metric::Csat => t.csat(),
            Metric::ServiceLevel => t.service_level(),
            Metric::Asa => t.asa_secs(),
            Metric::Abandonment => t.abandonment_rate(),
        }
    }

    fn format(self, v: Option<f64>) -> String {
        match (self, v) {
            (_, None) => "-".into(),
            (Metric::TransferRate | Metric::ServiceLevel | Metric::Abandonment, Some(v)) => {
                format!("{:.2}%", v * 100.0)
            }
            (Metric::Asa, Some(v)) => format!("{v:.2}"),
            (_, Some(v)) => format!("{v:.1}"),
        }
    }
}

/// One policy's numbers over one week (or any run of days): exact sums, so weeks add up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Period {
    pub total: Totals,
    /// Interactions handled per agent over the period.
    pub work: Vec<u32>,
    /// Each day's totals, for the day-to-day spread the composite standardises by.
    pub days: Vec<Totals>,
}

impl Period {
    pub fn add_day(&mut self, total: &Totals, work: &[u32]) {
        self.total.add(total);
        if self.work.len() < work.len() {
            self.work.resize(work.len(), 0);
        }
        for (w, x) in self.work.iter_mut().zip(work) {
            *w += x;
        }
        self.days.push(*total);
    }

    pub fn row(&self) -> WeekRow {
        WeekRow {
            aht_secs: Metric::Aht.of(&self.total),
            transfer_rate: Metric::TransferRate.of(&self.total),
            quality: Metric::Quality.of(&self.total),
            csat: Metric::Csat.of(&self.total),
            service_level: Metric::ServiceLevel.of(&self.total),
            asa_secs: Metric::Asa.of(&self.total),
            abandonment: Metric::Abandonment.of(&self.total),
            gini: gini(&self.work),
            offered: self.total.offered,
        }
    }

    /// Sample standard deviation of a metric's daily values (`None` under two days).
    fn daily_sd(&self, m: Metric) -> Option<f64> {
        let v: Vec<f64> = self.days.iter().filter_map(|d| m.of(d)).collect();
        if v.len() < 2 {
            return None;
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
        Some(var.sqrt())
    }
}

/// One row of the table: a policy's week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekRow {
    pub aht_secs: Option<f64>,
    pub transfer_rate: Option<f64>,
    pub quality: Option<f64>,
    pub csat: Option<f64>,
    pub service_level: Option<f64>,
    pub asa_secs: Option<f64>,
    pub abandonment: Option<f64>,
    /// Gini coefficient of the interactions each agent handled that week.
    pub gini: f64,
    pub offered: u64,
}

impl WeekRow {
    fn get(&self, m: Metric) -> Option<f64> {
        match m {
            Metric::Aht => self.aht_secs,
            Metric::TransferRate => self.transfer_rate,
            Metric::Quality => self.quality,
            Metric::Csat => self.csat,
            Metric::ServiceLevel => self.service_level,
            Metric::Asa => self.asa_secs,
            Metric::Abandonment => self.abandonment,
        }
    }
}

/// The share of the static→oracle gap `tuned` closes, per metric and as a composite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapClosed {
    /// Metric name (and `composite`) → share; `None` where oracle is not better than static.
    pub shares: BTreeMap<&'static str, Option<f64>>,
    /// The composite's weights: each metric's standardised oracle gain (see [`gap_closed`]).
    pub weights: BTreeMap<&'static str, f64>,
}

/// Gap closed on the counted period.
///
/// Per metric: `(tuned − static) / (oracle − static)`, or `None` where oracle is not better
/// than static (the ratio would mean nothing).
///
/// Composite: each metric's gain over static is standardised by the static policy's
/// day-to-day standard deviation of that metric over the period (signed so that better is
/// positive), and the composite is the tuned policy's summed standardised gain over the
/// oracle's, over the metrics where oracle beats static. That is the mean of the per-metric
/// shares weighted by how far, in days' worth of natural variation, the oracle moved each
/// metric: a metric routing barely moves (or that is too noisy to tell) weighs little.
pub fn gap_closed(st: &Period, tuned: &Period, oracle: &Period) -> GapClosed {
    let (s_row, t_row, o_row) = (st.row(), tuned.row(), oracle.row());
    let mut shares = BTreeMap::new();
    let mut weights = BTreeMap::new();
    let (mut tuned_gain, mut oracle_gain) = (0.0, 0.0);
    for m in Metric::ALL {
        let share = match (s_row.get(m), t_row.get(m), o_row.get(m)) {
            (Some(s), Some(t), Some(o)) if m.direction() * (o - s) > 0.0 => {
                if let Some(sd) = st.daily_sd(m).filter(|sd| *sd > 0.0) {
                    let w = m.direction() * (o - s) / sd;
                    weights.insert(m.name(), w);
                    oracle_gain += w;
                    tuned_gain += m.direction() * (t - s) / sd;
                }
                Some((t - s) / (o - s))
            }
            _ => None,
        };
        shares.insert(m.name(), share);
    }
    let composite = (oracle_gain > 0.0).then(|| tuned_gain / oracle_gain);
    shares.insert("composite", composite);
    GapClosed { shares, weights }
}

/// The checks the target sets besides the gap: tuned's transfer rate and quality no worse
/// than static's, and its work-share Gini at most 0.05 above static's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Constraints {
    pub transfer_rate_no_worse: bool,
    pub quality_no_worse: bool,
    pub gini_within: bool,
}

/// How far above static's the tuned policy's work-share Gini may go.
pub const GINI_ALLOWANCE: f64 = 0.05;

pub fn constraints(st: &WeekRow, tuned: &WeekRow) -> Constraints {
    let no_worse = |m: Metric| match (st.get(m), tuned.get(m)) {
        (Some(s), Some(t)) => m.direction() * (t - s) >= 0.0,
        _ => false,
    };
    Constraints {
        transfer_rate_no_worse: no_worse(Metric::TransferRate),
        quality_no_worse: no_worse(Metric::Quality),
        gini_within: tuned.gini <= st.gini + GINI_ALLOWANCE,
    }
}

/// The weekly table: one line per policy and week.
pub fn render_weeks(weeks: &[(Policy, Vec<WeekRow>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<7} {:>4} {:>8} {:>9} {:>8} {:>6} {:>8} {:>6} {:>8} {:>6}",
        "policy",
        "week",
        "AHT s",
        "transfer",
        "quality",
        "CSAT",
        "SL 20s",
        "ASA s",
        "abandon",
        "Gini"
    );
    for (policy, rows) in weeks {
        for (i, r) in rows.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:<7} {:>4} {:>8} {:>9} {:>8} {:>6} {:>8} {:>6} {:>8} {:>6.3}",
                policy.as_str(),
                i + 1,
                Metric::Aht.format(r.aht_secs),
                Metric::TransferRate.format(r.transfer_rate),
                Metric::Quality.format(r.quality),
                Metric::Csat.format(r.csat),
                Metric::ServiceLevel.format(r.service_level),
                Metric::Asa.format(r.asa_secs),
                Metric::Abandonment.format(r.abandonment),
                r.gini,
            );
        }
    }
    out
}

/// The gap table: the counted week's value per policy and the share tuned closes.
pub fn render_gap(
    counted: &str,
    st: &WeekRow,
    tuned: &WeekRow,
    oracle: &WeekRow,
    gap: &GapClosed,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "gap closed by tuned, {counted}:");
    let _ = writeln!(
        out,
        "  {:<18} {:>9} {:>9} {:>9} {:>8} {:>7}",
        "metric", "static", "tuned", "oracle", "closed", "weight"
    );
    for m in Metric::ALL {
        let share = gap.shares.get(m.name()).copied().flatten();
        let weight = gap
            .weights
            .get(m.name())
            .map_or("-".to_string(), |w| format!("{w:.2}"));
        let _ = writeln!(
            out,
            "  {:<18} {:>9} {:>9} {:>9} {:>8} {:>7}",
            m.label(),
            m.format(st.get(m)),
            m.format(tuned.get(m)),
            m.format(oracle.get(m)),
            percent(share),
            weight
        );
    }
    let _ = writeln!(
        out,
        "  {:<18} {:>9.3} {:>9.3} {:>9.3}",
        "work-share Gini", st.gini, tuned.gini, oracle.gini
    );
    let _ = writeln!(
        out,
        "  {:<18} {:>9} {:>9} {:>9} {:>8}",
        "composite",
        "",
        "",
        "",
        percent(gap.shares.get("composite").copied().flatten())
    );
    out
}

/// A share as a whole percentage, "n/a" when there is none.
pub fn percent(share: Option<f64>) -> String {
    // `+ 0.0` turns a negative zero into a plain one: "-0%" reads like a loss.
    share.map_or("n/a".to_string(), |s| {
        format!("{:.0}%", (s * 100.0).round() + 0.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(handle_s: u64, answered: u64, transferred: u64) -> Totals {
        Totals {
            offered: answered,
            answered,
            handle_ms: handle_s * 1000 * answered,
            transferred,
            ..Totals::default()
        }
    }

    fn period(days: &[Totals]) -> Period {
        let mut p = Period::default();
        for d in days {
            p.add_day(d, &[1, 1]);
        }
        p
    }

    #[test]
    fn shares_are_of_the_gap_and_na_where_oracle_is_not_better() {
        // AHT: static 500, oracle 480, tuned 485 → 75 %. Transfers: oracle worse → n/a.
        let st = period(&[day(495, 100, 5), day(505, 100, 5)]);
        let tuned = period(&[day(480, 100, 5), day(490, 100, 5)]);
        let oracle = period(&[day(475, 100, 6), day(485, 100, 6)]);
        let gap = gap_closed(&st, &tuned, &oracle);
        let aht = gap.shares["aht"].unwrap();
        assert!((aht - 0.75).abs() < 1e-9, "{aht}");
        assert_eq!(gap.shares["transfer_rate"], None);
        assert_eq!(gap.shares["quality"], None, "no evaluations: no data");
        // Only AHT is eligible, so the composite is its share.
        let composite = gap.shares["composite"].unwrap();
        assert!((composite - 0.75).abs() < 1e-9, "{composite}");
    }

    #[test]
    fn the_composite_weights_metrics_by_the_oracle_standardised_gain() {
        // AHT: gap 20 s over a daily sd of ~7.07 s (weight ~2.83), tuned closes 50 %;
        // transfers: gap 0.02 over a daily sd of ~0.0141 (weight ~1.41), tuned closes 100 %.
        let st = period(&[day(495, 100, 6), day(505, 100, 4)]);
        let tuned = period(&[day(485, 100, 4), day(495, 100, 2)]);
        let oracle = period(&[day(475, 100, 4), day(485, 100, 2)]);
        let gap = gap_closed(&st, &tuned, &oracle);
        let (w_aht, w_tr) = (gap.weights["aht"], gap.weights["transfer_rate"]);
        assert!((w_aht - 20.0 / 50f64.sqrt()).abs() < 1e-9, "{w_aht}");
        assert!((w_tr - 0.02 / 0.0002f64.sqrt()).abs() < 1e-9, "{w_tr}");
        let expected = (0.5 * w_aht + 1.0 * w_tr) / (w_aht + w_tr);
        let composite = gap.shares["composite"].unwrap();
        assert!((composite - expected).abs() < 1e-9, "{composite}");
    }

    #[test]
    fn constraints_compare_with_static() {
        let st = period(&[day(500, 100, 5)]).row();
        let better = period(&[day(490, 100, 4)]).row();
        let worse = period(&[day(490, 100, 7)]).row();
        assert!(constraints(&st, &better).transfer_rate_no_worse);
        assert!(!constraints(&st, &worse).transfer_rate_no_worse);
        assert!(constraints(&st, &better).gini_within);
    }
}
