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
//!
//! Many orgs (`[[orgs]]`): everything above is one org's loop ([`org_loop`]), and each org
//! has its own — its own schedule, client (token refresher, pacer, rate limit), ledger
//! handle and lock, breaker — so one org's failure, breaker or refused login never delays
//! or stops another's cycle. A supervisor owns what the process has once: the signals, the
//! admin listener, sd_notify and the watchdog. It hands SIGUSR1 to every org and each run
//! `POST /run` accepted to its org (see [`admin`]), and reads the file on SIGHUP: the whole new config is checked first (each org's
//! schedule and secret, each new org's parts) and refused as a whole, naming the org, if
//! any of it is bad; then an unchanged org is left alone (its schedule and any running
//! cycle untouched), a changed one swaps its settings in at its next idle point, a removed
//! one stops after its running cycle and a new one starts. The org loops run on the
//! supervisor's thread (a cycle is not `Send`); they wait on the network, not the CPU.

pub mod admin;
mod current;
mod cycles;
pub mod metrics;
pub mod notify;
mod org_loop;
mod reload;
mod shared;
pub mod signals;
mod ticks;

pub use reload::ReloadError;
pub use shared::Shared;

use crate::clock::Clock;
use crate::config::schedule::{Schedule, ScheduleError};
use crate::config::{Orgs, Settings};
use crate::history::RunTrigger;
use crate::runtime::StartupError;
use chrono::{DateTime, Utc};
use current::Current;
use notify::Notifier;
use org_loop::{Control, OrgTask};
use signals::{Sig, Signals};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// `/healthz` fails when a loop has not turned for this long (each turns every second).
pub const HEALTHY_HEARTBEAT_AGE: Duration = Duration::from_secs(60);

/// How often a loop turns when nothing else happens (heartbeat, pending start-up run).
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
    /// One listed org's parts could not start (the daemon starts all or none).
    #[error("org `{org}`: {source}")]
    Org {
        org: String,
        #[source]
        source: Box<DaemonError>,
    },
}

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// What woke the supervisor.
enum Event {
    Housekeeping,
    Signal(Sig),
    /// `POST /run` accepted a run of this org.
    RunRequested(String),
    /// An org loop returned (removed by a reload) or panicked.
    OrgEnded(Result<(tokio::task::Id, Exit), tokio::task::JoinError>),
    /// Every changed org answered whether its new settings were swapped in.
    Reloaded(Vec<(String, bool)>),
}

type ReloadWait = Pin<Box<dyn Future<Output = Vec<(String, bool)>>>>;

/// An error of one org's parts, named by the org when the config lists it.
fn in_org<E: Into<DaemonError>>(settings: &Settings, error: E) -> DaemonError {
    match &settings.org {
        Some(org) => DaemonError::Org {
            org: org.clone(),
            source: Box::new(error.into()),
        },
        None => error.into(),
    }
}

/// A reload error of one org, named by the org when the config lists it.
fn reload_in_org(settings: &Settings, error: ReloadError) -> ReloadError {
    match &settings.org {
        Some(org) => ReloadError::Org {
            org: org.clone(),
            source: Box::new(error),
        },
        None => error,
    }
}

/// Runs the daemon until SIGTERM/SIGINT. `orgs` were loaded from `config_path` (which
/// SIGHUP re-reads); `clock` drives the schedules, the cycles and the timestamps.
pub async fn run(config_path: PathBuf, orgs: Orgs, clock: Clock) -> Result<Exit, DaemonError> {
    tokio::task::LocalSet::new()
        .run_until(supervise(config_path, orgs, clock))
        .await
}

/// The org loops, by name, and their join handles.
struct Loops {
    tasks: BTreeMap<String, OrgTask>,
    set: JoinSet<Exit>,
    path: Arc<PathBuf>,
    shared: Arc<Shared>,
    notifier: Arc<Notifier>,
}

impl Loops {
    fn start(&mut self, cur: Current, digest: u64) {
        let task = org_loop::spawn(
            cur,
            digest,
            self.path.clone(),
            self.shared.clone(),
            self.notifier.clone(),
            &mut self.set,
        );
        self.tasks.insert(task.name.clone(), task);
    }

    fn send_all(&self, control: impl Fn() -> Control) {
        for task in self.tasks.values() {
            task.send(control());
        }
    }

    /// Forgets the loop that ended (a newer loop of the same name is kept).
    fn ended(&mut self, id: tokio::task::Id) {
        self.tasks.retain(|_, task| task.id != id);
    }
}

async fn supervise(config_path: PathBuf, orgs: Orgs, clock: Clock) -> Result<Exit, DaemonError> {
    let notifier = Arc::new(Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "systemd notifications disabled");
        Notifier::disabled()
    }));
    let mut signals = Signals::install().map_err(DaemonError::Signals)?;
    // Every org's parts before anything is served: a bad schedule or secret, or a ledger
    // another daemon holds for an org, refuses the start naming the org.
    let mut opened = Vec::new();
    for settings in orgs.iter() {
        let cur =
            Current::open(settings.clone(), clock.clone()).map_err(|e| in_org(settings, e))?;
        let digest = cur.secret_digest;
        opened.push((cur, digest));
    }
    let mut process = orgs.process().clone();
    let run_token =
        current::load_run_token(&process).map_err(|e| DaemonError::Startup(e.into()))?;
    let (shared, mut run_rx) = Shared::new(clock.clone());
    shared.set_run_token(run_token);
    let admin_addr = admin::serve(&process.daemon, shared.clone()).await?;
    let mut loops = Loops {
        tasks: BTreeMap::new(),
        set: JoinSet::new(),
        path: Arc::new(config_path.clone()),
        shared: shared.clone(),
        notifier: notifier.clone(),
    };
    for (cur, digest) in opened {
        loops.start(cur, digest);
    }
    shared.mark_started();
    let mut reload_wait: Option<ReloadWait> = None;
    let mut last_watchdog = Instant::now();
    let watchdog_every = notifier.watchdog_interval().map(|d| d / 2);

    tracing::info!(
        config = %config_path.display(),
        orgs = %orgs.names().join(", "),
        admin = %admin_addr,
        run_endpoint = process.daemon.enable_run_endpoint,
        watchdog_secs = notifier.watchdog_interval().map_or(0.0, |w| w.as_secs_f64()),
        "skill-tuner daemon started"
    );
    notifier.ready(&started_line(&loops));
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
            // A wedged org loop stops the pings, as a wedged single loop did.
            if last_watchdog.elapsed() >= every && shared.heartbeat_age() < HEALTHY_HEARTBEAT_AGE {
                notifier.watchdog();
                last_watchdog = Instant::now();
            }
        }
        let event = tokio::select! {
            biased;
            sig = signals.next() => Event::Signal(sig),
            Some(ended) = loops.set.join_next_with_id() => Event::OrgEnded(ended),
            answers = wait_reload(&mut reload_wait) => Event::Reloaded(answers),
            Some(org) = run_rx.recv() => Event::RunRequested(org),
            _ = housekeeping.tick() => Event::Housekeeping,
        };
        match event {
            Event::Housekeeping => {}
            Event::RunRequested(org) => {
                shared.run_taken(&org);
                match loops.tasks.get(&org) {
                    Some(task) => task.send(Control::Run(RunTrigger::Http)),
                    None => {
                        tracing::warn!(%org, "POST /run: the org stopped before its run was handed over; no cycle")
                    }
                }
            }
            Event::Signal(Sig::RunNow) => loops.send_all(|| Control::Run(RunTrigger::Signal)),
            Event::OrgEnded(Ok((id, _))) => loops.ended(id),
            Event::OrgEnded(Err(e)) => {
                tracing::error!(error = %e, "an org loop ended unexpectedly; its org runs no more cycles until the daemon restarts");
                loops.ended(e.id());
            }
            Event::Signal(Sig::Reload) => {
                notifier.reloading();
                match plan_reload(&config_path, &loops, &clock) {
                    Err(e) => {
                        shared.metrics.record_reload(false);
                        tracing::error!(config = %config_path.display(), error = %e, "config reload failed: keeping the running config (the next SIGHUP tries again)");
                        notifier.ready(&started_line(&loops));
                    }
                    Ok(plan) => {
                        warn_restart_only(&process, &plan.process);
                        process = plan.process.clone();
                        reload_wait = apply_reload(plan, &mut loops);
                        if reload_wait.is_none() {
                            shared.metrics.record_reload(true);
                            tracing::info!(config = %config_path.display(), orgs = %loops.tasks.keys().cloned().collect::<Vec<_>>().join(", "), "config reloaded");
                            notifier.ready(&started_line(&loops));
                        }
                    }
                }
            }
            Event::Reloaded(answers) => {
                reload_wait = None;
                let refused: Vec<&str> = answers
                    .iter()
                    .filter(|(_, swapped)| !swapped)
                    .map(|(name, _)| name.as_str())
                    .collect();
                for name in &refused {
                    // Kept running its old settings: the next SIGHUP tries it again.
                    if let Some(task) = loops.tasks.get_mut(*name) {
                        task.stale = true;
                    }
                }
                shared.metrics.record_reload(refused.is_empty());
                if refused.is_empty() {
                    tracing::info!(config = %config_path.display(), "config reloaded");
                } else {
                    tracing::error!(config = %config_path.display(), orgs = %refused.join(", "), "config reload: these orgs keep their running config (the rest were reloaded)");
                }
                notifier.ready(&started_line(&loops));
            }
            Event::Signal(Sig::Terminate(name)) => {
                notifier.stopping();
                loops.send_all(|| Control::Terminate(name));
                return Ok(shutdown(&mut loops, &mut signals, &notifier).await);
            }
        }
    }
}

/// What a checked reload changes.
struct ReloadPlan {
    process: Settings,
    run_token: Option<secrecy::SecretString>,
    changed: Vec<(Settings, u64)>,
    added: Vec<(Current, u64)>,
    removed: Vec<String>,
}

/// Reads and checks the whole new config before any org is touched (see the module
/// comment): refused as a whole, naming the org, if any part is bad.
fn plan_reload(path: &Path, loops: &Loops, clock: &Clock) -> Result<ReloadPlan, ReloadError> {
    let orgs = Orgs::load(path)?;
    let process = orgs.process().clone();
    let run_token = current::load_run_token(&process)?;
    let names = orgs.names();
    let mut plan = ReloadPlan {
        process,
        run_token,
        changed: Vec::new(),
        added: Vec::new(),
        removed: loops
            .tasks
            .keys()
            .filter(|name| !names.contains(name))
            .cloned()
            .collect(),
    };
    for settings in orgs.into_vec() {
        let digest = reload::precheck(&settings).map_err(|e| reload_in_org(&settings, e))?;
        match loops.tasks.get(settings.org_name()) {
            Some(task)
                if !task.stale
                    && org_scoped(&task.settings) == org_scoped(&settings)
                    && task.digest == digest => {}
            Some(_) => plan.changed.push((settings, digest)),
            None => {
                let cur = Current::open(settings.clone(), clock.clone()).map_err(|e| {
                    let error = match e {
                        DaemonError::Startup(s) => ReloadError::Startup(s),
                        DaemonError::Schedule(s) => ReloadError::Schedule(s),
                        other => ReloadError::Config(crate::config::ConfigError::Secret(
                            other.to_string(),
                        )),
                    };
                    reload_in_org(&settings, error)
                })?;
                plan.added.push((cur, digest));
            }
        }
    }
    Ok(plan)
}

/// Hands a checked plan to the org loops; the wait for the changed orgs' answers, if any.
fn apply_reload(plan: ReloadPlan, loops: &mut Loops) -> Option<ReloadWait> {
    loops.shared.set_run_token(plan.run_token);
    for name in &plan.removed {
        if let Some(task) = loops.tasks.get(name) {
            tracing::info!(org = %name, "config reload: org removed; it stops after its running cycle");
            task.send(Control::Retire);
        }
    }
    for (cur, digest) in plan.added {
        tracing::info!(org = %cur.name(), "config reload: org added");
        loops.start(cur, digest);
    }
    let mut answers = Vec::new();
    for (settings, digest) in plan.changed {
        let name = settings.org_name().to_string();
        let Some(task) = loops.tasks.get_mut(&name) else {
            continue;
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        task.settings = Arc::new(settings.clone());
        task.digest = digest;
        task.stale = false;
        task.send(Control::Reload {
            settings: Box::new(settings),
            done,
        });
        answers.push(async move { (name, answer.await.unwrap_or(false)) });
    }
    if answers.is_empty() {
        return None;
    }
    Some(Box::pin(futures_util::future::join_all(answers)))
}

/// An org's settings without the process-wide keys the supervisor alone handles (the log and
/// admin listener, which change at restart; the run token): a change there leaves every org
/// alone. `history.path` and the shutdown grace are kept: each org's loop follows them.
fn org_scoped(settings: &Settings) -> Settings {
    let mut scoped = settings.clone();
    let defaults = Settings::default();
    scoped.log = defaults.log;
    let d = &mut scoped.daemon;
    d.admin_listen = defaults.daemon.admin_listen;
    d.admin_public = defaults.daemon.admin_public;
    d.enable_run_endpoint = defaults.daemon.enable_run_endpoint;
    d.run_token_file = defaults.daemon.run_token_file;
    scoped
}

/// The process-wide settings a reload cannot change.
fn warn_restart_only(old: &Settings, new: &Settings) {
    if new.daemon.admin_listen != old.daemon.admin_listen {
        tracing::warn!(
            key = "daemon.admin_listen",
            "the admin listener address changes only at restart"
        );
    }
    if new.log != old.log {
        tracing::warn!(key = "log", "log settings change only at restart");
    }
}

/// The pending reload's answers, or never.
async fn wait_reload(wait: &mut Option<ReloadWait>) -> Vec<(String, bool)> {
    match wait {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Stops: every org loop lets its running cycle finish its writes in flight within the
/// grace period; a second signal exits at once.
async fn shutdown(loops: &mut Loops, signals: &mut Signals, notifier: &Notifier) -> Exit {
    let mut worst = Exit::Clean;
    let mut pings = tokio::time::interval(
        notifier
            .watchdog_interval()
            .map_or(HOUSEKEEPING, |d| (d / 2).max(Duration::from_millis(100))),
    );
    loop {
        loops.shared.beat();
        tokio::select! {
            ended = loops.set.join_next() => match ended {
                None => return worst,
                Some(Ok(exit)) => worst = worst.max(exit),
                Some(Err(e)) => {
                    tracing::error!(error = %e, "an org loop ended unexpectedly while stopping");
                    worst = worst.max(Exit::GraceExceeded);
                }
            },
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

/// The STATUS= line of the supervisor (each org loop then says its own).
fn started_line(loops: &Loops) -> String {
    match loops.tasks.len() {
        1 => "running".to_string(),
        n => format!("running {n} orgs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_org_scoped_keys_make_an_org_changed() {
        let base = Settings::default();
        let mut process_only = base.clone();
        process_only.log.level = "debug".into();
        process_only.daemon.admin_listen = "127.0.0.1:1".into();
        process_only.daemon.enable_run_endpoint = true;
        assert_eq!(org_scoped(&base), org_scoped(&process_only));
        // What each org loop follows itself is a change for it.
        for change in [
            |s: &mut Settings| s.daemon.schedule = "0 0 3 * * *".into(),
            |s: &mut Settings| s.history.path = "/elsewhere.db".into(),
            |s: &mut Settings| s.daemon.shutdown_grace_secs = 5,
            |s: &mut Settings| s.policy.default.max_step = 0.25,
        ] {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(org_scoped(&base), org_scoped(&changed));
        }
    }
}
