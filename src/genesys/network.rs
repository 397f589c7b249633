//! How requests leave the machine: which proxy (if any) they go through, and which CA
//! certificates are trusted besides the OS trust store.
//!
//! - An explicit proxy (`genesys.proxy`) takes every request — login, API, webhook digest —
//!   except to the hosts of `genesys.no_proxy`; it is the operator's explicit choice, so it
//!   applies to loopback as well. Its credentials come from a file, never from the URL.
//! - Without one, the environment's `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` (or their
//!   lower-case forms) and `NO_PROXY` apply, as curl and reqwest read them, except that
//!   loopback (`127.0.0.0/8`, `::1`, `localhost`) is always reached directly: a local
//!   simulator or a sidecar is never sent to a corporate proxy. Like reqwest, nothing is read
//!   from the environment when `REQUEST_METHOD` is set (a CGI request's `Proxy:` header would
//!   arrive as `HTTP_PROXY`).
//! - Extra CA certificates (`genesys.ca_bundle_file`) are added to the OS trust store, never
//!   in its place: a TLS-intercepting proxy's CA is trusted and so is everything else.

use reqwest::{Certificate, ClientBuilder, NoProxy, Proxy, Url};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::path::PathBuf;

/// Hosts never sent to a proxy from the environment.
pub const LOOPBACK: &str = "127.0.0.0/8,::1,localhost";

/// The environment variables read when no proxy is configured, most specific first.
const HTTPS_VARS: [&str; 2] = ["HTTPS_PROXY", "https_proxy"];
const HTTP_VARS: [&str; 2] = ["HTTP_PROXY", "http_proxy"];
const ALL_VARS: [&str; 2] = ["ALL_PROXY", "all_proxy"];
const NO_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// `user:password` for a proxy. `Debug` shows the user only.
#[derive(Clone)]
pub struct ProxyCredentials {
    user: String,
    password: SecretString,
}

impl fmt::Debug for ProxyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyCredentials")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl ProxyCredentials {
    /// Parses `user:password` (the password may hold further colons; the user may not be
    /// empty). The error never repeats the text.
    pub fn parse(text: &SecretString) -> Result<Self, String> {
        let text = text.expose_secret().trim();
        match text.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Self {
                user: user.to_string(),
                password: SecretString::from(password.to_string()),
            }),
            _ => Err("expected `user:password` on one line".into()),
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }
}

/// The explicit proxy of `genesys.proxy`.
#[derive(Debug, Clone)]
pub struct ExplicitProxy {
    /// Without userinfo (refused in the settings).
    pub url: Url,
    pub credentials: Option<ProxyCredentials>,
    /// Where the credentials were found (for `check-config` and logs; never the value).
    pub credentials_source: Option<String>,
}

/// A proxy from the environment, for [`Network::describe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvProxy {
    /// `https` or `http`: the destinations it serves.
    pub serves: &'static str,
    /// The variable it came from.
    pub var: &'static str,
    /// Its URL without `user:password@`.
    pub shown: String,
}

/// Where requests go and what they trust. The default reads the proxy environment with
/// loopback exempt and trusts the OS store only.
#[derive(Debug, Clone, Default)]
pub struct Network {
    pub proxy: Option<ExplicitProxy>,
    /// Reached directly in any case (`NO_PROXY` syntax entries).
    pub no_proxy: Vec<String>,
    /// Trusted besides the OS store.
    pub extra_roots: Vec<Certificate>,
    /// The file they came from (for `describe`).
    pub ca_bundle_file: Option<PathBuf>,
}

/// Why the network settings cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("`{url}` is not a usable proxy: {reason}")]
    BadProxy { url: String, reason: String },
}

impl Network {
    /// The builder with this proxy and these roots applied.
    pub fn apply(&self, mut builder: ClientBuilder) -> Result<ClientBuilder, NetworkError> {
        match &self.proxy {
            Some(explicit) => {
                let bad = |e: reqwest::Error| NetworkError::BadProxy {
                    url: explicit.url.to_string(),
                    reason: e.to_string(),
                };
                let mut proxy = Proxy::all(explicit.url.as_str()).map_err(bad)?;
                if let Some(c) = &explicit.credentials {
                    proxy = proxy.basic_auth(&c.user, c.password.expose_secret());
                }
                if !self.no_proxy.is_empty() {
                    proxy = proxy.no_proxy(NoProxy::from_string(&self.no_proxy.join(",")));
                }
                builder = builder.proxy(proxy);
            }
            None => {
                // Adding any proxy turns reqwest's own reading of the environment off, so
                // with none at all this also keeps loopback direct.
                builder = builder.no_proxy();
                let direct = self.env_direct();
                for (serves, _, url) in env_proxies() {
                    let proxy = match serves {
                        "https" => Proxy::https(url.as_str()),
                        _ => Proxy::http(url.as_str()),
                    };
                    match proxy {
                        Ok(p) => builder = builder.proxy(p.no_proxy(NoProxy::from_string(&direct))),
                        // Never echoed: the URL may carry a password.
                        Err(_) => tracing::warn!(
                            destinations = serves,
                            "ignoring a proxy URL from the environment that does not parse"
                        ),
                    }
                }
            }
        }
        for cert in &self.extra_roots {
            builder = builder.add_root_certificate(cert.clone());
        }
        Ok(builder)
    }

    /// What reaches a host directly when the proxy comes from the environment: `NO_PROXY`,
    /// `genesys.no_proxy` and loopback.
    fn env_direct(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some((_, value)) = first_env(&NO_VARS) {
            parts.push(value);
        }
        parts.extend(self.no_proxy.iter().cloned());
        parts.push(LOOPBACK.into());
        parts.join(",")
    }

    /// The proxies the environment sets (for `describe`), without credentials.
    pub fn env_proxies() -> Vec<EnvProxy> {
        env_proxies()
            .into_iter()
            .map(|(serves, var, url)| EnvProxy {
                serves,
                var,
                shown: crate::text::redact_userinfo(&url).into_owned(),
            })
            .collect()
    }

    /// Lines for people (`check-config`): the proxy in effect, without credentials, and the
    /// extra trust.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let also_direct = if self.no_proxy.is_empty() {
            String::new()
        } else {
            format!(", {}", self.no_proxy.join(", "))
        };
        match &self.proxy {
            Some(p) => {
                let auth = match (&p.credentials, &p.credentials_source) {
                    (Some(c), Some(source)) => format!(
                        ", as user `{}` (password from {source}, not shown)",
                        c.user()
                    ),
                    _ => ", no credentials".into(),
                };
                let direct = if self.no_proxy.is_empty() {
                    "loopback included, nothing direct".to_string()
                } else {
                    format!("direct: {}", self.no_proxy.join(", "))
                };
                lines.push(format!(
                    "proxy: {} (genesys.proxy) for every request{auth}; {direct}",
                    p.url
                ));
            }
            None => {
                let found = Self::env_proxies();
                if std::env::var_os("REQUEST_METHOD").is_some() {
                    lines.push(
                        "proxy: none (REQUEST_METHOD is set, so the proxy environment is ignored)"
                            .into(),
                    );
                } else if found.is_empty() {
                    lines.push("proxy: none (no genesys.proxy, no HTTPS_PROXY, HTTP_PROXY or ALL_PROXY): direct".into());
                } else {
                    for p in &found {
                        lines.push(format!(
                            "proxy for {} destinations: {} (from {})",
                            p.serves, p.shown, p.var
                        ));
                    }
                    let no = first_env(&NO_VARS)
                        .map(|(var, v)| format!(", {var}={v}"))
                        .unwrap_or_default();
                    lines.push(format!(
                        "direct: loopback (127.0.0.0/8, ::1, localhost){also_direct}{no}"
                    ));
                }
            }
        }
        if let Some(path) = &self.ca_bundle_file {
            lines.push(format!(
                "trusted: the OS trust store and {} CA certificate(s) from {} (genesys.ca_bundle_file)",
                self.extra_roots.len(),
                path.display()
            ));
        }
        lines
    }
}

/// The first of `names` that is set, with its value (set but empty counts: `HTTPS_PROXY=`
/// turns the lower-case form off, as in curl).
fn first_env(names: &[&'static str]) -> Option<(&'static str, String)> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().map(|v| (*n, v)))
}

/// `(destinations, variable, url)` of each proxy the environment sets; a value without a
/// scheme means `http://` (as curl reads it).
fn env_proxies() -> Vec<(&'static str, &'static str, String)> {
    if std::env::var_os("REQUEST_METHOD").is_some() {
        return Vec::new();
    }
    let usable = |found: Option<(&'static str, String)>| {
        found
            .map(|(var, v)| (var, v.trim().to_string()))
            .filter(|(_, v)| !v.is_empty())
            .map(|(var, v)| {
                if v.contains("://") {
                    (var, v)
                } else {
                    (var, format!("http://{v}"))
                }
            })
    };
    let all = usable(first_env(&ALL_VARS));
    let mut out = Vec::new();
    if let Some((var, url)) = usable(first_env(&HTTPS_VARS)).or_else(|| all.clone()) {
        out.push(("https", var, url));
    }
    if let Some((var, url)) = usable(first_env(&HTTP_VARS)).or(all) {
        out.push(("http", var, url));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_and_never_show_the_password() {
        let c = ProxyCredentials::parse(&SecretString::from("tuner:pa:ss\n".to_string())).unwrap();
        assert_eq!(c.user(), "tuner");
        assert_eq!(c.password.expose_secret(), "pa:ss");
        let shown = format!("{c:?}");
        assert!(!shown.contains("pa:ss"), "{shown}");
        for bad in ["no-colon-SECRET", ":SECRET", ""] {
            let err = ProxyCredentials::parse(&SecretString::from(bad.to_string())).unwrap_err();
            assert!(!err.contains("SECRET"), "{err}");
        }
    }

    #[test]
    fn an_explicit_proxy_is_described_without_its_password() {
        let network = Network {
            proxy: Some(ExplicitProxy {
                url: Url::parse("http://proxy.corp:3128").unwrap(),
                credentials: Some(
                    ProxyCredentials::parse(&SecretString::from("u:SECRETPW".to_string())).unwrap(),
                ),
                credentials_source: Some("file /etc/proxy".into()),
            }),
            no_proxy: vec!["intranet.corp".into()],
            ..Network::default()
        };
        let text = network.describe().join("\n");
        assert!(text.contains("http://proxy.corp:3128/"), "{text}");
        assert!(
            text.contains("user `u`") && text.contains("file /etc/proxy"),
            "{text}"
        );
        assert!(text.contains("direct: intranet.corp"), "{text}");
        assert!(!text.contains("SECRETPW"), "{text}");
        assert!(network.apply(reqwest::Client::builder()).is_ok());
    }
}
