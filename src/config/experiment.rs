//! `[experiment]`: a holdout that measures whether tuning helps, and the pause on harm.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The metrics an experiment can judge, by their config names.
pub const JUDGED_METRICS: [&str; 5] = [
    "handle_time",
    "transfer_rate",
    "quality",
    "csat",
    "service_level",
];

/// The only design: whole routing skills are tuned or held out. Agents in one queue compete
/// for its work, so holding out agents would let tuning move work between the arms.
pub const SKILL_CLUSTERS: &str = "skill_clusters";

/// A holdout experiment: which skills are never tuned, from when, what it judges and when it
/// pauses tuning.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentSettings {
    /// Off by default: every in-scope skill is tuned.
    pub enabled: bool,
    /// How units are assigned; only `skill_clusters`.
    pub design: String,
    /// Share of skills held out (never changed while the experiment runs).
    pub holdout_share: f64,
    /// The first day (UTC, `YYYY-MM-DD`) of the experiment; required when enabled. The days
    /// before it are the baseline.
    pub start: String,
    /// Salt of the assignment hash; empty: the start date. A new salt re-draws the arms.
    pub salt: String,
    /// Baseline days before `start` that the estimate adjusts for (1–31).
    pub baseline_days: u32,
    /// The metrics judged (and watched for harm).
    pub metrics: Vec<String>,
    /// Harm: the tuned arm worse than the held-out arm by more than this share of the
    /// held-out arm's level (0.02 = 2 %), on any judged metric.
    pub harm_bound: f64,
    /// Per-metric overrides of `harm_bound`.
    pub harm_bounds: BTreeMap<String, f64>,
    /// Stop applying changes when the sequential test shows harm beyond the bound, until a
    /// person runs `skill-tuner resume`.
    pub pause_on_harm: bool,
    /// Error rate of the always-valid harm test, shared by the judged metrics.
    pub alpha: f64,
}

impl Default for ExperimentSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            design: SKILL_CLUSTERS.into(),
            holdout_share: 0.5,
            start: String::new(),
            salt: String::new(),
            baseline_days: 28,
            metrics: JUDGED_METRICS.iter().map(|m| m.to_string()).collect(),
            harm_bound: 0.02,
            harm_bounds: BTreeMap::new(),
            pause_on_harm: true,
            alpha: 0.05,
        }
    }
}

impl ExperimentSettings {
    /// The start date, when set and valid.
    pub fn start_date(&self) -> Option<chrono::NaiveDate> {
        chrono::NaiveDate::parse_from_str(self.start.trim(), "%Y-%m-%d").ok()
    }

    /// The assignment salt: `salt`, or the start date.
    pub fn salt(&self) -> &str {
        match self.salt.trim() {
            "" => self.start.trim(),
            s => s,
        }
    }

    /// The harm bound of `metric` (its override, or `harm_bound`).
    pub fn harm_bound_of(&self, metric: &str) -> f64 {
        self.harm_bounds
            .get(metric)
            .copied()
            .unwrap_or(self.harm_bound)
    }

    /// A stable hash of what decides the arms and the judgement (recorded with the
    /// assignment in the ledger).
    pub fn fingerprint(&self) -> String {
        let text = toml::to_string(self).unwrap_or_default();
        format!("{:016x}", crate::hash::fnv1a64(&text))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, Settings};

    fn problems(toml: &str) -> Vec<String> {
        match Settings::from_toml_str(&format!(
            "[genesys]\nregion = \"us-east-1\"\nclient_id = \"x\"\n[history]\npath = \"/var/lib/skill-tuner/t.db\"\n{toml}"
        )) {
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.into_iter().map(|p| p.key).collect()
            }
            Err(e) => vec![format!("other error: {e}")],
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn bad_experiment_settings_name_their_keys() {
        let keys = problems(
            "[experiment]\nenabled = true\ndesign = \"per_agent\"\nholdout_share = 1.5\nstart = \"March\"\nbaseline_days = 0\nmetrics = [\"aht\"]\nharm_bound = -1\nalpha = 0.7\n[experiment.harm_bounds]\nnps = 0.1\n",
        );
        for key in [
            "experiment.design",
            "experiment.holdout_share",
            "experiment.start",
            "experiment.baseline_days",
            "experiment.metrics",
            "experiment.harm_bound",
            "experiment.harm_bounds.nps",
            "experiment.alpha",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
        }
        let unknown = problems("[experiment]\nholdout = 0.5\n");
        assert_eq!(unknown.len(), 1, "{unknown:?}");
        assert!(unknown[0].starts_with("experiment"), "{unknown:?}");
    }

    #[test]
    fn a_valid_experiment_loads_and_an_absent_one_is_off() {
        assert!(problems("[experiment]\nenabled = true\nstart = \"2027-03-01\"\n").is_empty());
        assert!(problems("").is_empty());
        let s = Settings::default();
        assert!(!s.experiment.enabled);
        assert!(crate::experiment::Assignment::of(&s.experiment).is_none());
    }
}
