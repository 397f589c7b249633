//! The command-line edge: parses arguments, sets up logging, and turns library errors into
//! messages and exit codes. Everything else lives in the library.

use clap::{CommandFactory, Parser, Subcommand};
use skill_tuner::clock::Clock;
use skill_tuner::config::{LogFormat, Settings};
use skill_tuner::cycle::report::CycleReport;
use skill_tuner::cycle::{run_cycle, Mode, StopSignal};
#[cfg(feature = "simulator")]
use skill_tuner::demo;
use skill_tuner::exit::{self, ExitClass};
use skill_tuner::runtime;
use std::path::PathBuf;
use std::process::ExitCode;

mod history_cli;

#[derive(Parser)]
#[command(
    name = "skill-tuner",
    version,
    about = "Tunes Genesys Cloud routing-skill proficiencies from agent performance, safely and explainably.",
    after_help = exit::HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ConfigArg {
    /// The TOML config file (`SKILL_TUNER__SECTION__KEY` variables override its keys).
    #[arg(
        long,
        short,
        env = "SKILL_TUNER_CONFIG",
        default_value = "/etc/skill-tuner/skill-tuner.toml"
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    #[cfg(feature = "simulator")]
    /// Start the embedded simulator, run `plan` then `once` against it, print both reports.
    Demo {
        /// Agents in the simulated org.
        #[arg(long, default_value_t = 300)]
        agents: usize,
        /// Routing skills in the simulated org.
        #[arg(long, default_value_t = 6)]
        skills: usize,
        /// Seed of the simulated org: the same seed builds the same agents and metrics.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The simulator's rate limit per minute (the real API's default is 300).
        #[arg(long, default_value_t = 2400)]
        rate: u32,
        /// Print the two reports as JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    #[cfg(feature = "simulator")]
    /// Run the embedded Genesys Cloud simulator standalone (for curl, or `--config config/demo.toml`).
    Sim {
        /// Port on 127.0.0.1 to listen on.
        #[arg(long, default_value_t = 8089)]
        port: u16,
        /// Agents in the simulated org.
        #[arg(long, default_value_t = 300)]
        agents: usize,
        /// Routing skills in the simulated org.
        #[arg(long, default_value_t = 6)]
        skills: usize,
        /// Seed of the simulated org: the same seed builds the same agents and metrics.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Requests per minute per token; 0 = unlimited.
        #[arg(long, default_value_t = 300)]
        rate: u32,
        /// Start the simulator's clock at this instant (RFC 3339, e.g. 2027-03-28T01:30:00Z):
        /// "today" and the days with data follow it. Run the product with
        /// SKILL_TUNER_NOW set to the same instant so both agree.
        #[arg(long, value_parser = parse_instant)]
        now: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Dry run: collect, score and plan; print the planned changes; write nothing.
    Plan {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run one real cycle now.
    Once {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run as a daemon: cycles on `daemon.schedule`; SIGHUP reloads, SIGUSR1 runs now,
    /// SIGTERM/SIGINT stop gracefully; `/healthz`, `/readyz`, `/metrics` on `daemon.admin_listen`.
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate a config file and print the effective settings (secrets are never settings).
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    #[cfg(feature = "simulator")]
    /// Measure one full cycle against the simulator: API calls, wall time, memory (one JSON line).
    Bench {
        /// Agents in the simulated org.
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        /// Routing skills in the simulated org.
        #[arg(long, default_value_t = 5)]
        skills: usize,
        /// Share of agents that need a change.
        #[arg(long, default_value_t = 0.2)]
        changed: f64,
        /// The simulator's rate limit, requests per minute.
        #[arg(long, default_value_t = 300)]
        rate: u32,
        /// Measure the naive per-agent read-then-write pattern instead.
        #[arg(long)]
        per_agent: bool,
        /// Seed of the simulated org: the same seed builds the same agents and metrics.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    #[cfg(feature = "simulator")]
    /// (internal) The measured side of `bench`.
    #[command(hide = true)]
    BenchClient {
        #[command(flatten)]
        config: ConfigArg,
        /// Measure the naive per-agent read-then-write pattern instead.
        #[arg(long)]
        per_agent: bool,
    },
    #[command(flatten)]
    History(history_cli::HistoryCommand),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    ///
    /// E.g. `skill-tuner completions bash > /usr/share/bash-completion/completions/skill-tuner`;
    /// the README's install section lists every shell.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write it and one per command to a directory.
    ///
    /// E.g. `skill-tuner man > /usr/local/share/man/man1/skill-tuner.1`, or
    /// `skill-tuner man --out-dir /usr/local/share/man/man1` for every command's page.
    Man {
        /// Write `skill-tuner.1` and a `skill-tuner-<command>.1` for every command into this
        /// directory (e.g. /usr/local/share/man/man1) instead of printing the main page.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

#[cfg(feature = "simulator")]
fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("expected an RFC 3339 instant such as 2027-03-28T01:30:00Z ({e})"))
}

fn init_logging(level: &str, format: LogFormat) {
    // An invalid RUST_LOG is said, not silently replaced by `log.level`.
    let filter = match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => {
            tracing_subscriber::EnvFilter::try_new(&text).unwrap_or_else(|e| {
                eprintln!("warning: RUST_LOG=`{text}` is not a log filter ({e}); using log.level = `{level}`");
                tracing_subscriber::EnvFilter::new(level)
            })
        }
        _ => tracing_subscriber::EnvFilter::new(level),
    };
    // Colours only on a terminal: journald, files and log shippers get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        // One flat object per event: its fields at the top level beside `level`, `target`
        // and the current span (not the span list as well), as log shippers expect.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Loads the config, then starts logging as it says, then logs the config file's
/// permission warnings (before logging starts they would be lost).
fn load(config: &ConfigArg) -> Result<Settings, ExitCode> {
    match Settings::load_reporting(&config.config, true) {
        Ok((s, warnings)) => {
            init_logging(&s.log.level, s.log.format);
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            Ok(s)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitClass::BadConfig.into())
        }
    }
}

fn print_report(report: &CycleReport, json: bool) {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot render the report: {e}"),
        }
    } else {
        print!("{}", report.render_table(50));
    }
}

fn exit_for(report: &CycleReport) -> ExitCode {
    ExitClass::of_outcome(report.outcome).into()
}

async fn cycle_command(config: &ConfigArg, mode: Mode, json: bool, clock: &Clock) -> ExitCode {
    let settings = match load(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    warn_if_shifted(clock);
    let client = match runtime::connect(&settings, clock) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitClass::of_startup(&e).into();
        }
    };
    let ledger = match runtime::open_ledger(&settings, clock) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}\nrefusing to run without a working history ledger");
            return ExitClass::of_ledger(&e).into();
        }
    };
    if let Err(e) = runtime::start_client(&client, &settings).await {
        eprintln!("error: {e}");
        return ExitClass::of_login(&e).into();
    }
    let stop = StopSignal::default();
    let on_signal = tokio::spawn(stop_on_signal(stop.clone(), client.clone()));
    let result = run_cycle(&client, &settings, &ledger, mode, &stop, clock).await;
    on_signal.abort();
    match result {
        Ok(report) => {
            print_report(&report, json);
            exit_for(&report)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitClass::of_cycle(&e).into()
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM during `plan`/`once`: like the daemon, the writes on the wire
/// finish, nothing new is sent, and the run is recorded `interrupted` (exit 4); a second
/// signal exits at once (the next run reconciles the ledger).
async fn stop_on_signal(stop: StopSignal, client: skill_tuner::genesys::GenesysClient) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!(
        "stopping: writes on the wire finish, nothing new is sent (signal again to exit at once)"
    );
    stop.request();
    client.shut_down();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("second signal: exiting at once; the next run reconciles the ledger");
    std::process::exit(130);
}

/// 0 stopped cleanly, 1 the running cycle outlived the grace period or a second signal
/// forced the exit, 2 the config (or credentials, or the admin address) were unusable at
/// start-up.
async fn run_command(config: &ConfigArg, clock: Clock) -> ExitCode {
    use skill_tuner::daemon::{DaemonError, Exit};
    let settings = match load(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    warn_if_shifted(&clock);
    match skill_tuner::daemon::run(config.config.clone(), settings, clock).await {
        Ok(Exit::Clean) => ExitClass::Ok.into(),
        Ok(_) => ExitClass::Failed.into(),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the daemon");
            eprintln!("error: {e}");
            match &e {
                DaemonError::Signals(_) => ExitClass::Failed,
                DaemonError::Startup(e) => ExitClass::of_startup(e),
                DaemonError::AdminListen { .. } | DaemonError::Schedule(_) => ExitClass::BadConfig,
            }
            .into()
        }
    }
}

#[cfg(feature = "simulator")]
async fn demo_command(options: demo::DemoOptions, json: bool, clock: Clock) -> ExitCode {
    init_logging("warn", LogFormat::Human);
    eprintln!(
        "starting the embedded Genesys Cloud simulator: {} agents, {} skills, seed {}, {} requests/min …",
        options.agents, options.skills, options.seed, options.rate_limit_per_minute
    );
    match demo::run(&options, clock).await {
        Ok(outcome) => {
            if json {
                let both = serde_json::json!({ "plan": outcome.plan, "once": outcome.once });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&both).unwrap_or_default()
                );
            } else {
                println!("== plan (dry run: nothing written) ==");
                print!("{}", outcome.plan.render_table(15));
                println!();
                println!(
                    "== once (a real cycle against the simulator at {}) ==",
                    outcome.base_url
                );
                print!("{}", outcome.once.render_table(15));
                println!();
                println!(
                    "the simulator received {} bulk skill writes, holds {} review workitems and {} webhook digests",
                    outcome.writes, outcome.workitems, outcome.webhook_posts
                );
            }
            exit_for(&outcome.once)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitClass::Failed.into()
        }
    }
}

#[cfg(feature = "simulator")]
async fn sim_command(port: u16, config: genesys_sim::SimConfig) -> ExitCode {
    init_logging("info", LogFormat::Human);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let id = config.client_id.clone();
    let secret = config.client_secret.clone();
    let agents = config.agents;
    let sim = match genesys_sim::Simulator::start_on(config, addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the simulator on {addr}: {e}");
            return ExitClass::Failed.into();
        }
    };
    println!("simulator listening on {}", sim.base_url());
    println!("  client id:     {id}");
    println!("  client secret: {secret}   (a demo value, not a real secret)");
    println!(
        "  review worktype: {} (the one config/demo.toml names)",
        sim.org().worktype_id()
    );
    println!("  {agents} agents; try:");
    println!(
        "    curl -s -u {id}:{secret} -d grant_type=client_credentials {}/oauth/token",
        sim.base_url()
    );
    println!("    curl -s -H \"Authorization: Bearer $TOKEN\" '{}/api/v2/users?pageSize=5&expand=skills'", sim.base_url());
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
    ExitClass::Ok.into()
}

/// Parses the command line. `--help` and `--version` exit 0; any other parse error is a
/// usage error, 64 rather than clap's 2, which means "bad config" here.
fn parse_cli() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        let _ = e.print();
        if e.exit_code() == 0 {
            ExitClass::Ok.into()
        } else {
            ExitClass::Usage.into()
        }
    })
}

/// Writes generated text to standard output; a reader that went away (`| head`) is no error.
fn print_bytes(bytes: &[u8]) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitClass::Ok.into(),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitClass::Ok.into(),
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            ExitClass::Failed.into()
        }
    }
}

/// A clock moved by `SKILL_TUNER_NOW` is for tests and simulations; say so loudly.
fn warn_if_shifted(clock: &Clock) {
    if !clock.is_system() {
        tracing::warn!(
            now = %clock.now().to_rfc3339(),
            variable = skill_tuner::clock::NOW_ENV,
            "the clock is shifted (tests and simulations only): the metrics window and the schedule follow it"
        );
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let clock = match Clock::from_env() {
        Ok(clock) => clock,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitClass::BadConfig.into();
        }
    };
    match cli.command {
        #[cfg(feature = "simulator")]
        Command::Demo {
            agents,
            skills,
            seed,
            rate,
            json,
        } => {
            demo_command(
                demo::DemoOptions {
                    agents,
                    skills,
                    seed,
                    rate_limit_per_minute: rate,
                },
                json,
                clock,
            )
            .await
        }
        #[cfg(feature = "simulator")]
        Command::Sim {
            port,
            agents,
            skills,
            seed,
            rate,
            now,
        } => {
            let config = genesys_sim::SimConfig {
                agents,
                skills,
                seed,
                rate_limit_per_minute: rate,
                clock: now.map_or(clock, Clock::starting_at),
                worktype_id: demo::demo_worktype_id(),
                ..Default::default()
            };
            sim_command(port, config).await
        }
        Command::Plan { config, json } => cycle_command(&config, Mode::Plan, json, &clock).await,
        Command::Once { config, json } => cycle_command(&config, Mode::Once, json, &clock).await,
        #[cfg(feature = "simulator")]
        Command::Bench {
            agents,
            skills,
            changed,
            rate,
            per_agent,
            seed,
        } => {
            init_logging("warn", LogFormat::Human);
            let options = skill_tuner::bench::BenchOptions {
                agents,
                skills,
                changed,
                rate,
                per_agent,
                seed,
            };
            let exe = match std::env::current_exe() {
                Ok(exe) => exe,
                Err(e) => {
                    eprintln!("error: cannot find this executable: {e}");
                    return ExitClass::Failed.into();
                }
            };
            match skill_tuner::bench::run(&options, &exe).await {
                Ok(result) => {
                    println!("{}", serde_json::to_string(&result).unwrap_or_default());
                    ExitClass::Ok.into()
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitClass::Failed.into()
                }
            }
        }
        #[cfg(feature = "simulator")]
        Command::BenchClient { config, per_agent } => {
            let settings = match load(&config) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match skill_tuner::bench::client_run(&settings, per_agent, &clock).await {
                Ok(run) => {
                    println!("{}", serde_json::to_string(&run).unwrap_or_default());
                    ExitClass::Ok.into()
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitClass::Failed.into()
                }
            }
        }
        Command::History(command) => history_cli::run(command, &clock).await,
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "skill-tuner", &mut script);
            print_bytes(&script)
        }
        Command::Man { out_dir } => {
            let written = match &out_dir {
                Some(dir) => clap_mangen::generate_to(Cli::command(), dir).map(|()| Vec::new()),
                None => {
                    let mut page = Vec::new();
                    clap_mangen::Man::new(Cli::command())
                        .render(&mut page)
                        .map(|()| page)
                }
            };
            match written {
                Ok(page) => print_bytes(&page),
                Err(e) => {
                    eprintln!("error: cannot write the manual pages: {e}");
                    ExitClass::Failed.into()
                }
            }
        }
        Command::Run { config } => run_command(&config, clock).await,
        Command::CheckConfig { config } => {
            // `load` starts logging, so the permission warnings (config and secret file)
            // reach the operator instead of being dropped.
            let settings = match load(&config) {
                Ok(s) => s,
                Err(code) => return code,
            };
            println!(
                "# {} is valid; effective settings (defaults filled in):",
                config.config.display()
            );
            print!("{}", settings.to_shown_toml());
            if let Ok(schedule) = skill_tuner::daemon::schedule::Schedule::parse(
                &settings.daemon.schedule,
                &settings.daemon.time_zone,
            ) {
                println!(
                    "# next five runs of daemon.schedule ({}):",
                    settings.daemon.time_zone
                );
                print!(
                    "{}",
                    skill_tuner::daemon::schedule::describe_upcoming(&schedule, clock.now(), 5)
                );
                let spacing = skill_tuner::daemon::schedule::min_spacing(
                    settings.daemon.min_spacing_secs,
                    &schedule,
                    clock.now(),
                );
                println!(
                    "# minimum spacing between cycle starts: {} s",
                    spacing.as_secs()
                );
                if schedule
                    .shortest_interval(clock.now())
                    .is_some_and(|s| s < std::time::Duration::from_secs(60))
                {
                    println!("# warning: daemon.schedule runs more often than once a minute: each run moves skills up to max_step again and calls the API again; tuning needs days of data, so a daily or hourly schedule is the usual choice");
                }
            }
            match runtime::connection_lines(&config.config, &settings) {
                Ok(lines) => lines.iter().for_each(|line| println!("# {line}")),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitClass::BadConfig.into();
                }
            }
            // `run` refuses to start without the run token its endpoint needs, or without the
            // secret: so does the check of its config.
            let strict = settings.genesys.strict_file_permissions;
            match skill_tuner::config::secret::run_token_if_enabled(&settings.daemon, strict) {
                Ok(Some((_, source))) => {
                    println!("# POST /run token: found in {source} (value not shown)")
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitClass::BadConfig.into();
                }
            }
            match skill_tuner::config::secret::load_client_secret(&settings.genesys) {
                Ok((_, source)) => {
                    println!("# client secret: found in {source} (value not shown)");
                    let id = &settings.genesys.client_id;
                    if let Some(warning) = skill_tuner::config::secret::mismatched_pair(id, &source)
                    {
                        eprintln!("warning: {warning}");
                    }
                    ExitClass::Ok.into()
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitClass::BadConfig.into()
                }
            }
        }
    }
}
