//! The history subcommands' command-line edge (`history`, `show`, `diff`, `rollback`,
//! `export`). Kept out of `main.rs` so the two evolve without stepping on each other; the
//! work is in [`skill_tuner::audit`], this only parses, prints and picks exit codes.

use super::{load, ConfigArg};
use clap::Subcommand;
use skill_tuner::audit::{self, AuditError, ExportFormat};
use skill_tuner::clock::Clock;
use skill_tuner::config::Settings;
use skill_tuner::exit::ExitClass;
use skill_tuner::history::Ledger;
use skill_tuner::runtime;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum HistoryCommand {
    /// Recent runs from the history ledger, one line each (no credentials needed).
    History {
        #[command(flatten)]
        config: ConfigArg,
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
        /// The output format.
        #[arg(long, value_enum, ignore_case = true, default_value_t = FormatArg::Csv)]
        format: FormatArg,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
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
    write: bool,
    clock: &Clock,
) -> Result<(Settings, Ledger), ExitCode> {
    let settings = load(config)?;
    let opened = if write {
        runtime::open_ledger(&settings, clock)
    } else {
        runtime::open_ledger_read_only(&settings)
    };
    match opened {
        Ok(ledger) => Ok((settings, ledger)),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitClass::of_ledger(&e).into())
        }
    }
}

async fn client_for(
    settings: &Settings,
    clock: &Clock,
) -> Result<skill_tuner::genesys::GenesysClient, ExitCode> {
    let client = runtime::connect(settings, clock).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(ExitClass::of_startup(&e))
    })?;
    runtime::start_client(&client, settings)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(ExitClass::of_login(&e))
        })?;
    Ok(client)
}

fn print<T: serde::Serialize>(value: &T, json: bool, text: impl FnOnce(&T) -> String) {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(t) => println!("{t}"),
            Err(e) => eprintln!("error: cannot render as JSON: {e}"),
        }
    } else {
        print!("{}", text(value));
    }
}

/// A refused request (rolling back a dry run or a rollback, an unfinished run) is a failed
/// command, not a bad config: 2 stays reserved for what restarting cannot fix.
fn fail(e: AuditError) -> ExitCode {
    eprintln!("error: {e}");
    match &e {
        AuditError::Ledger(l) => ExitClass::of_ledger(l),
        _ => ExitClass::Failed,
    }
    .into()
}

pub async fn run(command: HistoryCommand, clock: &Clock) -> ExitCode {
    let result = match command {
        HistoryCommand::History {
            config,
            limit,
            json,
        } => ledger_for(&config, false, clock).map(|(_, ledger)| {
            match audit::history(&ledger, limit) {
                Ok(lines) => {
                    print(&lines, json, |l| audit::render_history(l));
                    ExitClass::Ok.into()
                }
                Err(e) => fail(e),
            }
        }),
        HistoryCommand::Show { run, config, json } => {
            ledger_for(&config, false, clock).map(|(_, ledger)| match audit::show(&ledger, run) {
                Ok(detail) => {
                    print(&detail, json, audit::render_show);
                    ExitClass::Ok.into()
                }
                Err(e) => fail(e),
            })
        }
        HistoryCommand::Diff { run, config, json } => match ledger_for(&config, false, clock) {
            Ok((settings, ledger)) => match client_for(&settings, clock).await {
                Ok(client) => Ok(match audit::diff(&client, &ledger, run).await {
                    Ok(diff) => {
                        print(&diff, json, audit::render_diff);
                        ExitClass::Ok.into()
                    }
                    Err(e) => fail(e),
                }),
                Err(code) => Err(code),
            },
            Err(code) => Err(code),
        },
        HistoryCommand::Rollback {
            run,
            config,
            dry_run,
            json,
        } => match ledger_for(&config, true, clock) {
            Ok((settings, ledger)) => match client_for(&settings, clock).await {
                Ok(client) => Ok(
                    match audit::rollback(&client, &settings, &ledger, run, dry_run).await {
                        Ok(report) => {
                            print(&report, json, audit::render_rollback);
                            ExitClass::of_outcome(report.outcome).into()
                        }
                        Err(e) => fail(e),
                    },
                ),
                Err(code) => Err(code),
            },
            Err(code) => Err(code),
        },
        HistoryCommand::Export {
            config,
            format,
            output,
        } => ledger_for(&config, false, clock).map(|(_, ledger)| {
            let format = ExportFormat::from(format);
            let written = match &output {
                Some(path) => std::fs::File::create(path)
                    .map_err(AuditError::from)
                    .and_then(|file| {
                        let mut out = std::io::BufWriter::new(file);
                        audit::export(&ledger, format, &mut out)
                    }),
                None => audit::export(&ledger, format, &mut std::io::stdout().lock()),
            };
            match written {
                Ok(n) => {
                    if let Some(path) = &output {
                        eprintln!("exported {n} changes to {}", path.display());
                    }
                    ExitClass::Ok.into()
                }
                Err(e) => fail(e),
            }
        }),
    };
    result.unwrap_or_else(|code| code)
}
