//! `simulate-effect`: validates the experiment on the twin, where the truth is known.
//!
//! The validation twin (`effect48`: 480 agents, 48 skills on 48 queues, each queue requesting
//! two skills) runs, per seed, five times on the same arrivals (common random numbers):
//!
//! - `null`: nothing changes (also the A/A run: the estimate of no effect);
//! - `experiment`: the good policy (proficiencies from the hidden truth, as the oracle sets
//!   them) on the tuned skills only, the held-out ones never touched;
//! - `harmful`: the inverted policy (the truth upside down) on the tuned skills, with the
//!   daily sequential harm test; it stops applying once harm shows (the pause);
//! - `per_agent`: the good policy on a hashed half of the agents (the naive design);
//! - `all`: the good policy everywhere (the effect of tuning everything).
//!
//! Every number comes from the same analytics queries `effect` makes, over HTTP. The true
//! effect on the tuned skills is the experiment run minus the null run on those skills; the
//! interval's coverage is counted against it. The naive per-agent estimate and the cluster
//! estimate are both compared with tuning everything (`all` minus `null`).

use super::policies::{blocking, Driven, RunSpec};
use super::{SimulateError, CYCLE_HOUR, SIMULATE_START};
use crate::config::{ExperimentSettings, Settings};
use crate::experiment::{self, read, Arm, Assignment, Metric, Observations, UnitObs};
use crate::genesys::{AggregateSource, GenesysClient};
use chrono::{Duration, NaiveDate};
use genesys_sim::TwinConfig;
use serde::Serialize;
use std::collections::BTreeMap;

/// The validation twin's size.
pub const VALIDATION_AGENTS: usize = 480;
pub const VALIDATION_SKILLS: usize = 48;

/// The validation twin `effect48`: one queue per skill as primary (and another's secondary),
/// so 48 clusters; 28 days of history are the baseline.
pub fn validation_twin() -> TwinConfig {
    TwinConfig {
        queues: VALIDATION_SKILLS,
        history_days: 28,
        ..TwinConfig::default()
    }
}

/// What to validate.
#[derive(Debug, Clone)]
pub struct ValidationOptions {
    pub seeds: u32,
    pub first_seed: u64,
    /// Days of the experiment.
    pub days: u32,
    /// Seeds run at once.
    pub parallel: usize,
    /// The experiment's settings (harm bound, alpha, metrics); enabled with the fixed start.
    pub experiment: ExperimentSettings,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        ValidationOptions {
            seeds: 100,
            first_seed: 1,
            days: 28,
            parallel: 2,
            experiment: ExperimentSettings::default(),
        }
    }
}

/// One seed's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    /// Per metric: (estimate, low, high, truth on the tuned skills).
    pub experiment: BTreeMap<&'static str, (f64, f64, f64, f64)>,
    /// Per metric: the held-out skills' change between the experiment and the null run
    /// (what leaks from tuned to held-out skills).
    pub spillover: BTreeMap<&'static str, f64>,
    /// Per metric: A/A (null run) interval excludes zero.
    pub aa_significant: BTreeMap<&'static str, bool>,
    /// Handle time and transfer rate: the naive per-agent estimate, the cluster estimate, and
    /// the effect of tuning everything.
    pub naive: BTreeMap<&'static str, (f64, f64, f64)>,
    /// Day (1-based) the harmful policy was paused; `None`: never within the run.
    pub harmful_paused_day: Option<u32>,
    pub good_paused_day: Option<u32>,
    pub aa_paused_day: Option<u32>,
    /// What `effect` would print at the end of the experiment run.
    #[serde(skip)]
    pub effect_text: String,
}

/// Counts over the seeds.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationSummary {
    pub seeds: u32,
    pub days: u32,
    pub agents: usize,
    pub skills: usize,
    /// Per metric: seeds whose 95 % interval covers the true effect.
    pub coverage: BTreeMap<&'static str, u32>,
    /// Per metric: mean estimate and mean truth.
    pub mean_estimate: BTreeMap<&'static str, f64>,
    pub mean_truth: BTreeMap<&'static str, f64>,
    pub mean_spillover: BTreeMap<&'static str, f64>,
    /// Per metric: A/A seeds with a "significant" effect; and seeds where any metric was.
    pub aa_false_positives: BTreeMap<&'static str, u32>,
    pub aa_any_metric: u32,
    /// Per metric: mean of (naive − everything) and of (cluster − everything); the mean of
    /// the effect of tuning everything.
    pub naive_bias: BTreeMap<&'static str, f64>,
    pub cluster_bias: BTreeMap<&'static str, f64>,
    pub mean_all_effect: BTreeMap<&'static str, f64>,
    /// Harmful policy paused by day k (k = 7, 14, 21, the last).
    pub harmful_paused_by: BTreeMap<u32, u32>,
    pub good_paused: u32,
    pub aa_paused: u32,
    pub wall_secs: f64,
    pub per_seed: Vec<SeedResult>,
}

/// Which proficiencies a run sets each morning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Null,
    Experiment,
    Harmful,
    PerAgent,
    All,
}

fn start_date() -> NaiveDate {
    NaiveDate::parse_from_str(SIMULATE_START, "%Y-%m-%d").unwrap_or_default()
}

/// The experiment's settings for the runs: enabled, from the fixed start, salted by seed.
fn experiment_settings(base: &ExperimentSettings, seed: u64) -> ExperimentSettings {
    ExperimentSettings {
        enabled: true,
        start: SIMULATE_START.into(),
        salt: format!("validation-{seed}"),
        baseline_days: 28,
        ..base.clone()
    }
}

/// One run of one seed: what the analytics say at the end, and the day it paused.
struct RunOutcome {
    obs: Observations,
    /// Per-agent observations (handle time and transfers), for the naive comparison.
    agents: Option<Observations>,
    paused_day: Option<u32>,
}

async fn client_for(driven: &Driven) -> Result<GenesysClient, SimulateError> {
    let settings = super::tuned_settings(&driven.sim, &Settings::default());
    let client =
        crate::runtime::client_with_secret(&settings, crate::demo::sim_secret(), &driven.clock)?;
    crate::runtime::start_client(&client, &settings)
        .await
        .map_err(crate::runtime::StartupError::from)?;
    Ok(client)
}

/// Handle time and transfers per agent, baseline and experiment, arms by agent hash.
async fn agent_observations(
    client: &GenesysClient,
    assignment: &Assignment,
    today: NaiveDate,
) -> Result<Observations, SimulateError> {
    let start = assignment.start;
    let mut sums: BTreeMap<Metric, BTreeMap<String, UnitObs>> = BTreeMap::new();
    let mut periods = vec![(start - Duration::days(28), start, false)];
    periods.extend(
        read::chunks(start, today)
            .into_iter()
            .map(|(a, b)| (a, b, true)),
    );
    for (from, to, post) in periods {
        let q = read::query(
            read::interval(from, to),
            &["userId"],
            &["tHandle", "nTransferred"],
            &[],
        );
        let r = client
            .aggregates(AggregateSource::Conversations, &q)
            .await
            .map_err(|e| SimulateError::Simulator(std::io::Error::other(e.to_string())))?;
        for g in &r.results {
            let Some(user) = g.group.get("userId") else {
                continue;
            };
            let Some((sum, n)) = read::metric_sums(g, "tHandle").filter(|(_, n)| *n > 0.0) else {
                continue;
            };
            let transferred = read::metric_sums(g, "nTransferred").map_or(0.0, |(_, c)| c);
            for (m, s) in [
                (Metric::HandleTime, sum),
                (Metric::TransferRate, transferred),
            ] {
                let u = sums
                    .entry(m)
                    .or_default()
                    .entry(user.clone())
                    .or_insert_with(|| UnitObs {
                        unit: user.clone(),
                        arm: assignment.arm(user),
                        pre_sum: 0.0,
                        pre_n: 0.0,
                        post_sum: 0.0,
                        post_n: 0.0,
                    });
                if post {
                    u.post_sum += s;
                    u.post_n += n;
                } else {
                    u.pre_sum += s;
                    u.pre_n += n;
                }
            }
        }
    }
    Ok(Observations {
        days: u32::try_from((today - start).num_days()).unwrap_or(0),
        by_metric: sums
            .into_iter()
            .map(|(m, units)| (m, units.into_values().collect()))
            .collect(),
    })
}

/// Runs one policy of one seed for `days` days.
async fn run_one(
    run: Run,
    seed: u64,
    options: &ValidationOptions,
) -> Result<RunOutcome, SimulateError> {
    let settings = experiment_settings(&options.experiment, seed);
    let assignment = Assignment::of(&settings).ok_or(SimulateError::Empty)?;
    let start = start_date();
    let spec = RunSpec {
        agents: VALIDATION_AGENTS,
        skills: VALIDATION_SKILLS,
        seed,
        days: options.days,
        start: start
            .and_hms_opt(CYCLE_HOUR, 0, 0)
            .unwrap_or_default()
            .and_utc(),
        twin: validation_twin(),
        settings: Settings::default(),
    };
    let mut driven = Driven::start(&spec).await?;
    let client = client_for(&driven).await?;
    let watch = matches!(run, Run::Null | Run::Experiment | Run::Harmful);
    let mut paused_day = None;
    for d in 0..options.days {
        driven.begin_day(&spec, d).await?;
        let today = driven.clock.now().date_naive();
        if watch && d > 0 && paused_day.is_none() {
            let report = measure(&client, &settings, &assignment, today).await?;
            if report.harm_shown {
                paused_day = Some(d);
            }
        }
        if run == Run::Null || paused_day.is_some() {
            continue;
        }
        let a = assignment.clone();
        blocking(&driven.twin, move |t| {
            let values: Vec<(String, String, f64)> = t
                .oracle_proficiencies(today)
                .into_iter()
                .filter(|(user, skill, _)| match run {
                    Run::Experiment | Run::Harmful => !a.is_held_out(skill),
                    Run::PerAgent => !a.is_held_out(user),
                    Run::All => true,
                    Run::Null => false,
                })
                .map(|(u, s, p)| {
                    let p = if run == Run::Harmful { 5.0 - p } else { p };
                    (u, s, p)
                })
                .collect();
            t.set_proficiencies(&values)
        })
        .await??;
    }
    driven.begin_day(&spec, options.days).await?;
    let today = driven.clock.now().date_naive();
    if watch && paused_day.is_none() {
        let report = measure(&client, &settings, &assignment, today).await?;
        if report.harm_shown {
            paused_day = Some(options.days);
        }
    }
    let obs = read::observations(
        &client,
        &assignment,
        settings.baseline_days,
        today,
        &experiment::judged(&settings),
        &[],
    )
    .await
    .map_err(|e| SimulateError::Simulator(std::io::Error::other(e.to_string())))?;
    let agents = match run {
        Run::PerAgent => Some(agent_observations(&client, &assignment, today).await?),
        _ => None,
    };
    client.shut_down();
    driven.sim.shutdown().await;
    Ok(RunOutcome {
        obs,
        agents,
        paused_day,
    })
}

async fn measure(
    client: &GenesysClient,
    settings: &ExperimentSettings,
    assignment: &Assignment,
    today: NaiveDate,
) -> Result<experiment::EffectReport, SimulateError> {
    experiment::measure(client, settings, assignment, &[], today)
        .await
        .map_err(|e| SimulateError::Simulator(std::io::Error::other(e.to_string())))
}

/// The per-interaction value of `arm`'s units (`None`: every unit) during the experiment.
fn post_ratio(obs: &Observations, metric: Metric, arm: Option<Arm>) -> Option<f64> {
    let units = obs.by_metric.get(&metric)?;
    let (s, n) = units
        .iter()
        .filter(|u| arm.is_none_or(|a| u.arm == a))
        .fold((0.0, 0.0), |(s, n), u| (s + u.post_sum, n + u.post_n));
    (n > 0.0).then(|| s / n * metric.scale())
}

/// All five runs of one seed.
async fn run_seed(seed: u64, options: &ValidationOptions) -> Result<SeedResult, SimulateError> {
    let runs = [
        Run::Null,
        Run::Experiment,
        Run::Harmful,
        Run::PerAgent,
        Run::All,
    ];
    let mut outcomes = Vec::new();
    for run in runs {
        outcomes.push(run_one(run, seed, options).await?);
    }
    let [null, exp, harmful, per_agent, all]: [RunOutcome; 5] =
        outcomes.try_into().map_err(|_| SimulateError::Empty)?;
    let settings = experiment_settings(&options.experiment, seed);
    let assignment = Assignment::of(&settings).ok_or(SimulateError::Empty)?;
    let est = experiment::report(&settings, &assignment, &exp.obs);
    let aa = experiment::report(&settings, &assignment, &null.obs);
    let mut result = SeedResult {
        seed,
        experiment: BTreeMap::new(),
        spillover: BTreeMap::new(),
        aa_significant: BTreeMap::new(),
        naive: BTreeMap::new(),
        harmful_paused_day: harmful.paused_day,
        good_paused_day: exp.paused_day,
        aa_paused_day: null.paused_day,
        effect_text: est.render(),
    };
    for m in &est.metrics {
        let key = m.metric.as_str();
        let truth = match (
            post_ratio(&exp.obs, m.metric, Some(Arm::Tuned)),
            post_ratio(&null.obs, m.metric, Some(Arm::Tuned)),
        ) {
            (Some(a), Some(b)) => a - b,
            _ => continue,
        };
        result
            .experiment
            .insert(key, (m.estimate, m.ci_low, m.ci_high, truth));
        if let (Some(a), Some(b)) = (
            post_ratio(&exp.obs, m.metric, Some(Arm::HeldOut)),
            post_ratio(&null.obs, m.metric, Some(Arm::HeldOut)),
        ) {
            result.spillover.insert(key, a - b);
        }
    }
    for m in &aa.metrics {
        if m.ci_low.is_finite() {
            result
                .aa_significant
                .insert(m.metric.as_str(), m.ci_low > 0.0 || m.ci_high < 0.0);
        }
    }
    if let Some(agents) = &per_agent.agents {
        for metric in [Metric::HandleTime, Metric::TransferRate] {
            let naive = experiment::estimate(agents, metric, 0.0, 0.05);
            let cluster = est.metrics.iter().find(|m| m.metric == metric);
            let everything = match (
                post_ratio(&all.obs, metric, None),
                post_ratio(&null.obs, metric, None),
            ) {
                (Some(a), Some(b)) => a - b,
                _ => continue,
            };
            if let Some(c) = cluster {
                result
                    .naive
                    .insert(metric.as_str(), (naive.estimate, c.estimate, everything));
            }
        }
    }
    Ok(result)
}

/// Runs every seed (`parallel` at a time) and counts.
pub async fn validate(options: &ValidationOptions) -> Result<ValidationSummary, SimulateError> {
    let started = std::time::Instant::now();
    let options = std::sync::Arc::new(options.clone());
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(options.parallel.max(1)));
    let tasks: Vec<_> = (0..u64::from(options.seeds))
        .map(|i| {
            let (options, permits) = (options.clone(), permits.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                let seed = options.first_seed + i;
                let r = run_seed(seed, &options).await;
                if let Ok(s) = &r {
                    eprintln!(
                        "seed {seed}: harmful paused on day {:?}, good {:?}, A/A {:?}",
                        s.harmful_paused_day, s.good_paused_day, s.aa_paused_day
                    );
                }
                r
            })
        })
        .collect();
    let mut per_seed = Vec::new();
    for t in tasks {
        per_seed.push(t.await.map_err(SimulateError::Task)??);
    }
    Ok(summarise(
        &options,
        per_seed,
        started.elapsed().as_secs_f64(),
    ))
}

fn summarise(
    options: &ValidationOptions,
    per_seed: Vec<SeedResult>,
    wall: f64,
) -> ValidationSummary {
    let mut s = ValidationSummary {
        seeds: options.seeds,
        days: options.days,
        agents: VALIDATION_AGENTS,
        skills: VALIDATION_SKILLS,
        coverage: BTreeMap::new(),
        mean_estimate: BTreeMap::new(),
        mean_truth: BTreeMap::new(),
        mean_spillover: BTreeMap::new(),
        aa_false_positives: BTreeMap::new(),
        aa_any_metric: 0,
        naive_bias: BTreeMap::new(),
        cluster_bias: BTreeMap::new(),
        mean_all_effect: BTreeMap::new(),
        harmful_paused_by: BTreeMap::new(),
        good_paused: 0,
        aa_paused: 0,
        wall_secs: wall,
        per_seed: Vec::new(),
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    for m in Metric::ALL {
        let key = m.as_str();
        let rows: Vec<(f64, f64, f64, f64)> = per_seed
            .iter()
            .filter_map(|r| r.experiment.get(key).copied())
            .collect();
        if !rows.is_empty() {
            s.coverage.insert(
                key,
                rows.iter()
                    .filter(|(_, lo, hi, t)| lo <= t && t <= hi)
                    .count() as u32,
            );
            s.mean_estimate
                .insert(key, mean(&rows.iter().map(|r| r.0).collect::<Vec<_>>()));
            s.mean_truth
                .insert(key, mean(&rows.iter().map(|r| r.3).collect::<Vec<_>>()));
        }
        let spill: Vec<f64> = per_seed
            .iter()
            .filter_map(|r| r.spillover.get(key).copied())
            .collect();
        if !spill.is_empty() {
            s.mean_spillover.insert(key, mean(&spill));
        }
        s.aa_false_positives.insert(
            key,
            per_seed
                .iter()
                .filter(|r| r.aa_significant.get(key).copied().unwrap_or(false))
                .count() as u32,
        );
        let naive: Vec<(f64, f64, f64)> = per_seed
            .iter()
            .filter_map(|r| r.naive.get(key).copied())
            .collect();
        if !naive.is_empty() {
            s.naive_bias.insert(
                key,
                mean(&naive.iter().map(|(n, _, e)| n - e).collect::<Vec<_>>()),
            );
            s.cluster_bias.insert(
                key,
                mean(&naive.iter().map(|(_, c, e)| c - e).collect::<Vec<_>>()),
            );
            s.mean_all_effect.insert(
                key,
                mean(&naive.iter().map(|(_, _, e)| *e).collect::<Vec<_>>()),
            );
        }
    }
    s.aa_any_metric = per_seed
        .iter()
        .filter(|r| r.aa_significant.values().any(|&b| b))
        .count() as u32;
    for k in [7, 14, 21, options.days] {
        s.harmful_paused_by.insert(
            k,
            per_seed
                .iter()
                .filter(|r| r.harmful_paused_day.is_some_and(|d| d <= k))
                .count() as u32,
        );
    }
    s.good_paused = per_seed
        .iter()
        .filter(|r| r.good_paused_day.is_some())
        .count() as u32;
    s.aa_paused = per_seed
        .iter()
        .filter(|r| r.aa_paused_day.is_some())
        .count() as u32;
    s.per_seed = per_seed;
    s
}

impl ValidationSummary {
    pub fn render(&self) -> String {
        let n = self.seeds;
        let mut out = format!(
            "validation twin effect48 ({} agents, {} skills): {} seeds × {} days, in {:.0} s\n\n",
            self.agents, self.skills, n, self.days, self.wall_secs
        );
        out.push_str(&format!(
            "{:<14} {:>10} {:>12} {:>12} {:>12} {:>10}\n",
            "metric", "coverage", "mean est.", "mean truth", "spillover", "A/A sig."
        ));
        for m in Metric::ALL {
            let k = m.as_str();
            let Some(c) = self.coverage.get(k) else {
                continue;
            };
            out.push_str(&format!(
                "{:<14} {:>6}/{n:<3} {:>12.3} {:>12.3} {:>12.3} {:>6}/{n}\n",
                m.label(),
                c,
                self.mean_estimate.get(k).copied().unwrap_or(f64::NAN),
                self.mean_truth.get(k).copied().unwrap_or(f64::NAN),
                self.mean_spillover.get(k).copied().unwrap_or(f64::NAN),
                self.aa_false_positives.get(k).copied().unwrap_or(0)
            ));
        }
        out.push_str(&format!(
            "A/A: any of the metrics significant in {}/{n}\n\n",
            self.aa_any_metric
        ));
        for (k, v) in &self.naive_bias {
            out.push_str(&format!(
                "{k}: effect of tuning everything {:+.3}; naive per-agent estimate bias {:+.3}; skill-cluster estimate bias {:+.3}\n",
                self.mean_all_effect.get(k).copied().unwrap_or(f64::NAN),
                v,
                self.cluster_bias.get(k).copied().unwrap_or(f64::NAN)
            ));
        }
        out.push('\n');
        for (k, v) in &self.harmful_paused_by {
            out.push_str(&format!("harmful policy paused within {k} days: {v}/{n}\n"));
        }
        out.push_str(&format!(
            "good policy paused: {}/{n}; A/A (no tuning) paused: {}/{n}\n",
            self.good_paused, self.aa_paused
        ));
        if let Some(first) = self.per_seed.first() {
            out.push_str(&format!(
                "\n`effect` at the end of seed {}'s experiment run:\n{}",
                first.seed, first.effect_text
            ));
        }
        out
    }
}
