//! The command-line edge: parses the arguments and hands each command to its module under
//! [`cli`]. A command returns the exit class of what it did, or a [`cli::Failure`] that is
//! printed and turned into the exit status here, in one place.

mod cli;

use cli::{Cli, Command, Failure};
use skill_tuner::clock::Clock;
use skill_tuner::cycle::Mode;
use skill_tuner::exit::ExitClass;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(class) => return class.into(),
    };
    match run(cli).await {
        Ok(class) => class.into(),
        Err(failure) => failure.exit(),
    }
}

async fn run(cli: Cli) -> Result<ExitClass, Failure> {
    let clock = Clock::from_env()?;
    match cli.command {
        #[cfg(feature = "simulator")]
        Command::Demo(args) => cli::demo::run(args, clock).await,
        #[cfg(feature = "simulator")]
        Command::Sim(args) => cli::sim::run(args, clock).await,
        Command::Plan(args) => cli::cycle::once(args, Mode::Plan, &clock).await,
        Command::Once(args) => cli::cycle::once(args, Mode::Once, &clock).await,
        Command::Run(args) => cli::cycle::daemon(args.config, clock).await,
        Command::CheckConfig(args) => cli::check_config::run(args.config, &clock),
        #[cfg(feature = "simulator")]
        Command::Bench(args) => cli::bench::run(args).await,
        #[cfg(feature = "simulator")]
        Command::Simulate(args) => cli::simulate::run(args).await,
        #[cfg(feature = "simulator")]
        Command::SimulateEffect(args) => cli::simulate::effect(args).await,
        #[cfg(feature = "simulator")]
        Command::BenchClient(args) => cli::bench::client(args, &clock).await,
        Command::Effect(args) => cli::effect::effect(args, &clock).await,
        Command::Resume(args) => cli::effect::resume(args, &clock),
        Command::History(command) => cli::history::run(command, &clock).await,
        Command::Completions(args) => cli::docs::completions(args),
        Command::Man(args) => cli::docs::man(args),
    }
}
