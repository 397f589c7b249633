//! `[[orgs]]`: several Genesys orgs in one config, each its own OAuth client.
//!
//! Each `[[orgs]]` table is laid over the top-level tables key by key (tables merge, any
//! other value replaces), before anything is typed or validated; the result is then parsed
//! and validated exactly like a single-org config. So every org-scoped section — the ones
//! here today and any added later — works per org without code of its own. Only the
//! process-wide keys ([`PROCESS_WIDE`]) stay top-level; an org table setting one is refused.
//!
//! `SKILL_TUNER__ORGS__<ORG>__SECTION__KEY` sets one org's key from the environment: it is
//! laid over that org's table before the table is laid over the top level, so it wins over
//! the org's table as `SKILL_TUNER__SECTION__KEY` wins over the file's top level, and a key
//! the org's table leaves out it sets for that org alone. `<ORG>` is the org's name in upper
//! case with `-` as `_` ([`org_env_name`], as in its secret variable). A variable no org
//! matches is an error naming it and the orgs, so a typo cannot silently do nothing; one that
//! two orgs match (`brand-b` and `brand_b`, or `a` and `a__b`) is an error naming both.
//!
//! A config without `[[orgs]]` is one org named [`DEFAULT_ORG`], as it always was.

use super::sources::{self, Environment};
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

    /// Typed and validated orgs from a merged config's root, each org's variables in `env`
    /// laid over its table (see the module comment).
    pub(super) fn from_root(
        root: Value,
        origin: &Path,
        env: &Environment,
    ) -> Result<Self, ConfigError> {
        let invalid = |problems: Vec<Problem>| ConfigError::Invalid {
            file: origin.to_path_buf(),
            problems,
        };
        let unlisted = |root: Value| {
            let (_, problems) = org_variables(env, &[]);
            if problems.is_empty() {
                Settings::parse_one(root, origin).map(Orgs::single)
            } else {
                Err(invalid(problems))
            }
        };
        let ValueKind::Table(mut top) = root.kind else {
            return unlisted(root);
        };
        let Some(listed) = top.remove("orgs") else {
            return unlisted(Value::new(None, ValueKind::Table(top)));
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
        let (mut variables, mut problems) = org_variables(env, &table_names(&tables));
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
            for variable in variables.remove(&name).unwrap_or_default() {
                variable.lay_over(&mut table);
            }
            let refused: Vec<(String, Option<String>)> = PROCESS_WIDE
                .iter()
                .filter_map(|key| {
                    let value = lookup(&table, key)?;
                    let var = value.origin().and_then(sources::org_override_var);
                    Some((key.to_string(), var.map(str::to_string)))
                })
                .collect();
            if !refused.is_empty() {
                problems.extend(refused.into_iter().map(|(key, var)| Problem {
                    key: format!("orgs[{index}].{key}"),
                    expected: format!(
                        "set only at the top level: `{key}` belongs to the whole process (one ledger, one log, one admin listener), not to an org{}",
                        var.map(|v| format!(" (set by the environment variable {v})")).unwrap_or_default()
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
    format!("{base}_{}", org_env_name(org))
}

/// An org's name as a part of a variable's name: upper case, `-` as `_` (`brand-b` is
/// `BRAND_B`), since a shell cannot set a variable with `-` in its name.
pub fn org_env_name(org: &str) -> String {
    org.to_ascii_uppercase().replace('-', "_")
}

/// One `SKILL_TUNER__ORGS__<ORG>__SECTION__KEY` variable, assigned to its org.
#[derive(Debug)]
struct OrgVariable {
    var: String,
    /// The key's segments, lower case (`genesys`, `client_id`).
    key: Vec<String>,
    value: String,
}

impl OrgVariable {
    /// Sets the key in the org's table, its origin naming the variable (for [`strict`]'s
    /// errors and `check-config`'s sources). Like the `config` crate's own overrides, a
    /// non-table on the way is replaced by a table.
    fn lay_over(self, table: &mut config::Map<String, Value>) {
        let origin = sources::org_override_origin(&self.var);
        let mut at = table;
        let Some((last, path)) = self.key.split_last() else {
            return;
        };
        for segment in path {
            let entry = at
                .entry(segment.clone())
                .or_insert_with(|| Value::new(Some(&origin), ValueKind::Table(Default::default())));
            if !matches!(entry.kind, ValueKind::Table(_)) {
                *entry = Value::new(Some(&origin), ValueKind::Table(Default::default()));
            }
            let ValueKind::Table(inner) = &mut entry.kind else {
                return;
            };
            at = inner;
        }
        at.insert(
            last.clone(),
            Value::new(Some(&origin), ValueKind::String(self.value)),
        );
    }
}

/// The `name` of each `[[orgs]]` table that has a string one (the others are refused
/// where the tables are read).
fn table_names(tables: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for item in tables {
        if let ValueKind::Table(table) = &item.kind {
            if let Some(ValueKind::String(name)) = table.get("name").map(|v| &v.kind) {
                // A repeated name is refused where the tables are read; once is enough here.
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
    }
    names
}

/// `env`'s org variables by the org each names (of `names`), and a problem for each that
/// names none, several or no key.
fn org_variables(
    env: &Environment,
    names: &[String],
) -> (BTreeMap<String, Vec<OrgVariable>>, Vec<Problem>) {
    let mut by_org: BTreeMap<String, Vec<OrgVariable>> = BTreeMap::new();
    let mut problems = Vec::new();
    let form = format!("{}__<ORG>__SECTION__KEY", sources::ORG_OVERRIDE_PREFIX);
    let known = || {
        if names.is_empty() {
            "the config lists no [[orgs]]: set its keys with SKILL_TUNER__SECTION__KEY".to_string()
        } else {
            let listed: Vec<String> = names
                .iter()
                .map(|n| format!("`{n}` as {}", org_env_name(n)))
                .collect();
            format!("the config's orgs: {}", listed.join(", "))
        }
    };
    // Names are matched in any case: two spellings of one variable would leave which one
    // wins to the order the environment lists them in.
    let mut spellings: BTreeMap<String, &str> = BTreeMap::new();
    for (var, value) in env.org_overrides() {
        let problem = |expected: String| Problem {
            key: var.to_string(),
            expected,
        };
        let upper = var.to_ascii_uppercase();
        if let Some(first) = spellings.insert(upper.clone(), var) {
            problems.push(problem(format!(
                "one spelling of a variable: `{first}` sets the same key (names are matched in any case); unset one"
            )));
            continue;
        }
        let rest = upper
            .strip_prefix(sources::ORG_OVERRIDE_PREFIX)
            .and_then(|r| r.strip_prefix("__"))
            .unwrap_or_default();
        let matching: Vec<&String> = names
            .iter()
            .filter(|n| {
                let org = org_env_name(n);
                rest == org || rest.starts_with(&format!("{org}__"))
            })
            .collect();
        let org = match matching.as_slice() {
            [org] => *org,
            [] if env.reloading() => {
                tracing::warn!(
                    variable = %var,
                    "ignored on reload: this org variable names no org of the new config (an org removed since the start?); unset it before the next restart, where it is an error"
                );
                continue;
            }
            [] => {
                problems.push(problem(format!(
                    "a variable of the form {form} naming an org of the config; no org is named so ({})",
                    known()
                )));
                continue;
            }
            several => {
                let listed: Vec<String> = several.iter().map(|n| format!("`{n}`")).collect();
                problems.push(problem(format!(
                    "a variable naming one org, but it fits the orgs {} alike (names map to variables in upper case with `-` as `_`): rename one of them",
                    listed.join(" and ")
                )));
                continue;
            }
        };
        let key: Vec<String> = rest
            .get(org_env_name(org).len() + 2..)
            .unwrap_or_default()
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if key.iter().any(String::is_empty) {
            problems.push(problem(format!(
                "a variable of the form {form}: it names org `{org}` but no key after it"
            )));
            continue;
        }
        by_org.entry(org.clone()).or_default().push(OrgVariable {
            var: var.to_string(),
            key,
            value: value.to_string(),
        });
    }
    (by_org, problems)
}

/// The table of listed org `name` in a merged root, its variables in `env` laid over it
/// (`check-config`'s sources); `None` when the root lists no such org.
pub(super) fn org_table(root: &Value, name: &str, env: &Environment) -> Option<Value> {
    let ValueKind::Table(top) = &root.kind else {
        return None;
    };
    let ValueKind::Array(tables) = &top.get("orgs")?.kind else {
        return None;
    };
    let mut table = tables.iter().find_map(|item| match &item.kind {
        ValueKind::Table(t)
            if matches!(t.get("name").map(|v| &v.kind), Some(ValueKind::String(n)) if n == name) =>
        {
            Some(t.clone())
        }
        _ => None,
    })?;
    let (mut variables, _) = org_variables(env, &table_names(tables));
    for variable in variables.remove(name).unwrap_or_default() {
        variable.lay_over(&mut table);
    }
    Some(Value::new(None, ValueKind::Table(table)))
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
