//! How to build the simulated org and server.

use skill_tuner_clock::Clock;

pub use crate::state::skillgroups::ProficiencyMatch;

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
    /// `Some`: the org is a closed-loop twin ([`crate::TwinHandle`]): interactions arrive, are
    /// routed by the proficiencies in force, handled and recorded, and analytics answers
    /// from those records. `None`: the open-loop org, whose history is a fixed function of
    /// the seed. The twin uses `agents`, `skills` and `seed` above for its size and seed.
    pub twin: Option<TwinConfig>,
    /// The open-loop org's skill groups (`/api/v2/routing/skillgroups`, `Queue.memberGroups`);
    /// `false`: the org has none. A twin never has any.
    pub skill_groups: bool,
    /// How a fractional proficiency meets a skill-group condition's whole number.
    pub proficiency_match: ProficiencyMatch,
}

/// The closed-loop twin's parameters. The defaults are the reference twin; `docs/twin.md`
/// says why each value is plausible. Everything is deterministic from [`SimConfig::seed`].
#[derive(Debug, Clone, PartialEq)]
pub struct TwinConfig {
    /// Number of queues (at least 1). Queue `k` of `n` has a handle-time multiplier from
    /// 0.75 (easiest) to 1.45 (hardest), spaced evenly on a log scale.
    pub queues: usize,
    /// Offered work as a share of the agent time on shift (0.3–1.1): the default 0.95 keeps
    /// agents busy most of the day (realized occupancy about 0.89) while leaving a few idle,
    /// so routing has a choice to make.
    pub load: f64,
    /// Coefficient of variation of one agent's handle times on one queue (0.1–1.5).
    pub handle_cv: f64,
    /// Which `skillEvaluationMethod` the queues use (shares, rounded to whole queues).
    pub method_mix: MethodMix,
    /// Standard deviation, in stars, of a supervisor's fresh rating around the truth
    /// (one star = one standard deviation of ability).
    pub rating_noise: f64,
    /// Share of starting proficiencies that are stale: standard deviation 1.5 stars.
    pub stale_share: f64,
    /// Weight of ability in placing agents on queues (0: at random, 1: strictly the best on
    /// the hardest). 0.8 gives a rank correlation of about 0.5 between an agent's ability on
    /// a skill and the difficulty of the queue where they use it.
    pub placement: f64,
    /// Share of agents who are members of a second queue (of neighbouring difficulty).
    pub multi_queue_share: f64,
    /// Days simulated before the day the simulator starts on, so the first cycle has history.
    pub history_days: u32,
    /// Keep the per-day records of only this many most recent simulated days (older days
    /// answer no data; their outcome totals stay). `None`: keep every day.
    pub retain_days: Option<u32>,
    /// Mean of the callers' patience (exponential), in seconds: a waiting caller abandons
    /// after it.
    pub patience_mean_secs: f64,
    /// Share of handled interactions that get a quality evaluation.
    pub evaluation_share: f64,
    /// Share of handled interactions whose customer answers the survey.
    pub survey_share: f64,
    /// Share of agents who are new hires on a learning curve at the start of history.
    pub new_hire_share: f64,
    /// Share of agents whose ability drifts slowly (up or down) over the weeks.
    pub drift_share: f64,
    /// Share of agents who also work weekends (weekend arrivals follow the staffing).
    pub weekend_staff_share: f64,
}

/// Shares of queues by `skillEvaluationMethod`; need not sum to 1 (they are normalised).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MethodMix {
    pub best: f64,
    pub none: f64,
    pub all: f64,
}

impl Default for MethodMix {
    fn default() -> Self {
        MethodMix {
            best: 0.75,
            none: 0.125,
            all: 0.125,
        }
    }
}

impl MethodMix {
    /// Every queue uses BEST.
    pub fn all_best() -> Self {
        MethodMix {
            best: 1.0,
            none: 0.0,
            all: 0.0,
        }
    }
}

impl Default for TwinConfig {
    fn default() -> Self {
        TwinConfig {
            queues: 8,
            load: 0.95,
            handle_cv: 0.65,
            method_mix: MethodMix::default(),
            rating_noise: 0.5,
            stale_share: 0.2,
            placement: 0.8,
            multi_queue_share: 0.2,
            history_days: 28,
            retain_days: None,
            patience_mean_secs: 180.0,
            evaluation_share: 0.005,
            survey_share: 0.08,
            new_hire_share: 0.08,
            drift_share: 0.15,
            weekend_staff_share: 0.3,
        }
    }
}

/// Why a [`TwinConfig`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("twin configuration: {field} = {value} is outside {range}")]
pub struct TwinConfigError {
    pub field: &'static str,
    pub value: f64,
    pub range: &'static str,
}

impl TwinConfig {
    /// Checks every field against the range the model is meant for.
    pub fn validate(&self) -> Result<(), TwinConfigError> {
        let checks: [(&'static str, f64, f64, f64, &'static str); 14] = [
            ("queues", self.queues as f64, 1.0, 64.0, "1..=64"),
            ("load", self.load, 0.3, 1.1, "0.3..=1.1"),
            ("handle_cv", self.handle_cv, 0.1, 1.5, "0.1..=1.5"),
            ("rating_noise", self.rating_noise, 0.0, 3.0, "0..=3"),
            ("stale_share", self.stale_share, 0.0, 1.0, "0..=1"),
            ("placement", self.placement, 0.0, 1.0, "0..=1"),
            (
                "multi_queue_share",
                self.multi_queue_share,
                0.0,
                1.0,
                "0..=1",
            ),
            (
                "history_days",
                self.history_days as f64,
                0.0,
                366.0,
                "0..=366",
            ),
            (
                "patience_mean_secs",
                self.patience_mean_secs,
                1.0,
                3600.0,
                "1..=3600",
            ),
            ("evaluation_share", self.evaluation_share, 0.0, 1.0, "0..=1"),
            ("survey_share", self.survey_share, 0.0, 1.0, "0..=1"),
            ("new_hire_share", self.new_hire_share, 0.0, 1.0, "0..=1"),
            ("drift_share", self.drift_share, 0.0, 1.0, "0..=1"),
            (
                "weekend_staff_share",
                self.weekend_staff_share,
                0.0,
                1.0,
                "0..=1",
            ),
        ];
        for (field, value, lo, hi, range) in checks {
            if !(lo..=hi).contains(&value) {
                return Err(TwinConfigError {
                    field,
                    value,
                    range,
                });
            }
        }
        let m = self.method_mix;
        let shares = [m.best, m.none, m.all];
        if shares.iter().any(|s| !(0.0..=1.0).contains(s)) || shares.iter().sum::<f64>() <= 0.0 {
            return Err(TwinConfigError {
                field: "method_mix",
                value: shares.iter().sum(),
                range: "shares in 0..=1, not all zero",
            });
        }
        if self.retain_days == Some(0) {
            return Err(TwinConfigError {
                field: "retain_days",
                value: 0.0,
                range: "1.. (or None)",
            });
        }
        Ok(())
    }
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
            twin: None,
            skill_groups: true,
            proficiency_match: ProficiencyMatch::Exact,
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
