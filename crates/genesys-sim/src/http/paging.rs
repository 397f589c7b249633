//! Page-number paging as the Genesys entity listings do it.

use serde_json::{json, Map, Value};

use crate::http::errors::{ApiError, ApiResult};
use crate::http::query::Params;

/// Validated `pageSize` / `pageNumber`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paging {
    pub(crate) size: usize,
    pub(crate) number: usize,
}

impl Paging {
    /// Reads the paging parameters; out-of-range values are a 400 naming the field.
    pub(crate) fn from_params(
        params: &Params,
        default_size: usize,
        max_size: usize,
    ) -> ApiResult<Self> {
        let size = match params.get("pageSize") {
            None => default_size,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|s| (1..=max_size).contains(s))
                .ok_or_else(|| {
                    ApiError::invalid_value(
                        "pageSize",
                        format!("pageSize must be an integer between 1 and {max_size}"),
                    )
                })?,
        };
        let number = match params.get("pageNumber") {
            None => 1,
            Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::invalid_value("pageNumber", "pageNumber must be an integer >= 1")
            })?,
        };
        Ok(Paging { size, number })
    }

    /// The index range of this page within `total` items.
    pub(crate) fn range(&self, total: usize) -> std::ops::Range<usize> {
        let start = self.size.saturating_mul(self.number - 1).min(total);
        let end = start.saturating_add(self.size).min(total);
        start..end
    }

    pub(crate) fn page_count(&self, total: usize) -> usize {
        total.div_ceil(self.size)
    }
}

/// Builds `{entities, pageSize, pageNumber, total, pageCount, firstUri, selfUri, lastUri,
/// nextUri?, previousUri?}`: the fields of `UserEntityListing`, `SkillEntityListing` and
/// `UserSkillEntityListing`. `extra` is appended to every URI (already encoded, `&`-joined).
pub(crate) fn listing(
    entities: Vec<Value>,
    total: usize,
    paging: Paging,
    path: &str,
    extra: &str,
) -> Value {
    let page_count = paging.page_count(total);
    let uri = |n: usize| {
        let mut u = format!("{path}?pageSize={}&pageNumber={n}", paging.size);
        if !extra.is_empty() {
            u.push('&');
            u.push_str(extra);
        }
        u
    };
    let mut m = Map::new();
    m.insert("entities".into(), Value::Array(entities));
    m.insert("pageSize".into(), json!(paging.size));
    m.insert("pageNumber".into(), json!(paging.number));
    m.insert("total".into(), json!(total));
    m.insert("pageCount".into(), json!(page_count));
    m.insert("firstUri".into(), json!(uri(1)));
    m.insert("selfUri".into(), json!(uri(paging.number)));
    m.insert("lastUri".into(), json!(uri(page_count.max(1))));
    if paging.number < page_count {
        m.insert("nextUri".into(), json!(uri(paging.number + 1)));
    }
    if paging.number > 1 && paging.number <= page_count + 1 {
        m.insert("previousUri".into(), json!(uri(paging.number - 1)));
    }
    Value::Object(m)
}

/// As [`listing`] without `total`, `pageCount` and `lastUri`: `QueueMemberEntityListing`
/// has only `entities`, `pageNumber`, `pageSize`, `firstUri`, `nextUri`, `previousUri` and
/// `selfUri` (.NET SDK 270.0.0, `build/docs/QueueMemberEntityListing.md`), so a client
/// learns that another page follows only from `nextUri`.
pub(crate) fn listing_without_totals(
    entities: Vec<Value>,
    total: usize,
    paging: Paging,
    path: &str,
    extra: &str,
) -> Value {
    let mut value = listing(entities, total, paging, path, extra);
    if let Some(m) = value.as_object_mut() {
        for key in ["total", "pageCount", "lastUri"] {
            m.remove(key);
        }
    }
    value
}

/// A cursor page (`pageSize`, `after`, `before`), as the skill-group listings page. The
/// cursors are opaque to clients; the simulator's are the item offsets (sim choice).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor {
    pub(crate) size: usize,
    pub(crate) start: usize,
}

impl Cursor {
    /// Reads the paging parameters for a listing of `total` items; a bad value (or both
    /// cursors at once) is a 400 naming the field.
    pub(crate) fn from_params(
        params: &Params,
        default_size: usize,
        max_size: usize,
        total: usize,
    ) -> ApiResult<Self> {
        let size = Paging::from_params(params, default_size, max_size)?.size;
        let offset = |key: &str| -> ApiResult<Option<usize>> {
            params
                .get(key)
                .map(|v| {
                    v.parse::<usize>()
                        .map_err(|_| ApiError::invalid_value(key, format!("Invalid {key} cursor")))
                })
                .transpose()
        };
        let start = match (offset("after")?, offset("before")?) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid_value(
                    "before",
                    "after and before cannot be used together",
                ))
            }
            (Some(after), None) => after,
            (None, Some(before)) => before.min(total).saturating_sub(size),
            (None, None) => 0,
        };
        Ok(Cursor {
            size,
            start: start.min(total),
        })
    }

    pub(crate) fn range(&self, total: usize) -> std::ops::Range<usize> {
        self.start..self.start.saturating_add(self.size).min(total)
    }
}

/// `{entities, nextUri?, selfUri, previousUri?}`: the fields of `SkillGroupEntityListing` and
/// `SkillGroupMemberEntityListing`. `nextUri` carries `after`, `previousUri` `before`;
/// `extra` is appended to every URI (already encoded, `&`-joined).
pub(crate) fn cursor_listing(
    entities: Vec<Value>,
    total: usize,
    cursor: Cursor,
    path: &str,
    extra: &str,
) -> Value {
    let range = cursor.range(total);
    let uri = |cursor_part: String| {
        let mut u = format!("{path}?pageSize={}", cursor.size);
        if !cursor_part.is_empty() {
            u.push('&');
            u.push_str(&cursor_part);
        }
        if !extra.is_empty() {
            u.push('&');
            u.push_str(extra);
        }
        u
    };
    let mut m = Map::new();
    m.insert("entities".into(), Value::Array(entities));
    if range.end < total {
        m.insert("nextUri".into(), json!(uri(format!("after={}", range.end))));
    }
    let this = if range.start == 0 {
        String::new()
    } else {
        format!("after={}", range.start)
    };
    m.insert("selfUri".into(), json!(uri(this)));
    if range.start > 0 {
        m.insert(
            "previousUri".into(),
            json!(uri(format!("before={}", range.start))),
        );
    }
    Value::Object(m)
}
