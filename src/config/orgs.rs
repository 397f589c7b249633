//! `[[orgs]]`: several Genesys orgs in one config, each its own OAuth client.
//!
//! Each `[[orgs]]` table is laid over the top-level tables key by key (tables merge, any
//! other value replaces), before anything is typed or validated; the result is then parsed
//! and validated exactly like a single-org config. So every org-scoped section — the ones
//! here today and any added later — works per org without code of its own. Only the
//! process-wide keys ([`PROCESS_WIDE`]) stay top-level; an org table setting one is refused.
//!
//! A config without `[[orgs]]` is one org named [`DEFAULT_ORG`], as it always was.

use super::validate::{ConfigError, Problem};
use super::{strict, Settings};
use config::{Value, ValueKind};
use std::collections::BTreeMap;
use std::path::Path;

/// The name of the one org of a config without `[[orgs]]` (and of the runs an older ledger
/// recorded before it knew orgs).
pub const DEFAULT_ORG: &str = "default";

/// Keys that belong to the process, not to an org: one ledger, one log, one admin listener
/// (with its `/metrics` and `POST /run`), one shutdown.
pub const PROCESS_WIDE: &[&str] = &[
    "history",
    "log",
    "daemon.admin_listen",
    "daemon.admin_public",
    "daemon.enable_run_endpoint",
    "daemon.run_token_file",
    "daemon.shutdown_grace_secs",
];

/// Longest org name: it is a metric label, a lock-file name part and a variable suffix.
const NAME_MAX: usize = 63;

/// The orgs of one config, in file order, each with its effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Orgs {
    list: Vec<Settings>,
}

/// Why no org was chosen (`--org`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgChoiceError {
    #[error("the config names {} orgs ({}); choose one with --org NAME", .0.len(), .0.join(", "))]
    Ambiguous(Vec<String>),
    #[error("no org named `{given}` in the config (its orgs: {})", known.join(", "))]
    Unknown { given: String, known: Vec<String> },
}

impl Orgs {
    /// One org (tests, `demo`, a config built in code).
    pub fn single(settings: Settings) -> Self {
        Orgs {
            list: vec![settings],
        }
    }

    /// Every org, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Settings> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Never true for a loaded config (it has at least one org); for completeness.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|s| s.org_name().to_string()).collect()
    }

    /// Whether the config lists its orgs (`[[orgs]]`) rather than being one unnamed org.
    pub fn listed(&self) -> bool {
        self.list.iter().any(|s| s.org.is_some())
    }

    /// The settings of the process-wide sections ([`PROCESS_WIDE`]): the same in every org.
    pub fn process(&self) -> &Settings {
        &self.list[0]
    }

    /// The org `--org` names; without `--org`, the only org, else a usage error listing them.
    pub fn choose(&self, name: Option<&str>) -> Result<&Settings, OrgChoiceError> {
        match name {
            Some(given) => self
                .list
                .iter()
                .find(|s| s.org_name() == given)
                .ok_or_else(|| OrgChoiceError::Unknown {
                    given: crate::text::printable(given).into_owned(),
                    known: self.names(),
                }),
            None if self.list.len() == 1 => Ok(&self.list[0]),
            None => Err(OrgChoiceError::Ambiguous(self.names())),
        }
    }

    pub fn into_vec(self) -> Vec<Settings> {
        self.list
    }

    /// Typed and validated orgs from a merged config's root (see the module comment).
    pub(super) fn from_root(root: Value, origin: &Path) -> Result<Self, ConfigError> {
        let ValueKind::Table(mut top) = root.kind else {
            return Settings::parse_one(root, origin).map(Orgs::single);
        };
        let Some(listed) = top.remove("orgs") else {
            return Settings::parse_one(Value::new(None, ValueKind::Table(top)), origin)
                .map(Orgs::single);
        };
        let invalid = |problems: Vec<Problem>| ConfigError::Invalid {
            file: origin.to_path_buf(),
            problems,
        };
        let tables = match listed.kind {
            ValueKind::Array(items) if !items.is_empty() => items,
            _ => {
                return Err(invalid(vec![Problem {
                    key: "orgs".into(),
                    expected: "a non-empty list of tables, each `[[orgs]]` with its `name`".into(),
                }]))
            }
        };
        let mut problems = Vec::new();
        let mut list = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (index, item) in tables.into_iter().enumerate() {
            let ValueKind::Table(mut table) = item.kind else {
                problems.push(Problem {
                    key: format!("orgs[{index}]"),
                    expected: "a table (`[[orgs]]`) with the org's `name` and its settings".into(),
                });
                continue;
            };
            let name = match table.remove("name").map(|v| v.kind) {
                Some(ValueKind::String(name)) => name,
                _ => String::new(),
            };
            if let Some(why) = bad_name(&name) {
                problems.push(Problem {
                    key: format!("orgs[{index}].name"),
                    expected: why,
                });
                continue;
            }
            let org = OrgAt {
                index,
                name: name.clone(),
            };
            if let Some(first) = seen.insert(name.clone(), index) {
                problems.push(org.problem(
                    "name",
                    format!("a name of its own: orgs[{first}] is also named `{name}`"),
                ));
                continue;
            }
            let refused: Vec<String> = PROCESS_WIDE
                .iter()
                .filter(|key| lookup(&table, key).is_some())
                .map(|key| key.to_string())
                .collect();
            if !refused.is_empty() {
                problems.extend(refused.into_iter().map(|key| Problem {
                    key: format!("orgs[{index}].{key}"),
                    expected: format!(
                        "set only at the top level: `{key}` belongs to the whole process (one ledger, one log, one admin listener), not to an org"
                    ),
                }));
                continue;
            }
            let sets_secret_env = lookup(&table, "genesys.client_secret_env").is_some();
            let mut merged = Value::new(None, ValueKind::Table(top.clone()));
            merge(&mut merged, Value::new(None, ValueKind::Table(table)));
            let parsed = Settings::parse_one(merged, origin).map(|mut settings| {
                if !sets_secret_env {
                    settings.genesys.client_secret_env =
                        secret_env_for(&settings.genesys.client_secret_env, &name);
                }
                settings.org = Some(name.clone());
                settings
            });
            match parsed {
                Ok(settings) => list.push(settings),
                Err(ConfigError::Invalid { problems: own, .. }) => {
                    problems.extend(own.into_iter().map(|p| org.named(p)))
                }
                Err(ConfigError::Parse { message, .. }) => problems.push(org.problem("", message)),
                Err(other) => return Err(other),
            }
        }
        problems.extend(shared_clients(&list));
        if problems.is_empty() {
            Ok(Orgs { list })
        } else {
            Err(invalid(problems))
        }
    }
}

/// An org's position and name, for its problems.
struct OrgAt {
    index: usize,
    name: String,
}

impl OrgAt {
    /// `orgs[2] (name "brand-b"): policy.default.max_step` (see [`Problem`]'s display).
    fn prefix(&self) -> String {
        format!("orgs[{}] (name \"{}\")", self.index, self.name)
    }

    fn problem(&self, key: &str, expected: String) -> Problem {
        Problem {
            key: format!("{}: {key}", self.prefix()),
            expected,
        }
    }

    fn named(&self, p: Problem) -> Problem {
        self.problem(&p.key, p.expected)
    }
}

fn at(settings: &Settings, index: usize) -> OrgAt {
    OrgAt {
        index,
        name: settings.org_name().to_string(),
    }
}

/// Each org is its own OAuth client (the rate limit is the client's): two orgs with one
/// client id, one secret file, or one secret variable are a copy-and-paste mistake.
fn shared_clients(list: &[Settings]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (j, later) in list.iter().enumerate() {
        let Some((i, first)) = list[..j].iter().enumerate().find(|(_, earlier)| {
            earlier.genesys.client_id.trim() == later.genesys.client_id.trim()
                && !later.genesys.client_id.trim().is_empty()
        }) else {
            continue;
        };
        problems.push(at(later, j).problem(
            "genesys.client_id",
            format!(
                "an OAuth client of its own: orgs[{i}] (`{}`) uses the same client id (is GENESYSCLOUD_OAUTHCLIENT_ID set for all of them?)",
                first.org_name()
            ),
        ));
    }
    for (j, later) in list.iter().enumerate() {
        let g = &later.genesys;
        let clash = list[..j].iter().enumerate().find(|(_, e)| {
            let f = &e.genesys;
            match (&f.client_secret_file, &g.client_secret_file) {
                (Some(a), Some(b)) => a == b,
                (None, None) => f.client_secret_env == g.client_secret_env,
                _ => false,
            }
        });
        if let Some((i, first)) = clash {
            let key = if g.client_secret_file.is_some() {
                "genesys.client_secret_file"
            } else {
                "genesys.client_secret_env"
            };
            problems.push(at(later, j).problem(
                key,
                format!(
                    "a secret of its own: orgs[{i}] (`{}`) reads its client secret from the same place",
                    first.org_name()
                ),
            ));
        }
    }
    problems
}

/// Why `name` cannot name an org, if it cannot.
fn bad_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    (!ok).then(|| {
        format!(
            "the org's name: 1 to {NAME_MAX} of a-z, 0-9, `-` and `_` (it names the org in `--org`, the ledger, metrics and lock files), got `{}`",
            crate::text::printable(name)
        )
    })
}

/// The variable an org's secret is read from unless it sets `genesys.client_secret_env`:
/// the top-level one with the org's name as suffix (`SKILL_TUNER_CLIENT_SECRET_BRAND_B`).
pub fn secret_env_for(base: &str, org: &str) -> String {
    format!("{base}_{}", org.to_ascii_uppercase().replace('-', "_"))
}

/// The value at a dotted key in a table, if set.
fn lookup<'a>(table: &'a config::Map<String, Value>, key: &str) -> Option<&'a Value> {
    let (first, rest) = match key.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (key, None),
    };
    let value = table.get(first)?;
    match (rest, &value.kind) {
        (None, _) => Some(value),
        (Some(rest), ValueKind::Table(inner)) => lookup(inner, rest),
        (Some(_), _) => None,
    }
}

/// Lays `over` onto `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut Value, over: Value) {
    if let (ValueKind::Table(base_table), ValueKind::Table(_)) = (&mut base.kind, &over.kind) {
        let ValueKind::Table(over_table) = over.kind else {
            return;
        };
        for (key, value) in over_table {
            match base_table.get_mut(&key) {
                Some(existing) => merge(existing, value),
                None => {
                    base_table.insert(key, value);
                }
            }
        }
    } else {
        *base = over;
    }
}

impl Settings {
    /// One org's settings from a root table: typed (see [`strict`]) and validated.
    fn parse_one(root: Value, origin: &Path) -> Result<Settings, ConfigError> {
        let settings: Settings =
            strict::deserialize(root).map_err(|e| ConfigError::value(origin, e))?;
        settings
            .validate()
            .map_err(|problems| ConfigError::Invalid {
                file: origin.to_path_buf(),
                problems,
            })?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_names_are_short_lowercase_words() {
        for good in ["a", "brand-b", "org_2", "0"] {
            assert_eq!(bad_name(good), None, "{good}");
        }
        for bad in ["", "Brand", "a b", "a.b", "ä", &"x".repeat(64)] {
            assert!(bad_name(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn an_orgs_secret_variable_carries_its_name() {
        assert_eq!(
            secret_env_for("SKILL_TUNER_CLIENT_SECRET", "brand-b"),
            "SKILL_TUNER_CLIENT_SECRET_BRAND_B"
        );
    }
}
