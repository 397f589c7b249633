//! The aggregation engine: walks the synthetic rows a query selects, day by day, and folds
//! them into `{results:[{group, data:[{interval, metrics}]}]}`.
//!
//! Sim choices: the data has a resolution of one UTC day, and each UTC day's numbers happen
//! at that day's noon (UTC). A day counts when its noon lies inside the query interval, and
//! lands in the granularity bucket holding its noon; buckets follow the query's `timeZone`
//! (local days, 23 or 25 hours long across a daylight-saving change). So every UTC day is
//! counted exactly once, whatever the zone: for zones from UTC−12 to UTC+11:59 a UTC day is
//! the local day of the same date; east of that, noon UTC is already the next local day.
//! Totals over adjacent intervals add up, and an interval of whole UTC days counts exactly
//! those days. A day has data only once it has ended by the simulator's clock: today and
//! the future are empty, as they are in a real org.
//! Conversations belong to the queue of their requested skill (the queue the simulator made
//! for that skill; a skill without one has no `queueId`). An agent's evaluations and survey
//! responses of one UTC day concern one of the skills the agent held at generation (picked
//! per day from the seed), and so that skill's queue.
//! Groups and metrics without data are absent, never zero, as in the real API.
//!
//! With a closed-loop twin, the rows are the twin's records instead: conversations,
//! evaluations and surveys per (agent, requested skill, queue) and day, and `nOffered` per
//! (queue, requested skill) and day; days the twin has not simulated (before its history)
//! or no longer keeps have no data. `nOutbound` has no data there (the twin models inbound
//! voice only).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::data::aquery::{Dim, Kind, Query, Row};
use crate::data::rng::{domain, mix};
use crate::data::synth::{self, ConvMetric, Stat, CONV_METRICS};
use crate::state::org::{Org, Role};
use crate::state::world::World;
use crate::twin::layout::{Layout, NO_AGENT};
use crate::twin::records::DayData;
use crate::twin::TwinState;

const DAY: i64 = 86_400;
const NOON: i64 = DAY / 2;

/// The instant UTC day `day`'s numbers are counted at: its noon.
pub(crate) fn day_instant(day: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(day * DAY + NOON, 0).unwrap_or_default()
}

/// The UTC days (as day numbers) whose noon lies inside `[start, end)`.
pub(crate) fn days_in(start: DateTime<Utc>, end: DateTime<Utc>) -> std::ops::Range<i64> {
    // The first day whose noon is at or after `t`.
    let first_from = |t: DateTime<Utc>| -(NOON - t.timestamp()).div_euclid(DAY);
    let (first, last) = (first_from(start), first_from(end));
    first..last.max(first)
}

/// Renders an instant the way Genesys does (`2026-05-01T00:00:00.000Z`).
pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A group's identity: only the dimensions named in `groupBy` are filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    user: Option<u32>,
    skill: Option<u16>,
    queue: Option<u16>,
    media: bool,
}

/// Where each requested metric's numbers come from: an index into the day array;
/// `queue_side` metrics carry no `userId`. (The parser admits only modelled metrics.)
#[derive(Debug, Clone, Copy)]
struct Source {
    index: usize,
    queue_side: bool,
    /// The metric's name as answered.
    name: &'static str,
}

fn sources(kind: Kind, metrics: &[String]) -> Vec<Source> {
    metrics
        .iter()
        .filter_map(|m| {
            let (index, name) = kind.metric(m)?;
            Some(Source {
                index,
                name,
                queue_side: kind == Kind::Conversations
                    && matches!(
                        CONV_METRICS[index].1,
                        ConvMetric::NOffered | ConvMetric::OServiceLevel
                    ),
            })
        })
        .collect()
}

type Buckets = BTreeMap<i64, Vec<Stat>>;
type Acc = BTreeMap<GroupKey, Buckets>;

/// Below this many users a query runs on one thread.
const PARALLEL_THRESHOLD: usize = 4_000;

struct Engine<'a> {
    org: &'a Org,
    query: &'a Query,
    /// The days with data: days of the interval that ended by the simulator's "now".
    days: std::ops::Range<i64>,
    /// The granularity bucket of each of those days.
    buckets: Vec<i64>,
    /// The queue of each skill (`None`: the skill has no queue).
    queue_of: Vec<Option<u16>>,
    sources: Vec<Source>,
    /// The twin's records, when the org is a twin.
    twin: Option<TwinView<'a>>,
}

/// A twin's layout and simulated days, read-only for one query.
#[derive(Clone, Copy)]
struct TwinView<'a> {
    layout: &'a Layout,
    state: &'a TwinState,
}

/// Folds `from` into `into` (chunks of users may share groups when not grouping by user).
fn merge_acc(into: &mut Acc, from: Acc) {
    for (key, buckets) in from {
        let target = into.entry(key).or_default();
        for (bucket, stats) in buckets {
            match target.get_mut(&bucket) {
                Some(t) => t.iter_mut().zip(&stats).for_each(|(a, b)| a.merge(b)),
                None => {
                    target.insert(bucket, stats);
                }
            }
        }
    }
}

impl Engine<'_> {
    fn key(&self, row: &Row) -> GroupKey {
        let by = |d: Dim| self.query.group_by.contains(&d);
        GroupKey {
            user: row.user.filter(|_| by(Dim::User)),
            skill: row.skill.filter(|_| by(Dim::Skill)),
            queue: row.queue.filter(|_| by(Dim::Queue)),
            media: by(Dim::Media),
        }
    }

    fn bucket(&self, day: i64) -> i64 {
        usize::try_from(day - self.days.start)
            .ok()
            .and_then(|i| self.buckets.get(i))
            .copied()
            .unwrap_or(0)
    }

    fn row(&self, user: Option<u32>, skill: Option<u16>) -> Row {
        Row {
            user,
            skill,
            queue: skill.and_then(|s| self.queue_of.get(s as usize).copied().flatten()),
        }
    }

    fn selects(&self, row: &Row) -> bool {
        self.query.filter.as_ref().is_none_or(|f| f.matches(row))
    }

    /// Folds one day of one row into the accumulator, taking only metrics of the given side.
    fn add(&self, acc: &mut Acc, row: &Row, day: i64, stats: &[Stat], queue_side: bool) {
        if !self
            .sources
            .iter()
            .any(|s| s.queue_side == queue_side && stats[s.index].count > 0)
        {
            return;
        }
        let key = self.key(row);
        let bucket = self.bucket(day);
        let n = self.sources.len();
        let slot = acc
            .entry(key)
            .or_default()
            .entry(bucket)
            .or_insert_with(|| vec![Stat::default(); n]);
        for (i, s) in self.sources.iter().enumerate() {
            if s.queue_side == queue_side {
                slot[i].merge(&stats[s.index]);
            }
        }
    }

    /// Runs the query, splitting large user sets across the available cores.
    fn run(&self, kind: Kind) -> Acc {
        let candidates = self.query.filter.as_ref().and_then(|f| f.candidate_users());
        let restricted = candidates.is_some();
        let users: Vec<u32> = match candidates {
            Some(c) => c,
            None => (0..self.org.users.len() as u32).collect(),
        };
        let mut acc = Acc::new();
        if let Some(twin) = self.twin {
            if kind == Kind::Conversations && !restricted {
                self.run_twin_pools(&mut acc, twin);
            }
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if users.len() < PARALLEL_THRESHOLD || threads < 2 {
            merge_acc(&mut acc, self.run_users(kind, &users, restricted));
            return acc;
        }
        let chunk = users.len().div_ceil(threads);
        let parts: Vec<Acc> = std::thread::scope(|scope| {
            let handles: Vec<_> = users
                .chunks(chunk)
                .map(|c| scope.spawn(move || self.run_users(kind, c, restricted)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for part in parts {
            merge_acc(&mut acc, part);
        }
        acc
    }

    /// The query's days the twin has records for.
    fn twin_days<'t>(&self, twin: TwinView<'t>) -> impl Iterator<Item = (i64, &'t DayData)> + 't {
        self.days
            .clone()
            .filter_map(move |day| Some((day, twin.state.day(twin.layout.first_day, day)?)))
    }

    /// The twin's queue-side rows: `nOffered` per (queue, requested skill).
    fn run_twin_pools(&self, acc: &mut Acc, twin: TwinView<'_>) {
        if !self.sources.iter().any(|s| s.queue_side) {
            return;
        }
        for (p, pool) in twin.layout.pools.iter().enumerate() {
            let row = Row {
                user: None,
                skill: Some(pool.skill),
                queue: Some(pool.queue),
            };
            if !self.selects(&row) {
                continue;
            }
            for (day, data) in self.twin_days(twin) {
                self.add(acc, &row, day, &data.pools[p].conv(), true);
            }
        }
    }

    /// The twin's agent-side rows of `users`: one per (agent, requested skill, queue).
    fn run_twin_users(&self, kind: Kind, users: &[u32], twin: TwinView<'_>) -> Acc {
        let mut acc = Acc::new();
        if !self.sources.iter().any(|s| !s.queue_side) {
            return acc;
        }
        let l = twin.layout;
        for &u in users {
            let a = l.agent_of_user.get(u as usize).copied().unwrap_or(NO_AGENT);
            let Some(spec) = l.agents.get(a as usize) else {
                continue;
            };
            for m in spec.memb.0..spec.memb.1 {
                let pool = &l.pools[l.memb[m as usize].pool as usize];
                let row = Row {
                    user: Some(u),
                    skill: Some(pool.skill),
                    queue: Some(pool.queue),
                };
                if !self.selects(&row) {
                    continue;
                }
                for (day, data) in self.twin_days(twin) {
                    let record = &data.pairs[m as usize];
                    match kind {
                        Kind::Conversations => self.add(&mut acc, &row, day, &record.conv(), false),
                        Kind::Evaluations => {
                            self.add(&mut acc, &row, day, &record.evaluations(), false)
                        }
                        Kind::Surveys => self.add(&mut acc, &row, day, &record.surveys(), false),
                    }
                }
            }
        }
        acc
    }

    /// `restricted`: the filter pins down users, so queue-side rows (no userId) cannot match.
    fn run_users(&self, kind: Kind, users: &[u32], restricted: bool) -> Acc {
        if let Some(twin) = self.twin {
            return self.run_twin_users(kind, users, twin);
        }
        let mut acc = Acc::new();
        let days = self.days.clone();
        let wants = |q: bool| self.sources.iter().any(|s| s.queue_side == q);
        let (agent_side, queue_side) = (wants(false), wants(true) && !restricted);
        let seed = self.org.seed;
        for &u in users {
            let info = &self.org.users[u as usize];
            if info.role != Role::Agent {
                continue;
            }
            let agent = synth::agent_traits(seed, u);
            if kind != Kind::Conversations {
                if !agent_side {
                    continue;
                }
                for day in days.clone() {
                    let row = self.row(Some(u), day_skill(seed, u, day, &info.original_skills));
                    if !self.selects(&row) {
                        continue;
                    }
                    match kind {
                        Kind::Evaluations => {
                            let stats = synth::eval_day(seed, u, day, &agent);
                            self.add(&mut acc, &row, day, &stats, false);
                        }
                        _ => {
                            let stats = synth::survey_day(seed, u, day, &agent);
                            self.add(&mut acc, &row, day, &stats, false);
                        }
                    }
                }
                continue;
            }
            for &s in info.original_skills.iter() {
                let row = self.row(Some(u), Some(s));
                let queue_row = self.row(None, Some(s));
                let take_agent = agent_side && self.selects(&row);
                let take_queue = queue_side && self.selects(&queue_row);
                if !take_agent && !take_queue {
                    continue;
                }
                let pair = synth::pair_traits(seed, u, s, &agent);
                for day in days.clone() {
                    let stats = synth::conv_day(seed, u, s, day, &agent, &pair);
                    if take_agent {
                        self.add(&mut acc, &row, day, &stats, false);
                    }
                    if take_queue {
                        self.add(&mut acc, &queue_row, day, &stats, true);
                    }
                }
            }
        }
        acc
    }

    fn render(&self, acc: &Acc) -> AggregateResponse {
        let q = self.query;
        // Few buckets, many groups: each bucket's interval is formatted once.
        let mut intervals: BTreeMap<i64, String> = BTreeMap::new();
        let mut results = Vec::new();
        for (key, buckets) in acc {
            let mut data = Vec::new();
            for (bucket, stats) in buckets {
                let metrics: Vec<MetricOut> = self
                    .sources
                    .iter()
                    .zip(stats)
                    .filter(|(_, s)| s.count > 0)
                    .map(|(source, s)| MetricOut::of(source.name, s))
                    .collect();
                if metrics.is_empty() {
                    continue;
                }
                let interval = intervals.entry(*bucket).or_insert_with(|| {
                    let from = q.boundary(*bucket).max(q.start);
                    let to = q.boundary(*bucket + 1).min(q.end);
                    format!("{}/{}", iso(from), iso(to))
                });
                data.push(IntervalOut {
                    interval: interval.clone(),
                    metrics,
                });
            }
            if data.is_empty() {
                continue;
            }
            let group = GroupOut {
                user_id: key.user.map(|u| self.org.users[u as usize].id.to_string()),
                requested_routing_skill_id: key
                    .skill
                    .map(|s| self.org.skills[s as usize].id.to_string()),
                queue_id: key
                    .queue
                    .map(|queue| self.org.queues[queue as usize].id.to_string()),
                media_type: key.media.then_some("voice"),
            };
            results.push(ResultOut { group, data });
        }
        AggregateResponse { results }
    }
}

/// An aggregate query's answer, in the contract's shape (`ConversationAggregateQueryResponse`
/// and its evaluation and survey siblings). Typed rather than built as a JSON value: a large
/// org's answer has hundreds of thousands of groups, and a map per object would cost more than
/// the aggregation itself.
#[derive(Debug, Serialize)]
pub(crate) struct AggregateResponse {
    results: Vec<ResultOut>,
}

#[derive(Debug, Serialize)]
struct ResultOut {
    group: GroupOut,
    data: Vec<IntervalOut>,
}

/// Only the dimensions named in `groupBy` appear.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_routing_skill_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_type: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct IntervalOut {
    interval: String,
    metrics: Vec<MetricOut>,
}

#[derive(Debug, Serialize)]
struct MetricOut {
    metric: &'static str,
    stats: StatsOut,
}

/// `n*` counters carry only `count`; timers and observations carry the full summary;
/// `oServiceLevel` carries `ratio`, `numerator` and `denominator` (its count and sum).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum StatsOut {
    ServiceLevel {
        ratio: f64,
        numerator: i64,
        denominator: u64,
    },
    Count {
        count: u64,
    },
    Summary {
        max: i64,
        min: i64,
        count: u64,
        sum: i64,
    },
}

impl MetricOut {
    fn of(name: &'static str, s: &Stat) -> MetricOut {
        let stats = if name == "oServiceLevel" {
            StatsOut::ServiceLevel {
                ratio: s.sum as f64 / s.count.max(1) as f64,
                numerator: s.sum,
                denominator: s.count,
            }
        } else if name.starts_with('n') {
            StatsOut::Count { count: s.count }
        } else {
            StatsOut::Summary {
                max: s.max,
                min: s.min,
                count: s.count,
                sum: s.sum,
            }
        };
        MetricOut {
            metric: name,
            stats,
        }
    }
}

/// The UTC days whose noon lies inside `[start, end)` and that have ended by `now`.
pub(crate) fn days_with_data(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> std::ops::Range<i64> {
    let days = days_in(start, end);
    let ended = now.timestamp().div_euclid(DAY);
    days.start..days.end.min(ended).max(days.start)
}

/// The skill an agent's evaluations and surveys of one UTC day concern.
fn day_skill(seed: u64, user: u32, day: i64, held: &[u16]) -> Option<u16> {
    let pick = mix(&[seed, domain::DAY_SKILL, user as u64, day as u64]);
    held.get(usize::try_from(pick % held.len().max(1) as u64).ok()?)
        .copied()
}

/// Answers `query` as the world stood at `now` (days after it have no data yet). A twin
/// first simulates the days that have ended.
pub(crate) fn answer(
    kind: Kind,
    world: &World,
    query: &Query,
    now: DateTime<Utc>,
) -> AggregateResponse {
    let org = &world.org;
    let days = days_with_data(query.start, query.end, now);
    let twin = world.twin.as_ref().map(|t| (t, t.catch_up(org, now)));
    let engine = Engine {
        org,
        query,
        buckets: days
            .clone()
            .map(|d| query.bucket_of(day_instant(d)))
            .collect(),
        days,
        queue_of: (0..org.skills.len())
            .map(|s| {
                org.queues
                    .iter()
                    .position(|q| q.skills.first().is_some_and(|&k| usize::from(k) == s))
                    .map(|q| q as u16)
            })
            .collect(),
        sources: sources(kind, &query.metrics),
        twin: twin.as_ref().map(|(t, st)| TwinView {
            layout: &t.layout,
            state: st,
        }),
    };
    let acc = engine.run(kind);
    engine.render(&acc)
}

/// The conversation numbers of one (agent, skill) pair over the given days: a `Stat` per
/// entry of [`CONV_METRICS`]. `None` for an unknown or never-held pair.
pub(crate) fn pair_totals(
    org: &Org,
    user: u32,
    skill: u16,
    days: std::ops::Range<i64>,
) -> Option<synth::ConvDay> {
    let info = org.users.get(user as usize)?;
    if info.role != Role::Agent || !info.original_skills.contains(&skill) {
        return None;
    }
    let agent = synth::agent_traits(org.seed, user);
    let pair = synth::pair_traits(org.seed, user, skill, &agent);
    let mut total = [Stat::default(); CONV_METRICS.len()];
    for day in days {
        let d = synth::conv_day(org.seed, user, skill, day, &agent, &pair);
        for (t, s) in total.iter_mut().zip(d.iter()) {
            t.merge(s);
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn days_after_now_have_no_data() {
        let t = |d, h| Utc.with_ymd_and_hms(2026, 12, d, h, 0, 0).single().unwrap();
        // 1–31 Dec asked for, "now" is 31 Dec 23:30: the 31st has not ended yet.
        assert_eq!(
            days_with_data(t(1, 0), t(31, 0) + chrono::Duration::days(1), t(31, 23)).count(),
            30
        );
        assert_eq!(days_with_data(t(1, 0), t(3, 0), t(1, 5)).count(), 0);
    }

    #[test]
    fn a_day_counts_where_its_noon_is() {
        let t = |d, h| {
            Utc.with_ymd_and_hms(2026, 5, d, h, 0, 0)
                .single()
                .unwrap_or_default()
        };
        assert_eq!(days_in(t(1, 0), t(3, 0)).count(), 2);
        assert_eq!(days_in(t(1, 12), t(3, 0)).count(), 2);
        assert_eq!(days_in(t(1, 13), t(3, 0)).count(), 1);
        assert_eq!(days_in(t(1, 1), t(1, 5)).count(), 0);
        assert_eq!(days_in(t(1, 1), t(1, 13)).count(), 1);
        // Local midnights of Europe/Berlin in May (UTC+2): the same two days.
        let berlin = |d| t(d, 0) - chrono::Duration::hours(2);
        assert_eq!(days_in(berlin(1), berlin(3)), days_in(t(1, 0), t(3, 0)));
        // Adjacent intervals share no day.
        assert_eq!(
            days_in(t(1, 5), t(2, 5)).end,
            days_in(t(2, 5), t(4, 0)).start
        );
    }
}
