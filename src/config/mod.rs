//! Configuration: one TOML file plus `SKILL_TUNER__SECTION__KEY` environment overrides (and
//! `SKILL_TUNER__ORGS__<ORG>__SECTION__KEY` for one listed org, see [`orgs`]), deserialised
//! into typed settings and then validated as a whole.
//!
//! A bad config is an error naming the file, the key and what was expected; it is never
//! half-applied (a reload keeps the running config). Secrets are not config values: the
//! client secret comes from a file, a systemd credential or an environment variable (see
//! [`secret`]).

mod alerts;
mod experiment;
mod genesys;
pub mod orgs;
mod policy;
pub mod schedule;
pub mod secret;
mod service;
pub mod sources;
mod strict;
mod validate;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use alerts::{AlertSettings, WebhookFormat, WebhookSettings, WorkitemSettings};
pub use experiment::{ExperimentSettings, JUDGED_METRICS, SKILL_CLUSTERS};
pub use genesys::{GenesysSettings, RetrySettings};
pub use orgs::{OrgChoiceError, Orgs, DEFAULT_ORG};
pub use policy::{
    ApplySettings, BreakerSettings, Component, Components, CrossingGuard, GuardSettings,
    MetricsSettings, OnConflict, PolicySettings, ProficiencyMatch, RelativeRamp, RelativeRamps,
    ScopeSettings, SkillPolicy,
};
pub use service::{DaemonSettings, HistorySettings, LogFormat, LogSettings};
pub use sources::{Environment, Origin, Sources};
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
    pub experiment: ExperimentSettings,
    pub alerts: AlertSettings,
    pub history: HistorySettings,
    pub daemon: DaemonSettings,
    pub log: LogSettings,
    /// The org's name from `[[orgs]]`; `None` for a config without `[[orgs]]`, whose one
    /// org is [`DEFAULT_ORG`]. Not a key: the name is the `[[orgs]]` table's own.
    #[serde(skip)]
    pub org: Option<String>,
}

impl Settings {
    /// Reads `path` (TOML) with `SKILL_TUNER__SECTION__KEY` overrides and validates it; a
    /// permission warning about the file is logged (logging is already up when the daemon
    /// reloads; the command line uses [`Orgs::load_reporting`]). A config naming several
    /// orgs is refused here: its readers choose one ([`Orgs::choose`]).
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
        let (orgs, warnings) = Orgs::load_reporting(path, with_env)?;
        let settings = orgs.choose(None)?.clone();
        Ok((settings, warnings))
    }

    /// The org's name: its `[[orgs]]` name, or [`DEFAULT_ORG`].
    pub fn org_name(&self) -> &str {
        self.org.as_deref().unwrap_or(DEFAULT_ORG)
    }

    /// The file with the environment `env`: `SKILL_TUNER__SECTION__KEY` over the file's
    /// keys, and under them the variables Genesys' own tools read ([`sources::FALLBACKS`]),
    /// each recorded with its origin (see [`Sources`]). An org's own variables are not laid
    /// on here but over its table ([`Orgs::from_root`]), which only the org list names.
    fn merged(path: &Path, env: &Environment) -> Result<config::Config, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Missing(path.to_path_buf()));
        }
        if let Some(var) = env.unreadable().first() {
            return Err(ConfigError::Parse {
                file: path.to_path_buf(),
                message: format!(
                    "the environment variable {var} holds something other than UTF-8 text"
                ),
            });
        }
        let mut builder = config::Config::builder().add_source(
            config::File::from(path)
                .format(config::FileFormat::Toml)
                .required(true),
        );
        // No `try_parsing`: it turns `00123` into the number 123 before anyone knows the
        // key wants a string. Every value stays a string here, and [`strict`] parses it
        // only where the key needs a number, a boolean or a (comma-separated) list.
        builder = builder.add_source(
            config::Environment::with_prefix("SKILL_TUNER")
                .prefix_separator("__")
                .separator("__")
                .source(Some(env.top_level_overrides())),
        );
        // Defaults are the lowest layer: the file and the overrides above both win.
        for (key, value) in sources::fallback_values(env) {
            builder = builder
                .set_default(key, value)
                .map_err(|e| ConfigError::parse(path, e))?;
        }
        builder.build().map_err(|e| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            ConfigError::toml(path, &text, e)
        })
    }

    /// Where the values of the keys Genesys' tools also set came from (`check-config`):
    /// the same layers [`Settings::load`] merges, read again.
    pub fn sources(path: &Path) -> Result<Sources, ConfigError> {
        Self::sources_for(path, None, &Environment::process())
    }

    /// [`Settings::sources`] of one org with `env`: a listed org's own table and variables
    /// first, as its settings were read; `None`, or an org the file does not list, is the
    /// top level.
    pub fn sources_for(
        path: &Path,
        org: Option<&str>,
        env: &Environment,
    ) -> Result<Sources, ConfigError> {
        let root = Self::merged(path, env)?.cache;
        Ok(
            match org.and_then(|name| orgs::org_table(&root, name, env)) {
                Some(table) => Sources::of_org(&root, &table, path),
                None => Sources::of(&root, path),
            },
        )
    }

    /// Parses TOML text (no file, no environment), validated; one org.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Ok(Orgs::from_toml_str(text)?.choose(None)?.clone())
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

impl Orgs {
    /// Reads `path` like [`Settings::load_reporting`]: every org, each typed and validated.
    pub fn load_reporting(path: &Path, with_env: bool) -> Result<(Self, Vec<String>), ConfigError> {
        let env = if with_env {
            Environment::process()
        } else {
            Environment::default()
        };
        Self::load_with_environment(path, &env)
    }

    /// [`Orgs::load_reporting`] with `env` as the environment (tests give theirs).
    pub fn load_with_environment(
        path: &Path,
        env: &Environment,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let raw = Settings::merged(path, env)?;
        let orgs = Orgs::from_root(raw.cache, path, env)?;
        let strict = orgs.iter().any(|s| s.genesys.strict_file_permissions);
        let warnings = secret::check_config_file(path, strict)?;
        Ok((orgs, warnings))
    }

    /// [`Orgs::load_reporting`] for the daemon's reload, logging the warnings; an org
    /// variable naming an org the file no longer has is a warning (see
    /// [`Environment::for_reload`]).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let env = Environment::process().for_reload();
        let (orgs, warnings) = Self::load_with_environment(path, &env)?;
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        Ok(orgs)
    }

    /// Parses TOML text (no file, no environment), validated.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let origin = PathBuf::from("<inline>");
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|e| ConfigError::toml(&origin, text, e))?;
        Orgs::from_root(raw.cache, &origin, &Environment::default())
    }
}
