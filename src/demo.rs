//! `demo`: the whole product on a laptop — starts the embedded simulator with a synthetic
//! org, runs `plan` and then `once` against it, and prints both reports. No account, no
//! config file, no network beyond loopback.

use crate::clock::Clock;
use crate::config::{Settings, WebhookFormat};
use crate::cycle::report::CycleReport;
use crate::cycle::CycleError;
use crate::cycle::{run_cycle, Mode, StopSignal};
use crate::history::Ledger;
use crate::runtime::{self, StartupError};
use genesys_sim::{SimConfig, Simulator};
use secrecy::SecretString;

/// What the demo runs against.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub agents: usize,
    pub skills: usize,
    pub seed: u64,
    /// The simulator's per-token limit; the client paces to it.
    pub rate_limit_per_minute: u32,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            agents: 300,
            skills: 6,
            seed: 42,
            rate_limit_per_minute: 1200,
        }
    }
}

/// Both reports, plus what the supervisors received.
#[derive(Debug)]
pub struct DemoOutcome {
    pub base_url: String,
    pub plan: CycleReport,
    pub once: CycleReport,
    pub workitems: usize,
    pub webhook_posts: usize,
    pub writes: u64,
}

/// The demo's policy and alert settings: `config/demo.toml`, built in.
pub const DEMO_TOML: &str = include_str!("../config/demo.toml");

/// Settings that point at a running simulator (also used by tests): `config/demo.toml`
/// with the simulator's address, worktype and rate filled in.
pub fn settings_for(sim: &Simulator, rate_limit_per_minute: u32) -> Settings {
    let mut s = Settings::from_toml_str(DEMO_TOML).unwrap_or_default();
    s.genesys.api_base_url = Some(sim.base_url());
    s.genesys.login_base_url = Some(sim.base_url());
    s.genesys.client_id = SimConfig::default().client_id;
    s.genesys.rate_limit_per_minute = rate_limit_per_minute;
    s.alerts.workitem.enabled = true;
    s.alerts.workitem.worktype_id = sim.org().worktype_id();
    s.alerts.webhook.enabled = true;
    s.alerts.webhook.url = format!("{}/_sim/webhook", sim.base_url());
    s.alerts.webhook.format = WebhookFormat::Slack;
    s
}

/// The review worktype `config/demo.toml` names. `demo` and the standalone `sim` create it,
/// so the file's workitems land (a made-up id would fail every one with a 400).
pub fn demo_worktype_id() -> Option<uuid::Uuid> {
    let settings = Settings::from_toml_str(DEMO_TOML).ok()?;
    uuid::Uuid::parse_str(&settings.alerts.workitem.worktype_id).ok()
}

/// The demo secret the simulator accepts (not a secret: it is printed by `sim`).
pub fn sim_secret() -> SecretString {
    SecretString::from(SimConfig::default().client_secret)
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the embedded simulator: {0}")]
    Simulator(#[source] std::io::Error),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Cycle(#[from] CycleError),
}

/// Runs the demo end to end; the simulator and the cycles share `clock`.
pub async fn run(options: &DemoOptions, clock: Clock) -> Result<DemoOutcome, DemoError> {
    let sim = Simulator::start(SimConfig {
        agents: options.agents,
        skills: options.skills,
        seed: options.seed,
        rate_limit_per_minute: options.rate_limit_per_minute,
        clock: clock.clone(),
        worktype_id: demo_worktype_id(),
        ..SimConfig::default()
    })
    .await
    .map_err(DemoError::Simulator)?;
    let settings = settings_for(&sim, options.rate_limit_per_minute);
    let client = runtime::client_with_secret(&settings, sim_secret(), &clock)?;
    runtime::start_client(&client, &settings)
        .await
        .map_err(StartupError::from)?;
    let ledger = Ledger::in_memory()
        .map_err(StartupError::from)?
        .with_clock(clock.clone());
    let stop = StopSignal::default();
    let plan = run_cycle(&client, &settings, &ledger, Mode::Plan, &stop, &clock).await?;
    let once = run_cycle(&client, &settings, &ledger, Mode::Once, &stop, &clock).await?;
    let org = sim.org();
    let outcome = DemoOutcome {
        base_url: sim.base_url(),
        plan,
        once,
        workitems: org.workitems().len(),
        webhook_posts: org.webhook_posts().len(),
        writes: org.write_count(),
    };
    sim.shutdown().await;
    Ok(outcome)
}
