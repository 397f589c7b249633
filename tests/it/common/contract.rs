//! The project's Genesys Cloud API contract (`tests/contract/genesys-contract.toml`, facts
//! from Genesys' .NET SDK docs) and a checker for the exchanges a simulator recorded: each
//! request's query parameters and body, and each response's body, against the operation's
//! and the models' entries. Unknown fields (either direction), missing required fields,
//! values of the wrong type and values outside an enum are all reported, with the JSON path.

use genesys_sim::Exchange;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

pub const CONTRACT_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/contract/genesys-contract.toml"
);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// The SDK repository the facts were read from.
    pub sdk: String,
    pub sdk_version: String,
    pub operations: BTreeMap<String, Operation>,
    pub models: BTreeMap<String, Model>,
    pub enums: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    pub method: String,
    pub path: String,
    pub doc: String,
    /// Where this entry was read from another SDK version than the file's.
    #[serde(default)]
    pub sdk_version: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub response: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub form: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub doc: String,
    #[serde(default)]
    pub sdk_version: Option<String>,
    #[serde(default)]
    pub required: Vec<String>,
    pub fields: BTreeMap<String, String>,
}

/// A parsed type expression.
#[derive(Debug, Clone, PartialEq)]
enum Ty<'a> {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array(Box<Ty<'a>>),
    Map(Box<Ty<'a>>),
    Enum(Vec<&'a str>),
    NamedEnum(&'a str),
    Model(&'a str),
}

fn parse_ty(s: &str) -> Result<Ty<'_>, String> {
    Ok(match s {
        "string" => Ty::String,
        "integer" => Ty::Integer,
        "number" => Ty::Number,
        "boolean" => Ty::Boolean,
        "object" => Ty::Object,
        _ => {
            if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                Ty::Array(Box::new(parse_ty(inner)?))
            } else if let Some(inner) = s.strip_prefix("map<").and_then(|r| r.strip_suffix('>')) {
                Ty::Map(Box::new(parse_ty(inner)?))
            } else if let Some(list) = s.strip_prefix("enum(").and_then(|r| r.strip_suffix(')')) {
                Ty::Enum(list.split('|').collect())
            } else if let Some(name) = s.strip_prefix("enum:") {
                Ty::NamedEnum(name)
            } else if s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars().all(|c| c.is_ascii_alphanumeric())
            {
                Ty::Model(s)
            } else {
                return Err(format!("`{s}` is not a type"));
            }
        }
    })
}

/// Whether `path` fits `template` (`{…}` segments match any non-empty segment), and how many
/// static segments the template has (the most specific template wins).
pub fn path_fits(template: &str, path: &str) -> Option<usize> {
    let (t, p): (Vec<&str>, Vec<&str>) = (
        template.trim_end_matches('/').split('/').collect(),
        path.trim_end_matches('/').split('/').collect(),
    );
    let fits = t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()));
    fits.then(|| t.iter().filter(|s| !s.starts_with('{')).count())
}

impl Contract {
    pub fn load() -> Contract {
        let text = std::fs::read_to_string(CONTRACT_FILE).expect("read the contract");
        toml::from_str(&text).unwrap_or_else(|e| panic!("{CONTRACT_FILE}: {e}"))
    }

    /// Problems of the contract itself: unparsable types, unknown enums, operations whose
    /// models are missing, entries without a doc path or with an SDK version of their own
    /// that is not one.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let check =
            |out: &mut Vec<String>, at: &str, ty: &str, must_define: bool| match parse_ty(ty) {
                Err(e) => out.push(format!("{at}: {e}")),
                Ok(t) => self.check_defined(at, &t, must_define, out),
            };
        for (id, op) in &self.operations {
            for (what, ty) in [
                ("body", &op.body),
                ("response", &op.response),
                ("error", &op.error),
            ] {
                if let Some(ty) = ty {
                    check(&mut out, &format!("operations.{id}.{what}"), ty, true);
                }
            }
            for (name, ty) in op.query.iter().chain(&op.form) {
                check(&mut out, &format!("operations.{id}.{name}"), ty, true);
            }
        }
        for (name, model) in &self.models {
            for field in &model.required {
                if !model.fields.contains_key(field) {
                    out.push(format!("models.{name}: required {field} is not a field"));
                }
            }
            for (field, ty) in &model.fields {
                check(&mut out, &format!("models.{name}.{field}"), ty, false);
            }
        }
        // Every entry names its doc in the SDK, and its own SDK version where it was read from
        // another than the file's.
        let entries = self
            .operations
            .iter()
            .map(|(id, o)| (format!("operations.{id}"), &o.doc, &o.sdk_version))
            .chain(
                self.models
                    .iter()
                    .map(|(id, m)| (format!("models.{id}"), &m.doc, &m.sdk_version)),
            );
        for (at, doc, version) in entries {
            if !doc.starts_with("build/") {
                out.push(format!("{at}: doc `{doc}` is not a path in {}", self.sdk));
            }
            let Some(version) = version else { continue };
            let numeric = version.split('.').count() == 3
                && version
                    .split('.')
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !numeric || *version == self.sdk_version {
                out.push(format!(
                    "{at}: sdk_version `{version}` must be a version other than the file's {}",
                    self.sdk_version
                ));
            }
        }
        out
    }

    fn check_defined(&self, at: &str, ty: &Ty, must_define: bool, out: &mut Vec<String>) {
        match ty {
            Ty::Array(t) | Ty::Map(t) => self.check_defined(at, t, must_define, out),
            Ty::NamedEnum(n) if !self.enums.contains_key(*n) => {
                out.push(format!("{at}: no enum {n}"))
            }
            Ty::Model(m) if must_define && !self.models.contains_key(*m) => {
                out.push(format!("{at}: no model {m}"))
            }
            _ => {}
        }
    }

    /// The operation a request is for: same method, the most specific fitting path.
    pub fn operation_for(&self, method: &str, path: &str) -> Option<(&str, &Operation)> {
        self.operations
            .iter()
            .filter(|(_, op)| op.method.eq_ignore_ascii_case(method))
            .filter_map(|(id, op)| Some((path_fits(&op.path, path)?, id.as_str(), op)))
            .max_by_key(|(score, _, _)| *score)
            .map(|(_, id, op)| (id, op))
    }

    /// Checks one recorded exchange; returns the operation's id and every violation.
    pub fn check_exchange(&self, ex: &Exchange) -> (Option<String>, Vec<String>) {
        let mut errs = Vec::new();
        let Some((id, op)) = self.operation_for(&ex.method, &ex.path) else {
            errs.push("no operation of the contract has this method and path".to_string());
            return (None, errs);
        };
        self.check_params("query", &op.query, ex.query.as_deref(), &mut errs);
        let is_form = ex
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        match (&op.body, op.form.is_empty()) {
            (Some(body), _) => match serde_json::from_slice::<Value>(&ex.request_body) {
                Ok(v) => self.check_value(body, &v, "request", &mut errs),
                Err(e) => errs.push(format!("request: body is not JSON: {e}")),
            },
            (None, false) => {
                if !is_form {
                    errs.push(format!(
                        "request: a form body needs application/x-www-form-urlencoded, got {:?}",
                        ex.content_type
                    ));
                }
                let text = String::from_utf8_lossy(&ex.request_body);
                self.check_params("form", &op.form, Some(&text), &mut errs);
            }
            (None, true) => {
                if !ex.request_body.is_empty() {
                    errs.push("request: the operation takes no body, got one".to_string());
                }
            }
        }
        let model = if (200..300).contains(&ex.status) {
            &op.response
        } else {
            &op.error
        };
        match model {
            Some(model) => match serde_json::from_slice::<Value>(&ex.response_body) {
                Ok(v) => self.check_value(model, &v, "response", &mut errs),
                Err(e) => errs.push(format!("response {}: body is not JSON: {e}", ex.status)),
            },
            None => errs.push(format!(
                "response {}: the contract has no model for it",
                ex.status
            )),
        }
        (Some(id.to_string()), errs)
    }

    /// Query or form parameters: each one known, each value of its type.
    fn check_params(
        &self,
        what: &str,
        allowed: &BTreeMap<String, String>,
        raw: Option<&str>,
        errs: &mut Vec<String>,
    ) {
        let Some(raw) = raw else { return };
        for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            let at = format!("{what} {name}");
            let Some(ty) = allowed.get(name.as_ref()) else {
                errs.push(format!("{at}: not a parameter of the operation"));
                continue;
            };
            match parse_ty(ty) {
                Ok(Ty::Array(item)) => {
                    for v in value.split(',') {
                        self.check_text(&item, v, &at, errs);
                    }
                }
                Ok(t) => self.check_text(&t, &value, &at, errs),
                Err(e) => errs.push(format!("{at}: {e}")),
            }
        }
    }

    fn check_text(&self, ty: &Ty, v: &str, at: &str, errs: &mut Vec<String>) {
        let ok = match ty {
            Ty::String => true,
            Ty::Integer => v.parse::<i64>().is_ok(),
            Ty::Number => v.parse::<f64>().is_ok(),
            Ty::Boolean => matches!(v, "true" | "false"),
            Ty::Enum(values) => values.contains(&v),
            Ty::NamedEnum(name) => self.enum_has(name, v),
            other => {
                errs.push(format!("{at}: a {other:?} cannot be a parameter"));
                return;
            }
        };
        if !ok {
            errs.push(format!("{at}: `{v}` is not a valid {ty:?}"));
        }
    }

    fn enum_has(&self, name: &str, v: &str) -> bool {
        self.enums
            .get(name)
            .is_some_and(|values| values.iter().any(|x| x == v))
    }

    /// Checks `v` against the type expression `ty`.
    pub fn check_value(&self, ty: &str, v: &Value, at: &str, errs: &mut Vec<String>) {
        match parse_ty(ty) {
            Ok(t) => self.check(&t, v, at, errs),
            Err(e) => errs.push(format!("{at}: {e}")),
        }
    }

    fn check(&self, ty: &Ty, v: &Value, at: &str, errs: &mut Vec<String>) {
        let wrong = |errs: &mut Vec<String>, want: &str| {
            errs.push(format!("{at}: expected {want}, got {v}"));
        };
        match ty {
            Ty::String if !v.is_string() => wrong(errs, "a string"),
            Ty::Integer if !(v.is_i64() || v.is_u64()) => wrong(errs, "an integer"),
            Ty::Number if !v.is_number() => wrong(errs, "a number"),
            Ty::Boolean if !v.is_boolean() => wrong(errs, "a boolean"),
            Ty::Object if !v.is_object() => wrong(errs, "an object"),
            Ty::Array(item) => match v.as_array() {
                Some(items) => {
                    for (i, x) in items.iter().enumerate() {
                        self.check(item, x, &format!("{at}[{i}]"), errs);
                    }
                }
                None => wrong(errs, "an array"),
            },
            Ty::Map(item) => match v.as_object() {
                Some(m) => {
                    for (k, x) in m {
                        self.check(item, x, &format!("{at}.{k}"), errs);
                    }
                }
                None => wrong(errs, "an object"),
            },
            Ty::Enum(values) if !v.as_str().is_some_and(|s| values.contains(&s)) => {
                wrong(errs, &format!("one of {}", values.join("|")))
            }
            Ty::NamedEnum(name) if !v.as_str().is_some_and(|s| self.enum_has(name, s)) => {
                wrong(errs, &format!("a value of enum {name}"))
            }
            Ty::Model(name) => self.check_model(name, v, at, errs),
            _ => {}
        }
    }

    fn check_model(&self, name: &str, v: &Value, at: &str, errs: &mut Vec<String>) {
        let Some(model) = self.models.get(name) else {
            errs.push(format!(
                "{at}: a {name}, a model the contract leaves out (we never expected one)"
            ));
            return;
        };
        let Some(fields) = v.as_object() else {
            errs.push(format!("{at}: expected a {name} object, got {v}"));
            return;
        };
        for required in &model.required {
            if !fields.contains_key(required) {
                errs.push(format!(
                    "{at}: {name} is missing required field `{required}`"
                ));
            }
        }
        for (key, value) in fields {
            match model.fields.get(key) {
                Some(ty) => self.check_value(ty, value, &format!("{at}.{key}"), errs),
                None => errs.push(format!("{at}: `{key}` is not a field of {name}")),
            }
        }
    }
}
