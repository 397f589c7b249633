//! `demo`: the simulator, `plan` and `once` in one process, both reports printed.

use super::output::print_json;
use super::setup::init_logging;
use super::{DemoArgs, Failure};
use skill_tuner::clock::Clock;
use skill_tuner::config::LogFormat;
use skill_tuner::demo::{self, DemoOptions};
use skill_tuner::exit::ExitClass;

/// The exit status is the `once` cycle's.
pub async fn run(args: DemoArgs, clock: Clock) -> Result<ExitClass, Failure> {
    let options = DemoOptions {
        agents: args.org.agents,
        skills: args.org.skills,
        seed: args.org.seed,
        rate_limit_per_minute: args.rate,
    };
    init_logging("warn", LogFormat::Human);
    eprintln!(
        "starting the embedded Genesys Cloud simulator: {} agents, {} skills, seed {}, {} requests/min …",
        options.agents, options.skills, options.seed, options.rate_limit_per_minute
    );
    let outcome = demo::run(&options, clock).await?;
    if args.json {
        print_json(
            &serde_json::json!({ "plan": outcome.plan, "once": outcome.once }),
            true,
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
    Ok(ExitClass::of_outcome(outcome.once.outcome))
}
