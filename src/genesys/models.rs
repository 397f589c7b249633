//! Serde shapes of the Genesys Cloud API bodies we use (the SDK models of the same names,
//! `MyPureCloud/platform-client-sdk-dotnet` `build/docs/<Model>.md`, version 270.0.0).
//! Unknown fields are ignored and every field the API may omit is optional or defaulted:
//! "absent" must stay distinguishable from "zero".

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A listing: `UserEntityListing`, `UserSkillEntityListing`, `SkillEntityListing`,
/// `QueueEntityListing` (every paging field), `QueueMemberEntityListing` (no `total`, `pageCount` or `lastUri`),
/// `LimitsEntityListing` (`entities` only), `WorkitemStatusListing` (`total`, `entities`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing<T> {
    #[serde(default = "Vec::new")]
    pub entities: Vec<T>,
    #[serde(default)]
    pub page_size: Option<u32>,
    #[serde(default)]
    pub page_number: Option<u32>,
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub page_count: Option<u32>,
    #[serde(default)]
    pub next_uri: Option<String>,
}

impl<T> Listing<T> {
    /// Whether another page follows `page_number` (by `pageCount`, else `nextUri`).
    pub fn has_more(&self, page_number: u32) -> bool {
        match self.page_count {
            Some(count) => page_number < count,
            None => self.next_uri.is_some(),
        }
    }
}

/// An org limit (`GET /api/v2/organizations/limits/namespaces/{ns}`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Limit {
    pub key: Option<String>,
    pub namespace: Option<String>,
    pub value: Option<i64>,
}

/// A reference to another entity (`{id, name?, selfUri?}`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct EntityRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A user (`GET /api/v2/users`, `GET /api/v2/users/{id}`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub division: Option<EntityRef>,
    #[serde(default)]
    pub manager: Option<EntityRef>,
    /// Filled only with `expand=skills`, and "best effort" per the API docs.
    #[serde(default)]
    pub skills: Option<Vec<UserRoutingSkill>>,
}

/// One routing skill a user holds.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserRoutingSkill {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// 0.0–5.0; a double, not an integer.
    pub proficiency: f64,
    #[serde(default)]
    pub state: Option<String>,
}

/// One entry of the bulk upsert `PATCH /api/v2/users/{id}/routingskills/bulk`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserRoutingSkillPost {
    pub id: String,
    pub proficiency: f64,
}

/// A skill of the org's catalogue.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RoutingSkill {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub state: Option<String>,
}

/// A queue (`GET /api/v2/routing/queues`): only what the plan reads.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoutingQueue {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `NONE | BEST | ALL`: whether routing ranks agents by proficiency (BEST only).
    #[serde(default)]
    pub skill_evaluation_method: Option<String>,
    /// The groups whose members the queue takes in (`MemberGroup`: teams, groups, skill
    /// groups).
    #[serde(default)]
    pub member_groups: Vec<MemberGroup>,
}

/// `MemberGroup`: a group feeding a queue's membership.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MemberGroup {
    /// `TEAM | GROUP | SKILLGROUP`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// `SkillGroupDefinition` (the listing, without conditions) or `SkillGroup` (one group, with
/// its `skillConditions`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SkillGroup {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `None` in the listing; the conditions come with `GET …/skillgroups/{id}`.
    #[serde(default)]
    pub skill_conditions: Option<Vec<SkillGroupCondition>>,
}

/// `SkillGroupCondition`: entries combined by `operation` (`And | Or | Not`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SkillGroupCondition {
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub routing_skill_conditions: Vec<SkillGroupEntry>,
    #[serde(default)]
    pub language_skill_conditions: Vec<SkillGroupEntry>,
}

/// `SkillGroupRoutingCondition` (`routingSkill`) or `SkillGroupLanguageCondition`
/// (`languageSkill`): a comparison with a whole-number proficiency, and nested conditions.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SkillGroupEntry {
    #[serde(default)]
    pub routing_skill: Option<String>,
    #[serde(default)]
    pub language_skill: Option<String>,
    /// `EqualTo | NotEqualTo | LessThan | GreaterThan | GreaterThanOrEqualTo |
    /// LessThanOrEqualTo`.
    #[serde(default)]
    pub comparator: Option<String>,
    /// An integer 0–5.
    #[serde(default)]
    pub proficiency: Option<i64>,
    /// An array in the SDK; Genesys' Terraform examples also write a single object.
    #[serde(default, deserialize_with = "one_or_many")]
    pub child_conditions: Vec<SkillGroupCondition>,
}

fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
        Null(()),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) => v,
        OneOrMany::One(t) => vec![t],
        OneOrMany::Null(()) => Vec::new(),
    })
}

/// A queue member (`GET /api/v2/routing/queues/{id}/members`).
#[derive(Debug, Clone, Deserialize)]
pub struct QueueMember {
    pub id: String,
    #[serde(default)]
    pub user: Option<EntityRef>,
}

/// Body of `POST /api/v2/analytics/{conversations|evaluations|surveys}/aggregates/query`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AggregationQuery {
    /// ISO-8601 `start/end`.
    pub interval: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granularity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    pub group_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<QueryFilter>,
    pub metrics: Vec<String>,
}

/// `{type: and|or, predicates, clauses}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueryFilter {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub predicates: Vec<Predicate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clauses: Vec<Clause>,
}

/// A nested clause of a filter.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Clause {
    #[serde(rename = "type")]
    pub kind: String,
    pub predicates: Vec<Predicate>,
}

impl Clause {
    /// `dimension` matches any of `values` (an `or` clause).
    pub fn any_of<S: AsRef<str>>(dimension: &str, values: &[S]) -> Self {
        Clause {
            kind: "or".into(),
            predicates: values
                .iter()
                .map(|v| Predicate::dimension(dimension, v.as_ref()))
                .collect(),
        }
    }
}

/// A dimension predicate (`operator` defaults to `matches`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Predicate {
    #[serde(rename = "type")]
    pub kind: String,
    pub dimension: String,
    pub value: String,
}

impl Predicate {
    pub fn dimension(dimension: &str, value: &str) -> Self {
        Self {
            kind: "dimension".into(),
            dimension: dimension.into(),
            value: value.into(),
        }
    }
}

/// Response of the aggregate queries. Sync aggregates do not page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AggregateResponse {
    #[serde(default)]
    pub results: Vec<AggregateResult>,
}

/// One group of an aggregate response.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AggregateResult {
    #[serde(default)]
    pub group: BTreeMap<String, String>,
    #[serde(default)]
    pub data: Vec<AggregateData>,
}

/// One interval bucket of a group.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AggregateData {
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub metrics: Vec<AggregateMetric>,
}

/// One metric of a bucket.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AggregateMetric {
    pub metric: String,
    #[serde(default)]
    pub stats: StatisticalSummary,
}

/// `StatisticalSummary`: `t*` timers in milliseconds; `n*` counters carry only `count`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct StatisticalSummary {
    pub max: Option<f64>,
    pub min: Option<f64>,
    pub count: Option<f64>,
    pub sum: Option<f64>,
    /// Observations (`oServiceLevel`): answered within the target of those offered.
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
}

/// Body of `POST /api/v2/taskmanagement/workitems`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkitemCreate {
    /// 3–256 characters.
    pub name: String,
    pub type_id: String,
    /// At most 512 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_due: Option<String>,
    /// Our change id: the idempotency key (the API does not enforce uniqueness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<serde_json::Value>,
}

/// A workitem as the API returns it (the fields we read).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Workitem {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub external_tag: Option<String>,
    #[serde(default)]
    pub status: Option<EntityRef>,
    /// `Open | InProgress | Waiting | Closed | Unknown`.
    #[serde(default)]
    pub status_category: Option<String>,
    #[serde(default)]
    pub assignee: Option<EntityRef>,
}

/// Body of `POST /api/v2/taskmanagement/workitems/query`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkitemQuery {
    pub filters: Vec<WorkitemFilter>,
    /// At most 200.
    pub page_size: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// `{name, type: String|Int, operator: EQ|IN|…, values}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkitemFilter {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// Response of the workitem query (cursor paging with `after`).
#[derive(Debug, Clone, Deserialize)]
pub struct WorkitemQueryResponse {
    #[serde(default)]
    pub entities: Vec<Workitem>,
    #[serde(default)]
    pub after: Option<String>,
}

/// A status of a worktype (`GET /api/v2/taskmanagement/worktypes/{id}/statuses`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WorkitemStatus {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub category: Option<String>,
}
