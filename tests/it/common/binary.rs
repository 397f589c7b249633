//! The real `skill-tuner` binary as a one-shot command (`once`, `plan`, `history`, …): its
//! config file, the secret in the environment, and its captured output.

use genesys_sim::SimConfig;
use skill_tuner::config::Settings;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Writes a config file for the real binary, `settings` with a file ledger at `ledger`.
pub fn config_file(dir: &Path, settings: &Settings, ledger: &Path) -> PathBuf {
    let mut s = settings.clone();
    s.history.path = ledger.to_path_buf();
    let path = dir.join("skill-tuner.toml");
    std::fs::write(&path, s.to_toml()).unwrap();
    path
}

/// `skill-tuner <args> --config <config>` with the simulator's secret and `RUST_LOG=warn`.
pub fn binary(args: &[&str], config: &Path) -> Command {
    binary_with_secret(args, config, &SimConfig::default().client_secret, "warn")
}

/// `skill-tuner <args> --config <config>` with `secret` in `SKILL_TUNER_CLIENT_SECRET`, no
/// config, credentials, state directory or `GENESYSCLOUD_*` fallbacks from the environment,
/// and stdout and stderr piped.
pub fn binary_with_secret(args: &[&str], config: &Path, secret: &str, rust_log: &str) -> Command {
    let mut cmd = Command::new(super::BIN);
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("SKILL_TUNER_CLIENT_SECRET", secret)
        .env(skill_tuner::clock::NOW_ENV, super::sim::TEST_NOW)
        .env_remove("SKILL_TUNER_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY")
        .env_remove("GENESYSCLOUD_OAUTHCLIENT_ID")
        .env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET")
        .env_remove("GENESYSCLOUD_REGION")
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to the end off the async runtime's threads.
pub async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}
