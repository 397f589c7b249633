//! Turns the merged config (file + environment) into [`Settings`](super::Settings) without
//! the `config` crate's coercions.
//!
//! Its own deserializer rounds a float into an integer key (`1e20` becomes `u64::MAX`), reads
//! `"yes"` as 1, and with `try_parsing` turns the string `00123` into the number 123 before
//! the target type is known. Here a value is converted only to the type its key needs:
//! environment strings (all values from the environment are strings) are parsed where the
//! key wants a number, a boolean or a list; a string stays exactly as written; a number that
//! does not fit its key, or a fraction for an integer key, is an error naming the key.

use config::{Value, ValueKind};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The origin the `config` crate records for values from the environment.
const ENV_ORIGIN: &str = "the environment";

/// A value that does not fit its key.
#[derive(Debug)]
pub struct DeError {
    /// Key segments, innermost first (pushed as the error travels up).
    path_rev: Vec<String>,
    message: String,
    /// The value came from a `SKILL_TUNER__…` variable.
    from_env: bool,
    /// That variable, when the key alone does not name it (an org's
    /// `SKILL_TUNER__ORGS__<ORG>__…`: the key is the org's, without its name).
    var: Option<String>,
}

impl DeError {
    fn new(message: String, from_env: bool, var: Option<String>) -> Self {
        DeError {
            path_rev: Vec::new(),
            message,
            from_env,
            var,
        }
    }

    fn within(mut self, segment: &str) -> Self {
        self.path_rev.push(segment.to_string());
        self
    }

    /// The dotted key (`policy.default.min_interactions`); empty for the top level.
    pub fn key(&self) -> String {
        let segments: Vec<&str> = self.path_rev.iter().rev().map(String::as_str).collect();
        segments.join(".")
    }

    /// What was expected, and, for an environment value, which variable set it.
    pub fn expected(&self) -> String {
        if self.from_env && !self.path_rev.is_empty() {
            let var = self.var.clone().unwrap_or_else(|| {
                format!("SKILL_TUNER__{}", self.key().replace('.', "__")).to_uppercase()
            });
            format!("{} (set by the environment variable {var})", self.message)
        } else {
            self.message.clone()
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key().as_str() {
            "" => f.write_str(&self.message),
            key => write!(f, "`{key}`: {}", self.expected()),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(msg.to_string(), false, None)
    }
}

/// Deserialises `T` from the root of a built config.
pub fn deserialize<T: de::DeserializeOwned>(root: Value) -> Result<T, DeError> {
    T::deserialize(Strict::from(root))
}

/// One config value, converted only as its target type asks.
struct Strict {
    kind: ValueKind,
    from_env: bool,
    /// The org variable that set it (see [`DeError`]).
    var: Option<String>,
}

impl From<Value> for Strict {
    fn from(value: Value) -> Self {
        let var = value
            .origin()
            .and_then(super::sources::org_override_var)
            .map(str::to_string);
        let from_env = value.origin() == Some(ENV_ORIGIN) || var.is_some();
        Strict {
            kind: value.kind,
            from_env,
            var,
        }
    }
}

impl Strict {
    /// "`expected`, got `what was there`".
    fn mismatch(&self, expected: &str) -> DeError {
        let got = match &self.kind {
            ValueKind::Nil => "nothing".to_string(),
            ValueKind::Boolean(b) => b.to_string(),
            ValueKind::I64(n) => n.to_string(),
            ValueKind::I128(n) => n.to_string(),
            ValueKind::U64(n) => n.to_string(),
            ValueKind::U128(n) => n.to_string(),
            ValueKind::Float(f) => format!("{f:?}"),
            ValueKind::String(s) => format!("`{s}`"),
            ValueKind::Table(_) => "a table".to_string(),
            ValueKind::Array(_) => "a list".to_string(),
        };
        DeError::new(
            format!("{expected}, got {got}"),
            self.from_env,
            self.var.clone(),
        )
    }

    /// An integer within `min..=max`. Strings count only from the environment (where every
    /// value is a string); a float never does, so nothing is rounded or saturated.
    fn integer(&self, min: i128, max: i128) -> Result<i128, DeError> {
        let n = match &self.kind {
            ValueKind::I64(n) => Some(i128::from(*n)),
            ValueKind::U64(n) => Some(i128::from(*n)),
            ValueKind::I128(n) => Some(*n),
            ValueKind::U128(n) => i128::try_from(*n).ok(),
            ValueKind::String(s) if self.from_env => s.trim().parse::<i128>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.mismatch(&format!("an integer from {min} to {max}"))),
        }
    }

    fn float(&self) -> Result<f64, DeError> {
        match &self.kind {
            ValueKind::Float(f) => Ok(*f),
            ValueKind::I64(n) => Ok(*n as f64),
            ValueKind::U64(n) => Ok(*n as f64),
            ValueKind::String(s) if self.from_env => s
                .trim()
                .parse::<f64>()
                .map_err(|_| self.mismatch("a number")),
            _ => Err(self.mismatch("a number")),
        }
    }

    fn boolean(&self) -> Result<bool, DeError> {
        match &self.kind {
            ValueKind::Boolean(b) => Ok(*b),
            ValueKind::String(s) if self.from_env => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(self.mismatch("true or false")),
            },
            _ => Err(self.mismatch("true or false")),
        }
    }
}

macro_rules! integers {
    ($($method:ident $visit:ident $t:ty;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let n = self.integer(i128::from(<$t>::MIN), i128::from(<$t>::MAX))?;
            let n = <$t>::try_from(n).map_err(|_| self.mismatch("an integer in range"))?;
            visitor.$visit(n)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Strict {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.kind {
            ValueKind::Nil => visitor.visit_unit(),
            ValueKind::Boolean(b) => visitor.visit_bool(b),
            ValueKind::I64(n) => visitor.visit_i64(n),
            ValueKind::I128(n) => visitor.visit_i128(n),
            ValueKind::U64(n) => visitor.visit_u64(n),
            ValueKind::U128(n) => visitor.visit_u128(n),
            ValueKind::Float(f) => visitor.visit_f64(f),
            ValueKind::String(s) => visitor.visit_string(s),
            ValueKind::Array(items) => visitor.visit_seq(Items::new(items)),
            ValueKind::Table(table) => visitor.visit_map(Entries::new(table)),
        }
    }

    integers! {
        deserialize_i8 visit_i8 i8;
        deserialize_i16 visit_i16 i16;
        deserialize_i32 visit_i32 i32;
        deserialize_i64 visit_i64 i64;
        deserialize_u8 visit_u8 u8;
        deserialize_u16 visit_u16 u16;
        deserialize_u32 visit_u32 u32;
        deserialize_u64 visit_u64 u64;
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_f32(self.float()? as f32)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_f64(self.float()?)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_bool(self.boolean()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.kind {
            ValueKind::String(s) => visitor.visit_string(s),
            _ => Err(self.mismatch("a string (in quotes)")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.kind {
            ValueKind::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.kind {
            ValueKind::Nil => visitor.visit_unit(),
            _ => Err(self.mismatch("nothing")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    /// A list; from the environment, a comma-separated string (`Billing,Sales`; empty = none).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.kind {
            ValueKind::Array(items) => visitor.visit_seq(Items::new(items)),
            ValueKind::String(s) if self.from_env => {
                let origin = match &self.var {
                    Some(var) => super::sources::org_override_origin(var),
                    None => ENV_ORIGIN.to_string(),
                };
                let items = s
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::new(Some(&origin), ValueKind::String(item.to_string())))
                    .collect();
                visitor.visit_seq(Items::new(items))
            }
            _ => Err(self.mismatch("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.kind {
            ValueKind::Table(table) => visitor.visit_map(Entries::new(table)),
            _ => Err(self.mismatch("a table")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    /// Our enums are plain names (`human`, `json`, `skip`, …).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.kind {
            ValueKind::String(s) => {
                let (from_env, var) = (self.from_env, self.var);
                visitor
                    .visit_enum(IntoDeserializer::<DeError>::into_deserializer(s))
                    .map_err(|mut e| {
                        e.from_env = from_env;
                        e.var = var;
                        e
                    })
            }
            _ => Err(self.mismatch(&format!("one of `{}`", variants.join("`, `")))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

/// The items of a list; an error names the item's index.
struct Items {
    items: std::vec::IntoIter<Value>,
    index: usize,
}

impl Items {
    fn new(items: Vec<Value>) -> Self {
        Items {
            items: items.into_iter(),
            index: 0,
        }
    }
}

impl<'de> SeqAccess<'de> for Items {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(Strict::from(item))
            .map(Some)
            .map_err(|e| e.within(&index.to_string()))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The entries of a table; an error in a value names its key.
struct Entries {
    entries: std::vec::IntoIter<(String, Value)>,
    pending: Option<(String, Value)>,
}

impl Entries {
    fn new(table: config::Map<String, Value>) -> Self {
        let mut entries: Vec<(String, Value)> = table.into_iter().collect();
        // The map's order is arbitrary; sorted, the first error reported is always the same.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Entries {
            entries: entries.into_iter(),
            pending: None,
        }
    }
}

impl<'de> MapAccess<'de> for Entries {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let k = seed.deserialize(IntoDeserializer::<DeError>::into_deserializer(key.clone()))?;
        self.pending = Some((key, value));
        Ok(Some(k))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("a value without a key"));
        };
        seed.deserialize(Strict::from(value))
            .map_err(|e| e.within(&key))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
