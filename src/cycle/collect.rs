//! Collect: the in-scope agents with their current skills, and their metrics over the
//! look-back window, in as few API calls as the API allows:
//! the roster in pages of 500 with `expand=skills`, the skill catalogue, the queues (pages
//! of 100, for their evaluation method), and one analytics query per 100 agents per metric
//! source: conversations grouped by `userId`, `requestedRoutingSkillId` and `queueId` (the
//! queue breakdown is what case-mix scoring and the routing-effect rule need, at no extra
//! call); evaluations and surveys grouped by `userId` (the API would group them by queue
//! too, but quality and CSAT are scored per agent on their absolute scales).

use crate::config::{MetricsSettings, ScopeSettings};
use crate::genesys::models::{AggregateResult, AggregationQuery, Clause, QueryFilter, User};
use crate::genesys::{AggregateSource, ApiError, GenesysClient};
use crate::org::{
    Agent, EvaluationMethod, PairMetrics, Queue, QueueCell, QueueIx, ScoreStat, Skill, SkillIx,
    Snapshot, NO_QUEUE,
};
use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, TimeZone, Utc};
use futures_util::stream::{self, StreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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

/// The metrics window: the `lookback_days` whole local days before today in the configured
/// time zone, from the start of the first to the start of today (metrics land when
/// conversations complete, so today is still moving). Both ends are local midnights, so a
/// window that spans a daylight-saving change is 23 or 25 hours longer or shorter than
/// `lookback_days × 24 h` — and still covers exactly those calendar days.
pub fn window(settings: &MetricsSettings, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let tz: chrono_tz::Tz = settings.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local_today = now.with_timezone(&tz).date_naive();
    let first_day = local_today
        .checked_sub_days(chrono::Days::new(u64::from(settings.lookback_days)))
        .unwrap_or(local_today);
    let end = day_start(tz, local_today).unwrap_or(now);
    let start = day_start(tz, first_day)
        .unwrap_or_else(|| end - ChronoDuration::days(i64::from(settings.lookback_days)));
    (start, end)
}

/// When `date` begins in `tz`: its midnight, or — where a daylight-saving gap swallows
/// midnight (e.g. America/Havana, Asia/Beirut) — the first local time after the gap.
fn day_start(tz: chrono_tz::Tz, date: chrono::NaiveDate) -> Option<DateTime<Utc>> {
    (0..=16).find_map(|quarter| {
        let time = NaiveTime::MIN + ChronoDuration::minutes(15 * quarter);
        tz.from_local_datetime(&date.and_time(time))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
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

    let members = scope_members(client, scope).await?;
    let skill_ix: HashMap<&str, SkillIx> = skills
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i as SkillIx))
        .collect();
    let managers = Managers::default();
    // Each page is turned into agents as it arrives: the raw roster is never held whole.
    let mut agents: Vec<Agent> = client
        .list_users_map("active", true, |u| {
            if in_scope(&u, scope, members.as_ref()) {
                to_agent(u, &skill_ix, &managers)
            } else {
                None
            }
        })
        .await
        .map_err(at("user roster"))?;
    // Only when the scope kept much less than the roster (a shrink copies).
    if agents.capacity() > agents.len() * 2 {
        agents.shrink_to_fit();
    }

    let (queues, queues_listed, queue_skill_groups) = read_queues(client).await?;
    let (start, end) = window(metrics, now);
    let mut snapshot = Snapshot {
        skills,
        agents,
        tunable,
        queues,
        queues_listed,
        queue_skill_groups,
        interval: interval_string(start, end),
        ..Snapshot::default()
    };
    fill_metrics(client, &mut snapshot, metrics, concurrency).await?;
    Ok(snapshot)
}

/// The queues of the listing, whether it was read, and which skill groups feed which queue.
type QueuesRead = (Vec<Queue>, bool, Vec<(QueueIx, String)>);

/// The org's queues and their evaluation methods, and the skill groups in their
/// `memberGroups`. A client without `routing:queue:view` (403) still tunes, as before queues
/// were read: every skill then counts as one whose routing effect is unknown, and the log
/// says why.
async fn read_queues(client: &GenesysClient) -> Result<QueuesRead, CollectError> {
    match client.list_queues().await {
        Ok(listed) => {
            let mut fed_by = Vec::new();
            let queues = listed
                .into_iter()
                .enumerate()
                .map(|(i, q)| {
                    if let Ok(ix) = QueueIx::try_from(i) {
                        fed_by.extend(
                            q.member_groups
                                .into_iter()
                                .filter(|g| g.kind.as_deref() == Some("SKILLGROUP"))
                                .map(|g| (ix, g.id)),
                        );
                    }
                    Queue {
                        method: q
                            .skill_evaluation_method
                            .as_deref()
                            .and_then(EvaluationMethod::parse),
                        id: q.id,
                        name: q.name,
                    }
                })
                .collect();
            Ok((queues, true, fed_by))
        }
        Err(e) if e.status() == Some(403) => {
            tracing::warn!(error = %e, "cannot list queues (grant routing:queue:view): every skill is tuned as if its queues ranked by proficiency");
            Ok((Vec::new(), false, Vec::new()))
        }
        Err(e) => Err(at("queues")(e)),
    }
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

/// One shared string per manager id.
#[derive(Default)]
struct Managers(std::cell::RefCell<HashMap<String, Arc<str>>>);

impl Managers {
    fn intern(&self, id: String) -> Arc<str> {
        let mut known = self.0.borrow_mut();
        if let Some(shared) = known.get(&id) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(id.as_str());
        known.insert(id, shared.clone());
        shared
    }
}

fn to_agent(user: User, skill_ix: &HashMap<&str, SkillIx>, managers: &Managers) -> Option<Agent> {
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
        manager_id: user.manager.map(|m| managers.intern(m.id)),
        // Metrics arrive per held skill (times its queues, mostly one): sized once.
        cells: Vec::with_capacity(skills.len()),
        skills,
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
    let mut clauses = vec![Clause::any_of("userId", user_ids)];
    if !media_types.is_empty() {
        clauses.push(Clause::any_of("mediaType", media_types));
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

/// One metric source: where to ask, how to group, which metrics.
struct Source {
    kind: AggregateSource,
    group_by: &'static [&'static str],
    metrics: &'static [&'static str],
}

/// Sums `count` and `sum` of one metric over all buckets of a group; `None` when absent.
fn sum_metric(result: &AggregateResult, name: &str) -> Option<(f64, f64)> {
    let mut acc: Option<(f64, f64)> = None;
    for metric in result
        .data
        .iter()
        .flat_map(|d| &d.metrics)
        .filter(|m| m.metric == name)
    {
        let entry = acc.get_or_insert((0.0, 0.0));
        entry.0 += metric.stats.count.unwrap_or(0.0);
        entry.1 += metric.stats.sum.unwrap_or(0.0);
    }
    acc
}

/// Queries every source for every batch of agents, folding each answer into the snapshot as
/// it arrives (answers are not collected first: at 100 000 agents they would be large).
async fn fill_metrics(
    client: &GenesysClient,
    snapshot: &mut Snapshot,
    settings: &MetricsSettings,
    concurrency: usize,
) -> Result<(), CollectError> {
    let mut sources = vec![Source {
        kind: AggregateSource::Conversations,
        group_by: &["userId", "requestedRoutingSkillId", "queueId"],
        metrics: &["tHandle", "nTransferred"],
    }];
    if settings.evaluations {
        sources.push(Source {
            kind: AggregateSource::Evaluations,
            group_by: &["userId"],
            metrics: &["oTotalScore"],
        });
    }
    if settings.surveys {
        sources.push(Source {
            kind: AggregateSource::Surveys,
            group_by: &["userId"],
            metrics: &["oSurveyTotalScore"],
        });
    }
    let per_query = settings.users_per_query.max(1);
    let batches: Vec<Vec<String>> = snapshot
        .agents
        .chunks(per_query)
        .map(|chunk| chunk.iter().map(|a| a.id.clone()).collect())
        .collect();
    let jobs: Vec<(&Source, &Vec<String>)> = sources
        .iter()
        .flat_map(|s| batches.iter().map(move |b| (s, b)))
        .collect();
    let interval = snapshot.interval.clone();
    let mut answers = stream::iter(jobs)
        .map(|(source, batch)| {
            let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
            let query = batch_query(
                &ids,
                &interval,
                source.group_by,
                source.metrics,
                &settings.media_types,
            );
            async move {
                client
                    .aggregates(source.kind, &query)
                    .await
                    .map(|r| (source.kind, r))
                    .map_err(at("analytics"))
            }
        })
        .buffer_unordered(concurrency.max(1));

    // Indexed by the ids the batches already own: no second copy of 100 000 id strings.
    let agent_ix: HashMap<&str, usize> = batches
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let skill_ix: HashMap<String, SkillIx> = snapshot
        .skills
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i as SkillIx))
        .collect();
    let mut queue_ix: HashMap<String, QueueIx> = snapshot
        .queues
        .iter()
        .enumerate()
        .filter_map(|(i, q)| Some((q.id.clone(), QueueIx::try_from(i).ok()?)))
        .collect();
    let mut queries = 0;
    let mut empty = 0;
    while let Some(answer) = answers.next().await {
        let (kind, response) = answer?;
        queries += 1;
        if response.results.is_empty() {
            empty += 1;
        }
        for result in &response.results {
            let Some(&ai) = result
                .group
                .get("userId")
                .and_then(|id| agent_ix.get(id.as_str()))
            else {
                continue;
            };
            let agent = &mut snapshot.agents[ai];
            match kind {
                AggregateSource::Conversations => {
                    let Some(&skill) = result
                        .group
                        .get("requestedRoutingSkillId")
                        .and_then(|id| skill_ix.get(id))
                    else {
                        continue;
                    };
                    let Some((count, sum)) =
                        sum_metric(result, "tHandle").filter(|(c, _)| *c > 0.0)
                    else {
                        continue;
                    };
                    let pair = PairMetrics {
                        handled: count as u64,
                        handle_ms: sum,
                        transferred: sum_metric(result, "nTransferred").map(|(c, _)| c as u64),
                    };
                    let queue = result.group.get("queueId").map_or(NO_QUEUE, |id| {
                        intern_queue(&mut snapshot.queues, &mut queue_ix, id)
                    });
                    add_cell(&mut agent.cells, skill, queue, &pair);
                }
                AggregateSource::Evaluations | AggregateSource::Surveys => {
                    let name = if kind == AggregateSource::Evaluations {
                        "oTotalScore"
                    } else {
                        "oSurveyTotalScore"
                    };
                    let Some((count, sum)) = sum_metric(result, name).filter(|(c, _)| *c > 0.0)
                    else {
                        continue;
                    };
                    let stat = ScoreStat {
                        count: count as u64,
                        sum,
                    };
                    if kind == AggregateSource::Evaluations {
                        agent.quality = Some(stat);
                    } else {
                        agent.csat = Some(stat);
                    }
                }
            }
        }
    }
    snapshot.queries = queries;
    snapshot.empty_queries = empty;
    Ok(())
}

/// The index of queue `id`, adding a queue analytics named but the listing did not. Past
/// the index space (65 535 queues) the work counts as queue-less.
fn intern_queue(
    queues: &mut Vec<Queue>,
    index: &mut HashMap<String, QueueIx>,
    id: &str,
) -> QueueIx {
    if let Some(&ix) = index.get(id) {
        return ix;
    }
    let Some(ix) = QueueIx::try_from(queues.len())
        .ok()
        .filter(|ix| *ix != NO_QUEUE)
    else {
        return NO_QUEUE;
    };
    queues.push(Queue {
        id: id.to_string(),
        name: None,
        method: None,
    });
    index.insert(id.to_string(), ix);
    ix
}

/// Adds one answer's numbers to the agent's (skill, queue) cell.
fn add_cell(cells: &mut Vec<QueueCell>, skill: SkillIx, queue: QueueIx, pair: &PairMetrics) {
    let add = QueueCell::new(skill, queue, pair);
    match cells
        .iter_mut()
        .find(|c| c.skill == skill && c.queue == queue)
    {
        Some(c) => {
            c.handled = c.handled.saturating_add(add.handled);
            c.transferred = match (c.transferred, add.transferred) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
            };
            c.handle_ms += add.handle_ms;
        }
        None => cells.push(add),
    }
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

    fn window_in(tz: &str, lookback_days: u32, now: DateTime<Utc>) -> String {
        let m = MetricsSettings {
            lookback_days,
            time_zone: tz.into(),
            ..MetricsSettings::default()
        };
        let (start, end) = window(&m, now);
        interval_string(start, end)
    }

    #[test]
    fn a_window_across_a_dst_change_still_spans_whole_local_days() {
        // London springs forward on 2027-03-28: 1 April midnight is 23:00 UTC the day before,
        // 22 March midnight is 00:00 UTC. A 24 h × 14 subtraction would start at 23:00 on
        // the 21st and take an hour of the wrong day.
        let now = Utc.with_ymd_and_hms(2027, 4, 5, 12, 0, 0).unwrap();
        assert_eq!(
            window_in("Europe/London", 14, now),
            "2027-03-22T00:00:00.000Z/2027-04-04T23:00:00.000Z"
        );
        // New York falls back on 2027-11-07: the window is 14 local days and one hour long.
        let now = Utc.with_ymd_and_hms(2027, 11, 10, 12, 0, 0).unwrap();
        assert_eq!(
            window_in("America/New_York", 14, now),
            "2027-10-27T04:00:00.000Z/2027-11-10T05:00:00.000Z"
        );
    }

    #[test]
    fn a_day_whose_midnight_falls_in_a_gap_starts_after_it() {
        // Havana springs forward at midnight (2027-03-14 00:00 → 01:00 CDT).
        let day = chrono::NaiveDate::from_ymd_opt(2027, 3, 14).unwrap();
        let start = day_start(chrono_tz::America::Havana, day).unwrap();
        assert_eq!(start, Utc.with_ymd_and_hms(2027, 3, 14, 5, 0, 0).unwrap());
    }

    #[test]
    fn the_last_hour_of_a_year_and_a_leap_day() {
        let now = Utc.with_ymd_and_hms(2026, 12, 31, 23, 30, 0).unwrap();
        assert_eq!(
            window_in("UTC", 14, now),
            "2026-12-17T00:00:00.000Z/2026-12-31T00:00:00.000Z"
        );
        // Auckland (UTC+13) is already on 1 January: the window ends at its midnight.
        assert_eq!(
            window_in("Pacific/Auckland", 14, now),
            "2026-12-17T11:00:00.000Z/2026-12-31T11:00:00.000Z"
        );
        let leap = Utc.with_ymd_and_hms(2028, 2, 29, 12, 0, 0).unwrap();
        assert_eq!(
            window_in("UTC", 30, leap),
            "2028-01-30T00:00:00.000Z/2028-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn queues_analytics_names_are_interned_and_cells_merge() {
        let mut queues = vec![Queue {
            id: "listed".into(),
            name: Some("Listed".into()),
            method: Some(EvaluationMethod::Best),
        }];
        let mut index: HashMap<String, QueueIx> = [("listed".to_string(), 0)].into();
        assert_eq!(intern_queue(&mut queues, &mut index, "listed"), 0);
        assert_eq!(intern_queue(&mut queues, &mut index, "unlisted"), 1);
        assert_eq!(intern_queue(&mut queues, &mut index, "unlisted"), 1);
        assert_eq!(queues[1].name, None, "analytics gives no name or method");
        assert_eq!(queues[1].method, None);

        let mut cells = Vec::new();
        let pair = |handled, transferred| PairMetrics {
            handled,
            handle_ms: handled as f64 * 1000.0,
            transferred,
        };
        add_cell(&mut cells, 2, 1, &pair(10, Some(2)));
        add_cell(&mut cells, 2, 1, &pair(5, None));
        add_cell(&mut cells, 2, NO_QUEUE, &pair(3, Some(1)));
        add_cell(&mut cells, 3, NO_QUEUE, &pair(4, None));
        assert_eq!(cells.len(), 3);
        assert_eq!(
            (cells[0].handled, cells[0].transferred, cells[0].handle_ms),
            (15, Some(2), 15_000.0)
        );
        assert_eq!(cells[1].queue, NO_QUEUE);
        assert_eq!(cells[2].transferred, None, "no answer had the metric");

        // The per-skill totals are the cells' sums; transfers stay unknown only when no
        // queue's answer had them.
        let agent = Agent {
            id: "a".into(),
            name: "A".into(),
            manager_id: None,
            skills: vec![(2, 1.0), (3, 1.0)],
            cells,
            quality: None,
            csat: None,
        };
        assert_eq!(
            agent.metrics_for(2),
            Some(PairMetrics {
                handled: 18,
                handle_ms: 18_000.0,
                transferred: Some(3)
            })
        );
        assert_eq!(agent.metrics_for(3).map(|m| m.transferred), Some(None));
        assert_eq!(agent.metrics_for(4), None);
        assert_eq!(agent.skills_with_data().collect::<Vec<_>>(), vec![2, 3]);
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
