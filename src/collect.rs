//! Collect: the in-scope agents with their current skills, and their metrics over the
//! look-back window, in as few API calls as the API allows:
//! the roster in pages of 500 with `expand=skills`, the skill catalogue, and one analytics
//! query per 100 agents per metric source (conversations grouped by `userId` and
//! `requestedRoutingSkillId`; evaluations and surveys grouped by `userId`).

use crate::config::{MetricsSettings, ScopeSettings};
use crate::genesys::models::{
    AggregateResponse, AggregationQuery, Clause, Predicate, QueryFilter, User,
};
use crate::genesys::{AggregateSource, ApiError, GenesysClient};
use crate::org::{Agent, PairMetrics, ScoreStat, Skill, SkillIx, Snapshot};
use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, TimeZone, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::collections::{HashMap, HashSet};

/// Why collecting failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("collect: {stage}: {source}")]
    Api {
        stage: &'static str,
        #[source]
        source: ApiError,
    },
}

fn at(stage: &'static str) -> impl Fn(ApiError) -> CollectError {
    move |source| CollectError::Api { stage, source }
}

/// The metrics window: `lookback_days` whole days ending at today's midnight in `tz`
/// (metrics land when conversations complete, so today is still moving).
pub fn window(settings: &MetricsSettings, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let tz: chrono_tz::Tz = settings.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local_today = now.with_timezone(&tz).date_naive();
    let end = tz
        .from_local_datetime(&local_today.and_time(NaiveTime::MIN))
        .earliest()
        .map_or(now, |t| t.with_timezone(&Utc));
    (
        end - ChronoDuration::days(i64::from(settings.lookback_days)),
        end,
    )
}

/// ISO-8601 interval as the analytics API wants it.
pub fn interval_string(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let f = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    format!("{}/{}", f(start), f(end))
}

/// Everything a cycle needs to plan.
pub async fn collect(
    client: &GenesysClient,
    scope: &ScopeSettings,
    metrics: &MetricsSettings,
    concurrency: usize,
    now: DateTime<Utc>,
) -> Result<Snapshot, CollectError> {
    let catalogue = client.list_skills().await.map_err(at("skill catalogue"))?;
    let skills: Vec<Skill> = catalogue
        .into_iter()
        .map(|s| Skill {
            id: s.id,
            name: s.name,
        })
        .collect();
    let tunable = skills
        .iter()
        .map(|s| {
            (scope.skills.is_empty() || scope.skills.contains(&s.name))
                && !scope.exclude_skills.contains(&s.name)
        })
        .collect();

    let users = client
        .list_users("active", true)
        .await
        .map_err(at("user roster"))?;
    let members = scope_members(client, scope).await?;
    let skill_ix: HashMap<&str, SkillIx> = skills
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i as SkillIx))
        .collect();
    let agents: Vec<Agent> = users
        .into_iter()
        .filter(|u| in_scope(u, scope, members.as_ref()))
        .filter_map(|u| to_agent(u, &skill_ix))
        .collect();

    let (start, end) = window(metrics, now);
    let mut snapshot = Snapshot {
        skills,
        agents,
        tunable,
        interval: interval_string(start, end),
        ..Snapshot::default()
    };
    fill_metrics(client, &mut snapshot, metrics, concurrency).await?;
    Ok(snapshot)
}

/// Union of the configured groups' and queues' members; `None` = no membership filter.
async fn scope_members(
    client: &GenesysClient,
    scope: &ScopeSettings,
) -> Result<Option<HashSet<String>>, CollectError> {
    if scope.groups.is_empty() && scope.queues.is_empty() {
        return Ok(None);
    }
    let mut members = HashSet::new();
    for group in &scope.groups {
        members.extend(
            client
                .group_member_ids(group)
                .await
                .map_err(at("group members"))?,
        );
    }
    for queue in &scope.queues {
        members.extend(
            client
                .queue_member_ids(queue)
                .await
                .map_err(at("queue members"))?,
        );
    }
    Ok(Some(members))
}

fn in_scope(user: &User, scope: &ScopeSettings, members: Option<&HashSet<String>>) -> bool {
    if scope.exclude_users.contains(&user.id) {
        return false;
    }
    if scope.include_users.contains(&user.id) {
        return true;
    }
    let division_ok = scope.divisions.is_empty()
        || user
            .division
            .as_ref()
            .is_some_and(|d| scope.divisions.contains(&d.id));
    let member_ok = members.is_none_or(|m| m.contains(&user.id));
    division_ok && member_ok
}

fn to_agent(user: User, skill_ix: &HashMap<&str, SkillIx>) -> Option<Agent> {
    let skills: Vec<(SkillIx, f64)> = user
        .skills
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.state.as_deref().is_none_or(|st| st == "active"))
        .filter_map(|s| skill_ix.get(s.id.as_str()).map(|ix| (*ix, s.proficiency)))
        .collect();
    if skills.is_empty() {
        return None;
    }
    Some(Agent {
        name: user.name.unwrap_or_else(|| user.id.clone()),
        id: user.id,
        manager_id: user.manager.map(|m| m.id),
        division_id: user.division.map(|d| d.id),
        skills,
        metrics: Vec::new(),
        quality: None,
        csat: None,
    })
}

/// Builds one aggregate query for a batch of agents.
pub fn batch_query(
    user_ids: &[&str],
    interval: &str,
    group_by: &[&str],
    metric_names: &[&str],
    media_types: &[String],
) -> AggregationQuery {
    let mut clauses = vec![Clause {
        kind: "or".into(),
        predicates: user_ids
            .iter()
            .map(|id| Predicate::dimension("userId", id))
            .collect(),
    }];
    if !media_types.is_empty() {
        clauses.push(Clause {
            kind: "or".into(),
            predicates: media_types
                .iter()
                .map(|m| Predicate::dimension("mediaType", m))
                .collect(),
        });
    }
    AggregationQuery {
        interval: interval.to_string(),
        granularity: None,
        time_zone: None,
        group_by: group_by.iter().map(|s| s.to_string()).collect(),
        filter: Some(QueryFilter {
            kind: "and".into(),
            predicates: Vec::new(),
            clauses,
        }),
        metrics: metric_names.iter().map(|s| s.to_string()).collect(),
    }
}

async fn fill_metrics(
    client: &GenesysClient,
    snapshot: &mut Snapshot,
    settings: &MetricsSettings,
    concurrency: usize,
) -> Result<(), CollectError> {
    let ids: Vec<&str> = snapshot.agents.iter().map(|a| a.id.as_str()).collect();
    let batches: Vec<&[&str]> = ids.chunks(settings.users_per_query.max(1)).collect();
    let mut sources = vec![(
        AggregateSource::Conversations,
        &["userId", "requestedRoutingSkillId"][..],
        &["tHandle", "nTransferred"][..],
    )];
    if settings.evaluations {
        sources.push((
            AggregateSource::Evaluations,
            &["userId"][..],
            &["oTotalScore"][..],
        ));
    }
    if settings.surveys {
        sources.push((
            AggregateSource::Surveys,
            &["userId"][..],
            &["oSurveyTotalScore"][..],
        ));
    }
    let interval = snapshot.interval.clone();
    let jobs: Vec<(AggregateSource, AggregationQuery)> = sources
        .iter()
        .flat_map(|(source, group_by, names)| {
            let interval = &interval;
            batches.iter().map(move |batch| {
                (
                    *source,
                    batch_query(batch, interval, group_by, names, &settings.media_types),
                )
            })
        })
        .collect();
    let responses: Vec<(AggregateSource, AggregateResponse)> = stream::iter(jobs)
        .map(|(source, query)| async move {
            client
                .aggregates(source, &query)
                .await
                .map(|r| (source, r))
                .map_err(at("analytics"))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;

    let agent_ix = snapshot
        .agent_index()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<HashMap<_, _>>();
    let skill_ix = snapshot
        .skill_index()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<HashMap<_, _>>();
    snapshot.queries = responses.len();
    for (source, response) in responses {
        if response.results.is_empty() {
            snapshot.empty_queries += 1;
        }
        for result in response.results {
            let Some(agent) = result.group.get("userId").and_then(|id| agent_ix.get(id)) else {
                continue;
            };
            let agent = &mut snapshot.agents[*agent as usize];
            let stats = |name: &str| {
                let mut acc: Option<(f64, f64)> = None;
                for bucket in &result.data {
                    for m in bucket.metrics.iter().filter(|m| m.metric == name) {
                        let e = acc.get_or_insert((0.0, 0.0));
                        e.0 += m.stats.count.unwrap_or(0.0);
                        e.1 += m.stats.sum.unwrap_or(0.0);
                    }
                }
                acc
            };
            match source {
                AggregateSource::Conversations => {
                    let Some(skill) = result
                        .group
                        .get("requestedRoutingSkillId")
                        .and_then(|id| skill_ix.get(id))
                    else {
                        continue;
                    };
                    let Some((count, sum)) = stats("tHandle") else {
                        continue;
                    };
                    if count <= 0.0 {
                        continue;
                    }
                    let pair = PairMetrics {
                        handled: count as u64,
                        handle_ms: sum,
                        transferred: stats("nTransferred").map(|(c, _)| c as u64),
                    };
                    match agent.metrics.iter_mut().find(|(s, _)| s == skill) {
                        Some((_, m)) => {
                            m.handled += pair.handled;
                            m.handle_ms += pair.handle_ms;
                            m.transferred = match (m.transferred, pair.transferred) {
                                (None, None) => None,
                                (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
                            };
                        }
                        None => agent.metrics.push((*skill, pair)),
                    }
                }
                AggregateSource::Evaluations | AggregateSource::Surveys => {
                    let name = if source == AggregateSource::Evaluations {
                        "oTotalScore"
                    } else {
                        "oSurveyTotalScore"
                    };
                    let Some((count, sum)) = stats(name) else {
                        continue;
                    };
                    if count <= 0.0 {
                        continue;
                    }
                    let stat = ScoreStat {
                        count: count as u64,
                        sum,
                    };
                    if source == AggregateSource::Evaluations {
                        agent.quality = Some(stat);
                    } else {
                        agent.csat = Some(stat);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_ends_at_local_midnight() {
        let m = MetricsSettings {
            lookback_days: 7,
            time_zone: "Europe/Dublin".into(),
            ..MetricsSettings::default()
        };
        let now = Utc.with_ymd_and_hms(2026, 7, 10, 15, 0, 0).unwrap();
        let (start, end) = window(&m, now);
        // Dublin is UTC+1 in July: local midnight is 23:00 UTC the day before.
        assert_eq!(end, Utc.with_ymd_and_hms(2026, 7, 9, 23, 0, 0).unwrap());
        assert_eq!(start, Utc.with_ymd_and_hms(2026, 7, 2, 23, 0, 0).unwrap());
        assert_eq!(
            interval_string(start, end),
            "2026-07-02T23:00:00.000Z/2026-07-09T23:00:00.000Z"
        );
    }

    #[test]
    fn batch_query_uses_documented_field_names() {
        let q = batch_query(
            &["u1", "u2"],
            "a/b",
            &["userId", "requestedRoutingSkillId"],
            &["tHandle"],
            &["voice".to_string()],
        );
        let json = serde_json::to_value(&q).unwrap();
        assert_eq!(json["groupBy"][1], "requestedRoutingSkillId");
        assert_eq!(json["filter"]["type"], "and");
        assert_eq!(
            json["filter"]["clauses"][0]["predicates"][1]["dimension"],
            "userId"
        );
        assert_eq!(json["filter"]["clauses"][0]["predicates"][1]["value"], "u2");
        assert_eq!(
            json["filter"]["clauses"][1]["predicates"][0]["value"],
            "voice"
        );
        assert!(json.get("granularity").is_none());
    }
}
