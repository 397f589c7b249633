//! How to build the simulated org and server.

use skill_tuner_clock::Clock;

/// How to build the simulated org and server.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of active agents (users holding routing skills).
    pub agents: usize,
    /// Size of the skill catalogue.
    pub skills: usize,
    /// Everything is deterministic from the seed.
    pub seed: u64,
    /// Requests per access token per fixed 60 s window; 0 = unlimited.
    pub rate_limit_per_minute: u32,
    /// `expires_in` of issued tokens.
    pub token_ttl_secs: u64,
    pub client_id: String,
    pub client_secret: String,
    /// Analytics: most `userId` predicates per query (400 beyond).
    pub max_user_predicates: usize,
    /// Analytics: longest query interval in days (400 beyond).
    pub max_interval_days: u32,
    /// The simulator's "now": days that have not ended by it have no analytics data, and
    /// workitems are stamped with it. Give the product the same clock (or, across processes,
    /// a shifted clock with the same start) so both agree on what today is.
    pub clock: Clock,
    /// The review worktype's id; `None` derives it from the seed. The standalone `sim` uses
    /// the one `config/demo.toml` names, so that file works against it unchanged.
    pub worktype_id: Option<uuid::Uuid>,
    /// Keep every request and response, bodies included, in memory ([`crate::Simulator::exchanges`]):
    /// for contract tests, not for long runs.
    pub record: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            agents: 300,
            skills: 6,
            seed: 42,
            rate_limit_per_minute: 300,
            token_ttl_secs: 86_400,
            client_id: "skill-tuner-demo".to_string(),
            client_secret: "demo-secret-not-for-production".to_string(),
            max_user_predicates: 100,
            max_interval_days: 31,
            clock: Clock::system(),
            worktype_id: None,
            record: false,
        }
    }
}
