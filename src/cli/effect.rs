//! `effect` and `resume`: the experiment's estimate now, and ending a pause on harm.

use super::output::print;
use super::setup::load;
use super::{CycleArgs, Failure, ResumeArgs};
use serde::Serialize;
use skill_tuner::clock::Clock;
use skill_tuner::exit::ExitClass;
use skill_tuner::experiment::{self, Assignment, EffectReport};
use skill_tuner::history::Pause;
use skill_tuner::runtime;

/// What `effect` prints: the estimate and the pause in force.
#[derive(Serialize)]
struct EffectOutput {
    #[serde(flatten)]
    report: EffectReport,
    /// The pause in force, when the ledger has one.
    paused: Option<Pause>,
}

/// `effect`: reads the analytics and the ledger, never writes.
pub async fn effect(args: CycleArgs, clock: &Clock) -> Result<ExitClass, Failure> {
    let settings = load(&args.config, &args.org)?;
    let Some(assignment) = Assignment::of(&settings.experiment) else {
        return Err(Failure::new(
            ExitClass::BadConfig,
            "no experiment: set `experiment.enabled = true` and `experiment.start` to measure the effect of tuning",
        ));
    };
    let client = runtime::connect(&settings, clock)?;
    runtime::start_client(&client, &settings).await?;
    let report = experiment::measure(
        &client,
        &settings.experiment,
        &assignment,
        &settings.metrics.media_types,
        clock.now().date_naive(),
    )
    .await
    .map_err(|e| Failure::new(ExitClass::Failed, format!("reading analytics: {e}")))?;
    // A ledger that does not exist yet has no pause; any other problem with it is said.
    let paused = match runtime::open_ledger_read_only(&settings) {
        Ok(ledger) => ledger.active_pause()?,
        Err(skill_tuner::history::LedgerError::Missing { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let out = EffectOutput { report, paused };
    print(&out, args.json, |o| {
        let mut text = o.report.render();
        if let Some(p) = &o.paused {
            text.push_str(&format!(
                "\ntuning PAUSED since {} on {}: {} — `skill-tuner resume` to apply changes again\n",
                p.paused_at, p.metric, p.reason
            ));
        }
        text
    });
    Ok(ExitClass::Ok)
}

/// `resume`: ends the pause in force, recording who resumed.
pub fn resume(args: ResumeArgs, clock: &Clock) -> Result<ExitClass, Failure> {
    let settings = load(&args.config, &args.org)?;
    let ledger = runtime::open_ledger(&settings, clock)?;
    let by = args
        .by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let ended = ledger.resume(&by)?;
    if ended.is_empty() {
        println!("tuning was not paused; nothing to resume");
    }
    for p in ended {
        println!(
            "resumed (by {by}): the pause of {} on {} ({})",
            p.paused_at, p.metric, p.reason
        );
    }
    Ok(ExitClass::Ok)
}
