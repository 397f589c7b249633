//! `bench` and its hidden child `bench-client`: one JSON line each.

use super::output::print_json;
use super::setup::{init_logging, load_orgs};
use super::{BenchArgs, BenchClientArgs, Failure};
use skill_tuner::bench::{self, BenchOptions};
use skill_tuner::clock::Clock;
use skill_tuner::config::LogFormat;
use skill_tuner::exit::ExitClass;

pub async fn run(args: BenchArgs) -> Result<ExitClass, Failure> {
    init_logging("warn", LogFormat::Human);
    let options = BenchOptions {
        agents: args.agents,
        skills: args.skills,
        changed: args.changed,
        rate: args.rate,
        other_user_share: args.other_user_share,
        per_agent: args.per_agent,
        seed: args.seed,
    };
    // The child is this same executable, run as `bench-client`.
    let exe = std::env::current_exe().map_err(|e| {
        Failure::new(
            ExitClass::Failed,
            format!("cannot find this executable: {e}"),
        )
    })?;
    if args.orgs > 1 {
        if args.per_agent {
            return Err(Failure::new(
                ExitClass::Usage,
                "--per-agent measures one org; leave out --orgs",
            ));
        }
        let result = bench::run_orgs(&options, usize::from(args.orgs), &exe).await?;
        print_json(&result, false);
        return Ok(ExitClass::Ok);
    }
    let result = bench::run(&options, &exe).await?;
    print_json(&result, false);
    Ok(ExitClass::Ok)
}

pub async fn client(args: BenchClientArgs, clock: &Clock) -> Result<ExitClass, Failure> {
    let orgs = load_orgs(&args.config)?;
    if orgs.listed() {
        let run = bench::client_run_orgs(&orgs, clock).await?;
        print_json(&run, false);
        return Ok(ExitClass::Ok);
    }
    let settings = orgs
        .choose(None)
        .map_err(skill_tuner::config::ConfigError::from)?
        .clone();
    let run = bench::client_run(&settings, args.per_agent, clock).await?;
    print_json(&run, false);
    Ok(ExitClass::Ok)
}
