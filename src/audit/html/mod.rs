//! `report --html`: one run as a single self-contained HTML page — the proficiency
//! distribution per skill before and after, the changes by outcome and by what drove them,
//! what was left alone and why, conflicts and holds, skill-group crossings, and how each skill
//! is routed.
//!
//! Self-contained means no network at all when it is opened: styles are inline, charts are
//! inline SVG ([`svg`]), and there is no script. Every text that came from the org or the
//! ledger (agent and skill names, details) is escaped, so a name cannot become markup.

mod page;
pub mod svg;

use super::AuditError;
use crate::cycle::plan::{half_star, SkillDistribution, HALF_STARS};
use crate::cycle::routing::SkillRouting;
use crate::cycle::skillgroups::SkillGroupReport;
use crate::history::{ChangeRecord, ChangeStatus, EffectDay, Ledger, RunMode, RunRecord};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The counts a cycle records with its run (the subset the page shows). Every field has a
/// default: runs recorded by older versions lack the newer ones, and the page says so.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RunSummary {
    pub agents_considered: usize,
    pub agents_changed: usize,
    pub skills_up: usize,
    pub skills_down: usize,
    pub unchanged: usize,
    pub skipped: BTreeMap<String, usize>,
    pub conflicts: usize,
    pub failed: usize,
    pub held_for_review: usize,
    pub approved_applied: usize,
    pub breaker: Option<Breaker>,
    pub case_mix: bool,
    pub routing: Vec<SkillRouting>,
    pub distribution: Vec<SkillDistribution>,
    /// `None` for runs recorded before skill groups were checked.
    pub skill_groups: Option<SkillGroupReport>,
    pub api_calls: u64,
    pub error: Option<String>,
}

/// Why the breaker refused the run.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Breaker {
    pub rule: String,
    pub detail: String,
}

/// Everything the page shows, gathered from the ledger.
#[derive(Debug, Clone)]
pub struct RunPage {
    pub run: RunRecord,
    pub summary: RunSummary,
    pub changes: Vec<ChangeRecord>,
    /// Per skill, in the order the run recorded them.
    pub skills: Vec<SkillView>,
    /// Whether "after" means the changes applied (a real run) or planned (a dry run).
    pub after_is_planned: bool,
    /// The experiment's daily estimates up to the run's day, per judged metric (empty
    /// without an experiment).
    pub effect: Vec<MetricSeries>,
}

/// One judged metric's estimate day by day, and the latest verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    pub metric: String,
    pub unit: String,
    pub points: Vec<svg::BandPoint>,
    pub verdict: Option<String>,
}

/// One skill's before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillView {
    pub skill: String,
    pub before: Vec<u32>,
    pub after: Vec<u32>,
    pub up: usize,
    pub down: usize,
    pub routing: Option<SkillRouting>,
}

/// The run `run_id`, or the latest cycle (not a rollback) when `None`.
pub fn run_page(ledger: &Ledger, run_id: Option<i64>) -> Result<RunPage, AuditError> {
    let run = match run_id {
        Some(id) => ledger.run(id)?,
        None => ledger
            .all_runs()?
            .into_iter()
            .rev()
            .find(|r| r.mode != RunMode::Rollback && r.finished_at.is_some())
            .ok_or_else(|| AuditError::Refused("no finished cycle in the ledger yet".into()))?,
    };
    if run.mode == RunMode::Rollback {
        return Err(AuditError::Refused(format!(
            "run {} is a rollback; the report shows cycles (`show {}` lists what it restored)",
            run.id, run.id
        )));
    }
    let summary: RunSummary = match &run.summary {
        Some(value) => serde_json::from_value(value.clone()).map_err(|e| {
            AuditError::Refused(format!(
                "run {}'s recorded summary cannot be read: {e}",
                run.id
            ))
        })?,
        None => RunSummary::default(),
    };
    let changes = ledger.changes(run.id)?;
    let after_is_planned = run.mode == RunMode::Plan;
    let skills = skill_views(&summary, &changes, after_is_planned);
    let through = run.started_at.get(..10).unwrap_or("").to_string();
    let effect = effect_series(&ledger.effect_days()?, &through);
    Ok(RunPage {
        run,
        summary,
        changes,
        skills,
        after_is_planned,
        effect,
    })
}

/// The page for `run_id` (or the latest cycle) as one HTML document.
pub fn html_report(ledger: &Ledger, run_id: Option<i64>) -> Result<String, AuditError> {
    Ok(page::render(&run_page(ledger, run_id)?))
}

/// "After" is "before" with each change that took effect moved from its old half star to
/// its new one: applied changes for a real run, planned ones for a dry run.
fn skill_views(
    summary: &RunSummary,
    changes: &[ChangeRecord],
    after_is_planned: bool,
) -> Vec<SkillView> {
    let took_effect = |c: &ChangeRecord| {
        c.status == ChangeStatus::Applied || (after_is_planned && c.status == ChangeStatus::Planned)
    };
    summary
        .distribution
        .iter()
        .map(|d| {
            let mut before = d.half_stars.clone();
            before.resize(HALF_STARS, 0);
            let mut after = before.clone();
            let (mut up, mut down) = (0, 0);
            for c in changes
                .iter()
                .filter(|c| c.skill_name == d.skill && took_effect(c))
            {
                let from = half_star(c.before);
                if after[from] > 0 {
                    after[from] -= 1;
                }
                after[half_star(c.after)] += 1;
                if c.after > c.before {
                    up += 1;
                } else if c.after < c.before {
                    down += 1;
                }
            }
            SkillView {
                skill: d.skill.clone(),
                before,
                after,
                up,
                down,
                routing: summary.routing.iter().find(|r| r.skill == d.skill).cloned(),
            }
        })
        .collect()
}

/// The estimates recorded day by day (`effect_days`) up to `through` (a `YYYY-MM-DD` day),
/// per metric in the order the estimates list them. A day recorded twice (two salts) keeps
/// the later salt's estimate, the one in force.
fn effect_series(days: &[EffectDay], through: &str) -> Vec<MetricSeries> {
    let mut out: Vec<MetricSeries> = Vec::new();
    for day in days.iter().filter(|d| d.day.as_str() <= through) {
        let Some(metrics) = day.report.get("metrics").and_then(|m| m.as_array()) else {
            continue;
        };
        for m in metrics {
            let (Some(name), Some(estimate), Some(low), Some(high)) = (
                m.get("metric").and_then(|v| v.as_str()),
                m.get("estimate").and_then(|v| v.as_f64()),
                m.get("ci_low").and_then(|v| v.as_f64()),
                m.get("ci_high").and_then(|v| v.as_f64()),
            ) else {
                continue;
            };
            let series = match out.iter_mut().position(|s| s.metric == name) {
                Some(i) => &mut out[i],
                None => {
                    out.push(MetricSeries {
                        metric: name.to_string(),
                        unit: m
                            .get("unit")
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                            .to_string(),
                        points: Vec::new(),
                        verdict: None,
                    });
                    let last = out.len() - 1;
                    &mut out[last]
                }
            };
            let point = svg::BandPoint {
                label: day.day.clone(),
                estimate,
                low,
                high,
            };
            match series.points.last_mut() {
                Some(last) if last.label == point.label => *last = point,
                _ => series.points.push(point),
            }
            series.verdict = m
                .get("verdict")
                .and_then(|v| v.get("text"))
                .and_then(|v| v.as_str())
                .map(str::to_string);
        }
    }
    out
}

/// What pulled a change hardest toward its new value: for a promotion the component whose
/// weighted score lies furthest above the old proficiency's, for a demotion furthest below.
/// `None` when the change carries no score (a rollback's row, an older ledger).
pub fn driver(change: &ChangeRecord) -> Option<String> {
    #[derive(Deserialize)]
    struct Component {
        name: String,
        normalized: f64,
        weight: f64,
    }
    #[derive(Deserialize)]
    struct Score {
        components: Vec<Component>,
    }
    let score: Score = serde_json::from_str(change.score.as_ref()?.get()).ok()?;
    let level = change.before / 5.0;
    let sign = if change.after >= change.before {
        1.0
    } else {
        -1.0
    };
    score
        .components
        .into_iter()
        .map(|c| (c.weight * (c.normalized - level) * sign, c.name))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name)
}

/// Escapes text for HTML element content and attribute values; control and bidi characters
/// are shown as escapes first, as in the text reports (a name cannot reorder a table row).
pub fn esc(text: &str) -> String {
    let text = crate::text::printable(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::ScoreJson;

    fn change(skill: &str, before: f64, after: f64, status: ChangeStatus) -> ChangeRecord {
        ChangeRecord {
            change_id: format!("{skill}{before}{after}"),
            run_id: 1,
            agent_id: "a".into(),
            agent_name: "A".into(),
            skill_id: skill.into(),
            skill_name: skill.into(),
            before,
            after,
            target: Some(after),
            score: ScoreJson::parse(
                r#"{"components":[{"name":"handle_time","normalized":0.9,"weight":0.5},{"name":"transfer_rate","normalized":0.1,"weight":0.5}],"combined":0.5,"target":2.5,"interactions":40}"#
                    .into(),
            ),
            reason: String::new(),
            status,
            correlation_id: None,
            detail: None,
            workitem_id: None,
        }
    }

    #[test]
    fn after_moves_only_the_changes_that_took_effect() {
        let summary = RunSummary {
            distribution: vec![SkillDistribution {
                skill: "Billing".into(),
                half_stars: vec![0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0],
            }],
            ..RunSummary::default()
        };
        let changes = vec![
            change("Billing", 3.0, 4.0, ChangeStatus::Applied),
            change("Billing", 3.0, 2.5, ChangeStatus::Conflict),
            change("Billing", 3.0, 2.0, ChangeStatus::Planned),
        ];
        let real = skill_views(&summary, &changes, false);
        assert_eq!(real[0].after, vec![0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 0]);
        assert_eq!((real[0].up, real[0].down), (1, 0));
        let dry = skill_views(&summary, &changes, true);
        assert_eq!(dry[0].after, vec![0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0]);
        assert_eq!(dry[0].before, summary.distribution[0].half_stars);
    }

    #[test]
    fn the_driver_is_the_component_pulling_hardest_in_the_changes_direction() {
        // At 2.5 (0.5 of the scale): handle time (0.9) pulls up, transfers (0.1) down.
        let up = change("s", 2.5, 3.0, ChangeStatus::Applied);
        assert_eq!(driver(&up).as_deref(), Some("handle_time"));
        let down = change("s", 2.5, 2.0, ChangeStatus::Applied);
        assert_eq!(driver(&down).as_deref(), Some("transfer_rate"));
        let mut bare = down.clone();
        bare.score = None;
        assert_eq!(driver(&bare), None);
    }

    #[test]
    fn effect_series_follow_the_days_up_to_the_run() {
        let day = |d: &str, est: f64| EffectDay {
            salt: "s".into(),
            day: d.into(),
            run_id: None,
            report: serde_json::json!({"metrics": [
                {"metric": "handle_time", "unit": "s", "estimate": est, "ci_low": est - 1.0, "ci_high": est + 1.0,
                 "verdict": {"kind": "no_detectable_effect_yet", "text": format!("day {d}")}},
                {"metric": "csat", "unit": "points", "estimate": 0.5, "ci_low": 0.0, "ci_high": 1.0,
                 "verdict": {"kind": "helps", "text": "helps"}}
            ]}),
            recorded_at: String::new(),
        };
        let days = vec![
            day("2027-05-01", -2.0),
            day("2027-05-02", -3.0),
            day("2027-05-03", -9.0),
        ];
        let series = effect_series(&days, "2027-05-02");
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].metric, "handle_time");
        assert_eq!(series[0].unit, "s");
        let estimates: Vec<f64> = series[0].points.iter().map(|p| p.estimate).collect();
        assert_eq!(
            estimates,
            vec![-2.0, -3.0],
            "the day after the run is left out"
        );
        assert_eq!(series[0].verdict.as_deref(), Some("day 2027-05-02"));
        assert!(effect_series(&[], "2027-05-02").is_empty());
    }

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            esc(r#"<img src=x onerror="a">&'"#),
            "&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#39;"
        );
        assert_eq!(esc("a\u{1b}[31m\u{202e}"), "a\\x1b[31m\\u{202e}");
    }
}
