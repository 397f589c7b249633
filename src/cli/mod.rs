//! The command line's types and the work behind each command, binary-side: the library
//! knows nothing of argument parsing, printing or exit statuses.
//!
//! Each command group has a module that loads what it needs, calls the library and prints;
//! every failure comes back as a [`Failure`], which `main` turns into the one `error:` line
//! and the exit status.

#[cfg(feature = "simulator")]
pub mod bench;
pub mod check_config;
pub mod cycle;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod docs;
pub mod effect;
mod failure;
pub mod history;
mod output;
mod setup;
#[cfg(feature = "simulator")]
pub mod sim;
#[cfg(feature = "simulator")]
pub mod simulate;

pub use failure::Failure;

use clap::{Parser, Subcommand};
use skill_tuner::exit::{self, ExitClass};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "skill-tuner",
    version,
    about = "Tunes Genesys Cloud routing-skill proficiencies from agent performance, safely and explainably.",
    after_help = exit::HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Clone)]
pub struct ConfigArg {
    /// The TOML config file (`SKILL_TUNER__SECTION__KEY` variables override its keys).
    #[arg(
        long,
        short,
        env = "SKILL_TUNER_CONFIG",
        default_value = "/etc/skill-tuner/skill-tuner.toml"
    )]
    pub config: PathBuf,
}

/// Which org of the config a command reads or writes.
#[derive(clap::Args, Clone, Default)]
pub struct OrgArg {
    /// The org, by its `[[orgs]]` name; optional when the config names only one.
    #[arg(long, value_name = "NAME")]
    pub org: Option<String>,
}

#[derive(Subcommand)]
pub enum Command {
    #[cfg(feature = "simulator")]
    /// Start the embedded simulator, run `plan` then `once` against it, print both reports.
    Demo(DemoArgs),
    #[cfg(feature = "simulator")]
    /// Run the embedded Genesys Cloud simulator standalone (for curl, or `--config config/demo.toml`).
    Sim(SimArgs),
    /// Dry run: collect, score and plan; print the planned changes; write nothing.
    Plan(CycleArgs),
    /// Run one real cycle now.
    Once(CycleArgs),
    /// Run as a daemon: cycles on `daemon.schedule`; SIGHUP reloads, SIGUSR1 runs now,
    /// SIGTERM/SIGINT stop gracefully; `/healthz`, `/readyz`, `/metrics` on `daemon.admin_listen`.
    Run(ConfigOnly),
    /// Validate a config file and print the effective settings (secrets are never settings).
    CheckConfig(ConfigOnly),
    #[cfg(feature = "simulator")]
    /// Measure one full cycle against the simulator: API calls, wall time, memory (one JSON line).
    Bench(BenchArgs),
    #[cfg(feature = "simulator")]
    /// Does tuning help? Run static, tuned and oracle policies on the simulator's closed-loop
    /// twin for whole weeks and print the weekly metrics and the share of the gap tuned closes.
    Simulate(SimulateArgs),
    #[cfg(feature = "simulator")]
    /// Validate the experiment on the validation twin (effect48): interval coverage of the
    /// true effect, A/A false positives, the naive per-agent comparison's bias, and how soon
    /// a harmful policy is paused (and how rarely a good one is).
    SimulateEffect(SimulateEffectArgs),
    #[cfg(feature = "simulator")]
    /// (internal) The measured side of `bench`.
    #[command(hide = true)]
    BenchClient(BenchClientArgs),
    /// The holdout experiment's estimate of what tuning does to handle time, transfers,
    /// quality, CSAT and service level, each with its 95 % interval, sample and verdict
    /// (reads the analytics API and the ledger; writes nothing).
    Effect(CycleArgs),
    /// End a pause on harm: the next cycle applies changes again (recorded in the ledger).
    Resume(ResumeArgs),
    #[command(flatten)]
    History(history::HistoryCommand),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    ///
    /// E.g. `skill-tuner completions bash > /usr/share/bash-completion/completions/skill-tuner`;
    /// the README's install section lists every shell.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write it and one per command to a directory.
    ///
    /// E.g. `skill-tuner man > /usr/local/share/man/man1/skill-tuner.1`, or
    /// `skill-tuner man --out-dir /usr/local/share/man/man1` for every command's page.
    Man(ManArgs),
}

// The argument structs carry no doc comment of their own: the variant's is the command's
// help text.

/// The simulated org of `demo` and `sim`.
#[cfg(feature = "simulator")]
#[derive(clap::Args)]
pub struct OrgArgs {
    /// Agents in the simulated org.
    #[arg(long, default_value_t = 300)]
    pub agents: usize,
    /// Routing skills in the simulated org.
    #[arg(long, default_value_t = 6)]
    pub skills: usize,
    /// Seed of the simulated org: the same seed builds the same agents and metrics.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[cfg(feature = "simulator")]
#[derive(clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub org: OrgArgs,
    /// The simulator's rate limit per minute (the real API's default is 300).
    #[arg(long, default_value_t = 2400)]
    pub rate: u32,
    /// Print the two reports as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "simulator")]
#[derive(clap::Args)]
pub struct SimArgs {
    /// Port on 127.0.0.1 to listen on.
    #[arg(long, default_value_t = 8089)]
    pub port: u16,
    #[command(flatten)]
    pub org: OrgArgs,
    /// Requests per minute per token; 0 = unlimited.
    #[arg(long, default_value_t = 300)]
    pub rate: u32,
    /// Another user of every token spends this share (0 to 1) of each rate-limit window,
    /// evenly over it: the count in `inin-ratelimit-count` then includes requests the client
    /// did not send.
    #[arg(long, default_value_t = 0.0, value_parser = sim::parse_share)]
    pub other_user_share: f64,
    /// Start the simulator's clock at this instant (RFC 3339, e.g. 2027-03-28T01:30:00Z):
    /// "today" and the days with data follow it. Run the product with
    /// SKILL_TUNER_NOW set to the same instant so both agree.
    #[arg(long, value_parser = sim::parse_instant)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(clap::Args)]
pub struct CycleArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub org: OrgArg,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub org: OrgArg,
    /// Who resumes (recorded in the ledger); default: $USER.
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(clap::Args)]
pub struct ConfigOnly {
    #[command(flatten)]
    pub config: ConfigArg,
}

#[cfg(feature = "simulator")]
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Agents in the simulated org.
    #[arg(long, default_value_t = 10_000)]
    pub agents: usize,
    /// Routing skills in the simulated org.
    #[arg(long, default_value_t = 5)]
    pub skills: usize,
    /// Share of agents that need a change.
    #[arg(long, default_value_t = 0.2)]
    pub changed: f64,
    /// The simulator's rate limit, requests per minute.
    #[arg(long, default_value_t = 300)]
    pub rate: u32,
    /// Another user of the same token spends this share (0 to 1) of every rate-limit
    /// window; the bound is then calls ÷ the rate left to the cycle.
    #[arg(long, default_value_t = 0.0, value_parser = sim::parse_share)]
    pub other_user_share: f64,
    /// Measure the naive per-agent read-then-write pattern instead.
    #[arg(long)]
    pub per_agent: bool,
    /// Seed of the simulated org: the same seed builds the same agents and metrics.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Tune this many orgs in one process at once, each its own simulator with its own
    /// `--agents` and `--rate` (its own OAuth client and limit); measured against the
    /// slowest org's bound.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=200))]
    pub orgs: u16,
}

#[cfg(feature = "simulator")]
#[derive(clap::Args)]
pub struct SimulateArgs {
    /// Agents in the twin.
    #[arg(long, default_value_t = 1_000)]
    pub agents: usize,
    /// Routing skills in the twin.
    #[arg(long, default_value_t = 6)]
    pub skills: usize,
    /// Weeks to simulate (the gap is measured on the last).
    #[arg(long, default_value_t = 8)]
    pub weeks: u32,
    /// Policies to run, comma-separated: static, tuned, oracle (the gap needs all three).
    #[arg(long, value_delimiter = ',', default_value = "static,tuned,oracle", value_parser = parse_policy)]
    pub policies: Vec<skill_tuner::simulate::Policy>,
    /// Seed of the twin: every policy runs on a twin from this seed (common random numbers).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The tuned policy's settings (its `[metrics]`, `[policy]`, `[scope]`, `[breaker]` and
    /// `[apply]`); default: the built-in `config/simulate.toml`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The twin's offered load (share of staffed time; default 0.95).
    #[arg(long)]
    pub load: Option<f64>,
    /// The twin's coefficient of variation of handle times (default 0.65).
    #[arg(long)]
    pub handle_cv: Option<f64>,
    /// After the tables, print the result as one JSON line (its `gap_closed` maps each metric
    /// and `composite` to the share of the gap closed, null for n/a).
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "simulator")]
#[derive(clap::Args)]
pub struct SimulateEffectArgs {
    /// How many seeds.
    #[arg(long, default_value_t = 100)]
    pub seeds: u32,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub first_seed: u64,
    /// Days of the experiment.
    #[arg(long, default_value_t = 28)]
    pub days: u32,
    /// Seeds run at once.
    #[arg(long, default_value_t = 2)]
    pub parallel: usize,
    /// The harm bound (share of the held-out level).
    #[arg(long)]
    pub harm_bound: Option<f64>,
    /// After the table, print the summary (with every seed) as one JSON line.
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "simulator")]
fn parse_policy(
    s: &str,
) -> Result<skill_tuner::simulate::Policy, skill_tuner::simulate::UnknownPolicy> {
    s.parse()
}

#[cfg(feature = "simulator")]
#[derive(clap::Args)]
pub struct BenchClientArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Measure the naive per-agent read-then-write pattern instead.
    #[arg(long)]
    pub per_agent: bool,
}

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// Write `skill-tuner.1` and a `skill-tuner-<command>.1` for every command into this
    /// directory (e.g. /usr/local/share/man/man1) instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Parses the command line. `--help` and `--version` exit 0; any other parse error is a
/// usage error, 64 rather than clap's 2, which means "bad config" here. Clap prints its own
/// message either way.
pub fn parse() -> Result<Cli, ExitClass> {
    Cli::try_parse().map_err(|e| {
        let _ = e.print();
        if e.exit_code() == 0 {
            ExitClass::Ok
        } else {
            ExitClass::Usage
        }
    })
}
