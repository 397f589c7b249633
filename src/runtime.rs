//! Turning settings into live parts: the API client (with its secret) and the ledger.

use crate::clock::Clock;
use crate::config::{secret, ConfigError, Settings};
use crate::genesys::network::{ExplicitProxy, Network, ProxyCredentials};
use crate::genesys::{ApiError, ClientConfig, Credentials, Endpoints, GenesysClient};
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
    let (secret, source) =
        secret::load_org_client_secret(&settings.genesys, settings.org.as_deref())?;
    tracing::debug!(client_id = %settings.genesys.client_id, %source, "client secret found");
    if let Some(warning) = secret::mismatched_pair(&settings.genesys.client_id, &source) {
        tracing::warn!("{warning}");
    }
    client_with_secret(settings, secret, clock)
}

/// The proxy and extra trust `settings` ask for: reads the proxy credentials and the CA
/// bundle. A file that cannot be used is refused naming its key (exit 2).
pub fn network(settings: &Settings) -> Result<Network, ConfigError> {
    let g = &settings.genesys;
    let proxy = match &g.proxy {
        None => None,
        Some(raw) => {
            let url = reqwest::Url::parse(raw.trim()).map_err(|e| ConfigError::Invalid {
                file: PathBuf::from("<settings>"),
                problems: vec![crate::config::Problem {
                    key: "genesys.proxy".into(),
                    expected: format!("a proxy URL such as `http://proxy.corp:3128` ({e})"),
                }],
            })?;
            let (credentials, credentials_source) = match secret::load_proxy_credentials(g)? {
                None => (None, None),
                Some((text, source)) => {
                    let parsed = ProxyCredentials::parse(&text).map_err(|reason| {
                        ConfigError::Secret(format!(
                            "the proxy credentials in {source} (`genesys.proxy_credentials_file`, or the systemd credential `{}`): {reason}",
                            secret::PROXY_CREDENTIAL_NAME
                        ))
                    })?;
                    (Some(parsed), Some(source.to_string()))
                }
            };
            Some(ExplicitProxy {
                url,
                credentials,
                credentials_source,
            })
        }
    };
    let extra_roots = match &g.ca_bundle_file {
        Some(path) => load_ca_bundle(path)?,
        None => Vec::new(),
    };
    let network = Network {
        proxy,
        no_proxy: g.no_proxy.iter().map(|e| e.trim().to_string()).collect(),
        extra_roots,
        ca_bundle_file: g.ca_bundle_file.clone(),
    };
    // PEM that holds something other than a CA certificate shows only when a client is
    // built with it: build one now, so it is refused here, naming the key.
    if let Some(path) = &g.ca_bundle_file {
        let built = network
            .apply(reqwest::Client::builder())
            .map_err(|e| e.to_string())
            .and_then(|b| {
                b.build()
                    .map_err(|e| crate::genesys::error::with_causes(&e))
            });
        if let Err(reason) = built {
            return Err(ConfigError::UnusableFile {
                key: "genesys.ca_bundle_file".into(),
                path: path.clone(),
                reason: format!("not usable as CA certificates: {reason}"),
            });
        }
    }
    Ok(network)
}

/// For `check-config`: where the client id and the region came from (never the secret's
/// value: that line is the caller's), the base URLs they lead to, and how requests leave the
/// machine (the proxy without its credentials, extra trust). A proxy credentials file or CA
/// bundle that cannot be used is an error naming its key.
pub fn connection_lines(
    config_path: &std::path::Path,
    settings: &Settings,
) -> Result<Vec<String>, ConfigError> {
    let env = crate::config::Environment::process();
    let sources = Settings::sources_for(config_path, settings.org.as_deref(), &env)?;
    let g = &settings.genesys;
    let mut lines = Vec::new();
    for (key, origin) in sources.iter() {
        let value = match key {
            "genesys.client_id" => &g.client_id,
            _ => &g.region,
        };
        lines.push(format!(
            "{key} = \"{}\" from {origin}",
            crate::text::printable(value)
        ));
    }
    if let Ok(e) = Endpoints::resolve(
        &g.region,
        g.login_base_url.as_deref(),
        g.api_base_url.as_deref(),
        g.allow_insecure_http,
    ) {
        let shown = |u: &reqwest::Url| crate::text::redact_userinfo(u.as_str()).into_owned();
        lines.push(format!(
            "login at {}, API at {}",
            shown(&e.login_base),
            shown(&e.api_base)
        ));
    }
    lines.extend(network(settings)?.describe());
    Ok(lines)
}

/// The CA certificates of a PEM file; one without any is refused.
fn load_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let unusable = |reason: String| ConfigError::UnusableFile {
        key: "genesys.ca_bundle_file".into(),
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| {
        unusable(format!(
            "cannot read it ({e}); expected a PEM file of CA certificates"
        ))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&bytes).map_err(|e| {
        unusable(format!(
            "not a PEM certificate bundle ({e}); expected `-----BEGIN CERTIFICATE-----` blocks"
        ))
    })?;
    if certs.is_empty() {
        return Err(unusable(
            "holds no certificate; expected one or more `-----BEGIN CERTIFICATE-----` blocks (PEM)"
                .into(),
        ));
    }
    Ok(certs)
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
    config.rate_share = g.rate_share;
    config.burst = g.burst;
    config.max_concurrency = g.max_concurrency;
    config.request_timeout = Duration::from_secs(g.request_timeout_secs);
    config.token_refresh_margin = Duration::from_secs(g.token_refresh_margin_secs);
    config.retry = g.retry.policy();
    config.retry_budget = g.retry.budget;
    config.bulk_skills_per_call = g.bulk_skills_per_call;
    config.clock = clock.clone();
    config.network = network(settings)?;
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

/// Opens the ledger named by the settings, timestamping with `clock`.
pub fn open_ledger(settings: &Settings, clock: &Clock) -> Result<Ledger, LedgerError> {
    Ok(Ledger::open(&settings.history.ledger_path())?
        .with_clock(clock.clone())
        .with_org(settings.org_name()))
}

/// Opens the ledger named by the settings for a daemon, holding its daemon lock (one daemon
/// per ledger) for as long as the handle lives.
pub fn open_daemon_ledger(settings: &Settings, clock: &Clock) -> Result<Ledger, LedgerError> {
    Ledger::open_for_daemon(&settings.history.ledger_path(), settings.org_name(), clock)
}

/// Opens the ledger named by the settings for the commands that only read it.
pub fn open_ledger_read_only(settings: &Settings) -> Result<Ledger, LedgerError> {
    Ok(Ledger::open_read_only(&settings.history.ledger_path())?.with_org(settings.org_name()))
}
