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
    /// Requests per minute per access token; 0 = unlimited. A window of
    /// [`SimConfig::rate_window_secs`] allows its share of it (`inin-ratelimit-allowed`).
    pub rate_limit_per_minute: u32,
    /// Length of the fixed rate-limit window, in seconds (Genesys' is a minute). Tests shorten
    /// it so that a run spanning several windows takes seconds.
    pub rate_window_secs: u64,
    /// Another user of every token spends this share (0..=1) of each window's allowance,
    /// evenly over the window: traffic the client under test did not send, counted in the
    /// same `inin-ratelimit-count` and refused like its own once the window is spent
    /// ([`crate::Simulator::other_user`]).
    pub other_user_share: f64,
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
            rate_window_secs: 60,
            other_user_share: 0.0,
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

impl SimConfig {
    /// The rate-limit window (at least a second).
    pub(crate) fn rate_window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.rate_window_secs.max(1))
    }

    /// Requests one window allows (`inin-ratelimit-allowed`); 0 = unlimited.
    pub(crate) fn window_allowance(&self) -> u32 {
        if self.rate_limit_per_minute == 0 {
            return 0;
        }
        let per_window = u64::from(self.rate_limit_per_minute) * self.rate_window().as_secs() / 60;
        u32::try_from(per_window).unwrap_or(u32::MAX).max(1)
    }

    /// Requests the other user of a token makes in each window.
    pub(crate) fn other_user_quota(&self) -> u32 {
        let share = if self.other_user_share.is_finite() {
            self.other_user_share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        (f64::from(self.window_allowance()) * share).floor() as u32
    }
}
