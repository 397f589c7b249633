//! Whole-config validation: every problem is reported at once, each naming its key and
//! what was expected, so a person fixes a file in one go.

use super::{Component, Settings, SkillPolicy};
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub expected: String,
}

impl fmt::Display for Problem {
    /// An org's problem names the org before the key: `orgs[2] (name "b"): `policy.x`: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key.split_once("): ") {
            Some((org, key)) if self.key.starts_with("orgs[") => {
                write!(f, "{org}): `{key}`: {}", self.expected)
            }
            _ => write!(f, "`{}`: {}", self.key, self.expected),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("config file {file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("config file {file} is invalid:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
    #[error("{0}")]
    Secret(String),
    /// A command for one org, given a config of several without `--org` (or a wrong one).
    #[error(transparent)]
    Org(#[from] super::OrgChoiceError),
    /// A file a setting names cannot be used (the CA bundle, the proxy credentials).
    #[error("`{key}` ({path}): {reason}", path = path.display())]
    UnusableFile {
        key: String,
        path: PathBuf,
        reason: String,
    },
}

impl ConfigError {
    pub(super) fn parse(file: &Path, error: config::ConfigError) -> Self {
        ConfigError::Parse {
            file: file.to_path_buf(),
            message: error.to_string(),
        }
    }

    /// A file the `config` crate could not read. Its TOML errors lose the line for some
    /// values (an integer beyond i64 says only "number too large"), so the text is parsed
    /// again here to report the line and the key as the `toml` crate shows them.
    pub(super) fn toml(file: &Path, text: &str, error: config::ConfigError) -> Self {
        match text.parse::<toml::Table>() {
            Err(e) => ConfigError::Parse {
                file: file.to_path_buf(),
                message: e.to_string(),
            },
            Ok(_) => Self::parse(file, error),
        }
    }

    /// A value that does not fit its key (wrong type, out of range, unknown key): named
    /// like a validation problem when the key is known.
    pub(super) fn value(file: &Path, error: super::strict::DeError) -> Self {
        let key = error.key();
        if key.is_empty() {
            return ConfigError::Parse {
                file: file.to_path_buf(),
                message: error.to_string(),
            };
        }
        ConfigError::Invalid {
            file: file.to_path_buf(),
            problems: vec![Problem {
                key,
                expected: error.expected(),
            }],
        }
    }

    /// The problems, when the config parsed but was invalid.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn require(&mut self, ok: bool, key: impl Into<String>, expected: impl Into<String>) {
        if !ok {
            self.problems.push(Problem {
                key: key.into(),
                expected: expected.into(),
            });
        }
    }

    fn range(&mut self, value: f64, lo: f64, hi: f64, key: String) {
        self.require(
            value.is_finite() && (lo..=hi).contains(&value),
            key,
            format!("a number from {lo} to {hi}, got {value}"),
        );
    }
}

impl Settings {
    /// Checks every key; returns all problems.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut c = Checker {
            problems: Vec::new(),
        };
        let g = &self.genesys;
        let has_overrides = g.api_base_url.is_some() && g.login_base_url.is_some();
        if !has_overrides {
            if let Err(e) = crate::genesys::region::domain_of(&g.region) {
                c.require(false, "genesys.region", e.to_string());
            }
        }
        for (key, url) in [
            ("genesys.api_base_url", &g.api_base_url),
            ("genesys.login_base_url", &g.login_base_url),
        ] {
            if let Some(url) = url {
                if let Err(e) = crate::genesys::region::parse_base(url, g.allow_insecure_http) {
                    c.require(false, key, e.to_string());
                }
            }
        }
        c.require(
            !g.client_id.trim().is_empty(),
            "genesys.client_id",
            format!(
                "the OAuth client id (client-credentials grant), a non-empty string; or set the environment variable {}",
                super::sources::CLIENT_ID_ENV
            ),
        );
        check_proxy(&mut c, g);
        c.require(
            g.rate_limit_per_minute >= 1,
            "genesys.rate_limit_per_minute",
            "at least 1 (the API default is 300)",
        );
        c.require(
            g.rate_share > 0.0 && g.rate_share <= 1.0,
            "genesys.rate_share",
            "a share of the allowed rate above 0 and at most 1 (1.0: all of it; 0.5 leaves half to other work on the same OAuth client)",
        );
        c.require(g.burst >= 1, "genesys.burst", "at least 1");
        c.require(
            (1..=64).contains(&g.max_concurrency),
            "genesys.max_concurrency",
            "from 1 to 64",
        );
        c.require(
            (1..=500).contains(&g.bulk_skills_per_call),
            "genesys.bulk_skills_per_call",
            "from 1 to 500 (Genesys' Terraform provider sends at most 50)",
        );
        c.require(
            g.request_timeout_secs >= 1,
            "genesys.request_timeout_secs",
            "at least 1",
        );
        c.require(
            g.retry.max_attempts >= 1,
            "genesys.retry.max_attempts",
            "at least 1",
        );
        c.require(
            g.retry.base_delay_ms <= g.retry.max_delay_ms,
            "genesys.retry.base_delay_ms",
            "at most genesys.retry.max_delay_ms",
        );
        c.require(
            !g.client_secret_env.trim().is_empty(),
            "genesys.client_secret_env",
            "the name of an environment variable",
        );

        let m = &self.metrics;
        c.require(
            (1..=31).contains(&m.lookback_days),
            "metrics.lookback_days",
            "from 1 to 31 days",
        );
        c.require(
            m.time_zone.parse::<chrono_tz::Tz>().is_ok(),
            "metrics.time_zone",
            format!(
                "an IANA time zone such as `Europe/Dublin`, got `{}`",
                m.time_zone
            ),
        );
        c.require(
            (1..=100).contains(&m.users_per_query),
            "metrics.users_per_query",
            "from 1 to 100 (the documented userId predicate limit)",
        );

        check_policy(&mut c, "policy.default", &self.policy.default);
        let relative = &self.policy.relative;
        for (name, ramp) in [
            ("handle_time", relative.handle_time),
            ("transfer_rate", relative.transfer_rate),
        ] {
            c.require(
                ramp.target.is_finite() && ramp.target >= 0.0,
                format!("policy.relative.{name}.target"),
                format!("a ratio ≥ 0, got {}", ramp.target),
            );
            c.require(
                ramp.limit.is_finite() && ramp.limit > ramp.target,
                format!("policy.relative.{name}.limit"),
                format!(
                    "a ratio above target (observed ÷ expected: lower is better), got {} ≤ {}",
                    ramp.limit, ramp.target
                ),
            );
        }
        for (name, policy) in &self.policy.skills {
            check_policy(&mut c, &format!("policy.skills.\"{name}\""), policy);
        }

        let b = &self.breaker;
        c.range(
            b.max_changed_share,
            0.0,
            1.0,
            "breaker.max_changed_share".into(),
        );
        c.range(b.min_data_share, 0.0, 1.0, "breaker.min_data_share".into());
        c.range(
            b.max_demotion_share,
            0.0,
            1.0,
            "breaker.max_demotion_share".into(),
        );

        c.range(
            self.guard.second_writer_warn_share,
            0.0,
            1.0,
            "guard.second_writer_warn_share".into(),
        );

        check_experiment(&mut c, &self.experiment);

        let a = &self.alerts;
        c.range(a.threshold, 0.0, 5.0, "alerts.threshold".into());
        if a.workitem.enabled {
            c.require(!a.workitem.worktype_id.trim().is_empty(), "alerts.workitem.worktype_id", "the id of the worktype to file review workitems under (required when alerts.workitem.enabled)");
            c.require(
                a.workitem.assign_to_manager || a.workitem.queue_id.is_some(),
                "alerts.workitem.queue_id",
                "a queue id when assign_to_manager is false",
            );
            c.require(
                (1..=365).contains(&a.workitem.due_in_days),
                "alerts.workitem.due_in_days",
                "from 1 to 365 (the API refuses due dates beyond a year)",
            );
        }
        if self.guard.skill_group_crossings == super::CrossingGuard::Hold {
            c.require(
                a.workitem.enabled,
                "guard.skill_group_crossings",
                "alerts.workitem.enabled = true for \"hold\" (held changes are approved through their workitem), or \"warn\" or \"block\"",
            );
        }
        if a.hold_for_review {
            c.require(
                a.workitem.enabled,
                "alerts.hold_for_review",
                "alerts.workitem.enabled = true (held changes are approved through their workitem)",
            );
        }
        if a.webhook.enabled {
            let ok = reqwest::Url::parse(&a.webhook.url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            c.require(
                ok,
                "alerts.webhook.url",
                format!(
                    "an http(s) URL, got `{}`",
                    crate::text::redact_after_host(&a.webhook.url)
                ),
            );
        }

        // A directory is a config mistake too (exit 2, not "a retry may help"); the path is
        // where the ledger will be opened, `$STATE_DIRECTORY` applied.
        let why = crate::history::not_durable(&self.history.path).or_else(|| {
            self.history
                .ledger_path()
                .is_dir()
                .then(|| "is a directory".to_string())
        });
        if let Some(why) = why {
            c.require(
                false,
                "history.path",
                format!(
                    "the path of a SQLite file on disk that outlives the process; `{}` {why}",
                    self.history.path.display()
                ),
            );
        }

        let d = &self.daemon;
        match crate::config::schedule::Schedule::parse(&d.schedule, &d.time_zone) {
            Err(e) => c.require(false, e.key(), e.to_string()),
            Ok(schedule) => {
                if d.jitter_secs > 0 {
                    let bound = crate::config::schedule::jitter_bound(&schedule);
                    c.require(
                        d.jitter_secs <= bound.as_secs(),
                        "daemon.jitter_secs",
                        format!(
                            "at most {} s (the schedule's shortest interval between runs, and at most one day), got {}",
                            bound.as_secs(),
                            d.jitter_secs
                        ),
                    );
                }
                if let Some(spacing) = d.min_spacing_secs {
                    c.require(
                        spacing <= crate::config::schedule::MAX_MIN_SPACING.as_secs(),
                        "daemon.min_spacing_secs",
                        format!(
                            "at most {} s (one week), got {spacing}",
                            crate::config::schedule::MAX_MIN_SPACING.as_secs()
                        ),
                    );
                }
            }
        }
        c.require(
            d.admin_listen.parse::<std::net::SocketAddr>().is_ok(),
            "daemon.admin_listen",
            format!(
                "an address:port such as `127.0.0.1:9464`, got `{}`",
                d.admin_listen
            ),
        );
        c.problems.extend(d.listener_problems());
        c.require(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            "a tracing filter such as `info` or `skill_tuner=debug`",
        );

        if c.problems.is_empty() {
            Ok(())
        } else {
            Err(c.problems)
        }
    }

    /// Checks skill names against the org's catalogue (needs the API, so not in `validate`).
    pub fn unknown_skill_names(&self, catalogue: &[String]) -> Vec<Problem> {
        let known = |name: &str| catalogue.iter().any(|c| c == name);
        let mut problems = Vec::new();
        let named = self
            .scope
            .skills
            .iter()
            .map(|n| ("scope.skills", n))
            .chain(
                self.scope
                    .exclude_skills
                    .iter()
                    .map(|n| ("scope.exclude_skills", n)),
            )
            .chain(self.policy.skills.keys().map(|n| ("policy.skills", n)));
        for (key, name) in named {
            if !known(name) {
                problems.push(Problem {
                    key: format!("{key}: \"{name}\""),
                    // The catalogue's names are org-edited: escaped, like every human output.
                    expected: format!(
                        "a skill name of the org's catalogue (known: {})",
                        catalogue
                            .iter()
                            .map(|c| crate::text::printable(c))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        problems
    }
}

/// `genesys.proxy`: an http(s) URL with a host and nothing else, never with credentials in
/// it (they belong in a private file); `no_proxy` entries; credentials only for a proxy.
fn check_experiment(c: &mut Checker, e: &super::ExperimentSettings) {
    c.require(
        e.design == super::SKILL_CLUSTERS,
        "experiment.design",
        format!(
            "`{}` (whole skills tuned or held out), got `{}`",
            super::SKILL_CLUSTERS,
            e.design
        ),
    );
    c.require(
        e.holdout_share.is_finite() && e.holdout_share > 0.0 && e.holdout_share < 1.0,
        "experiment.holdout_share",
        format!(
            "a share above 0 and below 1 (0.5: half the skills held out), got {}",
            e.holdout_share
        ),
    );
    if e.enabled || !e.start.trim().is_empty() {
        c.require(
            e.start_date().is_some(),
            "experiment.start",
            format!(
                "the experiment's first day as YYYY-MM-DD (required when experiment.enabled), got `{}`",
                e.start
            ),
        );
    }
    c.require(
        (1..=31).contains(&e.baseline_days),
        "experiment.baseline_days",
        format!("from 1 to 31 days, got {}", e.baseline_days),
    );
    c.require(
        !e.metrics.is_empty(),
        "experiment.metrics",
        format!("at least one of {}", super::JUDGED_METRICS.join(", ")),
    );
    for m in &e.metrics {
        c.require(
            super::JUDGED_METRICS.contains(&m.as_str()),
            "experiment.metrics",
            format!(
                "metrics from {}, got `{m}`",
                super::JUDGED_METRICS.join(", ")
            ),
        );
    }
    c.require(
        e.harm_bound.is_finite() && e.harm_bound >= 0.0 && e.harm_bound <= 1.0,
        "experiment.harm_bound",
        format!(
            "a share from 0 to 1 of the held-out arm's level (0.02 = 2 %), got {}",
            e.harm_bound
        ),
    );
    for (m, bound) in &e.harm_bounds {
        let key = format!("experiment.harm_bounds.{m}");
        if super::JUDGED_METRICS.contains(&m.as_str()) {
            c.require(
                bound.is_finite() && (0.0..=1.0).contains(bound),
                key,
                format!("a share from 0 to 1, got {bound}"),
            );
        } else {
            c.require(
                false,
                key,
                format!("a metric from {}", super::JUDGED_METRICS.join(", ")),
            );
        }
    }
    c.require(
        e.alpha.is_finite() && e.alpha > 0.0 && e.alpha < 0.5,
        "experiment.alpha",
        format!("an error rate above 0 and below 0.5, got {}", e.alpha),
    );
}

fn check_proxy(c: &mut Checker, g: &super::GenesysSettings) {
    if let Some(raw) = &g.proxy {
        // Echoed only without `user:password@`.
        let shown = crate::text::redact_userinfo(raw).into_owned();
        match reqwest::Url::parse(raw.trim()) {
            Err(e) => c.require(
                false,
                "genesys.proxy",
                format!("a proxy URL such as `http://proxy.corp:3128`, got `{shown}` ({e})"),
            ),
            Ok(url) => {
                c.require(
                    matches!(url.scheme(), "http" | "https"),
                    "genesys.proxy",
                    format!(
                        "an http:// or https:// proxy URL, got scheme `{}`",
                        url.scheme()
                    ),
                );
                c.require(
                    url.host_str().is_some_and(|h| !h.is_empty()),
                    "genesys.proxy",
                    format!("a proxy URL with a host, got `{shown}`"),
                );
                c.require(
                    url.username().is_empty() && url.password().is_none(),
                    "genesys.proxy",
                    format!(
                        "a proxy URL without `user:password@` (got `{shown}`): the config file is no place for a password; put `user:password` in the file named by `genesys.proxy_credentials_file` (mode 600) or in the systemd credential `{}`",
                        super::secret::PROXY_CREDENTIAL_NAME
                    ),
                );
                c.require(
                    matches!(url.path(), "" | "/")
                        && url.query().is_none()
                        && url.fragment().is_none(),
                    "genesys.proxy",
                    format!("a proxy URL of scheme, host and port only, got `{shown}`"),
                );
            }
        }
    } else {
        c.require(
            g.proxy_credentials_file.is_none(),
            "genesys.proxy_credentials_file",
            "set only together with `genesys.proxy` (a proxy from HTTPS_PROXY or HTTP_PROXY carries its credentials in its own URL)",
        );
    }
    for entry in &g.no_proxy {
        let e = entry.trim();
        c.require(
            !e.is_empty() && !e.contains(',') && !e.contains(char::is_whitespace) && !e.contains("://"),
            "genesys.no_proxy",
            format!("host names, domains or networks such as `intranet.corp` or `10.0.0.0/8`, one per list item, got `{entry}`"),
        );
    }
}

fn check_policy(c: &mut Checker, prefix: &str, p: &SkillPolicy) {
    c.range(p.floor, 0.0, 5.0, format!("{prefix}.floor"));
    c.range(p.ceiling, 0.0, 5.0, format!("{prefix}.ceiling"));
    c.require(
        p.floor <= p.ceiling,
        format!("{prefix}.floor"),
        format!("at most {prefix}.ceiling ({} > {})", p.floor, p.ceiling),
    );
    c.range(p.smoothing, 0.0, 1.0, format!("{prefix}.smoothing"));
    c.require(
        p.smoothing > 0.0,
        format!("{prefix}.smoothing"),
        "greater than 0 (0 would never move)",
    );
    c.range(p.max_step, 0.0, 5.0, format!("{prefix}.max_step"));
    c.range(p.dead_band, 0.0, 5.0, format!("{prefix}.dead_band"));
    c.range(p.round_to, 0.01, 5.0, format!("{prefix}.round_to"));
    // Each of these leaves the tuner frozen without saying so: a step of 0 never moves, a
    // step below the dead band is always ignored, a step below the grid always rounds back
    // to the current value. To freeze a skill, exclude it (`scope.exclude_skills`).
    c.require(
        p.max_step > 0.0,
        format!("{prefix}.max_step"),
        format!(
            "> 0 (a step of {} never moves; to freeze skills use scope.exclude_skills)",
            p.max_step
        ),
    );
    if p.max_step > 0.0 {
        c.require(
            p.max_step >= p.dead_band,
            format!("{prefix}.max_step"),
            format!(
                "at least {prefix}.dead_band ({} < {}: every move would be ignored)",
                p.max_step, p.dead_band
            ),
        );
        c.require(
            p.max_step >= p.round_to,
            format!("{prefix}.max_step"),
            format!(
                "at least {prefix}.round_to ({} < {}: every move would round back to the current value)",
                p.max_step, p.round_to
            ),
        );
    }
    c.require(
        p.shrinkage.is_finite() && p.shrinkage >= 0.0,
        format!("{prefix}.shrinkage"),
        "a number ≥ 0 (pseudo-interactions)",
    );
    let comps = &p.components;
    let all = [
        ("handle_time", comps.handle_time),
        ("transfer_rate", comps.transfer_rate),
        ("quality", comps.quality),
        ("csat", comps.csat),
    ];
    let mut total = 0.0;
    for (name, comp) in all {
        let Some(Component {
            weight,
            target,
            limit,
        }) = comp
        else {
            continue;
        };
        let key = format!("{prefix}.components.{name}");
        c.require(
            weight.is_finite() && weight >= 0.0,
            format!("{key}.weight"),
            "a number ≥ 0",
        );
        c.require(
            target.is_finite() && limit.is_finite() && target != limit,
            format!("{key}.target"),
            "a number different from limit (target = best, limit = worst)",
        );
        total += weight;
    }
    c.require(
        (total - 1.0).abs() < 1e-6,
        format!("{prefix}.components"),
        // Rounded: a sum like 0.7 + 0.2 would otherwise print as 0.8999999999999999.
        format!(
            "weights that sum to 1.0, got {}",
            (total * 1e6).round() / 1e6
        ),
    );
}
