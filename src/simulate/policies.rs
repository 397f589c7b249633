//! The three policies, each run on a twin of its own: `static` leaves the starting
//! proficiencies alone, `oracle` sets them from the hidden truth every morning, and `tuned`
//! runs skill-tuner's real cycle every morning, over HTTP, with a ledger of its own (in
//! memory, for the run).

use crate::clock::Clock;
use crate::config::Settings;
use crate::cycle::{run_cycle, Mode, StopSignal};
use crate::history::{ChangeStatus, Ledger, RunOutcome};
use chrono::{DateTime, Duration, Utc};
use genesys_sim::{DayOutcome, SimConfig, Simulator, TwinConfig, TwinHandle};
use serde::Serialize;
use std::time::Instant;

use super::SimulateError;

/// A way of setting proficiencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The starting proficiencies (a supervisor's stale, noisy view) never change.
    Static,
    /// skill-tuner's cycle, daily.
    Tuned,
    /// Proficiency from the hidden truth, daily: the limit of what tuning can reach.
    Oracle,
}

/// A policy name `simulate` does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy {0:?} (expected static, tuned or oracle)")]
pub struct UnknownPolicy(pub String);

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Static => "static",
            Policy::Tuned => "tuned",
            Policy::Oracle => "oracle",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "static" => Ok(Policy::Static),
            "tuned" => Ok(Policy::Tuned),
            "oracle" => Ok(Policy::Oracle),
            other => Err(UnknownPolicy(other.to_string())),
        }
    }
}

/// What the tuned policy's cycles did, from their reports, the ledger and the simulator.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TunedStats {
    pub cycles: usize,
    /// Cycles by outcome (`ok`, `breaker`, `partial`, …).
    pub outcomes: std::collections::BTreeMap<String, usize>,
    /// Change rows the ledger holds as applied.
    pub ledger_applied: usize,
    /// Successful bulk skill writes the simulator received over HTTP.
    pub bulk_writes: u64,
    pub skills_up: usize,
    pub skills_down: usize,
    pub api_calls: u64,
}

/// One policy's simulated days (from the first driven day on) and, for `tuned`, its cycles.
#[derive(Debug, Clone)]
pub struct PolicyDays {
    pub policy: Policy,
    pub days: Vec<DayOutcome>,
    pub tuned: Option<TunedStats>,
    pub timing: PolicyTiming,
}

/// Where a policy's run spent its time (wall clock): the twin simulating days, the policy
/// acting (for `tuned`, its cycles).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PolicyTiming {
    pub twin_secs: f64,
    pub policy_secs: f64,
}

/// What every policy's run shares.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub agents: usize,
    pub skills: usize,
    pub seed: u64,
    pub days: u32,
    /// The first driven day, at the hour the policies act.
    pub start: DateTime<Utc>,
    pub twin: TwinConfig,
    /// The tuned policy's settings (its `genesys`, `alerts` and `history` are replaced).
    pub settings: Settings,
}

/// A policy's twin, on a simulated clock of its own.
pub(super) struct Driven {
    pub(super) sim: Simulator,
    pub(super) clock: Clock,
    pub(super) twin: TwinHandle,
    timing: PolicyTiming,
}

impl Driven {
    pub(super) async fn start(spec: &RunSpec) -> Result<Self, SimulateError> {
        let clock = Clock::manual(spec.start);
        let sim = Simulator::start(SimConfig {
            agents: spec.agents,
            skills: spec.skills,
            seed: spec.seed,
            rate_limit_per_minute: 0,
            clock: clock.clone(),
            twin: Some(spec.twin.clone()),
            ..SimConfig::default()
        })
        .await
        .map_err(SimulateError::Simulator)?;
        let twin = sim.twin().ok_or(SimulateError::NoTwin)?;
        Ok(Driven {
            sim,
            clock,
            twin,
            timing: PolicyTiming::default(),
        })
    }

    /// Moves the clock to driven day `d`'s policy hour and simulates the day before, so no
    /// API request waits for it.
    pub(super) async fn begin_day(&mut self, spec: &RunSpec, d: u32) -> Result<(), SimulateError> {
        self.clock.set(spec.start + Duration::days(i64::from(d)));
        let started = Instant::now();
        blocking(&self.twin, |t| t.simulate_ended_days()).await?;
        self.timing.twin_secs += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Simulates the last driven day and returns the driven days' outcomes.
    pub(super) async fn finish(
        mut self,
        spec: &RunSpec,
    ) -> Result<(Vec<DayOutcome>, PolicyTiming), SimulateError> {
        self.begin_day(spec, spec.days).await?;
        let first = spec.start.date_naive();
        let days = blocking(&self.twin, |t| t.outcomes())
            .await?
            .into_iter()
            .filter(|o| o.date >= first)
            .collect();
        self.sim.shutdown().await;
        Ok((days, self.timing))
    }
}

/// Runs `static` or `oracle` on a twin of its own for `spec.days` days.
pub async fn run_untuned(policy: Policy, spec: &RunSpec) -> Result<PolicyDays, SimulateError> {
    let mut driven = Driven::start(spec).await?;
    for d in 0..spec.days {
        driven.begin_day(spec, d).await?;
        if policy == Policy::Oracle {
            let started = Instant::now();
            let today = driven.clock.now().date_naive();
            blocking(&driven.twin, move |t| {
                t.set_proficiencies(&t.oracle_proficiencies(today))
            })
            .await??;
            driven.timing.policy_secs += started.elapsed().as_secs_f64();
        }
    }
    let (days, timing) = driven.finish(spec).await?;
    Ok(PolicyDays {
        policy,
        days,
        tuned: None,
        timing,
    })
}

/// Runs `tuned` on a twin of its own for `spec.days` days: one real cycle each morning.
/// (Not `Send`: the cycle is driven on the caller's task, as the daemon drives it.)
pub async fn run_tuned(spec: &RunSpec) -> Result<PolicyDays, SimulateError> {
    let mut driven = Driven::start(spec).await?;
    let mut tuner = Tuner::start(&driven.sim, &spec.settings, &driven.clock).await?;
    for d in 0..spec.days {
        driven.begin_day(spec, d).await?;
        let started = Instant::now();
        tuner.cycle(&driven.clock).await?;
        driven.timing.policy_secs += started.elapsed().as_secs_f64();
    }
    let tuned = tuner.finish(&driven.sim);
    let (days, timing) = driven.finish(spec).await?;
    Ok(PolicyDays {
        policy: Policy::Tuned,
        days,
        tuned: Some(tuned),
        timing,
    })
}

/// Runs a blocking twin call off the async workers (a day of 10 000 agents takes a few
/// tenths of a second).
pub(super) async fn blocking<T: Send + 'static>(
    twin: &TwinHandle,
    f: impl FnOnce(&TwinHandle) -> T + Send + 'static,
) -> Result<T, SimulateError> {
    let twin = twin.clone();
    tokio::task::spawn_blocking(move || f(&twin))
        .await
        .map_err(SimulateError::Task)
}

/// The tuned policy's live parts: a started client, its own ledger, and what its cycles did.
struct Tuner {
    client: crate::genesys::GenesysClient,
    settings: Settings,
    ledger: Ledger,
    stop: StopSignal,
    stats: TunedStats,
}

impl Tuner {
    async fn start(sim: &Simulator, base: &Settings, clock: &Clock) -> Result<Self, SimulateError> {
        let settings = tuned_settings(sim, base);
        let client =
            crate::runtime::client_with_secret(&settings, crate::demo::sim_secret(), clock)?;
        crate::runtime::start_client(&client, &settings)
            .await
            .map_err(crate::runtime::StartupError::from)?;
        // In memory: a run's ledger lives as long as the run, and a file's fsync per write
        // would make a long simulation wait on the disk.
        let ledger = Ledger::in_memory()?.with_clock(clock.clone());
        Ok(Tuner {
            client,
            settings,
            ledger,
            stop: StopSignal::default(),
            stats: TunedStats::default(),
        })
    }

    /// One real cycle, as `once` runs it.
    async fn cycle(&mut self, clock: &Clock) -> Result<(), SimulateError> {
        let report = run_cycle(
            &self.client,
            &self.settings,
            &self.ledger,
            Mode::Once,
            &self.stop,
            clock,
        )
        .await
        .map_err(|source| SimulateError::Cycle {
            day: clock.now().date_naive(),
            source: Box::new(source),
        })?;
        let s = &mut self.stats;
        s.cycles += 1;
        *s.outcomes.entry(report.outcome.to_string()).or_insert(0) += 1;
        s.api_calls += report.api_calls_total;
        if report.outcome != RunOutcome::Breaker {
            s.skills_up += report.skills_up;
            s.skills_down += report.skills_down;
            s.ledger_applied += self
                .ledger
                .changes(report.run_id)?
                .iter()
                .filter(|c| c.status == ChangeStatus::Applied)
                .count();
        }
        Ok(())
    }

    fn finish(self, sim: &Simulator) -> TunedStats {
        TunedStats {
            bulk_writes: sim.org().write_count(),
            ..self.stats
        }
    }
}

/// The tuned policy's settings against `sim`: the policy, metrics, scope, breaker and apply
/// settings of `base`; the simulator's address, no client-side rate limit (the twin has none),
/// and no supervisor alerts (nobody reviews in a simulation, so nothing is held for review).
pub fn tuned_settings(sim: &Simulator, base: &Settings) -> Settings {
    let mut s = base.clone();
    let g = &mut s.genesys;
    g.api_base_url = Some(sim.base_url());
    g.login_base_url = Some(sim.base_url());
    g.allow_insecure_http = true;
    g.client_id = SimConfig::default().client_id;
    g.rate_limit_per_minute = 0;
    s.alerts.hold_for_review = false;
    s.alerts.workitem.enabled = false;
    s.alerts.webhook.enabled = false;
    s
}
