//! The three policies, each run on a twin of its own: `static` leaves the starting
//! proficiencies alone, `oracle` sets them from the hidden truth every morning, and `tuned`
//! runs skill-tuner's real cycle every morning, over HTTP, with its own ledger.

use crate::clock::Clock;
use crate::config::Settings;
use crate::cycle::{run_cycle, Mode, StopSignal};
use crate::history::{ChangeStatus, Ledger, RunOutcome};
use chrono::{DateTime, Duration, Utc};
use genesys_sim::{DayOutcome, SimConfig, Simulator, TwinConfig, TwinHandle};
use serde::Serialize;
use std::path::PathBuf;

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
struct Driven {
    sim: Simulator,
    clock: Clock,
    twin: TwinHandle,
}

impl Driven {
    async fn start(spec: &RunSpec) -> Result<Self, SimulateError> {
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
        Ok(Driven { sim, clock, twin })
    }

    /// Moves the clock to driven day `d`'s policy hour and simulates the day before, so no
    /// API request waits for it.
    async fn begin_day(&self, spec: &RunSpec, d: u32) -> Result<(), SimulateError> {
        self.clock.set(spec.start + Duration::days(i64::from(d)));
        blocking(&self.twin, |t| t.simulate_ended_days()).await
    }

    /// Simulates the last driven day and returns the driven days' outcomes.
    async fn finish(self, spec: &RunSpec) -> Result<Vec<DayOutcome>, SimulateError> {
        self.begin_day(spec, spec.days).await?;
        let first = spec.start.date_naive();
        let days = blocking(&self.twin, |t| t.outcomes())
            .await?
            .into_iter()
            .filter(|o| o.date >= first)
            .collect();
        self.sim.shutdown().await;
        Ok(days)
    }
}

/// Runs `static` or `oracle` on a twin of its own for `spec.days` days.
pub async fn run_untuned(policy: Policy, spec: &RunSpec) -> Result<PolicyDays, SimulateError> {
    let driven = Driven::start(spec).await?;
    for d in 0..spec.days {
        driven.begin_day(spec, d).await?;
        if policy == Policy::Oracle {
            let today = driven.clock.now().date_naive();
            blocking(&driven.twin, move |t| {
                t.set_proficiencies(&t.oracle_proficiencies(today))
            })
            .await??;
        }
    }
    Ok(PolicyDays {
        policy,
        days: driven.finish(spec).await?,
        tuned: None,
    })
}

/// Runs `tuned` on a twin of its own for `spec.days` days: one real cycle each morning.
/// (Not `Send`: the cycle is driven on the caller's task, as the daemon drives it.)
pub async fn run_tuned(spec: &RunSpec) -> Result<PolicyDays, SimulateError> {
    let driven = Driven::start(spec).await?;
    let mut tuner = Tuner::start(&driven.sim, &spec.settings, &driven.clock).await?;
    for d in 0..spec.days {
        driven.begin_day(spec, d).await?;
        tuner.cycle(&driven.clock).await?;
    }
    let tuned = tuner.finish(&driven.sim)?;
    Ok(PolicyDays {
        policy: Policy::Tuned,
        days: driven.finish(spec).await?,
        tuned: Some(tuned),
    })
}

/// Runs a blocking twin call off the async workers (a day of 10 000 agents takes a few
/// tenths of a second).
async fn blocking<T: Send + 'static>(
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
    /// The ledger's directory, removed when the run ends.
    dir: TempDir,
}

impl Tuner {
    async fn start(sim: &Simulator, base: &Settings, clock: &Clock) -> Result<Self, SimulateError> {
        let dir = TempDir::new()?;
        let settings = tuned_settings(sim, base, dir.path().join("ledger.db"));
        let client =
            crate::runtime::client_with_secret(&settings, crate::demo::sim_secret(), clock)?;
        crate::runtime::start_client(&client, &settings)
            .await
            .map_err(crate::runtime::StartupError::from)?;
        let ledger = crate::runtime::open_ledger(&settings, clock)?;
        Ok(Tuner {
            client,
            settings,
            ledger,
            stop: StopSignal::default(),
            stats: TunedStats::default(),
            dir,
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

    fn finish(self, sim: &Simulator) -> Result<TunedStats, SimulateError> {
        let mut stats = self.stats;
        stats.bulk_writes = sim.org().write_count();
        drop(self.ledger);
        self.dir.remove()?;
        Ok(stats)
    }
}

/// The tuned policy's settings against `sim`: the policy, metrics, scope, breaker and apply
/// settings of `base`; the simulator's address, no client-side rate limit (the twin has none),
/// no supervisor alerts (nobody reviews in a simulation, so nothing is held for review), and
/// the ledger at `ledger`.
pub fn tuned_settings(sim: &Simulator, base: &Settings, ledger: PathBuf) -> Settings {
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
    s.history.path = ledger;
    s
}

/// A directory of one's own under the system's temporary directory.
struct TempDir(Option<PathBuf>);

impl TempDir {
    fn new() -> Result<Self, SimulateError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("skill-tuner-simulate-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|source| SimulateError::TempDir {
            path: path.clone(),
            source,
        })?;
        Ok(TempDir(Some(path)))
    }

    fn path(&self) -> &std::path::Path {
        self.0.as_deref().unwrap_or(std::path::Path::new("."))
    }

    fn remove(mut self) -> Result<(), SimulateError> {
        match self.0.take() {
            Some(path) => std::fs::remove_dir_all(&path)
                .map_err(|source| SimulateError::TempDir { path, source }),
            None => Ok(()),
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}
