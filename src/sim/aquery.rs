//! Parsing and validating an analytics aggregation query (the shared request template of the
//! conversation, evaluation and survey aggregate endpoints).
//!
//! Everything a real server would reject becomes a 400 ErrorBody here, including the limits
//! Genesys does not document (interval length, `userId` predicate count), which are
//! configurable here.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::errors::{ApiError, ApiResult};
use super::org::Org;

/// Which aggregate endpoint a query was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Conversations,
    Evaluations,
    Surveys,
}

/// Real metric names (the SDK's metric enums; `docs/genesys-api.md` §6). Valid names the
/// simulator has no data for are accepted and simply absent from results, as with a real org
/// lacking that data.
const CONV_KNOWN: &[&str] = &[
    "nBlindTransferred",
    "nBotInteractions",
    "nCallbackAttempts",
    "nCallbackOverSla",
    "nCallbackScheduled",
    "nCobrowseSessions",
    "nConnected",
    "nConsult",
    "nConsultTransferred",
    "nConversations",
    "nError",
    "nOffered",
    "nOutbound",
    "nOutboundAbandoned",
    "nOutboundAttempted",
    "nOutboundConnected",
    "nOverSla",
    "nStateTransitionError",
    "nTakeover",
    "nTransferred",
    "oAudioMessageCount",
    "oExternalAudioMessageCount",
    "oExternalMediaCount",
    "oMediaCount",
    "oMessageCount",
    "oMessageSegmentCount",
    "oMessageTurn",
    "oServiceLevel",
    "oServiceTarget",
    "oSkillExpressionApplications",
    "tAbandon",
    "tAcd",
    "tActiveCallback",
    "tActiveCallbackComplete",
    "tAcw",
    "tAgentResponseTime",
    "tAgentVideoConnected",
    "tAlert",
    "tAnswered",
    "tAverageAgentResponseTime",
    "tAverageCustomerResponseTime",
    "tBarging",
    "tCallbackAbandon",
    "tCallbackConnect",
    "tCallbackNotReached",
    "tCoaching",
    "tCoachingComplete",
    "tConnected",
    "tContacting",
    "tDialing",
    "tFirstConnect",
    "tFirstDial",
    "tFirstEngagement",
    "tFirstResponse",
    "tFlowOut",
    "tHandle",
    "tHeld",
    "tHeldComplete",
    "tIvr",
    "tMonitoring",
    "tMonitoringComplete",
    "tNotResponding",
    "tPark",
    "tParkComplete",
    "tScreenMonitoring",
    "tShortAbandon",
    "tSnippetRecord",
    "tTalk",
    "tTalkComplete",
    "tTransmitting",
    "tUserResponseTime",
    "tVoicemail",
    "tWait",
];
const EVAL_KNOWN: &[&str] = &[
    "nEvaluations",
    "nEvaluationsDeleted",
    "nEvaluationsRescored",
    "oTotalScore",
    "oTotalCriticalScore",
];
const SURVEY_KNOWN: &[&str] = &[
    "nSurveyResponses",
    "nSurveyFullResponses",
    "nSurveyPartialResponses",
    "nSurveysSent",
    "nSurveysStarted",
    "nSurveysAbandoned",
    "nSurveysExpired",
    "nSurveysDeleted",
    "nSurveyErrors",
    "nSurveyNpsResponses",
    "nSurveyNpsPromoters",
    "nSurveyNpsDetractors",
    "nVoiceSurveys",
    "nWebSurveys",
    "oSurveyTotalScore",
    "oSurveyQuestionScore",
    "oSurveyQuestionGroupScore",
    "nSurveyQuestionResponses",
    "nSurveyQuestionGroupResponses",
];

impl Kind {
    fn known_metrics(self) -> &'static [&'static str] {
        match self {
            Kind::Conversations => CONV_KNOWN,
            Kind::Evaluations => EVAL_KNOWN,
            Kind::Surveys => SURVEY_KNOWN,
        }
    }

    fn supports(self, dim: Dim) -> bool {
        dim != Dim::Skill || self == Kind::Conversations
    }
}

/// The dimensions the simulator models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dim {
    User,
    Skill,
    Media,
}

impl Dim {
    fn parse(name: &str) -> Option<Dim> {
        match name {
            "userId" => Some(Dim::User),
            "requestedRoutingSkillId" => Some(Dim::Skill),
            "mediaType" => Some(Dim::Media),
            _ => None,
        }
    }
}

/// A predicate's resolved comparison value.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `None`: an id that names nothing in the org (matches no row).
    User(Option<u32>),
    Skill(Option<u16>),
    Media(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Matches(Target),
    Exists(Dim),
    NotExists(Dim),
}

/// One row of synthetic data: the dimension values it carries.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub user: Option<u32>,
    pub skill: Option<u16>,
}

impl Filter {
    pub fn matches(&self, row: &Row) -> bool {
        let has = |d: Dim| match d {
            Dim::User => row.user.is_some(),
            Dim::Skill => row.skill.is_some(),
            Dim::Media => true,
        };
        match self {
            Filter::All(fs) => fs.iter().all(|f| f.matches(row)),
            Filter::Any(fs) => fs.iter().any(|f| f.matches(row)),
            Filter::Matches(Target::User(u)) => u.is_some() && row.user == *u,
            Filter::Matches(Target::Skill(s)) => s.is_some() && row.skill == *s,
            Filter::Matches(Target::Media(m)) => m.eq_ignore_ascii_case("voice"),
            Filter::Exists(d) => has(*d),
            Filter::NotExists(d) => !has(*d),
        }
    }

    /// The users this filter can possibly match, if it pins them down (lets a query over a
    /// few users skip the rest of a 100 000-agent org). `None`: any user may match.
    pub fn candidate_users(&self) -> Option<Vec<u32>> {
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

/// A validated query.
#[derive(Debug, Clone)]
pub struct Query {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub granularity: Option<Duration>,
    pub group_by: Vec<Dim>,
    pub filter: Option<Filter>,
    pub metrics: Vec<String>,
}

/// Limits the simulator enforces (from `SimConfig`).
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    pub max_user_predicates: usize,
    pub max_interval_days: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawQuery {
    interval: Option<String>,
    granularity: Option<String>,
    time_zone: Option<String>,
    group_by: Option<Vec<String>>,
    filter: Option<RawFilter>,
    metrics: Option<Vec<String>>,
    query_type: Option<String>,
}

#[derive(Deserialize)]
struct RawFilter {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    predicates: Vec<RawPredicate>,
    #[serde(default)]
    clauses: Vec<RawFilter>,
}

#[derive(Deserialize)]
struct RawPredicate {
    #[serde(rename = "type")]
    kind: Option<String>,
    dimension: Option<String>,
    operator: Option<String>,
    value: Option<String>,
}

/// Parses `start/end` (both RFC 3339).
pub fn parse_interval(s: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
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
/// `P1DT12H`). Years and months have no fixed length, so the simulator rejects them.
pub fn parse_period(s: &str) -> Option<Duration> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = Duration::zero();
    let mut parse_part = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else {
                let (_, secs) = units.iter().find(|(u, _)| *u == c)?;
                let n: i64 = num.parse().ok()?;
                let part = Duration::try_seconds(n.checked_mul(*secs)?)?;
                total = total.checked_add(&part)?;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    parse_part(date, &[('W', 7 * 86_400), ('D', 86_400)])?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        parse_part(t, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    }
    // Nothing longer than a leap year: bigger periods only risk date overflow.
    (total > Duration::zero() && total <= Duration::days(366)).then_some(total)
}

struct FilterParser<'a> {
    kind: Kind,
    org: &'a Org,
    user_predicates: usize,
}

impl FilterParser<'_> {
    fn filter(&mut self, raw: &RawFilter, depth: usize) -> ApiResult<Filter> {
        if depth > 2 {
            return Err(ApiError::invalid_value(
                "filter.clauses",
                "Filter clauses may be nested at most two levels deep",
            ));
        }
        let mut parts = Vec::new();
        for p in &raw.predicates {
            parts.push(self.predicate(p)?);
        }
        for c in &raw.clauses {
            parts.push(self.filter(c, depth + 1)?);
        }
        match raw.kind.as_deref() {
            Some("and") => Ok(Filter::All(parts)),
            Some("or") => Ok(Filter::Any(parts)),
            _ => Err(ApiError::invalid_value(
                "filter.type",
                "Filter and clause type must be \"and\" or \"or\"",
            )),
        }
    }

    fn predicate(&mut self, p: &RawPredicate) -> ApiResult<Filter> {
        if !matches!(p.kind.as_deref(), None | Some("dimension")) {
            return Err(ApiError::invalid_value(
                "filter.predicates.type",
                "The simulator supports only dimension predicates",
            ));
        }
        let name = p.dimension.as_deref().ok_or_else(|| {
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
                    format!("Dimension {name} is not supported here"),
                )
            })?;
        if dim == Dim::User {
            self.user_predicates += 1;
        }
        match p.operator.as_deref().unwrap_or("matches") {
            "exists" => Ok(Filter::Exists(dim)),
            "notExists" => Ok(Filter::NotExists(dim)),
            "matches" => {
                let value = p.value.as_deref().ok_or_else(|| {
                    ApiError::invalid_value(
                        "filter.predicates.value",
                        "A matches predicate needs a value",
                    )
                })?;
                Ok(Filter::Matches(match dim {
                    Dim::User => Target::User(self.org.user_by_id(value)),
                    Dim::Skill => Target::Skill(self.org.skill_by_id(value)),
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

/// Parses and validates a query body.
pub fn parse(kind: Kind, org: &Org, limits: QueryLimits, body: &[u8]) -> ApiResult<Query> {
    let raw: RawQuery = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid query body: {e}")))?;
    let interval = raw
        .interval
        .ok_or_else(|| ApiError::invalid_value("interval", "interval is required"))?;
    let (start, end) = parse_interval(&interval).ok_or_else(|| {
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
    let granularity = match raw.granularity.as_deref() {
        None | Some("") => None,
        Some(g) => Some(parse_period(g).ok_or_else(|| {
            ApiError::invalid_value(
                "granularity",
                "granularity must be an ISO-8601 period of weeks, days, hours, minutes or seconds",
            )
        })?),
    };
    if let Some(tz) = raw.time_zone.as_deref() {
        if !matches!(tz, "UTC" | "Etc/UTC" | "Z" | "GMT") {
            return Err(ApiError::invalid_value(
                "timeZone",
                "The simulator buckets in UTC only",
            ));
        }
    }
    if !matches!(raw.query_type.as_deref(), None | Some("groupBy")) {
        return Err(ApiError::invalid_value(
            "queryType",
            "The simulator supports only groupBy queries",
        ));
    }
    let mut group_by = Vec::new();
    for name in raw.group_by.unwrap_or_default() {
        let dim = Dim::parse(&name)
            .filter(|d| kind.supports(*d))
            .ok_or_else(|| {
                ApiError::invalid_value("groupBy", format!("Cannot group by {name} here"))
            })?;
        if !group_by.contains(&dim) {
            group_by.push(dim);
        }
    }
    let metrics = raw.metrics.unwrap_or_default();
    if metrics.is_empty() {
        return Err(ApiError::invalid_value("metrics", "metrics is required"));
    }
    if let Some(bad) = metrics
        .iter()
        .find(|m| !kind.known_metrics().contains(&m.as_str()))
    {
        return Err(ApiError::invalid_value(
            "metrics",
            format!("Unknown metric {bad}"),
        ));
    }
    let mut parser = FilterParser {
        kind,
        org,
        user_predicates: 0,
    };
    let filter = match &raw.filter {
        Some(f) => Some(parser.filter(f, 0)?),
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
        group_by,
        filter,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(parse_period("P1D"), Some(Duration::days(1)));
        assert_eq!(parse_period("PT30M"), Some(Duration::minutes(30)));
        assert_eq!(parse_period("P1W"), Some(Duration::days(7)));
        assert_eq!(parse_period("P1DT2H"), Some(Duration::hours(26)));
        assert_eq!(parse_period("P1M"), None);
        assert_eq!(parse_period("P"), None);
        assert_eq!(parse_period("PT"), None);
        assert_eq!(parse_period("1D"), None);
        assert_eq!(parse_period("P99999999999999999D"), None);
        assert_eq!(parse_period("P999999999999D"), None);
    }

    #[test]
    fn intervals() {
        assert!(parse_interval("2026-05-01T00:00:00.000Z/2026-05-08T00:00:00.000Z").is_some());
        assert!(parse_interval("2026-05-08T00:00:00Z/2026-05-01T00:00:00Z").is_none());
        assert!(parse_interval("yesterday").is_none());
    }
}
