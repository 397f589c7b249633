//! `skill-tuner run`: the long-running daemon.
//!
//! One scheduler loop owns everything that changes: the config, the API client, the ledger
//! and the running cycle. It waits for the next cron tick (computed by [`Schedule`], DST
//! correct), a signal, a `POST /run`, or the end of the running cycle — never two cycles at
//! once: a tick that finds a cycle running is skipped, logged and counted. The cycle future
//! is polled by the loop itself rather than spawned, so the loop keeps answering signals and
//! pinging the systemd watchdog while a cycle runs, and a wedged loop stops the pings.
//!
//! Reload (SIGHUP) follows the Prometheus/vector contract: the new file is validated in full
//! (credentials included) and only then swapped in; a bad one is logged with its file, key
//! and reason, counted, and the old config keeps running. Changed credentials (a rotated
//! secret, another `[genesys]`) must first obtain a token: that request runs in the loop's
//! `select!` like a cycle, so signals and the watchdog are still answered while it waits, and
//! a refusal or an unreachable login keeps the client that works. A running cycle finishes
//! on the config it started with.
//!
//! Readiness follows the token in use (valid now, or obtainable), not the first login, so a
//! revoked token with the login endpoint down shows as not ready.
//!
//! Shutdown (SIGTERM/SIGINT): no new cycles; a running cycle is told to start no new agent
//! writes (those in flight finish) and its API client ends every wait (pacing, `Retry-After`,
//! backoff) at once, so the agents left are recorded `skipped` and the run `interrupted`;
//! it is awaited for at most `daemon.shutdown_grace_secs`; a second signal exits at once.
//!
//! Cycle starts keep [`effective_min_spacing`] apart whatever started them, and `POST /run`
//! needs a bearer token: the admin listener may be reachable by more than the scraper.

pub mod admin;
mod current;
mod cycles;
pub mod metrics;
pub mod notify;
mod reload;
mod shared;
pub mod signals;
mod ticks;

pub use reload::ReloadError;
pub use shared::Shared;

use crate::clock::Clock;
use crate::config::schedule::{Schedule, ScheduleError};
use crate::config::Settings;
use crate::cycle::report::CycleReport;
use crate::cycle::CycleError;
use crate::history::RunTrigger;
use crate::runtime::StartupError;
use chrono::{DateTime, Utc};
use current::Current;
use cycles::{finish_cycle, poll_running, start_cycle, try_start, Running};
use notify::Notifier;
use reload::{Candidate, PendingReload};
use signals::{Sig, Signals};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use ticks::{sleep_until_wall, Ticks};

/// `/healthz` fails when the loop has not turned for this long (it turns every second).
pub const HEALTHY_HEARTBEAT_AGE: Duration = Duration::from_secs(60);

/// How often the loop turns when nothing else happens (heartbeat, pending start-up run).
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot listen on daemon.admin_listen = {addr}: {source}")]
    AdminListen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0} (key `{key}`)", key = .0.key())]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Startup(#[from] StartupError),
}

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Stopped on request; any running cycle finished and was recorded.
    Clean,
    /// The running cycle did not finish within the grace period.
    GraceExceeded,
    /// A second SIGTERM/SIGINT during shutdown.
    Forced,
}

/// The least time between two cycle starts, whatever started them (schedule, SIGUSR1,
/// `POST /run`): a burst of requests or a tight schedule cannot hammer the org.
/// `daemon.min_spacing_secs`, or half the schedule's shortest interval (at most an hour).
pub fn effective_min_spacing(
    settings: &Settings,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Duration {
    crate::config::schedule::min_spacing(settings.daemon.min_spacing_secs, schedule, now)
}

/// What woke the loop.
enum Event {
    Tick,
    Housekeeping,
    Signal(Sig),
    RunRequested,
    CycleDone(Box<Result<CycleReport, CycleError>>, f64, tracing::Span),
    LoginChecked(Box<Candidate>, Result<(), ReloadError>),
}

/// Runs the daemon until SIGTERM/SIGINT. `settings` were loaded from `config_path` (which
/// SIGHUP re-reads); `clock` drives the schedule, the cycles and the timestamps.
pub async fn run(
    config_path: PathBuf,
    settings: Settings,
    clock: Clock,
) -> Result<Exit, DaemonError> {
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "systemd notifications disabled");
        Notifier::disabled()
    });
    let mut signals = Signals::install().map_err(DaemonError::Signals)?;
    let mut cur = Current::open(settings, clock)?;
    let (shared, mut run_rx) = Shared::new(cur.clock.clone());
    let admin_addr = admin::serve(&cur.settings.daemon, shared.clone()).await?;
    cur.log_in();

    let mut ticks = Ticks::first(
        &cur.schedule,
        cur.clock.now(),
        cur.settings.daemon.jitter_secs,
    );
    shared.set_next_run(ticks.fire);
    shared.publish(cur.in_use());
    let mut start_pending = cur.settings.daemon.run_on_start;
    let mut running: Option<Running> = None;
    let mut reloading: Option<PendingReload> = None;
    let mut last_watchdog = Instant::now();
    let watchdog_every = notifier.watchdog_interval().map(|d| d / 2);

    tracing::info!(
        config = %config_path.display(),
        schedule = %cur.schedule.expression(),
        time_zone = %cur.settings.daemon.time_zone,
        next_run = %ticks.fire.map_or_else(|| "none".to_string(), |t| t.to_rfc3339()),
        admin = %admin_addr,
        run_endpoint = cur.settings.daemon.enable_run_endpoint,
        watchdog_secs = notifier.watchdog_interval().map_or(0.0, |w| w.as_secs_f64()),
        "skill-tuner daemon started"
    );
    notifier.ready(&status_line(&cur, ticks.fire, None));
    notifier.watchdog();

    // The loop turns at least twice per watchdog interval, so the pings come from the loop.
    let turn = watchdog_every.map_or(HOUSEKEEPING, |w| {
        (w / 2).clamp(Duration::from_millis(50), HOUSEKEEPING)
    });
    let mut housekeeping = tokio::time::interval(turn);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        shared.beat();
        if let Some(every) = watchdog_every {
            if last_watchdog.elapsed() >= every {
                notifier.watchdog();
                last_watchdog = Instant::now();
            }
        }
        if start_pending && running.is_none() && cur.ready(&shared) {
            start_pending = false;
            running = Some(start_cycle(&cur, RunTrigger::Startup, &shared));
        }
        if let Some(run) = running.as_mut().filter(|r| !r.announced) {
            run.announced = true;
            notifier.status(&status_line(&cur, ticks.fire, Some(&*run)));
        }

        let sleep = sleep_until_wall(&cur.clock, ticks.fire);
        let event = tokio::select! {
            biased;
            sig = signals.next() => Event::Signal(sig),
            (result, secs, span) = poll_running(&mut running) => Event::CycleDone(Box::new(result), secs, span),
            (candidate, result) = reload::poll(&mut reloading) => Event::LoginChecked(Box::new(candidate), result),
            () = sleep => Event::Tick,
            Some(()) = run_rx.recv() => Event::RunRequested,
            _ = housekeeping.tick() => Event::Housekeeping,
        };

        // A reload that ended: whether it swapped the new config in.
        let reloaded = match event {
            Event::Housekeeping => None,
            Event::CycleDone(result, secs, span) => {
                running = None;
                span.in_scope(|| finish_cycle(&shared, *result, secs));
                notifier.status(&status_line(&cur, ticks.fire, None));
                None
            }
            Event::Tick => {
                if let Some(tick) = ticks.tick {
                    let tick = tick.to_rfc3339();
                    try_start(&mut running, &mut cur, &shared, RunTrigger::Schedule, tick);
                }
                ticks = ticks.following(
                    &cur.schedule,
                    cur.clock.now(),
                    cur.settings.daemon.jitter_secs,
                );
                shared.set_next_run(ticks.fire);
                None
            }
            Event::RunRequested => {
                try_start(
                    &mut running,
                    &mut cur,
                    &shared,
                    RunTrigger::Http,
                    String::new(),
                );
                None
            }
            Event::Signal(Sig::RunNow) => {
                try_start(
                    &mut running,
                    &mut cur,
                    &shared,
                    RunTrigger::Signal,
                    String::new(),
                );
                None
            }
            Event::Signal(Sig::Reload) => {
                notifier.reloading();
                // `None` while changed credentials are checked: `LoginChecked` ends it.
                reload::begin(&config_path, &mut cur, &shared, &mut reloading)
            }
            Event::LoginChecked(candidate, login) => {
                reloading = None;
                Some(reload::finish(
                    &config_path,
                    &mut cur,
                    &shared,
                    *candidate,
                    login,
                ))
            }
            Event::Signal(Sig::Terminate(name)) => {
                notifier.stopping();
                return Ok(shutdown(name, running, &cur, &shared, &mut signals, &notifier).await);
            }
        };
        // The end of a SIGHUP: a swapped-in config re-registers its schedule; READY either way.
        if let Some(swapped) = reloaded {
            if swapped {
                ticks = Ticks::first(
                    &cur.schedule,
                    cur.clock.now(),
                    cur.settings.daemon.jitter_secs,
                );
                shared.set_next_run(ticks.fire);
            }
            notifier.ready(&status_line(&cur, ticks.fire, running.as_ref()));
        }
    }
}

/// Stops: lets the running cycle finish its writes in flight within the grace period.
async fn shutdown(
    name: &str,
    running: Option<Running>,
    cur: &Current,
    shared: &Shared,
    signals: &mut Signals,
    notifier: &Notifier,
) -> Exit {
    cur.stop_login();
    let Some(mut run) = running else {
        tracing::info!(signal = name, "stopping: no cycle running");
        return Exit::Clean;
    };
    let grace = Duration::from_secs(cur.settings.daemon.shutdown_grace_secs);
    tracing::info!(
        signal = name,
        grace_secs = grace.as_secs(),
        "stopping: the running cycle finishes its writes in flight and starts no new ones; its waits on the API end now (send the signal again to exit at once)"
    );
    run.stop.request();
    // Waits on the API (pacing, a `Retry-After` of minutes, backoff) end now; requests on
    // the wire still get their answer, so what they did is recorded.
    run.client.shut_down();
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    let mut pings = tokio::time::interval(
        notifier
            .watchdog_interval()
            .map_or(HOUSEKEEPING, |d| (d / 2).max(Duration::from_millis(100))),
    );
    loop {
        shared.beat();
        tokio::select! {
            (result, secs) = &mut run.future => {
                run.span.in_scope(|| finish_cycle(shared, result, secs));
                tracing::info!("stopped after the running cycle finished");
                return Exit::Clean;
            }
            () = &mut deadline => {
                tracing::error!(grace_secs = grace.as_secs(), "the running cycle did not finish within daemon.shutdown_grace_secs; exiting (the next start reconciles the ledger)");
                return Exit::GraceExceeded;
            }
            sig = signals.next() => {
                if let Sig::Terminate(second) = sig {
                    tracing::warn!(signal = second, "second stop signal: exiting at once");
                    return Exit::Forced;
                }
                tracing::info!(signal = ?sig, "ignored while stopping");
            }
            _ = pings.tick() => notifier.watchdog(),
        }
    }
}

fn status_line(cur: &Current, next: Option<DateTime<Utc>>, running: Option<&Running>) -> String {
    shared::status_text(
        cur.schedule.expression(),
        next,
        running.map(|r| (r.trigger, r.since)),
    )
}
