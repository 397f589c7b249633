//! What the estimate rests on, from the analytics API alone: per period (the baseline, then
//! the experiment in intervals of at most 31 days) one conversation query grouped by
//! requested skill and queue (`tHandle`, `nTransferred`, `oServiceLevel`), one survey query
//! grouped by requested skill and one evaluation query grouped by queue. No per-agent
//! query: the units are skills, so a few calls cover any number of agents.
//!
//! Evaluations carry no requested skill in the API, so quality is judged by queue: a queue
//! whose requested skills are all tuned is in the tuned arm, all held out in the held-out
//! arm, and a queue mixing both is left out.

use super::{Arm, Assignment, Metric, Observations, UnitObs};
use crate::genesys::models::{AggregateResponse, AggregationQuery, Clause, QueryFilter};
use crate::genesys::{AggregateSource, ApiError, GenesysClient};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// The longest interval one aggregate query may span.
pub const MAX_QUERY_DAYS: i64 = 31;

/// `[from, to)` of UTC days as an ISO-8601 interval.
pub fn interval(from: NaiveDate, to: NaiveDate) -> String {
    let at =
        |d: NaiveDate| -> DateTime<Utc> { d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() };
    format!(
        "{}/{}",
        at(from).format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        at(to).format("%Y-%m-%dT%H:%M:%S%.3fZ")
    )
}

/// `[from, to)` cut into intervals of at most [`MAX_QUERY_DAYS`].
pub fn chunks(from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut a = from;
    while a < to {
        let b = (a + Duration::days(MAX_QUERY_DAYS)).min(to);
        out.push((a, b));
        a = b;
    }
    out
}

/// An aggregate query over everyone (no user filter), optionally by media type.
pub fn query(
    interval: String,
    group_by: &[&str],
    metrics: &[&str],
    media_types: &[String],
) -> AggregationQuery {
    let filter = (!media_types.is_empty()).then(|| QueryFilter {
        kind: "and".into(),
        predicates: Vec::new(),
        clauses: vec![Clause::any_of("mediaType", media_types)],
    });
    AggregationQuery {
        interval,
        granularity: None,
        time_zone: None,
        group_by: group_by.iter().map(|s| s.to_string()).collect(),
        filter,
        metrics: metrics.iter().map(|s| s.to_string()).collect(),
    }
}

/// `(sum, count)` of a metric summed over a group's buckets; for an observation
/// (`oServiceLevel`) `(numerator, denominator)`.
pub fn metric_sums(
    result: &crate::genesys::models::AggregateResult,
    name: &str,
) -> Option<(f64, f64)> {
    let mut acc: Option<(f64, f64)> = None;
    for m in result
        .data
        .iter()
        .flat_map(|d| &d.metrics)
        .filter(|m| m.metric == name)
    {
        let e = acc.get_or_insert((0.0, 0.0));
        match (m.stats.numerator, m.stats.denominator) {
            (Some(num), Some(den)) => {
                e.0 += num;
                e.1 += den;
            }
            _ => {
                e.0 += m.stats.sum.unwrap_or(0.0);
                e.1 += m.stats.count.unwrap_or(0.0);
            }
        }
    }
    acc
}

/// `(sum, n)` per period.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    pre: (f64, f64),
    post: (f64, f64),
}

impl Sums {
    fn add(&mut self, post: bool, sum: f64, n: f64) {
        let slot = if post { &mut self.post } else { &mut self.pre };
        slot.0 += sum;
        slot.1 += n;
    }
}

/// Sums of every metric by unit, as the queries answer.
#[derive(Debug, Default)]
struct Accumulator {
    by_skill: BTreeMap<Metric, BTreeMap<String, Sums>>,
    by_queue: BTreeMap<String, Sums>,
    queue_skills: BTreeMap<String, BTreeSet<String>>,
}

impl Accumulator {
    fn add_conversations(&mut self, r: &AggregateResponse, post: bool) {
        for g in &r.results {
            let Some(skill) = g.group.get("requestedRoutingSkillId") else {
                continue;
            };
            if let Some(queue) = g.group.get("queueId") {
                self.queue_skills
                    .entry(queue.clone())
                    .or_default()
                    .insert(skill.clone());
            }
            let mut add = |m: Metric, sum: f64, n: f64| {
                self.by_skill
                    .entry(m)
                    .or_default()
                    .entry(skill.clone())
                    .or_default()
                    .add(post, sum, n);
            };
            if let Some((sum, n)) = metric_sums(g, "tHandle").filter(|(_, n)| *n > 0.0) {
                add(Metric::HandleTime, sum, n);
                let transferred = metric_sums(g, "nTransferred").map_or(0.0, |(_, c)| c);
                add(Metric::TransferRate, transferred, n);
            }
            if let Some((num, den)) = metric_sums(g, "oServiceLevel").filter(|(_, d)| *d > 0.0) {
                add(Metric::ServiceLevel, num, den);
            }
        }
    }

    fn add_surveys(&mut self, r: &AggregateResponse, post: bool) {
        for g in &r.results {
            let Some(skill) = g.group.get("requestedRoutingSkillId") else {
                continue;
            };
            if let Some((sum, n)) = metric_sums(g, "oSurveyTotalScore").filter(|(_, n)| *n > 0.0) {
                self.by_skill
                    .entry(Metric::Csat)
                    .or_default()
                    .entry(skill.clone())
                    .or_default()
                    .add(post, sum, n);
            }
        }
    }

    fn add_evaluations(&mut self, r: &AggregateResponse, post: bool) {
        for g in &r.results {
            let Some(queue) = g.group.get("queueId") else {
                continue;
            };
            if let Some((sum, n)) = metric_sums(g, "oTotalScore").filter(|(_, n)| *n > 0.0) {
                self.by_queue
                    .entry(queue.clone())
                    .or_default()
                    .add(post, sum, n);
            }
        }
    }

    fn observations(self, assignment: &Assignment, days: u32) -> Observations {
        let obs = |unit: &str, arm: Arm, s: &Sums| UnitObs {
            unit: unit.to_string(),
            arm,
            pre_sum: s.pre.0,
            pre_n: s.pre.1,
            post_sum: s.post.0,
            post_n: s.post.1,
        };
        let mut by_metric: BTreeMap<Metric, Vec<UnitObs>> = BTreeMap::new();
        for (metric, units) in &self.by_skill {
            by_metric.insert(
                *metric,
                units
                    .iter()
                    .map(|(skill, s)| obs(skill, assignment.arm(skill), s))
                    .collect(),
            );
        }
        let quality = self
            .by_queue
            .iter()
            .filter_map(|(queue, s)| {
                let skills = self.queue_skills.get(queue)?;
                let arms: BTreeSet<Arm> = skills.iter().map(|k| assignment.arm(k)).collect();
                let arm = (arms.len() == 1).then(|| arms.first().copied()).flatten()?;
                Some(obs(queue, arm, s))
            })
            .collect();
        by_metric.insert(Metric::Quality, quality);
        Observations { days, by_metric }
    }
}

/// Reads the baseline and the experiment's ended days (before `today`) and returns the sums
/// per unit of every metric in `metrics`.
pub async fn observations(
    client: &GenesysClient,
    assignment: &Assignment,
    baseline_days: u32,
    today: NaiveDate,
    metrics: &[Metric],
    media_types: &[String],
) -> Result<Observations, ApiError> {
    let start = assignment.start;
    let mut periods: Vec<(NaiveDate, NaiveDate, bool)> = vec![(
        start - Duration::days(i64::from(baseline_days)),
        start.min(today),
        false,
    )];
    periods.extend(chunks(start, today).into_iter().map(|(a, b)| (a, b, true)));
    let wants = |m: Metric| metrics.contains(&m);
    let mut acc = Accumulator::default();
    for (from, to, post) in periods {
        if from >= to {
            continue;
        }
        let iv = interval(from, to);
        // Conversations always: they also say which skills each queue serves.
        let conv = client
            .aggregates(
                AggregateSource::Conversations,
                &query(
                    iv.clone(),
                    &["requestedRoutingSkillId", "queueId"],
                    &["tHandle", "nTransferred", "oServiceLevel"],
                    media_types,
                ),
            )
            .await?;
        acc.add_conversations(&conv, post);
        if wants(Metric::Csat) {
            let r = client
                .aggregates(
                    AggregateSource::Surveys,
                    &query(
                        iv.clone(),
                        &["requestedRoutingSkillId"],
                        &["oSurveyTotalScore"],
                        media_types,
                    ),
                )
                .await?;
            acc.add_surveys(&r, post);
        }
        if wants(Metric::Quality) {
            let r = client
                .aggregates(
                    AggregateSource::Evaluations,
                    &query(iv, &["queueId"], &["oTotalScore"], media_types),
                )
                .await?;
            acc.add_evaluations(&r, post);
        }
    }
    let days = u32::try_from((today - start).num_days().max(0)).unwrap_or(0);
    Ok(acc.observations(assignment, days))
}
