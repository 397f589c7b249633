//! The environment the config reads, the variables of Genesys' own tools, and where an
//! effective value came from.
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
//! A listed org (`[[orgs]]`) puts two layers of its own on top:
//! `SKILL_TUNER__ORGS__<ORG>__GENESYS__CLIENT_ID` (see [`super::orgs`]), then its table's
//! `genesys.client_id`; the four above follow. Which of the config's variables are read
//! at all comes from an [`Environment`]: the process's, or one a test gives.
//!
//! The secret keeps its own order ([`super::secret::load_client_secret`]): the systemd
//! credential, `genesys.client_secret_file`, the variable named by `genesys.client_secret_env`,
//! and only then `GENESYSCLOUD_OAUTHCLIENT_SECRET`.

use config::{Value, ValueKind};
use std::collections::BTreeMap;
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

/// What the origin of a value set by an org's variable starts with; the variable follows.
const ORG_OVERRIDE_ORIGIN: &str = "the environment variable ";

/// The prefix of the variables that override keys (`SKILL_TUNER__SECTION__KEY`).
pub const OVERRIDE_PREFIX: &str = "SKILL_TUNER__";

/// The prefix of the variables that override one org's keys
/// (`SKILL_TUNER__ORGS__<ORG>__SECTION__KEY`); `SKILL_TUNER__ORGS` alone is one of them too
/// (and refused: it names no org).
pub const ORG_OVERRIDE_PREFIX: &str = "SKILL_TUNER__ORGS";

/// The origin recorded for a value an org's variable `var` set.
pub(super) fn org_override_origin(var: &str) -> String {
    format!("{ORG_OVERRIDE_ORIGIN}{var}")
}

/// The org variable an origin names, if it is one of [`org_override_origin`]'s.
pub(super) fn org_override_var(origin: &str) -> Option<&str> {
    origin.strip_prefix(ORG_OVERRIDE_ORIGIN)
}

/// The environment a config is read with: the variables it reads (the overrides and
/// [`FALLBACKS`]) of the process, or a set given in full, so a test reads a config "with
/// the environment" without changing the process's (tests run in parallel threads).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    /// Variables the config reads whose value is not UTF-8 (refused, naming them).
    unreadable: Vec<String>,
    /// A reload: an org variable naming no org of the file is ignored with a warning (see
    /// [`Environment::for_reload`]).
    reloading: bool,
}

impl fmt::Debug for Environment {
    /// Names only: an override may hold a credential (a webhook URL).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("unreadable", &self.unreadable)
            .field("reloading", &self.reloading)
            .finish()
    }
}

/// Whether the config reads variable `name` (an override, or a fallback).
fn read_by_config(name: &str) -> bool {
    name.to_ascii_uppercase().starts_with(OVERRIDE_PREFIX)
        || FALLBACKS.iter().any(|(_, var)| *var == name)
}

impl Environment {
    /// The same variables, read for a reload. A process's environment never changes, and at
    /// start every org variable had to name an org, so one naming no org now names an org
    /// the new file removed: refusing it would refuse every reload until a restart, so it
    /// is ignored with a warning instead.
    pub fn for_reload(mut self) -> Self {
        self.reloading = true;
        self
    }

    /// Whether org variables naming no org are ignored (a reload) rather than refused.
    pub(crate) fn reloading(&self) -> bool {
        self.reloading
    }

    /// The process's variables that the config reads.
    pub fn process() -> Self {
        let mut env = Environment::default();
        for (name, value) in std::env::vars_os() {
            let Ok(name) = name.into_string() else {
                continue;
            };
            if !read_by_config(&name) {
                continue;
            }
            match value.into_string() {
                Ok(value) => {
                    env.vars.insert(name, value);
                }
                // As the `config` crate did: an override it cannot read is an error; a
                // fallback of Genesys' tools that is not text is as good as unset.
                Err(_) if name.to_ascii_uppercase().starts_with(OVERRIDE_PREFIX) => {
                    env.unreadable.push(name)
                }
                Err(_) => {}
            }
        }
        env
    }

    /// Exactly these variables (those the config does not read are dropped).
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, _)| read_by_config(k))
            .collect();
        Environment {
            vars,
            unreadable: Vec::new(),
            reloading: false,
        }
    }

    /// Variables the config reads that hold something other than UTF-8.
    pub(super) fn unreadable(&self) -> &[String] {
        &self.unreadable
    }

    /// `var`'s value when it is set to something other than blanks.
    fn non_blank(&self, var: &str) -> Option<String> {
        self.vars
            .get(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn is_org_override(name: &str) -> bool {
        let upper = name.to_ascii_uppercase();
        upper == ORG_OVERRIDE_PREFIX || upper.starts_with(&format!("{ORG_OVERRIDE_PREFIX}__"))
    }

    /// The `SKILL_TUNER__SECTION__KEY` variables, for the `config` crate's environment
    /// source (the org ones are laid over their org's table instead, see [`super::orgs`]).
    pub(super) fn top_level_overrides(&self) -> config::Map<String, String> {
        self.vars
            .iter()
            .filter(|(k, _)| k.to_ascii_uppercase().starts_with(OVERRIDE_PREFIX))
            .filter(|(k, _)| !Self::is_org_override(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The `SKILL_TUNER__ORGS__<ORG>__SECTION__KEY` variables and their values.
    pub(super) fn org_overrides(&self) -> Vec<(&str, &str)> {
        self.vars
            .iter()
            .filter(|(k, _)| Self::is_org_override(k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// A variable's value when it is set to something other than blanks.
pub(crate) fn non_blank(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The fallback values present in `env`, as config values whose origin is their
/// variable's name (so [`Sources`] can tell them from the file's and the overrides').
pub(super) fn fallback_values(env: &Environment) -> Vec<(&'static str, Value)> {
    FALLBACKS
        .iter()
        .filter_map(|(key, var)| {
            let value = env.non_blank(var)?;
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

    /// As [`Sources::of`] for a listed org: a key its table (`org`, its variables laid over
    /// it) sets comes from there, any other from the top level as for every org.
    pub(super) fn of_org(root: &Value, org: &Value, file: &Path) -> Self {
        let entries = FALLBACKS
            .iter()
            .map(|(key, _)| {
                let origin = match value_at(org, key) {
                    Some(value) => origin_of(value, key, file),
                    None => origin_in(root, key, file),
                };
                (*key, origin)
            })
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
    match value_at(root, key) {
        Some(value) => origin_of(value, key, file),
        None => Origin::Default,
    }
}

/// The value at dotted `key` under `root`, if set.
fn value_at<'a>(root: &'a Value, key: &str) -> Option<&'a Value> {
    let mut value = root;
    for segment in key.split('.') {
        let ValueKind::Table(table) = &value.kind else {
            return None;
        };
        value = table.get(segment)?;
    }
    Some(value)
}

/// Where `value`, found at `key`, came from.
fn origin_of(value: &Value, key: &str, file: &Path) -> Origin {
    match value.origin() {
        Some(OVERRIDE_ORIGIN) => Origin::Override(
            format!("{OVERRIDE_PREFIX}{}", key.replace('.', "__")).to_ascii_uppercase(),
        ),
        Some(origin) => match (
            org_override_var(origin),
            FALLBACKS.iter().find(|(_, var)| *var == origin),
        ) {
            (Some(var), _) => Origin::Override(var.to_string()),
            (None, Some((_, var))) => Origin::Genesys(var),
            (None, None) => Origin::File(file.to_path_buf()),
        },
        None => Origin::File(file.to_path_buf()),
    }
}
