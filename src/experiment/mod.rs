//! The holdout experiment: does tuning help?
//!
//! Design: whole routing skills (clusters) are tuned or held out, by a stable hash of the
//! skill id salted with the experiment's salt. Agents of one queue compete for its work, so a
//! per-agent holdout is biased: tuning moves work between tuned and held-out agents of the
//! same queue. A skill's interactions are routed by proficiencies on that skill only, so
//! holding out whole skills keeps the arms apart (the validation twin measures what leaks).
//!
//! - [`Assignment`]: which skills are held out (the plan parks them, the write path refuses
//!   them);
//! - [`estimate`]: the per-interaction effect on each judged metric, with its interval and
//!   a verdict;
//! - [`sequential`]: the always-valid harm test checked every day;
//! - [`read`]: the analytics the estimate rests on (aggregates by skill, queue and period).

pub mod estimate;
pub mod read;
pub mod sequential;

pub use estimate::{
    estimate, EffectReport, Harm, MetricEffect, Observations, Sample, UnitObs, Verdict, VerdictKind,
};

use crate::config::ExperimentSettings;
use serde::{Deserialize, Serialize};

/// An arm of the experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    Tuned,
    HeldOut,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Tuned => "tuned",
            Arm::HeldOut => "held_out",
        }
    }

    pub fn parse(text: &str) -> Option<Arm> {
        match text {
            "tuned" => Some(Arm::Tuned),
            "held_out" => Some(Arm::HeldOut),
            _ => None,
        }
    }
}

/// A judged metric: how it is read, its unit and which direction is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    HandleTime,
    TransferRate,
    Quality,
    Csat,
    ServiceLevel,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::HandleTime,
        Metric::TransferRate,
        Metric::Quality,
        Metric::Csat,
        Metric::ServiceLevel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::HandleTime => "handle_time",
            Metric::TransferRate => "transfer_rate",
            Metric::Quality => "quality",
            Metric::Csat => "csat",
            Metric::ServiceLevel => "service_level",
        }
    }

    pub fn parse(text: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// How a person reads it.
    pub fn label(self) -> &'static str {
        match self {
            Metric::HandleTime => "handle time",
            Metric::TransferRate => "transfer rate",
            Metric::Quality => "quality",
            Metric::Csat => "CSAT",
            Metric::ServiceLevel => "service level",
        }
    }

    /// The unit of its per-interaction value (and of an effect on it).
    pub fn unit(self) -> &'static str {
        match self {
            Metric::HandleTime => "s",
            Metric::TransferRate | Metric::ServiceLevel => "pp",
            Metric::Quality | Metric::Csat => "points",
        }
    }

    /// Raw sums are turned into the unit by this factor (ms → s, share → percentage points).
    pub fn scale(self) -> f64 {
        match self {
            Metric::HandleTime => 0.001,
            Metric::TransferRate | Metric::ServiceLevel => 100.0,
            Metric::Quality | Metric::Csat => 1.0,
        }
    }

    /// +1 when more is worse (handle time, transfers), −1 when more is better.
    pub fn worse_sign(self) -> f64 {
        match self {
            Metric::HandleTime | Metric::TransferRate => 1.0,
            Metric::Quality | Metric::Csat | Metric::ServiceLevel => -1.0,
        }
    }

    /// What one observation of it is (the sample's unit).
    pub fn per(self) -> &'static str {
        match self {
            Metric::HandleTime | Metric::TransferRate => "handled interactions",
            Metric::Quality => "evaluations",
            Metric::Csat => "survey answers",
            Metric::ServiceLevel => "offered interactions",
        }
    }
}

/// Which skills an experiment holds out: a pure function of the salt, the share and the
/// skill id, so every cycle, the write path, `effect` and a rollback agree without a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub salt: String,
    pub holdout_share: f64,
    pub start: chrono::NaiveDate,
}

impl Assignment {
    /// The experiment's assignment, when it is enabled and valid.
    pub fn of(settings: &ExperimentSettings) -> Option<Assignment> {
        if !settings.enabled {
            return None;
        }
        Some(Assignment {
            salt: settings.salt().to_string(),
            holdout_share: settings.holdout_share,
            start: settings.start_date()?,
        })
    }

    /// The arm of skill `skill_id`: its salted hash, as a share of the hash space, below the
    /// holdout share is held out. Stable across runs, machines and builds.
    pub fn arm(&self, skill_id: &str) -> Arm {
        let h = crate::hash::fnv1a64(&format!("{}|{skill_id}", self.salt));
        // Mix the high bits down: FNV's low bits are weak for short, similar keys.
        let mixed = splitmix(h);
        let u = (mixed >> 11) as f64 / (1u64 << 53) as f64;
        if u < self.holdout_share {
            Arm::HeldOut
        } else {
            Arm::Tuned
        }
    }

    pub fn is_held_out(&self, skill_id: &str) -> bool {
        self.arm(skill_id) == Arm::HeldOut
    }

    /// Whether the experiment runs on `today` (held-out skills are protected from its start).
    pub fn active_on(&self, today: chrono::NaiveDate) -> bool {
        today >= self.start
    }
}

/// SplitMix64's finaliser: every input bit affects every output bit.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One unit's place in the experiment, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitRecord {
    pub unit_id: String,
    pub unit_name: String,
    pub arm: Arm,
}

/// The skills `skills` (`(id, name)`) with their arms, held out first, then by name.
pub fn assign(assignment: &Assignment, skills: &[(String, String)]) -> Vec<UnitRecord> {
    let mut units: Vec<UnitRecord> = skills
        .iter()
        .map(|(id, name)| UnitRecord {
            unit_id: id.clone(),
            unit_name: name.clone(),
            arm: assignment.arm(id),
        })
        .collect();
    units.sort_by(|a, b| {
        (b.arm == Arm::HeldOut)
            .cmp(&(a.arm == Arm::HeldOut))
            .then_with(|| a.unit_name.cmp(&b.unit_name))
    });
    units
}

/// What a cycle says of the experiment: which skills are held out, the latest estimate, and
/// whether tuning is paused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentStatus {
    pub design: String,
    pub start: chrono::NaiveDate,
    pub salt: String,
    /// Whether the experiment runs today (held-out skills are protected from its start).
    pub active: bool,
    /// Names of the held-out skills.
    pub held_out: Vec<String>,
    pub tuned: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<EffectReport>,
    /// Why the estimate could not be made this time (tuning goes on; the pause in force, if
    /// any, still holds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect_error: Option<String>,
    /// The pause in force: `metric: reason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
}

impl ExperimentStatus {
    /// One line for the cycle's report.
    pub fn render(&self) -> String {
        let mut out = format!(
            "experiment ({}, since {}{}): {} skills held out, {} tuned{}\n",
            self.design,
            self.start,
            if self.active { "" } else { ", not started" },
            self.held_out.len(),
            self.tuned,
            if self.held_out.is_empty() {
                String::new()
            } else {
                format!(
                    " — held out: {}",
                    crate::text::printable(&self.held_out.join(", "))
                )
            }
        );
        if let Some(p) = &self.paused {
            out.push_str(&format!(
                "PAUSED ON HARM ({}) — nothing is applied until `skill-tuner resume`\n",
                crate::text::printable(p)
            ));
        }
        if let Some(e) = &self.effect_error {
            out.push_str(&format!(
                "effect not measured: {}\n",
                crate::text::printable(e)
            ));
        }
        out
    }
}

/// The metrics `settings` judges, in their fixed order.
pub fn judged(settings: &ExperimentSettings) -> Vec<Metric> {
    Metric::ALL
        .into_iter()
        .filter(|m| settings.metrics.iter().any(|s| s == m.as_str()))
        .collect()
}

/// The effect report from observations: every judged metric estimated, each harm test at
/// `alpha` shared among them (Bonferroni), so a pause on any one metric stays within it.
pub fn report(
    settings: &ExperimentSettings,
    assignment: &Assignment,
    obs: &Observations,
) -> EffectReport {
    let metrics = judged(settings);
    let alpha = settings.alpha / metrics.len().max(1) as f64;
    let effects: Vec<MetricEffect> = metrics
        .iter()
        .map(|&m| estimate(obs, m, settings.harm_bound_of(m.as_str()), alpha))
        .collect();
    let skills = obs
        .by_metric
        .get(&Metric::HandleTime)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let held = skills.iter().filter(|u| u.arm == Arm::HeldOut).count();
    EffectReport {
        design: settings.design.clone(),
        start: assignment.start,
        through: assignment.start + chrono::Duration::days(i64::from(obs.days))
            - chrono::Duration::days(1),
        days: obs.days,
        salt: assignment.salt.clone(),
        holdout_share: assignment.holdout_share,
        tuned_skills: skills.len() - held,
        held_out_skills: held,
        harm_shown: effects.iter().any(|e| e.harm.shown),
        metrics: effects,
    }
}

/// Reads the analytics and estimates: what `effect` prints and the daily check records.
pub async fn measure(
    client: &crate::genesys::GenesysClient,
    settings: &ExperimentSettings,
    assignment: &Assignment,
    media_types: &[String],
    today: chrono::NaiveDate,
) -> Result<EffectReport, crate::genesys::ApiError> {
    let obs = read::observations(
        client,
        assignment,
        settings.baseline_days,
        today,
        &judged(settings),
        media_types,
    )
    .await?;
    Ok(report(settings, assignment, &obs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: [Arm; 4] = [Arm::Tuned, Arm::HeldOut, Arm::Tuned, Arm::HeldOut];

    #[test]
    fn the_assignment_is_stable_and_depends_on_the_salt() {
        let a = |salt: &str| Assignment {
            salt: salt.into(),
            holdout_share: 0.5,
            start: chrono::NaiveDate::from_ymd_opt(2027, 3, 1).unwrap_or_default(),
        };
        let ids: Vec<String> = (0..64).map(|i| format!("skill-{i}")).collect();
        let arms = |salt: &str| ids.iter().map(|id| a(salt).arm(id)).collect::<Vec<_>>();
        // The same salt, the same arms, call after call (and build after build: FNV-1a and
        // SplitMix are fixed functions; these two are pinned).
        assert_eq!(arms("s1"), arms("s1"));
        assert_eq!(a("s1").arm("skill-0"), a("s1").arm("skill-0"));
        assert_ne!(arms("s1"), arms("s2"));
        let pinned: Vec<Arm> = ["skill-0", "skill-1", "skill-2", "skill-3"]
            .iter()
            .map(|id| a("2027-03-01").arm(id))
            .collect();
        assert_eq!(pinned, PINNED);
        // Only the share moves the cut: a unit held out at 0.3 stays held out at 0.5.
        let low = Assignment {
            holdout_share: 0.3,
            ..a("s1")
        };
        for id in &ids {
            if low.is_held_out(id) {
                assert!(a("s1").is_held_out(id));
            }
        }
    }

    #[test]
    fn the_share_held_out_follows_the_setting() {
        let a = Assignment {
            salt: "2027-03-01".into(),
            holdout_share: 0.3,
            start: chrono::NaiveDate::from_ymd_opt(2027, 3, 1).unwrap_or_default(),
        };
        let held = (0..2000)
            .filter(|i| a.is_held_out(&format!("skill-{i}")))
            .count();
        assert!((500..700).contains(&held), "{held}");
    }
}
