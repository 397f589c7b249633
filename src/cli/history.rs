//! The history commands (`history`, `show`, `diff`, `rollback`, `export`, `report`): the work is in
//! [`skill_tuner::audit`]; this parses, opens, prints and picks the exit status.

use super::output::print;
use super::setup::load;
use super::{ConfigArg, Failure, OrgArg};
use clap::Subcommand;
use skill_tuner::audit::{self, AuditError, ExportFormat};
use skill_tuner::clock::Clock;
use skill_tuner::config::Settings;
use skill_tuner::exit::ExitClass;
use skill_tuner::genesys::GenesysClient;
use skill_tuner::history::Ledger;
use skill_tuner::runtime;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum HistoryCommand {
    /// Recent runs from the history ledger, one line each (no credentials needed).
    History {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        org: OrgArg,
        /// How many of the most recent runs (at least 1).
        #[arg(long, default_value_t = 20, value_parser = at_least_one)]
        limit: usize,
        /// Print the runs as JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// One run's changes with their reasons (no credentials needed).
    Show {
        /// The run's number (as `history` lists it).
        run: i64,
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        org: OrgArg,
        /// Print the run as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// What a run changed versus what the org holds now (reads the org).
    Diff {
        /// The run's number (as `history` lists it).
        run: i64,
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        org: OrgArg,
        /// Print the comparison as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Restore the values a run replaced, where they still hold the run's values.
    Rollback {
        /// The number of the run to roll back (as `history` lists it).
        run: i64,
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        org: OrgArg,
        /// Show what would be restored and left alone; write and record nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the rollback's report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every recorded change with its run, for audits (no credentials needed).
    Export {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        org: OrgArg,
        /// The output format.
        #[arg(long, value_enum, ignore_case = true, default_value_t = FormatArg::Csv)]
        format: FormatArg,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// One run as a self-contained HTML page: proficiency per skill before and after, changes
    /// by reason, conflicts and holds (no credentials needed; opens with no network).
    Report {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        org: OrgArg,
        /// Write the page to this file.
        #[arg(long, value_name = "FILE")]
        html: PathBuf,
        /// The run's number (as `history` lists it); the latest cycle when left out.
        #[arg(long)]
        run: Option<i64>,
    },
}

/// The formats `export` writes (a value enum, so `--help` lists them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// One row per change, spreadsheet-safe (cells that would run as formulas are quoted).
    Csv,
    /// An array of the same rows.
    Json,
}

impl From<FormatArg> for ExportFormat {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Csv => ExportFormat::Csv,
            FormatArg::Json => ExportFormat::Json,
        }
    }
}

/// `--limit 0` is refused as a usage error: it would list nothing and read as "no runs
/// recorded yet" while runs exist.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("expected a number of runs, at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("expected a number of runs, at least 1 ({e})")),
    }
}

/// The settings and the ledger, opened for writing (`rollback`) or, for the commands that only
/// read it, read-only: they then work beside a running daemon and on a read-only file system.
fn ledger_for(
    config: &ConfigArg,
    org: &OrgArg,
    write: bool,
    clock: &Clock,
) -> Result<(Settings, Ledger), Failure> {
    let settings = load(config, org)?;
    let ledger = if write {
        runtime::open_ledger(&settings, clock)?
    } else {
        runtime::open_ledger_read_only(&settings)?
    };
    Ok((settings, ledger))
}

/// A logged-in client, for the commands that read the org.
async fn client_for(settings: &Settings, clock: &Clock) -> Result<GenesysClient, Failure> {
    let client = runtime::connect(settings, clock)?;
    runtime::start_client(&client, settings).await?;
    Ok(client)
}

pub async fn run(command: HistoryCommand, clock: &Clock) -> Result<ExitClass, Failure> {
    match command {
        HistoryCommand::History {
            config,
            org,
            limit,
            json,
        } => {
            let (_, ledger) = ledger_for(&config, &org, false, clock)?;
            let lines = audit::history(&ledger, limit)?;
            let held = audit::held_out_units(&ledger)?;
            print(&lines, json, |l| {
                let mut text = audit::render_history(l);
                for (salt, names) in &held {
                    text.push_str(&format!(
                        "experiment {salt:?}: {} skills held out (never changed while it runs): {}\n",
                        names.len(),
                        skill_tuner::text::printable(&names.join(", "))
                    ));
                }
                text
            });
        }
        HistoryCommand::Show {
            run,
            config,
            org,
            json,
        } => {
            let (_, ledger) = ledger_for(&config, &org, false, clock)?;
            let detail = audit::show(&ledger, run)?;
            print(&detail, json, audit::render_show);
        }
        HistoryCommand::Diff {
            run,
            config,
            org,
            json,
        } => {
            let (settings, ledger) = ledger_for(&config, &org, false, clock)?;
            let client = client_for(&settings, clock).await?;
            let diff = audit::diff(&client, &ledger, run).await?;
            print(&diff, json, audit::render_diff);
        }
        HistoryCommand::Rollback {
            run,
            config,
            org,
            dry_run,
            json,
        } => {
            let (settings, ledger) = ledger_for(&config, &org, true, clock)?;
            let client = client_for(&settings, clock).await?;
            let report = audit::rollback(&client, &settings, &ledger, run, dry_run).await?;
            print(&report, json, audit::render_rollback);
            return Ok(ExitClass::of_outcome(report.outcome));
        }
        HistoryCommand::Export {
            config,
            org,
            format,
            output,
        } => {
            let (_, ledger) = ledger_for(&config, &org, false, clock)?;
            let format = ExportFormat::from(format);
            let n = match &output {
                Some(path) => {
                    let file = std::fs::File::create(path).map_err(AuditError::from)?;
                    audit::export(&ledger, format, &mut std::io::BufWriter::new(file))?
                }
                None => audit::export(&ledger, format, &mut std::io::stdout().lock())?,
            };
            if let Some(path) = &output {
                eprintln!("exported {n} changes to {}", path.display());
            }
        }
        HistoryCommand::Report {
            config,
            org,
            html,
            run,
        } => {
            let (_, ledger) = ledger_for(&config, &org, false, clock)?;
            let page = audit::html_report(&ledger, run)?;
            write_whole(&html, page.as_bytes()).map_err(AuditError::from)?;
            eprintln!("wrote {} ({} bytes)", html.display(), page.len());
        }
    }
    Ok(ExitClass::Ok)
}

/// Writes `bytes` to `path` through a temporary file beside it, so a reader (or a crash)
/// never sees half a page.
fn write_whole(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
