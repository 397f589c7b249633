//! How the service runs: where its ledger lives (`[history]`), the daemon (`[daemon]`) and
//! its logs (`[log]`).

use super::Problem;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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

impl HistorySettings {
    /// Where the ledger lives: a relative path resolves against `$STATE_DIRECTORY` (systemd).
    pub fn ledger_path(&self) -> PathBuf {
        if self.path.is_relative() {
            if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
                // systemd may pass several, colon-separated; the first is ours.
                let first = dir
                    .to_string_lossy()
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                return PathBuf::from(first).join(&self.path);
            }
        }
        self.path.clone()
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
