//! The environment variables of Genesys' own tools, and where an effective value came from.
//!
//! Genesys' Terraform provider (CX as Code), its `gc` CLI and its blueprints read the OAuth
//! client and the region from `GENESYSCLOUD_OAUTHCLIENT_ID`, `GENESYSCLOUD_OAUTHCLIENT_SECRET`
//! and `GENESYSCLOUD_REGION`. skill-tuner takes them as fallbacks, below its own settings:
//!
//! 1. `SKILL_TUNER__GENESYS__CLIENT_ID` / `SKILL_TUNER__GENESYS__REGION`,
//! 2. the config file's `genesys.client_id` / `genesys.region`,
//! 3. `GENESYSCLOUD_OAUTHCLIENT_ID` / `GENESYSCLOUD_REGION`,
//! 4. the default (none for the client id, `us-east-1` for the region).
//!
//! The secret keeps its own order ([`super::secret::load_client_secret`]): the systemd
//! credential, `genesys.client_secret_file`, the variable named by `genesys.client_secret_env`,
//! and only then `GENESYSCLOUD_OAUTHCLIENT_SECRET`.

use config::{Value, ValueKind};
use std::fmt;
use std::path::{Path, PathBuf};

/// The OAuth client id, as Genesys' tools read it.
pub const CLIENT_ID_ENV: &str = "GENESYSCLOUD_OAUTHCLIENT_ID";
/// The OAuth client secret, as Genesys' tools read it.
pub const CLIENT_SECRET_ENV: &str = "GENESYSCLOUD_OAUTHCLIENT_SECRET";
/// The region (an AWS region name such as `eu-west-1`), as Genesys' tools read it.
pub const REGION_ENV: &str = "GENESYSCLOUD_REGION";

/// The keys that fall back to a variable of Genesys' tools, with that variable.
pub const FALLBACKS: &[(&str, &str)] = &[
    ("genesys.client_id", CLIENT_ID_ENV),
    ("genesys.region", REGION_ENV),
];

/// The origin the `config` crate records for `SKILL_TUNER__…` variables.
const OVERRIDE_ORIGIN: &str = "the environment";

/// A variable's value when it is set to something other than blanks.
pub(crate) fn non_blank(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The fallback values present in the environment, as config values whose origin is their
/// variable's name (so [`Sources`] can tell them from the file's and the overrides').
pub(super) fn fallback_values() -> Vec<(&'static str, Value)> {
    FALLBACKS
        .iter()
        .filter_map(|(key, var)| {
            let value = non_blank(var)?;
            Some((
                *key,
                Value::new(Some(&var.to_string()), ValueKind::String(value)),
            ))
        })
        .collect()
}

/// Where one effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A `SKILL_TUNER__SECTION__KEY` variable (named).
    Override(String),
    /// The config file.
    File(PathBuf),
    /// A variable of Genesys' own tools (named).
    Genesys(&'static str),
    /// Nothing set it.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Override(var) => write!(f, "the environment variable {var}"),
            Origin::File(path) => write!(f, "the config file {}", path.display()),
            Origin::Genesys(var) => write!(
                f,
                "the environment variable {var} (the convention of Genesys' CLI and Terraform provider)"
            ),
            Origin::Default => f.write_str("the default"),
        }
    }
}

/// The origin of each key in [`FALLBACKS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    entries: Vec<(&'static str, Origin)>,
}

impl Sources {
    /// Reads the origins off a merged config's root table (`file` is the config file).
    pub(super) fn of(root: &Value, file: &Path) -> Self {
        let entries = FALLBACKS
            .iter()
            .map(|(key, _)| (*key, origin_in(root, key, file)))
            .collect();
        Sources { entries }
    }

    /// The origin of `key` (one of [`FALLBACKS`]); [`Origin::Default`] for any other key.
    pub fn origin(&self, key: &str) -> Origin {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(Origin::Default, |(_, o)| o.clone())
    }

    /// `(key, origin)` for every key in [`FALLBACKS`].
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Origin)> {
        self.entries.iter().map(|(k, o)| (*k, o))
    }
}

fn origin_in(root: &Value, key: &str, file: &Path) -> Origin {
    let mut value = root;
    for segment in key.split('.') {
        let ValueKind::Table(table) = &value.kind else {
            return Origin::Default;
        };
        match table.get(segment) {
            Some(v) => value = v,
            None => return Origin::Default,
        }
    }
    match value.origin() {
        Some(OVERRIDE_ORIGIN) => Origin::Override(
            format!("SKILL_TUNER__{}", key.replace('.', "__")).to_ascii_uppercase(),
        ),
        Some(origin) => match FALLBACKS.iter().find(|(_, var)| *var == origin) {
            Some((_, var)) => Origin::Genesys(var),
            None => Origin::File(file.to_path_buf()),
        },
        None => Origin::File(file.to_path_buf()),
    }
}
