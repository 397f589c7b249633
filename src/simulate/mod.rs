//! `simulate`: does tuning help? Runs the simulator's closed-loop twin once per policy, all
//! from the same seed (so every policy meets the same callers: common random numbers), for
//! whole weeks of simulated days, and compares `static`, `tuned` (skill-tuner's real cycle,
//! daily) and `oracle` (the hidden truth, daily) on the contact center's own metrics.
//!
//! Each policy has a twin, a simulated clock and (for `tuned`) a client and a ledger of its
//! own, so the three run concurrently. A driven day starts at [`CYCLE_HOUR`] UTC: the clock
//! is set there, the day before is simulated, and the policy acts; the twin's first shift
//! starts at 07:00, so what a policy writes governs the whole day.
//!
//! - `policies.rs`: the policies and the day loop;
//! - `table.rs`: weekly metrics, the gap closed, the composite and the tables.

pub mod effect;
mod policies;
mod table;

pub use policies::{tuned_settings, Policy, PolicyDays, PolicyTiming, TunedStats, UnknownPolicy};
pub use table::{
    constraints, gap_closed, percent, Constraints, GapClosed, Metric, Period, WeekRow,
    GINI_ALLOWANCE,
};

use crate::config::{ConfigError, Settings};
use crate::cycle::CycleError;
use crate::history::LedgerError;
use crate::runtime::StartupError;
use chrono::{DateTime, NaiveDate, Utc};
use genesys_sim::{TwinConfig, TwinError};
use serde::Serialize;
use std::collections::BTreeMap;

/// The first driven day: a Monday, so weeks run Monday to Sunday. Fixed, so a run never
/// depends on the day it is made.
pub const SIMULATE_START: &str = "2027-03-01";

/// The hour (UTC) at which each driven day's policy acts: before the first shift.
pub const CYCLE_HOUR: u32 = 6;

/// The tuned policy's built-in settings for the twin (`config/simulate.toml`).
pub const SIMULATE_TOML: &str = include_str!("../../config/simulate.toml");

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub agents: usize,
    pub skills: usize,
    pub weeks: u32,
    pub seed: u64,
    /// In the order to print them; duplicates are ignored.
    pub policies: Vec<Policy>,
    /// The tuned policy's settings; `None`: [`SIMULATE_TOML`].
    pub settings: Option<Settings>,
    /// The twin's parameters (`retain_days` is set from the settings' look-back).
    pub twin: TwinConfig,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        SimulateOptions {
            agents: 1_000,
            skills: 6,
            weeks: 8,
            seed: 7,
            policies: vec![Policy::Static, Policy::Tuned, Policy::Oracle],
            settings: None,
            twin: TwinConfig::default(),
        }
    }
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("the built-in simulate policy: {0}")]
    BuiltIn(#[source] ConfigError),
    #[error("simulate needs at least one week and one policy")]
    Empty,
    #[error("cannot start the twin: {0}")]
    Simulator(#[source] std::io::Error),
    #[error("the simulator started without its twin")]
    NoTwin,
    #[error(transparent)]
    Twin(#[from] TwinError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the tuned cycle of {day}: {source}")]
    Cycle {
        day: NaiveDate,
        #[source]
        source: Box<CycleError>,
    },
    #[error("a policy's run stopped: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// One policy's weeks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResult {
    pub policy: Policy,
    pub weeks: Vec<WeekRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuned: Option<TunedStats>,
    /// Where the run's time went (not part of the table: it varies from run to run).
    pub timing: PolicyTiming,
}

/// Everything `simulate` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulateResult {
    pub agents: usize,
    pub skills: usize,
    pub seed: u64,
    pub weeks: u32,
    pub start: NaiveDate,
    /// The week the gap is measured on (the last).
    pub counted_week: u32,
    pub policies: Vec<PolicyResult>,
    /// Metric name (and `composite`) → share of the static→oracle gap tuned closes in the
    /// counted week; `None` where oracle is not better than static. Empty unless all three
    /// policies ran.
    pub gap_closed: BTreeMap<&'static str, Option<f64>>,
    /// The composite's weights (each metric's standardised oracle gain).
    pub composite_weights: BTreeMap<&'static str, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Constraints>,
}

impl SimulateResult {
    pub fn policy(&self, policy: Policy) -> Option<&PolicyResult> {
        self.policies.iter().find(|p| p.policy == policy)
    }

    /// The weekly table, then (with all three policies) the gap table and the target's checks.
    pub fn render(&self) -> String {
        let weeks: Vec<(Policy, Vec<WeekRow>)> = self
            .policies
            .iter()
            .map(|p| (p.policy, p.weeks.clone()))
            .collect();
        let mut out = table::render_weeks(&weeks);
        let counted = self.counted_week as usize;
        let row = |p: Policy| {
            self.policy(p)
                .and_then(|r| r.weeks.get(counted.wrapping_sub(1)))
        };
        if let (Some(s), Some(t), Some(o)) =
            (row(Policy::Static), row(Policy::Tuned), row(Policy::Oracle))
        {
            let gap = GapClosed {
                shares: self.gap_closed.clone(),
                weights: self.composite_weights.clone(),
            };
            out.push('\n');
            out.push_str(&table::render_gap(
                &format!("week {}", self.counted_week),
                s,
                t,
                o,
                &gap,
            ));
            if let Some(c) = self.constraints {
                let yes = |b: bool| if b { "yes" } else { "NO" };
                out.push_str(&format!(
                    "  tuned vs static: transfer rate no worse: {}; quality no worse: {}; Gini within +{GINI_ALLOWANCE}: {}\n",
                    yes(c.transfer_rate_no_worse),
                    yes(c.quality_no_worse),
                    yes(c.gini_within)
                ));
            }
        }
        if let Some(s) = self.policy(Policy::Tuned).and_then(|p| p.tuned.as_ref()) {
            let outcomes: Vec<String> =
                s.outcomes.iter().map(|(k, v)| format!("{v} {k}")).collect();
            out.push_str(&format!(
                "\ntuned: {} cycles ({}), {} skills up, {} down; {} changes applied in the ledger through {} bulk writes; {} API calls\n",
                s.cycles,
                outcomes.join(", "),
                s.skills_up,
                s.skills_down,
                s.ledger_applied,
                s.bulk_writes,
                s.api_calls
            ));
        }
        out
    }
}

/// The tuned policy's settings: the given ones, or the built-in twin policy.
pub fn policy_settings(options: &SimulateOptions) -> Result<Settings, SimulateError> {
    match &options.settings {
        Some(s) => Ok(s.clone()),
        None => Settings::from_toml_str(SIMULATE_TOML).map_err(SimulateError::BuiltIn),
    }
}

fn start_instant() -> DateTime<Utc> {
    let date = NaiveDate::parse_from_str(SIMULATE_START, "%Y-%m-%d").unwrap_or_default();
    date.and_hms_opt(CYCLE_HOUR, 0, 0)
        .unwrap_or_default()
        .and_utc()
}

/// Runs every policy (concurrently, each on its own twin) and compares them.
pub async fn run(options: &SimulateOptions) -> Result<SimulateResult, SimulateError> {
    let mut policies = options.policies.clone();
    policies.sort_unstable();
    policies.dedup();
    if options.weeks == 0 || policies.is_empty() {
        return Err(SimulateError::Empty);
    }
    let settings = policy_settings(options)?;
    let mut twin = options.twin.clone();
    // The cycle reads `lookback_days` ended days; keep a few more, drop the rest.
    twin.retain_days = Some(settings.metrics.lookback_days + 3);
    let spec = std::sync::Arc::new(policies::RunSpec {
        agents: options.agents,
        skills: options.skills,
        seed: options.seed,
        days: options.weeks * 7,
        start: start_instant(),
        twin,
        settings,
    });
    // Static and oracle on tasks of their own; tuned here (its cycle is not `Send`).
    let tasks: Vec<_> = policies
        .iter()
        .filter(|&&p| p != Policy::Tuned)
        .map(|&p| {
            let spec = spec.clone();
            tokio::spawn(async move { policies::run_untuned(p, &spec).await })
        })
        .collect();
    let mut runs = Vec::new();
    if policies.contains(&Policy::Tuned) {
        runs.push(policies::run_tuned(&spec).await?);
    }
    for task in tasks {
        runs.push(task.await.map_err(SimulateError::Task)??);
    }
    Ok(compare(options, spec.start.date_naive(), runs))
}

/// Groups each policy's days into weeks and measures the gap on the last one.
fn compare(options: &SimulateOptions, start: NaiveDate, runs: Vec<PolicyDays>) -> SimulateResult {
    let mut periods: BTreeMap<Policy, Vec<Period>> = BTreeMap::new();
    let mut results = Vec::new();
    for run in runs {
        let mut weeks = vec![Period::default(); options.weeks as usize];
        for day in &run.days {
            let i = (day.date - start).num_days() / 7;
            if let Some(w) = usize::try_from(i).ok().and_then(|i| weeks.get_mut(i)) {
                w.add_day(&day.total, &day.work);
            }
        }
        results.push(PolicyResult {
            policy: run.policy,
            weeks: weeks.iter().map(Period::row).collect(),
            tuned: run.tuned,
            timing: run.timing,
        });
        periods.insert(run.policy, weeks);
    }
    // Print in the order asked for.
    results.sort_by_key(|r| {
        options
            .policies
            .iter()
            .position(|p| *p == r.policy)
            .unwrap_or(usize::MAX)
    });
    let last = |p: Policy| periods.get(&p).and_then(|w| w.last());
    let (gap, constraints) = match (
        last(Policy::Static),
        last(Policy::Tuned),
        last(Policy::Oracle),
    ) {
        (Some(s), Some(t), Some(o)) => (
            Some(gap_closed(s, t, o)),
            Some(constraints(&s.row(), &t.row())),
        ),
        _ => (None, None),
    };
    let (gap_closed, composite_weights) =
        gap.map_or_else(Default::default, |g| (g.shares, g.weights));
    SimulateResult {
        agents: options.agents,
        skills: options.skills,
        seed: options.seed,
        weeks: options.weeks,
        start,
        counted_week: options.weeks,
        policies: results,
        gap_closed,
        composite_weights,
        constraints,
    }
}
