//! Where the OAuth client secret comes from: a systemd credential, a file, or an environment
//! variable — never the command line or the config file itself, and never printed.

use super::{ConfigError, GenesysSettings};
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
/// `genesys.client_secret_file`, then the variable named by `genesys.client_secret_env`.
pub fn load_client_secret(
    g: &GenesysSettings,
) -> Result<(SecretString, SecretSource), ConfigError> {
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(CREDENTIAL_NAME);
        if path.exists() {
            let secret = read_secret_file(&path, false)?;
            return Ok((secret, SecretSource::SystemdCredential(path)));
        }
    }
    if let Some(path) = &g.client_secret_file {
        let secret = read_secret_file(path, g.strict_file_permissions)?;
        return Ok((secret, SecretSource::File(path.clone())));
    }
    match std::env::var(&g.client_secret_env) {
        Ok(value) if !value.trim().is_empty() => {
            Ok((SecretString::from(value.trim().to_string()), SecretSource::Env(g.client_secret_env.clone())))
        }
        _ => Err(ConfigError::Secret(format!(
            "no client secret for OAuth client `{}`: set the environment variable {}, or `genesys.client_secret_file`, or a systemd credential named `{CREDENTIAL_NAME}`",
            g.client_id, g.client_secret_env
        ))),
    }
}

/// Reads a secret file; warns (or, strict, refuses) when others may read it.
pub fn read_secret_file(path: &Path, strict: bool) -> Result<SecretString, ConfigError> {
    check_private(path, strict)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::Secret(format!(
            "cannot read the client secret file {} (`genesys.client_secret_file`, or the systemd credential `{CREDENTIAL_NAME}`): {e}; expected a file holding only the secret, mode 600",
            path.display()
        ))
    })?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ConfigError::Secret(format!(
            "the client secret file {} is empty; expected the OAuth client secret on one line",
            path.display()
        )));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

/// A config file holds no secret, but it names the org's OAuth client, queues and people:
/// others (not the group, which the service may need) should not read it. Warns, or refuses
/// when `strict`.
pub fn check_config_file(path: &Path, strict: bool) -> Result<(), ConfigError> {
    check_mode(path, 0o007, "config file", "o-rwx", strict)
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
