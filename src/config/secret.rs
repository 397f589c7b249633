//! Where the OAuth client secret comes from: a systemd credential, a file, or an environment
//! variable — never the command line or the config file itself, and never printed.

use super::{sources, ConfigError, DaemonSettings, GenesysSettings};
use secrecy::SecretString;
use std::path::Path;

/// The systemd credential name (`LoadCredential=client_secret:/etc/skill-tuner/secret`).
pub const CREDENTIAL_NAME: &str = "client_secret";

/// Where a secret was found (for logs: the place, never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    SystemdCredential(std::path::PathBuf),
    File(std::path::PathBuf),
    Env(String),
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::SystemdCredential(p) => write!(f, "systemd credential {}", p.display()),
            SecretSource::File(p) => write!(f, "file {}", p.display()),
            SecretSource::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// Finds the client secret: `$CREDENTIALS_DIRECTORY/client_secret`, then
/// `genesys.client_secret_file`, then the variable named by `genesys.client_secret_env`, then
/// `GENESYSCLOUD_OAUTHCLIENT_SECRET` (the variable Genesys' CLI and Terraform provider read).
pub fn load_client_secret(
    g: &GenesysSettings,
) -> Result<(SecretString, SecretSource), ConfigError> {
    load_org_client_secret(g, None)
}

/// The systemd credential holding an org's client secret: `client_secret` for a config
/// without `[[orgs]]`, `client_secret_<name>` for a listed org.
pub fn credential_name(org: Option<&str>) -> String {
    match org {
        None => CREDENTIAL_NAME.to_string(),
        Some(name) => format!("{CREDENTIAL_NAME}_{name}"),
    }
}

/// [`load_client_secret`] for one org of `[[orgs]]` (`org` = its name): its own systemd
/// credential ([`credential_name`]), file and variable. `GENESYSCLOUD_OAUTHCLIENT_SECRET`
/// belongs to one OAuth client, so only an unlisted org (`None`) falls back to it.
pub fn load_org_client_secret(
    g: &GenesysSettings,
    org: Option<&str>,
) -> Result<(SecretString, SecretSource), ConfigError> {
    let credential = credential_name(org);
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(&credential);
        if path.exists() {
            let secret = read_secret_file(&path, false)?;
            return Ok((secret, SecretSource::SystemdCredential(path)));
        }
    }
    if let Some(path) = &g.client_secret_file {
        let secret = read_secret_file(path, g.strict_file_permissions)?;
        return Ok((secret, SecretSource::File(path.clone())));
    }
    let fallback = org.is_none().then_some(sources::CLIENT_SECRET_ENV);
    for var in std::iter::once(g.client_secret_env.as_str()).chain(fallback) {
        if let Some(value) = sources::non_blank(var) {
            return Ok((
                SecretString::from(value),
                SecretSource::Env(var.to_string()),
            ));
        }
    }
    let whose = org.map_or(String::new(), |name| format!(" (org `{name}`)"));
    let genesys_var = if org.is_none() {
        format!(" (or {})", sources::CLIENT_SECRET_ENV)
    } else {
        String::new()
    };
    Err(ConfigError::Secret(format!(
        "no client secret for OAuth client `{}`{whose}: set the environment variable {}{genesys_var}, or `genesys.client_secret_file`, or a systemd credential named `{credential}`",
        g.client_id, g.client_secret_env,
    )))
}

/// A secret taken from `GENESYSCLOUD_OAUTHCLIENT_SECRET` belongs to the client in
/// `GENESYSCLOUD_OAUTHCLIENT_ID`: when that variable names another client than
/// `genesys.client_id`, the login will be refused, and this says why beforehand.
pub fn mismatched_pair(client_id: &str, source: &SecretSource) -> Option<String> {
    if *source != SecretSource::Env(sources::CLIENT_SECRET_ENV.into()) {
        return None;
    }
    let paired = sources::non_blank(sources::CLIENT_ID_ENV)?;
    (paired != client_id.trim()).then(|| {
        format!(
            "the client secret comes from {secret_var}, which goes with the OAuth client `{paired}` in {id_var}, but `genesys.client_id` is `{client_id}`: the login will be refused unless that secret is also `{client_id}`'s (put this client's secret in {} or `genesys.client_secret_file`, or leave `genesys.client_id` unset to use {id_var})",
            "the variable named by `genesys.client_secret_env`",
            secret_var = sources::CLIENT_SECRET_ENV,
            id_var = sources::CLIENT_ID_ENV,
        )
    })
}

/// Reads a secret file; warns (or, strict, refuses) when others may read it.
pub fn read_secret_file(path: &Path, strict: bool) -> Result<SecretString, ConfigError> {
    read_credential_file(
        path,
        strict,
        "client secret",
        &format!("`genesys.client_secret_file`, or the systemd credential `{CREDENTIAL_NAME}`"),
    )
}

/// Reads one credential file: `what` names it, `whence` says which settings point at it.
fn read_credential_file(
    path: &Path,
    strict: bool,
    what: &str,
    whence: &str,
) -> Result<SecretString, ConfigError> {
    check_private(path, strict)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::Secret(format!(
            "cannot read the {what} file {} ({whence}): {e}; expected a file holding only the {what}, mode 600",
            path.display()
        ))
    })?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ConfigError::Secret(format!(
            "the {what} file {} is empty; expected the {what} on one line",
            path.display()
        )));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

/// The systemd credential holding the proxy's `user:password`.
pub const PROXY_CREDENTIAL_NAME: &str = "proxy_credentials";

/// Finds the proxy's `user:password`, like the client secret: the systemd credential
/// `proxy_credentials`, then `genesys.proxy_credentials_file`. `Ok(None)` when neither is
/// there (a proxy without authentication). Only read with `genesys.proxy` set: a proxy from
/// the environment carries its own credentials in its URL.
pub fn load_proxy_credentials(
    g: &GenesysSettings,
) -> Result<Option<(SecretString, SecretSource)>, ConfigError> {
    let whence = format!(
        "`genesys.proxy_credentials_file`, or the systemd credential `{PROXY_CREDENTIAL_NAME}`"
    );
    if let Some(path) = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(|dir| Path::new(&dir).join(PROXY_CREDENTIAL_NAME))
        .filter(|p| p.exists())
    {
        let text = read_credential_file(&path, false, "proxy credentials", &whence)?;
        return Ok(Some((text, SecretSource::SystemdCredential(path))));
    }
    match &g.proxy_credentials_file {
        Some(path) => {
            let text = read_credential_file(
                path,
                g.strict_file_permissions,
                "proxy credentials",
                &whence,
            )?;
            Ok(Some((text, SecretSource::File(path.clone()))))
        }
        None => Ok(None),
    }
}

/// The systemd credential holding the bearer token of `POST /run`.
pub const RUN_TOKEN_CREDENTIAL: &str = "run_token";
/// The environment variable holding the bearer token of `POST /run`.
pub const RUN_TOKEN_ENV: &str = "SKILL_TUNER_RUN_TOKEN";
/// Shorter tokens are refused: the endpoint starts real cycles against the org.
pub const RUN_TOKEN_MIN_LEN: usize = 16;

/// Finds the bearer token of `POST /run`, in the client secret's order: the systemd
/// credential `run_token`, `daemon.run_token_file`, then `SKILL_TUNER_RUN_TOKEN`. `Ok(None)`
/// when none is set; a token that is set but unusable (unreadable, empty, too short) is an
/// error rather than a silently closed endpoint.
pub fn load_run_token(
    d: &DaemonSettings,
    strict: bool,
) -> Result<Option<(SecretString, SecretSource)>, ConfigError> {
    use secrecy::ExposeSecret;
    let whence =
        format!("`daemon.run_token_file`, or the systemd credential `{RUN_TOKEN_CREDENTIAL}`");
    let found = if let Some(path) = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(|dir| Path::new(&dir).join(RUN_TOKEN_CREDENTIAL))
        .filter(|p| p.exists())
    {
        let token = read_credential_file(&path, false, "run token", &whence)?;
        Some((token, SecretSource::SystemdCredential(path)))
    } else if let Some(path) = &d.run_token_file {
        let token = read_credential_file(path, strict, "run token", &whence)?;
        Some((token, SecretSource::File(path.clone())))
    } else {
        match std::env::var(RUN_TOKEN_ENV) {
            Ok(value) if !value.trim().is_empty() => Some((
                SecretString::from(value.trim().to_string()),
                SecretSource::Env(RUN_TOKEN_ENV.into()),
            )),
            _ => None,
        }
    };
    if let Some((token, source)) = &found {
        if token.expose_secret().len() < RUN_TOKEN_MIN_LEN {
            return Err(ConfigError::Secret(format!(
                "the run token in {source} is shorter than {RUN_TOKEN_MIN_LEN} characters; expected a random bearer token (e.g. `openssl rand -hex 32`)"
            )));
        }
    }
    Ok(found)
}

/// The run token `POST /run` needs, when the endpoint is on: refuses `enable_run_endpoint`
/// without one, so the endpoint is never open without authentication.
pub fn run_token_if_enabled(
    d: &DaemonSettings,
    strict: bool,
) -> Result<Option<(SecretString, SecretSource)>, ConfigError> {
    if !d.enable_run_endpoint {
        return Ok(None);
    }
    match load_run_token(d, strict)? {
        Some(found) => Ok(Some(found)),
        None => Err(ConfigError::Secret(format!(
            "`daemon.enable_run_endpoint` = true needs a bearer token for POST /run: set `daemon.run_token_file`, a systemd credential named `{RUN_TOKEN_CREDENTIAL}`, or the environment variable {RUN_TOKEN_ENV}; without one the endpoint stays off"
        ))),
    }
}

/// Who may change and who may read the config file. Returns the problems as warnings, or
/// refuses the file when `strict`.
///
/// The file holds no client secret (that is never a setting), so others may read it: the
/// systemd unit's dynamic user is "others" to a root-owned `/etc` file, and a Kubernetes
/// ConfigMap is mounted 0644. What matters is who can *change* it (it can point skill-tuner
/// at another org or loosen its guardrails): only root or the user running skill-tuner may
/// own it and nobody else may write it. A file others can read must not hold a credential of
/// its own either: an incoming-webhook URL carries its token, a URL may carry a password.
pub fn check_config_file(path: &Path, strict: bool) -> Result<Vec<String>, ConfigError> {
    let problems = config_file_problems(path);
    if strict && !problems.is_empty() {
        return Err(ConfigError::Secret(format!(
            "{} (refused: `genesys.strict_file_permissions = true`)",
            problems.join("; ")
        )));
    }
    Ok(problems)
}

#[cfg(unix)]
fn config_file_problems(path: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Vec::new();
    };
    let mode = meta.mode() & 0o777;
    let shown = path.display();
    let mut problems = Vec::new();
    if mode & 0o022 != 0 {
        problems.push(format!(
            "config file {shown} is writable by group or others (mode {mode:03o}): whoever can change it can point skill-tuner at another org or loosen its guardrails; run `chmod go-w {shown}`"
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let owner = meta.uid();
    if owner != 0 && owner != me {
        problems.push(format!(
            "config file {shown} is owned by uid {owner}, neither root nor the user running skill-tuner (uid {me}), who can change it; run `chown root {shown}`"
        ));
    }
    if mode & 0o004 != 0 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for key in credential_keys(&text) {
            let var = format!("SKILL_TUNER__{}", key.replace('.', "__")).to_uppercase();
            problems.push(format!(
                "config file {shown} is readable by others (mode {mode:03o}) and `{key}` holds a credential; run `chmod o-rwx {shown}` (and give the service a group that may read it), or set it through the environment instead ({var}, e.g. from a root-only systemd `EnvironmentFile=`)"
            ));
        }
    }
    problems
}

#[cfg(not(unix))]
fn config_file_problems(_path: &Path) -> Vec<String> {
    Vec::new()
}

/// The keys of a config file's text that hold a credential: a webhook URL that is not on
/// loopback (incoming-webhook URLs are bearer tokens), or any URL with a password in it.
fn credential_keys(text: &str) -> Vec<&'static str> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let lookup = |key: &str| -> Option<url::Url> {
        let mut value: Option<&toml::Value> = None;
        for (i, segment) in key.split('.').enumerate() {
            value = if i == 0 {
                table.get(segment)
            } else {
                value?.get(segment)
            };
        }
        url::Url::parse(value?.as_str()?).ok()
    };
    let mut keys = Vec::new();
    for key in [
        "alerts.webhook.url",
        "genesys.api_base_url",
        "genesys.login_base_url",
    ] {
        let Some(url) = lookup(key) else { continue };
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let token_url = key == "alerts.webhook.url" && !loopback;
        if token_url || url.password().is_some() {
            keys.push(key);
        }
    }
    keys
}

/// Warns (or refuses, when `strict`) if group or others may read the secret file `path`.
pub fn check_private(path: &Path, strict: bool) -> Result<(), ConfigError> {
    check_mode(path, 0o077, "secret file", "600", strict)
}

/// Warns (or refuses) when any bit of `mask` is set in `path`'s mode.
fn check_mode(
    path: &Path,
    mask: u32,
    what: &str,
    chmod: &str,
    strict: bool,
) -> Result<(), ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & mask != 0 {
                let who = if mask & 0o070 != 0 {
                    "group or others"
                } else {
                    "others"
                };
                let message = format!(
                    "{what} {} is readable by {who} (mode {:03o}); run `chmod {chmod} {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                );
                if strict {
                    return Err(ConfigError::Secret(message));
                }
                tracing::warn!("{message}");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mask, what, chmod, strict);
    Ok(())
}
