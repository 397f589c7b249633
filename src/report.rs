//! The cycle summary: a table for people, JSON for machines.

use crate::genesys::StatsSnapshot;
use crate::plan::BreakerTrip;
use crate::text::{printable, Printable as P};
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
    /// planned / applied / conflict / failed / skipped / held …
    pub status: String,
    pub alert: bool,
    pub reason: String,
}

/// Alerts sent by a cycle.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AlertSummary {
    pub over_threshold: usize,
    pub workitems_created: usize,
    pub workitems_existing: usize,
    pub workitems_failed: usize,
    /// `None` when the webhook is off; `Some("ok")` or the error.
    pub webhook: Option<String>,
}

/// The summary of one cycle.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CycleReport {
    pub run_id: i64,
    pub mode: String,
    /// `ok`, `dry_run`, `breaker`, `partial` (some writes or alerts failed, or writes were
    /// stopped), `failed`.
    pub outcome: String,
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
    pub alerts: AlertSummary,
    pub api_calls_total: u64,
    pub api: StatsSnapshot,
    pub changes: Vec<ChangeLine>,
    pub error: Option<String>,
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
        let a = &self.alerts;
        let _ = writeln!(
            out,
            "alerts: {} over threshold | workitems created {}, existing {}, failed {} | webhook {}",
            a.over_threshold,
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
                    P(&c.status),
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
    pub fn digest_text(&self) -> String {
        let mut text = format!(
            "skill-tuner run {} ({}): {} — {} agents changed ({} up, {} down), {} conflicts, {} failed, {} held for review",
            self.run_id, self.mode, self.outcome, self.agents_changed, self.skills_up, self.skills_down, self.conflicts, self.failed, self.held_for_review
        );
        if let Some(b) = &self.breaker {
            let _ = write!(text, "\nBREAKER ({}): {}", b.rule, P(&b.detail));
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

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
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
                status: "applied".into(),
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
