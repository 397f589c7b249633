//! `plan`, `once` and `run`: one cycle now, or the daemon.

use super::output::print;
use super::setup::{load, load_orgs, warn_if_shifted};
use super::{ConfigArg, CycleArgs, Failure};
use skill_tuner::clock::Clock;
use skill_tuner::cycle::{run_cycle, Mode, StopSignal};
use skill_tuner::daemon::{self, Exit};
use skill_tuner::exit::ExitClass;
use skill_tuner::genesys::GenesysClient;
use skill_tuner::runtime;

/// `plan` (`Mode::Plan`) or `once` (`Mode::Once`): the report, and the exit status its
/// outcome gives.
pub async fn once(args: CycleArgs, mode: Mode, clock: &Clock) -> Result<ExitClass, Failure> {
    let settings = load(&args.config, &args.org)?;
    warn_if_shifted(clock);
    let client = runtime::connect(&settings, clock)?;
    let ledger = runtime::open_ledger(&settings, clock)
        .map_err(|e| Failure::from(e).note("refusing to run without a working history ledger"))?;
    runtime::start_client(&client, &settings).await?;
    let stop = StopSignal::default();
    let on_signal = tokio::spawn(stop_on_signal(stop.clone(), client.clone()));
    let result = run_cycle(&client, &settings, &ledger, mode, &stop, clock).await;
    on_signal.abort();
    let report = result?;
    print(&report, args.json, |r| r.render_table(50));
    Ok(ExitClass::of_outcome(report.outcome))
}

/// SIGINT (Ctrl-C) or SIGTERM during `plan`/`once`: like the daemon, the writes on the wire
/// finish, nothing new is sent, and the run is recorded `interrupted` (exit 4); a second
/// signal exits at once (the next run reconciles the ledger).
async fn stop_on_signal(stop: StopSignal, client: GenesysClient) {
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

/// `run`: 0 stopped cleanly, 1 the running cycle outlived the grace period or a second signal
/// forced the exit, 2 the config (or credentials, or the admin address) were unusable at
/// start-up.
pub async fn daemon(config: ConfigArg, clock: Clock) -> Result<ExitClass, Failure> {
    let orgs = load_orgs(&config)?;
    warn_if_shifted(&clock);
    let exit = daemon::run(config.config, orgs, clock)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start the daemon"))?;
    Ok(match exit {
        Exit::Clean => ExitClass::Ok,
        Exit::GraceExceeded | Exit::Forced => ExitClass::Failed,
    })
}
