//! The audit commands' human renderings. Names, reasons and details come from the org or
//! the API and pass through [`Printable`](crate::text::Printable): a terminal would obey
//! their control characters.

use super::{RollbackReport, RunDetail, RunDiff, RunLine};
use crate::history::{RunOutcome, RunTrigger};
use crate::text::Printable as P;
use std::fmt::Write as _;

pub fn render_history(lines: &[RunLine]) -> String {
    if lines.is_empty() {
        return "no runs recorded yet\n".into();
    }
    let mut out = String::new();
    for l in lines {
        let counts = l
            .statuses
            .iter()
            .map(|(s, n)| format!("{} {n}", P(s)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            out,
            "#{:<5} {}  {:<9} {:<8} {:<12} {:>4} changes",
            l.id,
            P(&l.started_at),
            l.mode,
            l.trigger.map_or("-", RunTrigger::as_str),
            l.outcome.map_or("unfinished", RunOutcome::as_str),
            l.changes
        );
        if !counts.is_empty() {
            let _ = write!(out, " ({counts})");
        }
        if let Some(of) = l.rollback_of {
            let _ = write!(out, "  rollback of #{of}");
        }
        out.push('\n');
    }
    out
}

pub fn render_show(detail: &RunDetail) -> String {
    let r = &detail.run;
    let mut out = format!(
        "run #{} ({}, trigger {}), started {}, finished {}, outcome {}, config {}\n",
        r.id,
        r.mode,
        r.trigger.map_or("unknown", RunTrigger::as_str),
        P(&r.started_at),
        P(r.finished_at.as_deref().unwrap_or("-")),
        r.outcome.map_or("unfinished", RunOutcome::as_str),
        P(&r.config_hash)
    );
    if let Some(of) = r.rollback_of {
        let _ = writeln!(out, "a rollback of run #{of}");
    }
    if detail.changes.is_empty() {
        out.push_str("no changes\n");
    }
    for c in &detail.changes {
        let _ = writeln!(
            out,
            "  {:<9} {} / {}: {:.2} -> {:.2}{}",
            c.status.as_str(),
            P(&c.agent_name),
            P(&c.skill_name),
            c.before,
            c.after,
            c.correlation_id
                .as_deref()
                .map(|id| format!("  (correlation id {})", P(id)))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "            why: {}", P(&c.reason));
        if let Some(d) = &c.detail {
            let _ = writeln!(out, "            {}", P(d));
        }
    }
    out
}

pub fn render_diff(diff: &RunDiff) -> String {
    let mut out = format!(
        "run #{} ({}) versus the org now: before -> after (now)\n",
        diff.run.id, diff.run.mode
    );
    if diff.lines.is_empty() {
        out.push_str("no changes\n");
    }
    for l in &diff.lines {
        let _ = writeln!(
            out,
            "  {:<13} {} / {}: {:.2} -> {:.2} (now {})",
            l.status.as_str(),
            P(&l.agent_name),
            P(&l.skill_name),
            l.before,
            l.after,
            l.now.map_or("no such skill".into(), |v| format!("{v:.2}"))
        );
    }
    out
}

pub fn render_rollback(r: &RollbackReport) -> String {
    let mut out = match (r.dry_run, r.run_id) {
        (true, _) => format!(
            "rollback of run #{} (dry run: nothing written or recorded)\n",
            r.rollback_of
        ),
        (false, Some(id)) => format!(
            "rollback of run #{}, recorded as run #{id}: {}\n",
            r.rollback_of, r.outcome
        ),
        (false, None) => format!(
            "rollback of run #{}: {} (no applied changes)\n",
            r.rollback_of, r.outcome
        ),
    };
    let verb = if r.dry_run {
        "would restore"
    } else {
        "restored"
    };
    let _ = writeln!(out, "{verb}: {}", r.restored.len());
    for l in &r.restored {
        let _ = writeln!(
            out,
            "  {} / {}: {:.2} -> {:.2}",
            P(&l.agent_name),
            P(&l.skill_name),
            l.from,
            l.to
        );
    }
    let _ = writeln!(
        out,
        "left alone (changed since by a person or a later run): {}",
        r.left_alone.len()
    );
    for l in &r.left_alone {
        let _ = writeln!(
            out,
            "  {} / {}: run set {:.2}, org now holds {}",
            P(&l.agent_name),
            P(&l.skill_name),
            l.from,
            l.now.map_or("no such skill".into(), |v| format!("{v:.2}"))
        );
    }
    if !r.failed.is_empty() {
        let _ = writeln!(out, "failed: {}", r.failed.len());
        for l in &r.failed {
            let _ = writeln!(
                out,
                "  {} / {}: {}",
                P(&l.agent_name),
                P(&l.skill_name),
                P(l.detail.as_deref().unwrap_or(""))
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::rollback::rollback_line;
    use super::super::{DiffLine, DiffStatus};
    use super::*;
    use crate::history::{ChangeRecord, ChangeStatus, RunMode, RunRecord};
    use std::collections::BTreeMap;

    #[test]
    fn human_renderings_escape_names_details_and_reasons() {
        let hostile = "Eve\x1b]0;pwned\x07\u{202e}\r\nFORGED";
        let change = ChangeRecord {
            change_id: "c".into(),
            run_id: 1,
            agent_id: "a".into(),
            agent_name: hostile.into(),
            skill_id: "s".into(),
            skill_name: hostile.into(),
            before: 2.0,
            after: 3.0,
            target: None,
            score: None,
            reason: hostile.into(),
            status: ChangeStatus::Failed,
            correlation_id: Some(hostile.into()),
            detail: Some(hostile.into()),
            workitem_id: None,
        };
        let run = RunRecord {
            id: 1,
            started_at: "t".into(),
            finished_at: None,
            mode: RunMode::Once,
            trigger: Some(RunTrigger::Http),
            config_hash: "h".into(),
            outcome: Some(RunOutcome::Partial),
            summary: None,
            rollback_of: None,
        };
        let line = rollback_line(&change, Some(3.0), Some(hostile.into()));
        let rollback = RollbackReport {
            rollback_of: 1,
            run_id: Some(2),
            dry_run: false,
            outcome: RunOutcome::Partial,
            restored: vec![line.clone()],
            left_alone: vec![line.clone()],
            failed: vec![line],
        };
        let diff = RunDiff {
            run: run.clone(),
            lines: vec![DiffLine {
                change_id: "c".into(),
                agent_id: "a".into(),
                agent_name: hostile.into(),
                skill_id: "s".into(),
                skill_name: hostile.into(),
                before: 2.0,
                after: 3.0,
                now: None,
                recorded_status: ChangeStatus::Applied,
                status: DiffStatus::ChangedSince,
            }],
        };
        let history_line = RunLine {
            id: 1,
            started_at: "t".into(),
            finished_at: None,
            mode: RunMode::Once,
            trigger: Some(RunTrigger::Http),
            outcome: Some(RunOutcome::Partial),
            rollback_of: None,
            changes: 1,
            statuses: BTreeMap::new(),
        };
        for text in [
            render_show(&RunDetail {
                run,
                changes: vec![change],
            }),
            render_diff(&diff),
            render_rollback(&rollback),
            render_history(&[history_line]),
        ] {
            assert!(
                !text
                    .chars()
                    .any(|c| c != '\n' && crate::text::needs_escape(c)),
                "{text:?}"
            );
            assert!(!text.lines().any(|l| l.starts_with("FORGED")), "{text}");
        }
    }
}
