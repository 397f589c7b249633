//! `check-config`: the effective settings, the schedule's next runs, where the connection
//! settings came from, and whether the secrets `run` needs are there (never their values).

use super::setup::load_orgs;
use super::{ConfigArg, Failure};
use skill_tuner::clock::Clock;
use skill_tuner::config::schedule::{self, Schedule};
use skill_tuner::config::secret;
use skill_tuner::config::Settings;
use skill_tuner::exit::ExitClass;
use skill_tuner::runtime;
use std::time::Duration;

pub fn run(config: ConfigArg, clock: &Clock) -> Result<ExitClass, Failure> {
    // `load_orgs` starts logging, so the permission warnings (config and secret file) reach
    // the operator instead of being dropped.
    let orgs = load_orgs(&config)?;
    println!(
        "# {} is valid; effective settings (defaults filled in):",
        config.config.display()
    );
    // `run` refuses to start without the run token its endpoint needs: so does the check.
    let process = orgs.process();
    let strict = process.genesys.strict_file_permissions;
    if let Some((_, source)) = secret::run_token_if_enabled(&process.daemon, strict)? {
        println!("# POST /run token: found in {source} (value not shown)");
    }
    for (index, settings) in orgs.iter().enumerate() {
        if orgs.listed() {
            println!(
                "\n# ---- org `{}` (orgs[{index}]): its effective settings ----",
                settings.org_name()
            );
        }
        print_org(&config, settings, clock)?;
    }
    Ok(ExitClass::Ok)
}

/// One org's effective settings, pacing, schedule, connection and secret (never its value).
fn print_org(config: &ConfigArg, settings: &Settings, clock: &Clock) -> Result<(), Failure> {
    print!("{}", settings.to_shown_toml());
    print_pacing(settings);
    print_schedule(settings, clock);
    // Where the client id and region came from: a listed org's own table and
    // `SKILL_TUNER__ORGS__<ORG>__…` variables first, then the top level's.
    for line in runtime::connection_lines(&config.config, settings)? {
        println!("# {line}");
    }
    // `run` refuses to start without the secret: so does the check of its config.
    let (_, source) = secret::load_org_client_secret(&settings.genesys, settings.org.as_deref())?;
    println!("# client secret: found in {source} (value not shown)");
    if let Some(warning) = secret::mismatched_pair(&settings.genesys.client_id, &source) {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

/// What the pacer may use: our share of the configured rate, which the org's limit and the
/// API's headers can only lower.
fn print_pacing(settings: &Settings) {
    let g = &settings.genesys;
    let ours = (f64::from(g.rate_limit_per_minute) * g.rate_share).floor();
    println!(
        "# pacing: at most {ours} requests/minute ({:.0} % of genesys.rate_limit_per_minute = {}, genesys.rate_share = {}), lowered by the org's limit and the inin-ratelimit-* headers, spread over each rate-limit window",
        g.rate_share * 100.0,
        g.rate_limit_per_minute,
        g.rate_share
    );
}

/// The next five runs and the spacing between cycle starts; validation already refused a
/// schedule that does not parse.
fn print_schedule(settings: &Settings, clock: &Clock) {
    let Ok(schedule) = Schedule::parse(&settings.daemon.schedule, &settings.daemon.time_zone)
    else {
        return;
    };
    println!(
        "# next five runs of daemon.schedule ({}):",
        settings.daemon.time_zone
    );
    print!("{}", schedule::describe_upcoming(&schedule, clock.now(), 5));
    let spacing = schedule::min_spacing(settings.daemon.min_spacing_secs, &schedule, clock.now());
    println!(
        "# minimum spacing between cycle starts: {} s",
        spacing.as_secs()
    );
    if schedule
        .shortest_interval(clock.now())
        .is_some_and(|s| s < Duration::from_secs(60))
    {
        println!("# warning: daemon.schedule runs more often than once a minute: each run moves skills up to max_step again and calls the API again; tuning needs days of data, so a daily or hourly schedule is the usual choice");
    }
}
