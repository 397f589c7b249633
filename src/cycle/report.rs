//! Step 6, report: the cycle summary — a table for people, JSON for machines — built up as
//! the steps go, and the counts recorded with the run.

use super::plan::{BreakerTrip, Plan, SkillDistribution};
use super::routing::{RoutingEffect, SkillRouting};
use super::rows::{over_threshold, PlannedChange};
use super::skillgroups::SkillGroupReport;
use crate::config::AlertSettings;
use crate::genesys::StatsSnapshot;
use crate::history::{ChangeStatus, RunMode, RunOutcome};
use crate::text::{clip, printable, Printable as P};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One change line of the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChangeLine {
    pub change_id: String,
    pub agent_id: String,
    pub agent: String,
    pub skill: String,
    pub current: f64,
    pub target: Option<f64>,
    pub proposed: f64,
    pub status: ChangeStatus,
    pub alert: bool,
    pub reason: String,
}

/// Alerts sent by a cycle.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AlertSummary {
    pub over_threshold: usize,
    /// Changes alerted for a skill-group crossing alone (under the threshold; applied, or
    /// held with `guard.skill_group_crossings = "hold"`).
    pub skill_group_crossings: usize,
    pub workitems_created: usize,
    pub workitems_existing: usize,
    pub workitems_failed: usize,
    /// `None` when the webhook is off; `Some("ok")` or the error.
    pub webhook: Option<String>,
}

/// What [`AlertSummary::webhook`] says of a digest that was delivered.
pub(crate) const WEBHOOK_OK: &str = "ok";

/// The summary of one cycle.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CycleReport {
    pub run_id: i64,
    pub mode: RunMode,
    /// `partial` when some writes or alerts failed, `interrupted` when a shutdown stopped the
    /// writes.
    pub outcome: RunOutcome,
    pub interval: String,
    pub started_at: String,
    pub duration_ms: u64,
    /// Time spent scoring and planning (CPU-bound, single thread).
    pub plan_ms: u64,
    pub agents_considered: usize,
    pub agents_changed: usize,
    pub skills_up: usize,
    pub skills_down: usize,
    pub unchanged: usize,
    pub skipped: BTreeMap<String, usize>,
    pub conflicts: usize,
    /// Conflicts whose current value is exactly what this policy would itself have written:
    /// many of them mean another tuner writes to the org, not people.
    pub conflicts_matching_policy: usize,
    pub failed: usize,
    pub held_for_review: usize,
    pub approved_applied: usize,
    pub threshold_crossings: usize,
    pub breaker: Option<BreakerTrip>,
    /// The holdout experiment, when configured: held-out skills, the effect, a pause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<crate::experiment::ExperimentStatus>,
    /// Whether handle time and transfers were scored against each queue's work (case mix).
    pub case_mix: bool,
    /// Per in-scope skill: its queues, their evaluation methods, and whether it was tuned.
    pub routing: Vec<SkillRouting>,
    /// Per in-scope skill: agents per half star before this run's changes.
    pub distribution: Vec<SkillDistribution>,
    /// The skill groups read, and every agent the plan moves into or out of one.
    pub skill_groups: SkillGroupReport,
    pub alerts: AlertSummary,
    pub api_calls_total: u64,
    pub api: StatsSnapshot,
    pub changes: Vec<ChangeLine>,
    pub error: Option<String>,
}

/// Filled in by the steps, in order.
impl CycleReport {
    /// What the plan says, before anything is written.
    pub(super) fn summarise_plan(
        &mut self,
        plan: &Plan,
        rows: &[PlannedChange],
        alerts: &AlertSettings,
    ) {
        let records = || rows.iter().map(|r| &r.record);
        self.agents_considered = plan.agents_considered;
        self.agents_changed = plan.agents_changing();
        self.skills_up = records().filter(|r| r.after > r.before).count();
        self.skills_down = records().filter(|r| r.after < r.before).count();
        self.held_for_review = records().filter(|r| r.status == ChangeStatus::Held).count();
        let blocked = rows.iter().filter(|r| r.blocked).count();
        if blocked > 0 {
            self.skipped.insert("skill_group_crossing".into(), blocked);
        }
        self.alerts.over_threshold = records()
            .filter(|r| over_threshold(alerts, r.before, r.target))
            .count();
        self.threshold_crossings = plan.threshold_crossings;
        self.breaker = plan.breaker.clone();
        self.case_mix = plan.case_mix;
        self.routing = plan.routing.clone();
        self.distribution = plan.distribution.clone();
        for (label, n) in plan.keep_counts() {
            if matches!(*label, "dead_band" | "at_target") {
                self.unchanged += n;
            } else {
                self.skipped.insert(label.to_string(), *n);
            }
        }
    }

    /// How the writes ended: conflicts, failures, and the outcome so far.
    pub(super) fn count_settled(&mut self, rows: &[PlannedChange], matching_policy: usize) {
        let count = |status| {
            rows.iter()
                .filter(|r| r.record.status == status && !r.blocked)
                .count()
        };
        self.conflicts = count(ChangeStatus::Conflict);
        self.conflicts_matching_policy = matching_policy;
        self.failed = count(ChangeStatus::Failed);
        // Agents skipped here were stopped by a shutdown (before their write, or while it
        // waited): the run was interrupted, whatever else happened.
        self.outcome = if count(ChangeStatus::Skipped) > 0 {
            RunOutcome::Interrupted
        } else if self.failed > 0 {
            RunOutcome::Partial
        } else {
            RunOutcome::Ok
        };
    }

    /// An alert that never reached a supervisor (a workitem, the digest) is a part of the
    /// cycle that failed: the cycle is `partial`, not `ok`.
    pub(super) fn partial_if_alerts_failed(&mut self) {
        let failed = self.alerts.workitems_failed > 0
            || self
                .alerts
                .webhook
                .as_deref()
                .is_some_and(|w| w != WEBHOOK_OK);
        if failed && self.outcome == RunOutcome::Ok {
            self.outcome = RunOutcome::Partial;
        }
    }

    /// The change lines, made from the rows (consumed: their strings move, not copy).
    pub(super) fn set_lines(&mut self, rows: Vec<PlannedChange>, alerts: &AlertSettings) {
        self.changes = rows
            .into_iter()
            .map(|PlannedChange { record: r, .. }| ChangeLine {
                alert: over_threshold(alerts, r.before, r.target),
                status: r.status,
                reason: match r.detail {
                    Some(d) => format!("{} [{d}]", r.reason),
                    None => r.reason,
                },
                change_id: r.change_id,
                agent_id: r.agent_id,
                agent: r.agent_name,
                skill: r.skill_name,
                current: r.before,
                target: r.target,
                proposed: r.after,
            })
            .collect();
    }

    /// The counts recorded with the run (no per-change lines; those are in `changes`).
    pub(super) fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "agents_considered": self.agents_considered,
            "agents_changed": self.agents_changed,
            "skills_up": self.skills_up,
            "skills_down": self.skills_down,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "conflicts": self.conflicts,
            "conflicts_matching_policy": self.conflicts_matching_policy,
            "failed": self.failed,
            "held_for_review": self.held_for_review,
            "approved_applied": self.approved_applied,
            "skill_group_crossings": self.skill_groups.crossings.len(),
            "breaker": self.breaker,
            "case_mix": self.case_mix,
            "routing": self.routing,
            "distribution": self.distribution,
            "skill_groups": self.skill_groups,
            "experiment": self.experiment.as_ref().map(|e| serde_json::json!({
                "salt": e.salt,
                "held_out": e.held_out,
                "paused": e.paused,
            })),
            "alerts": self.alerts,
            "api_calls": self.api_calls_total,
            "error": self.error,
        })
    }
}

/// Queues named per skill line before "+N more".
const QUEUES_SHOWN: usize = 4;

/// One line per in-scope skill: the queues that requested it with their methods, and what
/// that means for tuning.
fn render_routing(out: &mut String, case_mix: bool, routing: &[SkillRouting]) {
    let _ = writeln!(
        out,
        "scoring: {} | skills by queue (method, interactions):",
        if case_mix {
            "case mix (handle time and transfers against each queue's work)"
        } else {
            "absolute ramps"
        }
    );
    for r in routing {
        let mut queues: Vec<String> = r
            .queues
            .iter()
            .take(QUEUES_SHOWN)
            .map(|q| {
                format!(
                    "{} ({}, {})",
                    printable(q.queue.as_deref().unwrap_or(&q.queue_id)),
                    q.method.map_or("?", |m| m.as_str()),
                    q.interactions
                )
            })
            .collect();
        if r.queues.len() > QUEUES_SHOWN {
            queues.push(format!("+{} more", r.queues.len() - QUEUES_SHOWN));
        }
        if r.without_queue > 0 {
            queues.push(format!("no queue ({})", r.without_queue));
        }
        let verdict = match (r.effect, r.tuned) {
            (RoutingEffect::NoRoutingEffect, false) => "no routing effect: not tuned",
            (RoutingEffect::NoRoutingEffect, true) => {
                "no routing effect: tuned (tune_without_routing_effect)"
            }
            (RoutingEffect::Unknown, _) => "no queue data: tuned",
            (RoutingEffect::Matched, _) => "skills matched, proficiency not ranked: tuned",
            (RoutingEffect::Ranked, _) => "tuned",
        };
        let _ = writeln!(
            out,
            "  {:<20} {} — {verdict}",
            clip(&printable(&r.skill), 20),
            if queues.is_empty() {
                "-".to_string()
            } else {
                queues.join(", ")
            }
        );
    }
}

/// Crossing lines shown before "… and N more".
const CROSSINGS_SHOWN: usize = 10;

/// The skill groups read and the crossings found, one line each.
fn render_skill_groups(out: &mut String, g: &SkillGroupReport) {
    if !g.checked {
        for note in &g.notes {
            let _ = writeln!(out, "skill groups: {}", P(note));
        }
        return;
    }
    let leaving = g
        .crossings
        .iter()
        .filter(|c| c.direction == super::skillgroups::Direction::Leaves)
        .count();
    let _ = writeln!(
        out,
        "skill groups: {} read | crossings {} ({} leave, {} join) | guard {} | proficiency vs whole-number conditions: {}",
        g.groups,
        g.crossings.len(),
        leaving,
        g.crossings.len() - leaving,
        g.guard.as_str(),
        g.proficiency_match.as_str()
    );
    for note in &g.notes {
        let _ = writeln!(out, "  note: {}", P(note));
    }
    for c in g.crossings.iter().take(CROSSINGS_SHOWN) {
        let moves: Vec<String> = c
            .changes
            .iter()
            .map(|m| format!("{} {} → {:.2}", printable(&m.skill), fmt_opt(m.from), m.to))
            .collect();
        let _ = writeln!(
            out,
            "  {:<24} {}: {} [{}]",
            clip(&printable(&c.agent), 24),
            P(&c.describe()),
            moves.join(", "),
            match c.action {
                crate::config::CrossingGuard::Warn => "applied, supervisor told",
                crate::config::CrossingGuard::Hold => "held for review",
                crate::config::CrossingGuard::Block => "blocked",
            }
        );
    }
    if g.crossings.len() > CROSSINGS_SHOWN {
        let _ = writeln!(
            out,
            "  … and {} more (use --json for all)",
            g.crossings.len() - CROSSINGS_SHOWN
        );
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

impl CycleReport {
    /// The human form: a summary, then the changes. Names, reasons and errors pass through
    /// [`printable`]: they come from the org or the API, and a terminal would obey them.
    pub fn render_table(&self, max_rows: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "run {} ({}) — outcome: {}   window {}",
            self.run_id, self.mode, self.outcome, self.interval
        );
        if let Some(b) = &self.breaker {
            let _ = writeln!(
                out,
                "BREAKER TRIPPED ({}): {} — nothing was applied",
                b.rule,
                P(&b.detail)
            );
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "error: {}", P(e));
        }
        if let Some(x) = &self.experiment {
            out.push_str(&x.render());
        }
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            out,
            "agents considered {}, changing {} | skills up {}, down {}, unchanged {} | skipped: {} | conflicts {}{}, failed {}, held for review {}, approved+applied {}",
            self.agents_considered,
            self.agents_changed,
            self.skills_up,
            self.skills_down,
            self.unchanged,
            if skipped.is_empty() { "none".into() } else { skipped.join(", ") },
            self.conflicts,
            match self.conflicts_matching_policy {
                0 => String::new(),
                n => format!(" ({n} already at this policy's value)"),
            },
            self.failed,
            self.held_for_review,
            self.approved_applied
        );
        render_routing(&mut out, self.case_mix, &self.routing);
        render_skill_groups(&mut out, &self.skill_groups);
        let a = &self.alerts;
        let _ = writeln!(
            out,
            "alerts: {} over threshold{} | workitems created {}, existing {}, failed {} | webhook {}",
            a.over_threshold,
            match a.skill_group_crossings {
                0 => String::new(),
                n => format!(", {n} skill-group crossings"),
            },
            a.workitems_created,
            a.workitems_existing,
            a.workitems_failed,
            P(a.webhook.as_deref().unwrap_or("off"))
        );
        let _ = writeln!(
            out,
            "API calls {} ({} retries, {} × 429) in {:.1} s",
            self.api_calls_total,
            self.api.retries(),
            self.api.with_status("429"),
            self.duration_ms as f64 / 1000.0
        );
        for (endpoint, by_status) in &self.api.calls {
            let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{s}×{n}")).collect();
            let _ = writeln!(out, "  {endpoint:<58} {}", statuses.join(" "));
        }
        if !self.changes.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "{:<24} {:<20} {:>7} {:>7} {:>7}  {:<9} why",
                "agent", "skill", "current", "target", "new", "status"
            );
            for c in self.changes.iter().take(max_rows) {
                let _ = writeln!(
                    out,
                    "{:<24} {:<20} {:>7.2} {:>7} {:>7.2}  {:<9}{} {}",
                    clip(&printable(&c.agent), 24),
                    clip(&printable(&c.skill), 20),
                    c.current,
                    fmt_opt(c.target),
                    c.proposed,
                    c.status,
                    if c.alert { "!" } else { " " },
                    P(&c.reason)
                );
            }
            if self.changes.len() > max_rows {
                let _ = writeln!(
                    out,
                    "… and {} more (use --json for all)",
                    self.changes.len() - max_rows
                );
            }
        }
        out
    }

    /// The one-line digest text for chat webhooks (people read it: names are escaped).
    pub(crate) fn digest_text(&self) -> String {
        let mut text = format!(
            "skill-tuner run {} ({}): {} — {} agents changed ({} up, {} down), {} conflicts, {} failed, {} held for review",
            self.run_id, self.mode, self.outcome, self.agents_changed, self.skills_up, self.skills_down, self.conflicts, self.failed, self.held_for_review
        );
        if let Some(b) = &self.breaker {
            let _ = write!(text, "\nBREAKER ({}): {}", b.rule, P(&b.detail));
        }
        let crossings = &self.skill_groups.crossings;
        if !crossings.is_empty() {
            let _ = write!(
                text,
                "\nskill groups: {} crossings (guard {})",
                crossings.len(),
                self.skill_groups.guard.as_str()
            );
            for c in crossings.iter().take(20) {
                let _ = write!(text, "\n• {} {}", P(&c.agent), P(&c.describe()));
            }
        }
        for c in self.changes.iter().filter(|c| c.alert).take(20) {
            let _ = write!(
                text,
                "\n• {} / {}: {:.2} → {:.2} ({})",
                P(&c.agent),
                P(&c.skill),
                c.current,
                c.proposed,
                c.status
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_messages_from_outside_cannot_break_the_table() {
        let hostile = "X\x1b[2J\u{202e}\r\nFORGED\u{2066}\0";
        let report = CycleReport {
            error: Some(format!("API said {hostile}")),
            alerts: AlertSummary {
                webhook: Some(hostile.into()),
                ..AlertSummary::default()
            },
            changes: vec![ChangeLine {
                change_id: "c".into(),
                agent_id: "a".into(),
                agent: hostile.into(),
                skill: hostile.into(),
                current: 1.0,
                target: Some(2.0),
                proposed: 1.5,
                status: ChangeStatus::Applied,
                alert: true,
                reason: hostile.into(),
            }],
            ..CycleReport::default()
        };
        for text in [report.render_table(10), report.digest_text()] {
            assert!(
                !text
                    .chars()
                    .any(|c| c != '\n' && crate::text::needs_escape(c)),
                "{text:?}"
            );
            assert!(!text.lines().any(|l| l.starts_with("FORGED")), "{text}");
            assert!(text.contains(r"X\x1b[2J"), "{text}");
        }
    }
}
