//! The in-process simulator and what the tests build around it: a started org, relaxed
//! settings, a client, and lookups in the org.

use secrecy::SecretString;
use skill_tuner::config::Settings;
use skill_tuner::demo::settings_for;
use skill_tuner::genesys::{ClientConfig, Credentials, Endpoints};
use skill_tuner::history::{ChangeRecord, ChangeStatus};
use skill_tuner::sim::{SimConfig, Simulator};
use std::collections::BTreeSet;

/// A simulator with `agents` agents and no rate limit; `tweak` sets anything else.
pub async fn start_sim(agents: usize, tweak: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig {
        agents,
        rate_limit_per_minute: 0,
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

/// A value that is neither `a` nor `b` (a person's edit).
pub fn other_than(a: f64, b: f64) -> f64 {
    [0.5, 1.5, 2.5, 3.5, 4.5]
        .into_iter()
        .find(|v| (v - a).abs() > 1e-6 && (v - b).abs() > 1e-6)
        .unwrap()
}
