//! Configuration: one TOML file plus `SKILL_TUNER__SECTION__KEY` environment overrides,
//! deserialised into typed settings and then validated as a whole.
//!
//! A bad config is an error naming the file, the key and what was expected; it is never
//! half-applied (a reload keeps the running config). Secrets are not config values: the
//! client secret comes from a file, a systemd credential or an environment variable (see
//! [`secret`]).

pub mod secret;
pub mod sources;
mod strict;
mod validate;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use sources::{Origin, Sources};
pub use validate::{ConfigError, Problem};

/// Everything skill-tuner can be told.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub genesys: GenesysSettings,
    pub scope: ScopeSettings,
    pub metrics: MetricsSettings,
    pub policy: PolicySettings,
    pub breaker: BreakerSettings,
    pub apply: ApplySettings,
    pub guard: GuardSettings,
    pub alerts: AlertSettings,
    pub history: HistorySettings,
    pub daemon: DaemonSettings,
    pub log: LogSettings,
}

/// How to reach the org.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GenesysSettings {
    /// Region name (`eu-west-1`, `eu_west_1`) or domain (`mypurecloud.ie`). Unset in the
    /// file and in `SKILL_TUNER__GENESYS__REGION`: `GENESYSCLOUD_REGION`, else `us-east-1`.
    pub region: String,
    /// Overrides `https://api.<domain>` (simulator, proxies).
    pub api_base_url: Option<String>,
    /// Overrides `https://login.<domain>`.
    pub login_base_url: Option<String>,
    /// Permit plain http to a host that is not loopback.
    pub allow_insecure_http: bool,
    /// The OAuth client (client-credentials grant). Unset in the file and in
    /// `SKILL_TUNER__GENESYS__CLIENT_ID`: `GENESYSCLOUD_OAUTHCLIENT_ID`.
    pub client_id: String,
    /// A file holding the client secret (mode 0600).
    pub client_secret_file: Option<PathBuf>,
    /// The environment variable holding the client secret.
    pub client_secret_env: String,
    /// Refuse (instead of warn about) secret or config files readable by others.
    pub strict_file_permissions: bool,
    /// Send every request (login, API, webhook digest) through this HTTP(S) proxy, e.g.
    /// `http://proxy.corp:3128`; never with `user:password@` (see `proxy_credentials_file`).
    /// Unset: the `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY` environment, loopback
    /// always direct.
    pub proxy: Option<String>,
    /// A file holding the proxy's `user:password` (mode 0600); the systemd credential
    /// `proxy_credentials` comes first.
    pub proxy_credentials_file: Option<PathBuf>,
    /// Hosts, domains (with their subdomains) or networks reached directly even with
    /// `proxy` set, in `NO_PROXY` syntax (`intranet.corp`, `10.0.0.0/8`).
    pub no_proxy: Vec<String>,
    /// A PEM file of CA certificates trusted in addition to the OS trust store (the CA of a
    /// TLS-intercepting proxy).
    pub ca_bundle_file: Option<PathBuf>,
    /// Most requests per minute (the org's own limit can only lower it).
    pub rate_limit_per_minute: u32,
    pub burst: u32,
    pub max_concurrency: usize,
    /// Most skills in one `PATCH …/routingskills/bulk`: 50 is the limit Genesys' Terraform
    /// provider keeps to; the SDK's body schema sets no maximum, so it is a setting.
    pub bulk_skills_per_call: usize,
    pub request_timeout_secs: u64,
    pub token_refresh_margin_secs: u64,
    /// Where the per-token rate limit is read at start-up (the namespace is not documented;
    /// `docs/genesys-api.md` §3).
    pub limits_namespace: String,
    pub rate_limit_key: String,
    pub retry: RetrySettings,
}

impl Default for GenesysSettings {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            api_base_url: None,
            login_base_url: None,
            allow_insecure_http: false,
            client_id: String::new(),
            client_secret_file: None,
            client_secret_env: "SKILL_TUNER_CLIENT_SECRET".into(),
            strict_file_permissions: false,
            proxy: None,
            proxy_credentials_file: None,
            no_proxy: Vec::new(),
            ca_bundle_file: None,
            rate_limit_per_minute: 300,
            burst: 5,
            max_concurrency: 8,
            bulk_skills_per_call: crate::genesys::BULK_SKILLS_MAX,
            request_timeout_secs: 16,
            token_refresh_margin_secs: 300,
            limits_namespace: "platform.api".into(),
            rate_limit_key: "client.credentials.token.rate.per.minute".into(),
            retry: RetrySettings::default(),
        }
    }
}

/// Bounds of the retry layer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    pub max_elapsed_secs: u64,
    pub max_retry_after_secs: u64,
    /// Retry quota shared by all calls (5 per retry, 10 per timeout, +1 per success).
    pub budget: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay_ms: 500,
            max_delay_ms: 30_000,
            max_elapsed_secs: 180,
            max_retry_after_secs: 180,
            budget: 500,
        }
    }
}

/// Which agents and skills a cycle may touch.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScopeSettings {
    /// Division ids; empty = every division.
    pub divisions: Vec<String>,
    /// Group ids whose individual members are in scope; empty = no group filter.
    pub groups: Vec<String>,
    /// Queue ids whose members are in scope; empty = no queue filter.
    pub queues: Vec<String>,
    /// User ids always in scope (if active and holding skills).
    pub include_users: Vec<String>,
    /// User ids never touched.
    pub exclude_users: Vec<String>,
    /// Skill names to tune; empty = every skill.
    pub skills: Vec<String>,
    /// Skill names never touched.
    pub exclude_skills: Vec<String>,
}

/// What is measured, over which window.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Whole days before today (UTC midnight) that the metrics cover.
    pub lookback_days: u32,
    /// Time zone in which analytics buckets days (IANA name).
    pub time_zone: String,
    /// Media types to count (`voice`, `chat`, …); empty = all.
    pub media_types: Vec<String>,
    /// Query `evaluations/aggregates` for quality scores.
    pub evaluations: bool,
    /// Query `surveys/aggregates` for CSAT-like scores.
    pub surveys: bool,
    /// `userId` predicates per analytics query (documented as at most 100 for user-status
    /// aggregates only; `docs/genesys-api.md` §6).
    pub users_per_query: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            lookback_days: 14,
            time_zone: "UTC".into(),
            media_types: Vec::new(),
            evaluations: true,
            surveys: false,
            users_per_query: 100,
        }
    }
}

/// How a metric is normalised to 0..1: 1 at `target` or better, 0 at `limit` or worse,
/// linear between. `target < limit` means lower is better (handle time, transfers).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub weight: f64,
    pub target: f64,
    pub limit: f64,
}

/// The scoring components, each optional. A `components` table lists exactly the
/// components used (absent = not used); without the table the defaults below apply.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Components {
    /// Average handle time in seconds (tHandle sum / count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle_time: Option<Component>,
    /// Transferred share of handled conversations (nTransferred / tHandle count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_rate: Option<Component>,
    /// Average evaluation score 0–100 (oTotalScore), per agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Component>,
    /// Average survey score 0–100 (oSurveyTotalScore), per agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<Component>,
}

impl Default for Components {
    fn default() -> Self {
        Self {
            handle_time: Some(Component {
                weight: 0.5,
                target: 300.0,
                limit: 900.0,
            }),
            transfer_rate: Some(Component {
                weight: 0.3,
                target: 0.05,
                limit: 0.35,
            }),
            quality: Some(Component {
                weight: 0.2,
                target: 90.0,
                limit: 60.0,
            }),
            csat: None,
        }
    }
}

/// The scoring policy and its guardrails, for one skill or as the default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SkillPolicy {
    pub components: Components,
    /// Fewer handled interactions for an agent and skill → no change.
    pub min_interactions: u64,
    /// Pseudo-interactions of the skill's population mean mixed into each agent's metrics
    /// (empirical-Bayes shrinkage: small samples move toward the mean). 0 = off.
    pub shrinkage: f64,
    /// Share of the way from current to target moved in one cycle (1 = all the way).
    pub smoothing: f64,
    /// Largest change in one cycle.
    pub max_step: f64,
    /// Changes smaller than this are not made.
    pub dead_band: f64,
    /// Proficiencies are multiples of this.
    pub round_to: f64,
    pub floor: f64,
    pub ceiling: f64,
}

impl Default for SkillPolicy {
    fn default() -> Self {
        Self {
            components: Components::default(),
            min_interactions: 20,
            shrinkage: 20.0,
            smoothing: 0.5,
            max_step: 0.5,
            dead_band: 0.25,
            round_to: 0.25,
            floor: 0.0,
            ceiling: 5.0,
        }
    }
}

/// The default policy plus per-skill overrides (by skill name; whole-policy replacement).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    pub default: SkillPolicy,
    pub skills: BTreeMap<String, SkillPolicy>,
    /// Also add skills an agent does not hold yet (off: only re-rate held skills).
    pub add_missing_skills: bool,
}

impl PolicySettings {
    pub fn for_skill(&self, skill_name: &str) -> &SkillPolicy {
        self.skills.get(skill_name).unwrap_or(&self.default)
    }
}

/// When the cycle refuses to apply anything.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Trip when more than this share of in-scope agents would change.
    pub max_changed_share: f64,
    /// Trip when fewer than this share of in-scope agent-skill pairs have any metrics
    /// (an analytics outage must never demote everyone).
    pub min_data_share: f64,
    /// Trip when more than this share of the changes are demotions.
    pub max_demotion_share: f64,
    /// The share checks apply only from this many in-scope agents up (tiny orgs are noisy).
    pub min_agents: usize,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            max_changed_share: 0.5,
            min_data_share: 0.3,
            max_demotion_share: 0.8,
            min_agents: 10,
        }
    }
}

/// What to do when a person changed a skill between our read and our write.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnConflict {
    /// Leave the person's value, record a conflict.
    #[default]
    Skip,
    /// Re-plan the skill from the person's value (guardrails apply again).
    Replan,
}

/// How changes are written.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApplySettings {
    /// Re-read each agent's skills right before writing (one GET per changed agent) so a
    /// person's edit is never overwritten. Off saves that call but trusts the roster read.
    pub verify_before_write: bool,
    pub on_conflict: OnConflict,
    /// Re-read and re-decide this many times on a 409.
    pub max_conflict_retries: u32,
}

impl Default for ApplySettings {
    fn default() -> Self {
        Self {
            verify_before_write: true,
            on_conflict: OnConflict::Skip,
            max_conflict_retries: 3,
        }
    }
}

/// Signs that something else writes to the org too.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GuardSettings {
    /// Warn when at least this share of a cycle's conflicts (and at least 5) found exactly
    /// the value this policy would have written: the mark of a second tuner with a ledger
    /// of its own, which no lock can see.
    pub second_writer_warn_share: f64,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            second_writer_warn_share: 0.5,
        }
    }
}

/// Supervisor notifications.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    /// Alert where |target − current| ≥ this.
    pub threshold: f64,
    /// Over-threshold changes are proposed, not applied, until their workitem is approved.
    pub hold_for_review: bool,
    pub workitem: WorkitemSettings,
    pub webhook: WebhookSettings,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            threshold: 1.0,
            hold_for_review: false,
            workitem: WorkitemSettings::default(),
            webhook: WebhookSettings::default(),
        }
    }
}

/// A Task Management workitem per over-threshold change.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkitemSettings {
    pub enabled: bool,
    /// The worktype (set up once: a workbin and a worktype).
    pub worktype_id: String,
    /// Assign to the agent's manager when known.
    pub assign_to_manager: bool,
    /// Route here when there is no manager (or instead of one).
    pub queue_id: Option<String>,
    pub priority: i64,
    pub due_in_days: u32,
    /// Status names that count as "approved" when a held change's workitem closes.
    pub approved_statuses: Vec<String>,
}

impl Default for WorkitemSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            worktype_id: String::new(),
            assign_to_manager: true,
            queue_id: None,
            priority: 5,
            due_in_days: 3,
            approved_statuses: vec!["Approved".into()],
        }
    }
}

/// Format of the per-cycle webhook digest.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookFormat {
    /// `{"text": …}`: Slack, Mattermost, Teams workflows and most chat tools accept it.
    #[default]
    Slack,
    /// The cycle report as JSON.
    Json,
}

/// One webhook digest per cycle.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    pub enabled: bool,
    pub url: String,
    pub format: WebhookFormat,
}

/// Where the audit ledger lives.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySettings {
    /// SQLite file; relative paths resolve against `$STATE_DIRECTORY` when set.
    pub path: PathBuf,
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from("skill-tuner.db"),
        }
    }
}

/// The long-running daemon.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    /// Cron expression with seconds: `sec min hour day-of-month month day-of-week`.
    pub schedule: String,
    /// IANA time zone of the schedule.
    pub time_zone: String,
    pub run_on_start: bool,
    /// Random delay up to this many seconds before each scheduled run; at most the schedule's
    /// shortest interval between runs, and at most one day.
    pub jitter_secs: u64,
    /// No cycle starts less than this long after the previous one started, whatever
    /// triggered it (schedule, SIGUSR1, `POST /run`). Unset: half the schedule's shortest
    /// interval between runs over a year, at most one hour.
    pub min_spacing_secs: Option<u64>,
    /// Admin listener (`/healthz`, `/readyz`, `/metrics`); loopback by default.
    pub admin_listen: String,
    /// Must be true for a non-loopback `admin_listen`: the probes and `/metrics` answer
    /// anyone who can reach the port, so exposing them is a decision, not a default.
    pub admin_public: bool,
    /// Allow `POST /run` on the admin listener (needs a run token, see `run_token_file`).
    pub enable_run_endpoint: bool,
    /// A file holding the bearer token `POST /run` requires (else the systemd credential
    /// `run_token`, else `SKILL_TUNER_RUN_TOKEN`); like the client secret, never a value here.
    pub run_token_file: Option<PathBuf>,
    /// How long SIGTERM waits for the running cycle's writes.
    pub shutdown_grace_secs: u64,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        Self {
            schedule: "0 0 2 * * *".into(),
            time_zone: "UTC".into(),
            run_on_start: false,
            jitter_secs: 0,
            min_spacing_secs: None,
            admin_listen: "127.0.0.1:9464".into(),
            admin_public: false,
            enable_run_endpoint: false,
            run_token_file: None,
            shutdown_grace_secs: 60,
        }
    }
}

impl DaemonSettings {
    /// A listener on a non-loopback address without `admin_public = true`: nothing guards
    /// `/metrics` or the probes there, so binding it must be asked for by name.
    pub fn listener_problems(&self) -> Vec<Problem> {
        match self.admin_listen.parse::<std::net::SocketAddr>() {
            Ok(addr) if !addr.ip().is_loopback() && !self.admin_public => vec![Problem {
                key: "daemon.admin_public".into(),
                expected: format!(
                    "true to serve the admin listener on the non-loopback address `{}` (daemon.admin_listen): `/healthz`, `/readyz` and `/metrics` need no authentication; or a loopback address such as `127.0.0.1:9464`",
                    self.admin_listen
                ),
            }],
            _ => Vec::new(),
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing filter (`info`, `skill_tuner=debug`, …); `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl Settings {
    /// Reads `path` (TOML) with `SKILL_TUNER__SECTION__KEY` overrides and validates it; a
    /// permission warning about the file is logged (logging is already up when the daemon
    /// reloads; the command line uses [`Settings::load_reporting`]).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(path, true)
    }

    /// As [`Settings::load`]; `with_env = false` ignores the environment (tests).
    pub fn load_with_env(path: &Path, with_env: bool) -> Result<Self, ConfigError> {
        let (settings, warnings) = Self::load_reporting(path, with_env)?;
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        Ok(settings)
    }

    /// As [`Settings::load_with_env`], returning the file's permission warnings instead of
    /// logging them: the command line loads the config before logging can start (the config
    /// says how to log), and a warning logged then would be lost.
    pub fn load_reporting(path: &Path, with_env: bool) -> Result<(Self, Vec<String>), ConfigError> {
        let raw = Self::merged(path, with_env)?;
        let settings = Self::from_raw(raw, path)?;
        let warnings = secret::check_config_file(path, settings.genesys.strict_file_permissions)?;
        Ok((settings, warnings))
    }

    /// The file, with the environment when `with_env`: `SKILL_TUNER__SECTION__KEY` over the
    /// file's keys, and under them the variables Genesys' own tools read
    /// ([`sources::FALLBACKS`]), each recorded with its origin (see [`Sources`]).
    fn merged(path: &Path, with_env: bool) -> Result<config::Config, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Missing(path.to_path_buf()));
        }
        let mut builder = config::Config::builder().add_source(
            config::File::from(path)
                .format(config::FileFormat::Toml)
                .required(true),
        );
        if with_env {
            // No `try_parsing`: it turns `00123` into the number 123 before anyone knows the
            // key wants a string. Every value stays a string here, and [`strict`] parses it
            // only where the key needs a number, a boolean or a (comma-separated) list.
            builder = builder.add_source(
                config::Environment::with_prefix("SKILL_TUNER")
                    .prefix_separator("__")
                    .separator("__"),
            );
            // Defaults are the lowest layer: the file and the overrides above both win.
            for (key, value) in sources::fallback_values() {
                builder = builder
                    .set_default(key, value)
                    .map_err(|e| ConfigError::parse(path, e))?;
            }
        }
        builder.build().map_err(|e| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            ConfigError::toml(path, &text, e)
        })
    }

    /// Where the values of the keys Genesys' tools also set came from (`check-config`):
    /// the same layers [`Settings::load`] merges, read again.
    pub fn sources(path: &Path) -> Result<Sources, ConfigError> {
        Ok(Sources::of(&Self::merged(path, true)?.cache, path))
    }

    /// Parses TOML text (no file, no environment), validated.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let origin = PathBuf::from("<inline>");
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|e| ConfigError::toml(&origin, text, e))?;
        Self::from_raw(raw, &origin)
    }

    /// Typed (see [`strict`]) and validated settings from a built config.
    fn from_raw(raw: config::Config, origin: &Path) -> Result<Self, ConfigError> {
        let settings: Settings =
            strict::deserialize(raw.cache).map_err(|e| ConfigError::value(origin, e))?;
        settings
            .validate()
            .map_err(|problems| ConfigError::Invalid {
                file: origin.to_path_buf(),
                problems,
            })?;
        Ok(settings)
    }

    /// The effective settings as TOML, for `check-config`. Holds no secret by construction:
    /// the secret is not a setting, only where to find it.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }

    /// [`Settings::to_toml`] for people (`check-config`): the webhook URL as scheme and host
    /// only (a Slack webhook's path is its credential) and base URLs without `user:password@`.
    /// The fingerprint keeps using the full text, so a changed webhook still changes it.
    pub fn to_shown_toml(&self) -> String {
        let mut shown = self.clone();
        let hook = &mut shown.alerts.webhook.url;
        *hook = crate::text::redact_after_host(hook);
        for url in [
            &mut shown.genesys.login_base_url,
            &mut shown.genesys.api_base_url,
            // Refused with credentials in it; redacted all the same, should that ever change.
            &mut shown.genesys.proxy,
        ]
        .into_iter()
        .flatten()
        {
            *url = crate::text::redact_userinfo(url).into_owned();
        }
        shown.to_toml()
    }

    /// A stable hash of the effective settings (recorded with each run).
    pub fn fingerprint(&self) -> String {
        format!("{:016x}", crate::hash::fnv1a64(&self.to_toml()))
    }
}
