//! `[genesys]`: how to reach the org, and how hard to push it.

use crate::genesys::{defaults, RetryPolicy, BULK_SKILLS_MAX};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

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
    /// Our share of the rate the API allows the token (0 < share ≤ 1): below 1 when the
    /// OAuth client also serves other work, which keeps the rest.
    pub rate_share: f64,
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
            rate_limit_per_minute: defaults::RATE_LIMIT_PER_MINUTE,
            rate_share: defaults::RATE_SHARE,
            burst: defaults::BURST,
            max_concurrency: defaults::MAX_CONCURRENCY,
            bulk_skills_per_call: BULK_SKILLS_MAX,
            request_timeout_secs: defaults::REQUEST_TIMEOUT.as_secs(),
            token_refresh_margin_secs: defaults::TOKEN_REFRESH_MARGIN.as_secs(),
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

/// The client's own retry policy and quota, in the units the settings use.
impl Default for RetrySettings {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        Self {
            max_attempts: policy.max_attempts,
            base_delay_ms: millis(policy.base_delay),
            max_delay_ms: millis(policy.max_delay),
            max_elapsed_secs: policy.max_elapsed.as_secs(),
            max_retry_after_secs: policy.max_retry_after.as_secs(),
            budget: defaults::RETRY_BUDGET,
        }
    }
}

impl RetrySettings {
    /// The client's retry policy these settings describe (the quota is the client's own field).
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base_delay: Duration::from_millis(self.base_delay_ms),
            max_delay: Duration::from_millis(self.max_delay_ms),
            max_elapsed: Duration::from_secs(self.max_elapsed_secs),
            max_retry_after: Duration::from_secs(self.max_retry_after_secs),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_retry_settings_describe_the_clients_default_policy() {
        assert_eq!(RetrySettings::default().policy(), RetryPolicy::default());
        let custom = RetrySettings {
            max_attempts: 2,
            base_delay_ms: 250,
            max_delay_ms: 1_000,
            max_elapsed_secs: 9,
            max_retry_after_secs: 7,
            budget: 1,
        };
        let policy = custom.policy();
        assert_eq!(policy.base_delay, Duration::from_millis(250));
        assert_eq!(policy.max_retry_after, Duration::from_secs(7));
    }
}
