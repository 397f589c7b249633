//! The in-process simulator and what the tests build around it: a started org on the test
//! clock, relaxed settings, a client, lookups in the org, and the ground truth of what a
//! transparent policy must change.

use chrono::{DateTime, Utc};
use genesys_sim::{SimConfig, Simulator};
use secrecy::SecretString;
use skill_tuner::clock::Clock;
use skill_tuner::config::Settings;
use skill_tuner::cycle::report::CycleReport;
use skill_tuner::cycle::{run_cycle, CycleError, Mode, StopSignal};
use skill_tuner::demo::{settings_for, sim_secret};
use skill_tuner::genesys::{ClientConfig, Credentials, Endpoints, GenesysClient};
use skill_tuner::history::{ChangeRecord, ChangeStatus, Ledger};
use std::collections::{BTreeMap, BTreeSet};

/// A simulator with `agents` agents and no rate limit, standing still at [`test_now`];
/// `tweak` sets anything else (another clock among them).
pub async fn start_sim(agents: usize, tweak: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig {
        agents,
        rate_limit_per_minute: 0,
        clock: Clock::manual(test_now()),
        ..SimConfig::default()
    };
    tweak(&mut config);
    Simulator::start(config).await.unwrap()
}

/// Settings that let a cycle apply its plan (breaker relaxed), without alerts.
pub fn relaxed(sim: &Simulator) -> Settings {
    let mut s = settings_for(sim, 60_000);
    s.breaker.max_changed_share = 1.0;
    s.breaker.min_data_share = 0.0;
    s.breaker.max_demotion_share = 1.0;
    s.alerts.workitem.enabled = false;
    s.alerts.webhook.enabled = false;
    s
}

/// A client config for `sim` (loopback endpoints, the simulator's client id, `secret`) with
/// no client-side rate limit.
pub fn client_config_for(sim: &Simulator, secret: &str) -> ClientConfig {
    let base = sim.base_url();
    let endpoints = Endpoints::resolve("us-east-1", Some(&base), Some(&base), false).unwrap();
    let mut config = ClientConfig::new(
        endpoints,
        Credentials {
            client_id: SimConfig::default().client_id,
            client_secret: SecretString::from(secret.to_string()),
        },
    );
    config.rate_limit_per_minute = 0;
    config
}

/// The id of the skill called `name` in the org.
pub fn skill_id(sim: &Simulator, name: &str) -> String {
    sim.org()
        .skills()
        .into_iter()
        .find(|(_, n)| n == name)
        .unwrap()
        .0
}

/// What the org holds now for the change's agent and skill.
pub fn org_value(sim: &Simulator, c: &ChangeRecord) -> Option<f64> {
    sim.org().proficiency(&c.agent_id, &c.skill_id)
}

/// The agents with an applied row among `rows` (each needs exactly one bulk write).
pub fn applied_agents(rows: &[ChangeRecord]) -> BTreeSet<&str> {
    rows.iter()
        .filter(|c| c.status == ChangeStatus::Applied)
        .map(|c| c.agent_id.as_str())
        .collect()
}

/// The instant the tests' simulators stand at (and, through `SKILL_TUNER_NOW`, the binaries
/// they run): a fixed day, so no test depends on the day it runs. Calendar tests pick others.
pub const TEST_NOW: &str = "2027-05-12T12:00:00Z";

pub fn test_now() -> DateTime<Utc> {
    instant(TEST_NOW)
}

pub fn instant(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

/// A started client for `sim` with `settings`, on the simulator's clock.
pub async fn client_for(sim: &Simulator, settings: &Settings) -> GenesysClient {
    let client =
        skill_tuner::runtime::client_with_secret(settings, sim_secret(), &sim.clock()).unwrap();
    skill_tuner::runtime::start_client(&client, settings)
        .await
        .unwrap();
    client
}

/// One cycle in `mode` against `sim`, on the simulator's clock.
pub async fn cycle(
    sim: &Simulator,
    client: &GenesysClient,
    settings: &Settings,
    ledger: &Ledger,
    mode: Mode,
) -> Result<CycleReport, CycleError> {
    run_cycle(
        client,
        settings,
        ledger,
        mode,
        &StopSignal::default(),
        &sim.clock(),
    )
    .await
}

/// An in-memory ledger stamped by the simulator's clock.
pub fn memory_ledger(sim: &Simulator) -> Ledger {
    Ledger::in_memory().unwrap().with_clock(sim.clock())
}

/// Settings whose plan the tests can recompute from the simulator's ground truth: handle time
/// only on its absolute ramp (no case mix), no smoothing or step limits, no evaluations (see
/// [`transparent_changes`]).
pub fn transparent(mut settings: Settings) -> Settings {
    settings.policy.default = skill_tuner::bench::bench_policy();
    settings.policy.case_mix = false;
    settings.metrics.evaluations = false;
    settings
}

/// What a cycle with [`transparent`] settings must write now: for every active agent's held
/// skill with handle-time data in the window that ends at the simulator's today, the target
/// `round_half(5 × ramp(AHT))` with the ramp 1 at 420 s and 0 at 720 s; only those that
/// differ from the current value. `(agent, skill) → (current, expected)`.
pub fn transparent_changes(
    sim: &Simulator,
    settings: &Settings,
) -> BTreeMap<(String, String), (f64, f64)> {
    let aht = settings.policy.default.components.handle_time.unwrap();
    assert_eq!(
        (aht.target, aht.limit),
        (420.0, 720.0),
        "the oracle assumes these"
    );
    let (start, end) = skill_tuner::cycle::collect::window(&settings.metrics, sim.clock().now());
    let org = sim.org();
    let mut out = BTreeMap::new();
    for agent in org.agent_ids() {
        for (skill, current) in org.user_skills(&agent) {
            let Some(t) = org.metrics_truth(&agent, &skill, start, end) else {
                continue;
            };
            if t.t_handle_count == 0 {
                continue;
            }
            let secs = t.t_handle_sum_ms as f64 / t.t_handle_count as f64 / 1000.0;
            let score = ((720.0 - secs) / (720.0 - 420.0)).clamp(0.0, 1.0);
            let expected = (5.0 * score * 2.0).round() / 2.0;
            if (expected - current).abs() > 1e-9 {
                out.insert((agent.clone(), skill), (current, expected));
            }
        }
    }
    out
}

/// A value that is neither `a` nor `b` (a person's edit).
pub fn other_than(a: f64, b: f64) -> f64 {
    [0.5, 1.5, 2.5, 3.5, 4.5]
        .into_iter()
        .find(|v| (v - a).abs() > 1e-6 && (v - b).abs() > 1e-6)
        .unwrap()
}
