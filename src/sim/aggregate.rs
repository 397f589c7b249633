//! The aggregation engine: walks the synthetic rows a query selects, day by day, and folds
//! them into `{results:[{group, data:[{interval, metrics}]}]}`.
//!
//! Sim choices: each UTC day's numbers land in the bucket containing that day's midnight, and
//! only days lying wholly inside the interval count (the data has no finer time resolution).
//! A day has data only once it has ended by the simulator's clock: today and the future are
//! empty, as they are in a real org.
//! Groups and metrics without data are absent, never zero, as in the real API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::aquery::{Dim, Kind, Query, Row};
use super::org::{Org, Role};
use super::synth::{self, ConvMetric, Stat, CONV_METRICS, EVAL_METRICS, SURVEY_METRICS};

const DAY: i64 = 86_400;

/// The whole UTC days (as day numbers) lying inside `[start, end)`.
pub fn whole_days(start: DateTime<Utc>, end: DateTime<Utc>) -> std::ops::Range<i64> {
    let first =
        start.timestamp().div_euclid(DAY) + i64::from(start.timestamp().rem_euclid(DAY) != 0);
    let last = end.timestamp().div_euclid(DAY);
    first..last.max(first)
}

/// Renders an instant the way Genesys does (`2026-05-01T00:00:00.000Z`).
pub fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A group's identity: only the dimensions named in `groupBy` are filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    user: Option<u32>,
    skill: Option<u16>,
    media: bool,
}

/// Where each requested metric's numbers come from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Index into the day array; `queue_side` metrics carry no `userId`.
    Day { index: usize, queue_side: bool },
    /// A valid metric the simulator has no data for.
    None,
}

fn sources(kind: Kind, metrics: &[String]) -> Vec<Source> {
    metrics
        .iter()
        .map(|m| {
            let index = match kind {
                Kind::Conversations => CONV_METRICS.iter().position(|(n, _)| n == m),
                Kind::Evaluations => EVAL_METRICS.iter().position(|n| n == m),
                Kind::Surveys => SURVEY_METRICS.iter().position(|n| n == m),
            };
            match index {
                Some(index) => Source::Day {
                    index,
                    queue_side: kind == Kind::Conversations
                        && CONV_METRICS[index].1 == ConvMetric::NOffered,
                },
                None => Source::None,
            }
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
    /// The days with data: whole days of the interval that ended by the simulator's "now".
    days: std::ops::Range<i64>,
    sources: Vec<Source>,
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
            media: by(Dim::Media),
        }
    }

    fn bucket(&self, day: i64) -> i64 {
        match self.query.granularity {
            Some(g) => (day * DAY - self.query.start.timestamp()) / g.num_seconds().max(1),
            None => 0,
        }
    }

    fn selects(&self, row: &Row) -> bool {
        self.query.filter.as_ref().is_none_or(|f| f.matches(row))
    }

    /// Folds one day of one row into the accumulator, taking only metrics of the given side.
    fn add(&self, acc: &mut Acc, row: &Row, day: i64, stats: &[Stat], queue_side: bool) {
        if !self.sources.iter().any(|s| {
            matches!(s, Source::Day { index, queue_side: q } if *q == queue_side && stats[*index].count > 0)
        }) {
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
            if let Source::Day {
                index,
                queue_side: q,
            } = s
            {
                if *q == queue_side {
                    slot[i].merge(&stats[*index]);
                }
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
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if users.len() < PARALLEL_THRESHOLD || threads < 2 {
            return self.run_users(kind, &users, restricted);
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
        let mut acc = Acc::new();
        for part in parts {
            merge_acc(&mut acc, part);
        }
        acc
    }

    /// `restricted`: the filter pins down users, so queue-side rows (no userId) cannot match.
    fn run_users(&self, kind: Kind, users: &[u32], restricted: bool) -> Acc {
        let mut acc = Acc::new();
        let days = self.days.clone();
        let wants = |q: bool| {
            self.sources
                .iter()
                .any(|s| matches!(s, Source::Day { queue_side, .. } if *queue_side == q))
        };
        let (agent_side, queue_side) = (wants(false), wants(true) && !restricted);
        let seed = self.org.seed;
        for &u in users {
            let info = &self.org.users[u as usize];
            if info.role != Role::Agent {
                continue;
            }
            let agent = synth::agent_traits(seed, u);
            if kind != Kind::Conversations {
                let row = Row {
                    user: Some(u),
                    skill: None,
                };
                if !agent_side || !self.selects(&row) {
                    continue;
                }
                for day in days.clone() {
                    match kind {
                        Kind::Evaluations => self.add(
                            &mut acc,
                            &row,
                            day,
                            &synth::eval_day(seed, u, day, &agent),
                            false,
                        ),
                        _ => self.add(
                            &mut acc,
                            &row,
                            day,
                            &synth::survey_day(seed, u, day, &agent),
                            false,
                        ),
                    }
                }
                continue;
            }
            for &s in info.original_skills.iter() {
                let row = Row {
                    user: Some(u),
                    skill: Some(s),
                };
                let queue_row = Row {
                    user: None,
                    skill: Some(s),
                };
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

    fn render(&self, acc: &Acc) -> Value {
        let q = self.query;
        let mut results = Vec::new();
        for (key, buckets) in acc {
            let mut data = Vec::new();
            for (bucket, stats) in buckets {
                let metrics: Vec<Value> = q
                    .metrics
                    .iter()
                    .zip(stats)
                    .filter(|(_, s)| s.count > 0)
                    .map(|(name, s)| render_metric(name, s))
                    .collect();
                if metrics.is_empty() {
                    continue;
                }
                let (from, to) = match q.granularity {
                    Some(g) => {
                        let from = q.start + g * (*bucket as i32);
                        (from, (from + g).min(q.end))
                    }
                    None => (q.start, q.end),
                };
                data.push(json!({
                    "interval": format!("{}/{}", iso(from), iso(to)),
                    "metrics": metrics,
                }));
            }
            if data.is_empty() {
                continue;
            }
            let mut group = Map::new();
            if let Some(u) = key.user {
                group.insert(
                    "userId".into(),
                    json!(self.org.users[u as usize].id.to_string()),
                );
            }
            if let Some(s) = key.skill {
                group.insert(
                    "requestedRoutingSkillId".into(),
                    json!(self.org.skills[s as usize].id.to_string()),
                );
            }
            if key.media {
                group.insert("mediaType".into(), json!("voice"));
            }
            results.push(json!({ "group": group, "data": data }));
        }
        json!({ "results": results })
    }
}

/// `n*` counters carry only `count`; timers and observations carry the full summary.
fn render_metric(name: &str, s: &Stat) -> Value {
    let stats = if name.starts_with('n') {
        json!({ "count": s.count })
    } else {
        json!({ "max": s.max, "min": s.min, "count": s.count, "sum": s.sum })
    };
    json!({ "metric": name, "stats": stats })
}

/// Answers a validated query.
/// The whole UTC days inside `[start, end)` that have ended by `now`.
pub fn days_with_data(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> std::ops::Range<i64> {
    whole_days(start, end.min(now))
}

/// Answers `query` as the org stood at `now` (days after it have no data yet).
pub fn answer(kind: Kind, org: &Org, query: &Query, now: DateTime<Utc>) -> Value {
    let engine = Engine {
        org,
        query,
        days: days_with_data(query.start, query.end, now),
        sources: sources(kind, &query.metrics),
    };
    let acc = engine.run(kind);
    engine.render(&acc)
}

/// The conversation numbers of one (agent, skill) pair over the given days: a `Stat` per
/// entry of [`CONV_METRICS`]. `None` for an unknown or never-held pair.
pub fn pair_totals(
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
    fn whole_days_excludes_partial_days() {
        let t = |d, h| {
            Utc.with_ymd_and_hms(2026, 5, d, h, 0, 0)
                .single()
                .unwrap_or_default()
        };
        assert_eq!(whole_days(t(1, 0), t(3, 0)).count(), 2);
        assert_eq!(whole_days(t(1, 1), t(3, 0)).count(), 1);
        assert_eq!(whole_days(t(1, 1), t(1, 5)).count(), 0);
    }
}
