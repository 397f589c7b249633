//! `simulate`: the policies on the closed-loop twin, the weekly table and the gap closed.

use super::output::print_json;
use super::setup::init_logging;
use super::{Failure, SimulateArgs, SimulateEffectArgs};
use skill_tuner::config::{LogFormat, Settings};
use skill_tuner::exit::ExitClass;
use skill_tuner::simulate::{self, SimulateOptions};

pub async fn run(args: SimulateArgs) -> Result<ExitClass, Failure> {
    init_logging("warn", LogFormat::Human);
    let settings = match &args.config {
        Some(path) => {
            let (settings, warnings) = Settings::load_reporting(path, true)?;
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            Some(settings)
        }
        None => None,
    };
    let mut options = SimulateOptions {
        agents: args.agents,
        skills: args.skills,
        weeks: args.weeks,
        seed: args.seed,
        policies: args.policies,
        settings,
        ..SimulateOptions::default()
    };
    if let Some(load) = args.load {
        options.twin.load = load;
    }
    if let Some(cv) = args.handle_cv {
        options.twin.handle_cv = cv;
    }
    options
        .twin
        .validate()
        .map_err(|e| Failure::new(ExitClass::Usage, e))?;
    eprintln!(
        "simulating {} agents, {} skills, seed {}, {} weeks: {} …",
        options.agents,
        options.skills,
        options.seed,
        options.weeks,
        options
            .policies
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let started = std::time::Instant::now();
    let result = simulate::run(&options).await?;
    let elapsed = started.elapsed().as_secs_f64();
    print!("{}", result.render());
    let timing: Vec<String> = result
        .policies
        .iter()
        .map(|p| {
            format!(
                "{} {:.1} s twin + {:.1} s policy",
                p.policy.as_str(),
                p.timing.twin_secs,
                p.timing.policy_secs
            )
        })
        .collect();
    println!(
        "\nsimulated in {elapsed:.1} s ({}, concurrently)",
        timing.join("; ")
    );
    if args.json {
        print_json(&result, false);
    }
    Ok(ExitClass::Ok)
}

/// `simulate-effect`: the experiment validated over many seeds of the validation twin.
pub async fn effect(args: SimulateEffectArgs) -> Result<ExitClass, Failure> {
    init_logging("warn", LogFormat::Human);
    let mut options = simulate::effect::ValidationOptions {
        seeds: args.seeds,
        first_seed: args.first_seed,
        days: args.days,
        parallel: args.parallel,
        ..Default::default()
    };
    if let Some(b) = args.harm_bound {
        options.experiment.harm_bound = b;
    }
    let summary = simulate::effect::validate(&options).await?;
    print!("{}", summary.render());
    if args.json {
        print_json(&summary, false);
    }
    Ok(ExitClass::Ok)
}
