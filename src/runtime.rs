//! Turning settings into live parts: the API client (with its secret) and the ledger.

use crate::clock::Clock;
use crate::config::{secret, ConfigError, Settings};
use crate::genesys::{ApiError, ClientConfig, Credentials, Endpoints, GenesysClient, RetryPolicy};
use crate::history::{Ledger, LedgerError};
use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;

/// Why start-up failed.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The client for `settings`, with the secret found by [`secret::load_client_secret`].
pub fn connect(settings: &Settings, clock: &Clock) -> Result<GenesysClient, StartupError> {
    let (secret, source) = secret::load_client_secret(&settings.genesys)?;
    tracing::debug!(client_id = %settings.genesys.client_id, %source, "client secret found");
    client_with_secret(settings, secret, clock)
}

/// The client for `settings` with a given secret (demo, tests).
pub fn client_with_secret(
    settings: &Settings,
    secret: SecretString,
    clock: &Clock,
) -> Result<GenesysClient, StartupError> {
    let g = &settings.genesys;
    let endpoints = Endpoints::resolve(
        &g.region,
        g.login_base_url.as_deref(),
        g.api_base_url.as_deref(),
        g.allow_insecure_http,
    )
    .map_err(|e| ConfigError::Invalid {
        file: PathBuf::from("<settings>"),
        problems: vec![crate::config::Problem {
            key: "genesys.region".into(),
            expected: e.to_string(),
        }],
    })?;
    let mut config = ClientConfig::new(
        endpoints,
        Credentials {
            client_id: g.client_id.clone(),
            client_secret: secret,
        },
    );
    config.rate_limit_per_minute = g.rate_limit_per_minute;
    config.burst = g.burst;
    config.max_concurrency = g.max_concurrency;
    config.request_timeout = Duration::from_secs(g.request_timeout_secs);
    config.token_refresh_margin = Duration::from_secs(g.token_refresh_margin_secs);
    config.retry = RetryPolicy {
        max_attempts: g.retry.max_attempts,
        base_delay: Duration::from_millis(g.retry.base_delay_ms),
        max_delay: Duration::from_millis(g.retry.max_delay_ms),
        max_elapsed: Duration::from_secs(g.retry.max_elapsed_secs),
        max_retry_after: Duration::from_secs(g.retry.max_retry_after_secs),
    };
    config.retry_budget = g.retry.budget;
    config.bulk_skills_per_call = g.bulk_skills_per_call;
    config.clock = clock.clone();
    Ok(GenesysClient::new(config)?)
}

/// Logs in, starts the token refresher, and adopts the org's rate limit (best effort).
pub async fn start_client(client: &GenesysClient, settings: &Settings) -> Result<(), ApiError> {
    client.login().await?;
    client.start_token_refresher();
    match client
        .adopt_org_rate_limit(
            &settings.genesys.limits_namespace,
            &settings.genesys.rate_limit_key,
        )
        .await
    {
        Ok(Some(limit)) => tracing::info!(
            org_limit_per_minute = limit,
            paced_to = client.paced_rate_per_minute(),
            "org rate limit read"
        ),
        Ok(None) => tracing::info!(
            paced_to = client.paced_rate_per_minute(),
            "org reports no per-token rate limit; using the configured one"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the org's limits; using the configured rate")
        }
    }
    Ok(())
}

/// Where the ledger lives: relative paths resolve against `$STATE_DIRECTORY` (systemd).
pub fn ledger_path(settings: &Settings) -> PathBuf {
    let path = &settings.history.path;
    if path.is_relative() {
        if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
            // systemd may pass several, colon-separated; the first is ours.
            let first = dir
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string();
            return PathBuf::from(first).join(path);
        }
    }
    path.clone()
}

/// Opens the ledger named by the settings, timestamping with `clock`.
pub fn open_ledger(settings: &Settings, clock: &Clock) -> Result<Ledger, LedgerError> {
    Ok(Ledger::open(&ledger_path(settings))?.with_clock(clock.clone()))
}

/// Opens the ledger named by the settings for a daemon, holding its daemon lock (one daemon
/// per ledger) for as long as the handle lives.
pub fn open_daemon_ledger(settings: &Settings, clock: &Clock) -> Result<Ledger, LedgerError> {
    Ledger::open_for_daemon(&ledger_path(settings), clock)
}

/// Opens the ledger named by the settings for the commands that only read it.
pub fn open_ledger_read_only(settings: &Settings) -> Result<Ledger, LedgerError> {
    Ledger::open_read_only(&ledger_path(settings))
}
