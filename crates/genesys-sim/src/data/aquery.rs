//! Parsing and validating an analytics aggregation query (`ConversationAggregationQuery`,
//! `EvaluationAggregationQuery`, `SurveyAggregationQuery`: .NET SDK 270.0.0,
//! `build/docs/<Model>.md`).
//!
//! What the simulator models is answered; everything else the SDK allows is a 400 ErrorBody
//! naming the field the simulator does not support, and anything the SDK does not allow a
//! 400 naming the field that is wrong — never an answer that silently ignores part of the
//! query. The limits no public document states (interval length, `userId` predicate count)
//! are configurable.

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::data::synth::{CONV_METRICS, EVAL_METRICS, SURVEY_METRICS};
use crate::http::errors::{ApiError, ApiResult};
use crate::state::org::Org;

/// Which aggregate endpoint a query was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Conversations,
    Evaluations,
    Surveys,
}

impl Kind {
    /// The metrics the simulator has data for. Other metric names are refused: a real org
    /// with conversations has, say, `tWait`; answering it as absent would be wrong.
    fn modelled(self, metric: &str) -> bool {
        self.metric(metric).is_some()
    }

    /// A modelled metric's index in this kind's day records and its name as answered.
    pub(crate) fn metric(self, name: &str) -> Option<(usize, &'static str)> {
        let names: Vec<&'static str> = match self {
            Kind::Conversations => CONV_METRICS.iter().map(|(n, _)| *n).collect(),
            Kind::Evaluations => EVAL_METRICS.to_vec(),
            Kind::Surveys => SURVEY_METRICS.to_vec(),
        };
        names.into_iter().enumerate().find(|(_, n)| *n == name)
    }

    /// The SDK's evaluation queries have no `requestedRoutingSkillId` dimension.
    fn supports(self, dim: Dim) -> bool {
        dim != Dim::Skill || self != Kind::Evaluations
    }

    fn model(self) -> &'static str {
        match self {
            Kind::Conversations => "ConversationAggregationQuery",
            Kind::Evaluations => "EvaluationAggregationQuery",
            Kind::Surveys => "SurveyAggregationQuery",
        }
    }
}

/// The dimensions the simulator models (for `groupBy` and in predicates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Dim {
    User,
    Skill,
    Queue,
    Media,
}

impl Dim {
    fn parse(name: &str) -> Option<Dim> {
        match name {
            "userId" => Some(Dim::User),
            "requestedRoutingSkillId" => Some(Dim::Skill),
            "queueId" => Some(Dim::Queue),
            "mediaType" => Some(Dim::Media),
            _ => None,
        }
    }
}

/// A predicate's resolved comparison value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// `None`: an id that names nothing in the org (matches no row).
    User(Option<u32>),
    Skill(Option<u16>),
    Queue(Option<u16>),
    Media(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Matches(Target),
    Exists(Dim),
    NotExists(Dim),
}

/// One row of synthetic data: the dimension values it carries (every row is `voice`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub(crate) user: Option<u32>,
    pub(crate) skill: Option<u16>,
    pub(crate) queue: Option<u16>,
}

impl Filter {
    pub(crate) fn matches(&self, row: &Row) -> bool {
        let has = |d: Dim| match d {
            Dim::User => row.user.is_some(),
            Dim::Skill => row.skill.is_some(),
            Dim::Queue => row.queue.is_some(),
            Dim::Media => true,
        };
        match self {
            Filter::All(fs) => fs.iter().all(|f| f.matches(row)),
            Filter::Any(fs) => fs.iter().any(|f| f.matches(row)),
            Filter::Matches(Target::User(u)) => u.is_some() && row.user == *u,
            Filter::Matches(Target::Skill(s)) => s.is_some() && row.skill == *s,
            Filter::Matches(Target::Queue(q)) => q.is_some() && row.queue == *q,
            Filter::Matches(Target::Media(m)) => m.eq_ignore_ascii_case("voice"),
            Filter::Exists(d) => has(*d),
            Filter::NotExists(d) => !has(*d),
        }
    }

    /// The users this filter can possibly match, if it pins them down (lets a query over a
    /// few users skip the rest of a 100 000-agent org). `None`: any user may match.
    pub(crate) fn candidate_users(&self) -> Option<Vec<u32>> {
        match self {
            Filter::Matches(Target::User(u)) => Some(u.iter().copied().collect()),
            Filter::All(fs) => fs
                .iter()
                .filter_map(|f| f.candidate_users())
                .reduce(|a, b| a.into_iter().filter(|x| b.contains(x)).collect()),
            Filter::Any(fs) => {
                let mut out = Vec::new();
                for f in fs {
                    out.extend(f.candidate_users()?);
                }
                out.sort_unstable();
                out.dedup();
                Some(out)
            }
            _ => None,
        }
    }
}

/// An ISO-8601 period of weeks, days, hours, minutes and seconds. The calendar part (weeks,
/// days) steps local days in the query's time zone, so a `P1D` bucket spanning a
/// daylight-saving change is 23 or 25 hours long; the clock part is elapsed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Period {
    pub(crate) days: i64,
    pub(crate) secs: i64,
}

/// A validated query.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    pub(crate) granularity: Option<Period>,
    /// Where granularity buckets begin and end (`UTC` when the query names none).
    pub(crate) time_zone: Tz,
    pub(crate) group_by: Vec<Dim>,
    pub(crate) filter: Option<Filter>,
    pub(crate) metrics: Vec<String>,
}

impl Query {
    /// Where bucket `k` begins: the interval start stepped `k` granularities in the query's
    /// time zone (a local time a daylight-saving gap skips moves forward past the gap).
    pub(crate) fn boundary(&self, k: i64) -> DateTime<Utc> {
        let Some(g) = self.granularity else {
            return if k <= 0 { self.start } else { self.end };
        };
        let local = self.start.with_timezone(&self.time_zone).naive_local();
        let Some(stepped) =
            Duration::try_days(g.days.saturating_mul(k)).and_then(|d| local.checked_add_signed(d))
        else {
            return self.end;
        };
        let base = (0..=16)
            .find_map(|quarter| {
                self.time_zone
                    .from_local_datetime(&(stepped + Duration::minutes(15 * quarter)))
                    .earliest()
            })
            .map_or(self.end, |t| t.with_timezone(&Utc));
        Duration::try_seconds(g.secs.saturating_mul(k))
            .and_then(|d| base.checked_add_signed(d))
            .unwrap_or(self.end)
    }

    /// The bucket holding instant `t` (inside the interval): the last `k` whose boundary is
    /// at or before `t`.
    pub(crate) fn bucket_of(&self, t: DateTime<Utc>) -> i64 {
        let Some(g) = self.granularity else { return 0 };
        // The shortest a bucket can be: calendar days of 23 hours.
        let shortest = (g.days * 23 * 3_600 + g.secs).max(1);
        let (mut lo, mut hi) = (0_i64, (self.end - self.start).num_seconds() / shortest + 2);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.boundary(mid) <= t {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// Limits the simulator enforces (from `SimConfig`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryLimits {
    pub(crate) max_user_predicates: usize,
    pub(crate) max_interval_days: u32,
}

/// Parses `start/end` (both RFC 3339, with their offsets).
pub(crate) fn parse_interval(s: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (a, b) = s.split_once('/')?;
    let start = DateTime::parse_from_rfc3339(a.trim())
        .ok()?
        .with_timezone(&Utc);
    let end = DateTime::parse_from_rfc3339(b.trim())
        .ok()?
        .with_timezone(&Utc);
    (end > start).then_some((start, end))
}

/// Parses an ISO-8601 period of weeks, days, hours, minutes and seconds (`P1D`, `PT30M`,
/// `P1DT12H`). `Err(true)`: a valid period with years or months, which have no fixed length
/// and which the simulator does not support; `Err(false)`: not a period.
pub(crate) fn parse_period(s: &str) -> Result<Period, bool> {
    let rest = s.strip_prefix('P').ok_or(false)?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let parse_part = |part: &str, units: &[(char, i64)]| -> Result<i64, bool> {
        let mut total = 0_i64;
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else if units.iter().any(|(u, _)| *u == c) {
                let unit = units.iter().find(|(u, _)| *u == c).map_or(0, |u| u.1);
                let n: i64 = num.parse().map_err(|_| false)?;
                total = n
                    .checked_mul(unit)
                    .and_then(|v| total.checked_add(v))
                    .ok_or(false)?;
                num.clear();
            } else if matches!(c, 'Y' | 'M') && !num.is_empty() {
                return Err(true);
            } else {
                return Err(false);
            }
        }
        if num.is_empty() {
            Ok(total)
        } else {
            Err(false)
        }
    };
    let days = parse_part(date, &[('W', 7), ('D', 1)])?;
    let secs = match time {
        Some("") => return Err(false),
        Some(t) => parse_part(t, &[('H', 3_600), ('M', 60), ('S', 1)])?,
        None => 0,
    };
    // Nothing longer than a leap year: bigger periods only risk date overflow.
    let length = days.checked_mul(86_400).and_then(|d| d.checked_add(secs));
    match length {
        Some(l) if l > 0 && l <= 366 * 86_400 => Ok(Period { days, secs }),
        _ => Err(false),
    }
}

fn unsupported(field: &str, what: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_value(field, format!("{what} is not supported by the simulator"))
}

fn str_field<'a>(m: &'a Map<String, Value>, field: &str, at: &str) -> ApiResult<Option<&'a str>> {
    match m.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid_value(
            at,
            format!("{at} must be a string"),
        )),
    }
}

fn object<'a>(v: &'a Value, at: &str) -> ApiResult<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| ApiError::invalid_value(at, format!("{at} must be an object")))
}

fn array<'a>(m: &'a Map<String, Value>, field: &str, at: &str) -> ApiResult<&'a [Value]> {
    match m.get(field) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(ApiError::invalid_value(
            at,
            format!("{at} must be an array"),
        )),
    }
}

/// Refuses a field outside `known` (unknown to the SDK model: 400 naming it) or inside
/// `unmodelled` (valid, but not modelled by the simulator: 400 naming it).
fn check_fields(
    m: &Map<String, Value>,
    at: &str,
    model: &str,
    known: &[&str],
    unmodelled: &[&str],
) -> ApiResult<()> {
    for key in m.keys() {
        let path = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        if unmodelled.contains(&key.as_str()) {
            return Err(unsupported(&path, &path));
        }
        if !known.contains(&key.as_str()) {
            return Err(ApiError::invalid_value(
                &path,
                format!("{key} is not a field of {model}"),
            ));
        }
    }
    Ok(())
}

struct FilterParser<'a> {
    kind: Kind,
    org: &'a Org,
    user_predicates: usize,
}

impl FilterParser<'_> {
    /// A filter (`{type, clauses, predicates}`) or, with `clause`, one of its clauses
    /// (`{type, predicates}`: clauses nest once, the SDK's "up to two levels").
    fn filter(&mut self, raw: &Value, clause: bool) -> ApiResult<Filter> {
        let at = if clause { "filter.clauses" } else { "filter" };
        let m = object(raw, at)?;
        let (model, known): (&str, &[&str]) = if clause {
            ("an aggregate query clause", &["type", "predicates"])
        } else {
            (
                "an aggregate query filter",
                &["type", "clauses", "predicates"],
            )
        };
        check_fields(m, at, model, known, &[])?;
        let mut parts = Vec::new();
        for p in array(m, "predicates", &format!("{at}.predicates"))? {
            parts.push(self.predicate(p)?);
        }
        for c in array(m, "clauses", "filter.clauses")? {
            parts.push(self.filter(c, true)?);
        }
        match str_field(m, "type", &format!("{at}.type"))? {
            Some("and") => Ok(Filter::All(parts)),
            Some("or") => Ok(Filter::Any(parts)),
            _ => Err(ApiError::invalid_value(
                &format!("{at}.type"),
                "Filter and clause type must be \"and\" or \"or\"",
            )),
        }
    }

    fn predicate(&mut self, raw: &Value) -> ApiResult<Filter> {
        const AT: &str = "filter.predicates";
        let p = object(raw, AT)?;
        check_fields(
            p,
            AT,
            "an aggregate query predicate",
            &["type", "dimension", "operator", "value"],
            &["range"],
        )?;
        match str_field(p, "type", "filter.predicates.type")? {
            None | Some("dimension") => {}
            Some(t @ ("property" | "metric")) => {
                return Err(unsupported(
                    "filter.predicates.type",
                    format!("A {t} predicate"),
                ))
            }
            Some(t) => {
                return Err(ApiError::invalid_value(
                    "filter.predicates.type",
                    format!("Unknown predicate type {t}"),
                ))
            }
        }
        let name = str_field(p, "dimension", "filter.predicates.dimension")?.ok_or_else(|| {
            ApiError::invalid_value(
                "filter.predicates.dimension",
                "A predicate needs a dimension",
            )
        })?;
        let dim = Dim::parse(name)
            .filter(|d| self.kind.supports(*d))
            .ok_or_else(|| {
                ApiError::invalid_value(
                    "filter.predicates.dimension",
                    format!(
                        "Dimension {name} is not a {} dimension or is not supported by the simulator",
                        self.kind.model()
                    ),
                )
            })?;
        if dim == Dim::User {
            self.user_predicates += 1;
        }
        match str_field(p, "operator", "filter.predicates.operator")?.unwrap_or("matches") {
            "exists" => Ok(Filter::Exists(dim)),
            "notExists" => Ok(Filter::NotExists(dim)),
            "matches" => {
                let value = str_field(p, "value", "filter.predicates.value")?.ok_or_else(|| {
                    ApiError::invalid_value(
                        "filter.predicates.value",
                        "A matches predicate needs a value",
                    )
                })?;
                Ok(Filter::Matches(match dim {
                    Dim::User => Target::User(self.org.user_by_id(value)),
                    Dim::Skill => Target::Skill(self.org.skill_by_id(value)),
                    Dim::Queue => Target::Queue(self.org.queue_by_id(value).map(|q| q as u16)),
                    Dim::Media => Target::Media(value.to_string()),
                }))
            }
            other => Err(ApiError::invalid_value(
                "filter.predicates.operator",
                format!("Unknown operator {other}"),
            )),
        }
    }
}

/// The fields of the three query models (`queryType`, `sortMetric` and `limit`, for topN and
/// bottomN queries, only in `ConversationAggregationQuery`), and those the simulator does
/// not model.
const QUERY_FIELDS: [&str; 12] = [
    "interval",
    "granularity",
    "timeZone",
    "groupBy",
    "filter",
    "metrics",
    "flattenMultivaluedDimensions",
    "alternateTimeDimension",
    "views",
    "queryType",
    "sortMetric",
    "limit",
];
const UNMODELLED_FIELDS: [&str; 4] = ["alternateTimeDimension", "views", "sortMetric", "limit"];

fn known_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Conversations => &QUERY_FIELDS,
        Kind::Evaluations | Kind::Surveys => &QUERY_FIELDS[..9],
    }
}

/// Parses and validates a query body.
pub(crate) fn parse(kind: Kind, org: &Org, limits: QueryLimits, body: &[u8]) -> ApiResult<Query> {
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid query body: {e}")))?;
    let m = raw
        .as_object()
        .ok_or_else(|| ApiError::bad_request("The query must be a JSON object"))?;
    check_fields(m, "", kind.model(), known_fields(kind), &UNMODELLED_FIELDS)?;
    let interval = str_field(m, "interval", "interval")?
        .ok_or_else(|| ApiError::invalid_value("interval", "interval is required"))?;
    let (start, end) = parse_interval(interval).ok_or_else(|| {
        ApiError::invalid_value(
            "interval",
            "interval must be an ISO-8601 interval start/end with start before end",
        )
    })?;
    if end - start > Duration::days(limits.max_interval_days as i64) {
        return Err(ApiError::invalid_value(
            "interval",
            format!(
                "The interval may span at most {} days",
                limits.max_interval_days
            ),
        ));
    }
    let granularity = match str_field(m, "granularity", "granularity")? {
        None | Some("") => None,
        Some(g) => Some(parse_period(g).map_err(|calendar| {
            if calendar {
                unsupported("granularity", "A granularity in months or years")
            } else {
                ApiError::invalid_value(
                    "granularity",
                    "granularity must be an ISO-8601 period such as P1D or PT30M",
                )
            }
        })?),
    };
    let time_zone = match str_field(m, "timeZone", "timeZone")? {
        None => Tz::UTC,
        Some(tz) => tz.parse::<Tz>().map_err(|_| {
            ApiError::invalid_value(
                "timeZone",
                format!("{tz} is not a time zone of the IANA database"),
            )
        })?,
    };
    match str_field(m, "queryType", "queryType")? {
        None | Some("groupBy") => {}
        Some(t @ ("topN" | "bottomN")) => {
            return Err(unsupported("queryType", format!("queryType {t}")))
        }
        Some(t) => {
            return Err(ApiError::invalid_value(
                "queryType",
                format!("Unknown queryType {t}"),
            ))
        }
    }
    if m.get("flattenMultivaluedDimensions")
        .is_some_and(|v| !v.is_boolean())
    {
        // Every dimension the simulator models is single-valued: flattening changes nothing.
        return Err(ApiError::invalid_value(
            "flattenMultivaluedDimensions",
            "flattenMultivaluedDimensions must be a boolean",
        ));
    }
    let mut group_by = Vec::new();
    for name in array(m, "groupBy", "groupBy")? {
        let name = name
            .as_str()
            .ok_or_else(|| ApiError::invalid_value("groupBy", "groupBy lists dimension names"))?;
        let dim = Dim::parse(name)
            .filter(|d| kind.supports(*d))
            .ok_or_else(|| {
                ApiError::invalid_value(
                    "groupBy",
                    format!(
                        "Grouping by {name} is not part of {} or is not supported by the simulator",
                        kind.model()
                    ),
                )
            })?;
        if !group_by.contains(&dim) {
            group_by.push(dim);
        }
    }
    let mut metrics = Vec::new();
    for metric in array(m, "metrics", "metrics")? {
        let name = metric
            .as_str()
            .ok_or_else(|| ApiError::invalid_value("metrics", "metrics lists metric names"))?;
        if !kind.modelled(name) {
            return Err(ApiError::invalid_value(
                "metrics",
                format!(
                    "Metric {name} is not part of {} or is not supported by the simulator",
                    kind.model()
                ),
            ));
        }
        metrics.push(name.to_string());
    }
    if metrics.is_empty() {
        return Err(ApiError::invalid_value("metrics", "metrics is required"));
    }
    let mut parser = FilterParser {
        kind,
        org,
        user_predicates: 0,
    };
    let filter = match m.get("filter") {
        Some(f) => Some(parser.filter(f, false)?),
        None => None,
    };
    if parser.user_predicates > limits.max_user_predicates {
        return Err(ApiError::invalid_value(
            "filter",
            format!(
                "A query may contain at most {} userId predicates, found {}",
                limits.max_user_predicates, parser.user_predicates
            ),
        ));
    }
    Ok(Query {
        start,
        end,
        granularity,
        time_zone,
        group_by,
        filter,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(days: i64, secs: i64) -> Result<Period, bool> {
        Ok(Period { days, secs })
    }

    #[test]
    fn periods() {
        assert_eq!(parse_period("P1D"), p(1, 0));
        assert_eq!(parse_period("PT30M"), p(0, 1_800));
        assert_eq!(parse_period("P1W"), p(7, 0));
        assert_eq!(parse_period("P1DT2H"), p(1, 7_200));
        assert_eq!(parse_period("P1M"), Err(true));
        assert_eq!(parse_period("P1Y"), Err(true));
        assert_eq!(parse_period("P"), Err(false));
        assert_eq!(parse_period("PT"), Err(false));
        assert_eq!(parse_period("1D"), Err(false));
        assert_eq!(parse_period("P99999999999999999D"), Err(false));
        assert_eq!(parse_period("P999999999999D"), Err(false));
    }

    #[test]
    fn intervals() {
        assert!(parse_interval("2026-05-01T00:00:00.000Z/2026-05-08T00:00:00.000Z").is_some());
        assert!(parse_interval("2026-05-01T00:00:00+02:00/2026-05-08T00:00:00+02:00").is_some());
        assert!(parse_interval("2026-05-08T00:00:00Z/2026-05-01T00:00:00Z").is_none());
        assert!(parse_interval("yesterday").is_none());
    }

    #[test]
    fn daily_buckets_follow_local_days_across_a_dst_change() {
        let query = |tz: &str| Query {
            // Local midnights in London: 28 March 2026 (GMT) to 31 March (BST).
            start: "2026-03-28T00:00:00Z".parse().unwrap(),
            end: "2026-03-30T23:00:00Z".parse().unwrap(),
            granularity: Some(Period { days: 1, secs: 0 }),
            time_zone: tz.parse().unwrap(),
            group_by: Vec::new(),
            filter: None,
            metrics: Vec::new(),
        };
        let q = query("Europe/London");
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(q.boundary(1), at("2026-03-29T00:00:00Z"));
        // The 29th has 23 hours: the 30th starts at 23:00 UTC on the 29th.
        assert_eq!(q.boundary(2), at("2026-03-29T23:00:00Z"));
        assert_eq!(q.bucket_of(at("2026-03-29T12:00:00Z")), 1);
        assert_eq!(q.bucket_of(at("2026-03-29T23:30:00Z")), 2);
        let utc = query("UTC");
        assert_eq!(utc.boundary(2), at("2026-03-30T00:00:00Z"));
        assert_eq!(utc.bucket_of(at("2026-03-29T23:30:00Z")), 1);
    }
}
