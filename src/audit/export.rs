//! `export`: every recorded change with its run, as CSV or JSON, for audits.

use super::AuditError;
use crate::history::{ChangeStatus, Ledger, RunMode, RunOutcome, RunRecord, RunTrigger, ScoreJson};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;

/// Export formats for audits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// A format name that is neither `csv` nor `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown export format `{0}` (csv or json)")]
pub struct UnknownFormat(pub String);

impl std::str::FromStr for ExportFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(ExportFormat::Csv),
            "json" => Ok(ExportFormat::Json),
            other => Err(UnknownFormat(other.to_string())),
        }
    }
}

/// One change with its run's context: a flat row, the same in CSV and JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ExportRow {
    pub run_id: i64,
    pub run_mode: Option<RunMode>,
    /// What started the run (empty when unknown).
    pub run_trigger: Option<RunTrigger>,
    pub run_started_at: String,
    pub run_finished_at: Option<String>,
    pub run_outcome: Option<RunOutcome>,
    pub rollback_of: Option<i64>,
    pub change_id: String,
    pub agent_id: String,
    pub agent_name: String,
    pub skill_id: String,
    pub skill_name: String,
    pub before: f64,
    pub after: f64,
    pub target: Option<f64>,
    pub status: ChangeStatus,
    pub correlation_id: Option<String>,
    pub detail: Option<String>,
    pub workitem_id: Option<String>,
    pub reason: String,
    pub score: Option<ScoreJson>,
    /// The skill's arm in the holdout experiment (`tuned`, `held_out`), when one recorded it.
    pub experiment_arm: Option<String>,
}

/// The CSV header, in the field order of each exported row (JSON uses the same names).
pub const CSV_HEADER: [&str; 22] = [
    "run_id",
    "run_mode",
    "run_trigger",
    "run_started_at",
    "run_finished_at",
    "run_outcome",
    "rollback_of",
    "change_id",
    "agent_id",
    "agent_name",
    "skill_id",
    "skill_name",
    "before",
    "after",
    "target",
    "status",
    "correlation_id",
    "detail",
    "workitem_id",
    "reason",
    "score",
    "experiment_arm",
];

/// Every change row in the ledger, oldest first, with its run's mode and timestamps.
pub(crate) fn export_rows(ledger: &Ledger) -> Result<Vec<ExportRow>, AuditError> {
    let runs: HashMap<i64, RunRecord> = ledger.all_runs()?.into_iter().map(|r| (r.id, r)).collect();
    // The latest recorded arm of each skill (a later experiment's salt sorts after).
    let arms: HashMap<String, String> = ledger
        .assignments()?
        .into_iter()
        .map(|u| (u.unit_id, u.arm))
        .collect();
    Ok(ledger
        .all_changes()?
        .into_iter()
        .map(|c| {
            let run = runs.get(&c.run_id);
            let experiment_arm = arms.get(&c.skill_id).cloned();
            ExportRow {
                run_id: c.run_id,
                run_mode: run.map(|r| r.mode),
                run_trigger: run.and_then(|r| r.trigger),
                run_started_at: run.map(|r| r.started_at.clone()).unwrap_or_default(),
                run_finished_at: run.and_then(|r| r.finished_at.clone()),
                run_outcome: run.and_then(|r| r.outcome),
                rollback_of: run.and_then(|r| r.rollback_of),
                change_id: c.change_id,
                agent_id: c.agent_id,
                agent_name: c.agent_name,
                skill_id: c.skill_id,
                skill_name: c.skill_name,
                before: c.before,
                after: c.after,
                target: c.target,
                status: c.status,
                correlation_id: c.correlation_id,
                detail: c.detail,
                workitem_id: c.workitem_id,
                reason: c.reason,
                score: c.score,
                experiment_arm,
            }
        })
        .collect())
}

/// Writes every change row as CSV (RFC 4180: header, CRLF-free `\n` lines, fields quoted
/// when needed) or as one JSON array. Returns how many rows were written.
pub fn export(
    ledger: &Ledger,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<usize, AuditError> {
    let rows = export_rows(ledger)?;
    match format {
        ExportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)?;
        }
        ExportFormat::Csv => {
            write_csv_record(out, CSV_HEADER.iter().map(|h| h.to_string()))?;
            for r in &rows {
                // Text cells are neutralised (see `spreadsheet_safe`); numbers stay numbers.
                let text = |v: &str| spreadsheet_safe(v).into_owned();
                let opt = |v: &Option<String>| text(v.as_deref().unwrap_or_default());
                // Our own values: nothing to neutralise.
                let stored = |v: Option<&str>| v.unwrap_or_default().to_string();
                let fields = [
                    r.run_id.to_string(),
                    stored(r.run_mode.map(RunMode::as_str)),
                    stored(r.run_trigger.map(RunTrigger::as_str)),
                    text(&r.run_started_at),
                    opt(&r.run_finished_at),
                    stored(r.run_outcome.map(RunOutcome::as_str)),
                    r.rollback_of.map(|v| v.to_string()).unwrap_or_default(),
                    text(&r.change_id),
                    text(&r.agent_id),
                    text(&r.agent_name),
                    text(&r.skill_id),
                    text(&r.skill_name),
                    r.before.to_string(),
                    r.after.to_string(),
                    r.target.map(|v| v.to_string()).unwrap_or_default(),
                    r.status.as_str().to_string(),
                    opt(&r.correlation_id),
                    opt(&r.detail),
                    opt(&r.workitem_id),
                    text(&r.reason),
                    text(r.score.as_ref().map(|s| s.get()).unwrap_or_default()),
                    stored(r.experiment_arm.as_deref()),
                ];
                write_csv_record(out, fields.into_iter())?;
            }
        }
    }
    out.flush()?;
    Ok(rows.len())
}

fn write_csv_record(
    out: &mut dyn Write,
    fields: impl Iterator<Item = String>,
) -> std::io::Result<()> {
    let line = fields.map(|f| csv_field(&f)).collect::<Vec<_>>().join(",");
    writeln!(out, "{line}")
}

/// A text cell a spreadsheet will not run: one starting with `=`, `+`, `-`, `@`, tab or CR is
/// a formula to Excel, LibreOffice and Google Sheets (`=HYPERLINK(…)`, `+cmd|' /C calc'!A0`),
/// so it gets a leading `'` (OWASP's CSV-injection rule). Agent and skill names come from the
/// org, where anyone with admin rights can edit them.
pub(crate) fn spreadsheet_safe(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Quotes a field when it holds a comma, a quote, a line break or edge spaces; quotes are
/// doubled (RFC 4180). Reasons and details are free text, so this matters.
pub(crate) fn csv_field(field: &str) -> String {
    let needs =
        field.contains([',', '"', '\n', '\r']) || field.starts_with(' ') || field.ends_with(' ');
    if needs {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field(" edge"), "\" edge\"");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn formula_cells_are_neutralised() {
        for (raw, safe) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
        ] {
            assert_eq!(spreadsheet_safe(raw), safe);
        }
        for plain in ["Rosa Patel", "a=b", "", "3.5", "{\"score\":1}"] {
            assert!(
                matches!(spreadsheet_safe(plain), Cow::Borrowed(_)),
                "{plain}"
            );
        }
    }

    #[test]
    fn export_formats_parse() {
        assert_eq!("CSV".parse::<ExportFormat>(), Ok(ExportFormat::Csv));
        assert_eq!("json".parse::<ExportFormat>(), Ok(ExportFormat::Json));
        assert!("xml".parse::<ExportFormat>().is_err());
    }
}
