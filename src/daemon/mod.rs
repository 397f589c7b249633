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
pub mod metrics;
pub mod notify;
pub mod schedule;
pub mod signals;

use crate::clock::Clock;
use crate::config::{secret, ConfigError, Settings};
use crate::cycle::report::CycleReport;
use crate::cycle::{run_cycle, CycleError, Mode, StopSignal};
use crate::genesys::{ApiError, GenesysClient};
use crate::history::{Ledger, RunTrigger};
use crate::runtime::{self, StartupError};
use chrono::{DateTime, Utc};
use metrics::{LiveSource, LiveView, Metrics};
use notify::Notifier;
use schedule::{Schedule, ScheduleError};
use secrecy::{ExposeSecret, SecretString};
use signals::{Sig, Signals};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::Instrument;

/// `/healthz` fails when the loop has not turned for this long (it turns every second).
pub const HEALTHY_HEARTBEAT_AGE: Duration = Duration::from_secs(60);

/// How often the loop turns when nothing else happens (heartbeat, pending start-up run).
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// First and longest pause between login attempts while the login endpoint is down.
const LOGIN_BACKOFF_START: Duration = Duration::from_secs(1);
const LOGIN_BACKOFF_MAX: Duration = Duration::from_secs(60);

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
    schedule::min_spacing(settings.daemon.min_spacing_secs, schedule, now)
}

/// State the admin listener reads; the loop writes it.
#[derive(Debug)]
pub struct Shared {
    pub metrics: Metrics,
    view: Mutex<View>,
    heartbeat: Mutex<Instant>,
    run_tx: mpsc::Sender<()>,
    /// The bearer token of `POST /run`; `None` = the endpoint is off. `Debug` redacts it.
    run_token: Mutex<Option<SecretString>>,
    /// For the RFC 3339 time a throttled `POST /run` is told.
    clock: Clock,
}

#[derive(Debug, Default)]
struct View {
    client: Option<GenesysClient>,
    ledger_open: bool,
    cycle_running: bool,
    fingerprint: String,
    schedule: String,
    next_run: Option<f64>,
    /// When the last cycle started (monotonic, so a clock step cannot shorten the spacing).
    last_start: Option<Instant>,
    min_spacing: Duration,
}

impl Shared {
    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn beat(&self) {
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Time since the scheduler loop last turned.
    pub fn heartbeat_age(&self) -> Duration {
        self.heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// Empty when ready; otherwise what is missing. The config in use is always valid (an
    /// invalid one is never swapped in), so only the token and the ledger can be missing. The
    /// token is the current one: refused with no new one obtainable is missing too.
    pub fn not_ready_reasons(&self) -> Vec<&'static str> {
        let v = self.view();
        let mut missing = Vec::new();
        if !v.client.as_ref().is_some_and(GenesysClient::has_token) {
            missing.push("no valid API token (login pending or failing)");
        }
        if !v.ledger_open {
            missing.push("the history ledger is not open");
        }
        missing
    }

    pub fn cycle_running(&self) -> bool {
        self.view().cycle_running
    }

    fn token_slot(&self) -> std::sync::MutexGuard<'_, Option<SecretString>> {
        self.run_token.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn run_endpoint_enabled(&self) -> bool {
        self.token_slot().is_some()
    }

    /// Whether `given` is the run token, compared in constant time.
    pub fn run_token_matches(&self, given: &str) -> bool {
        self.token_slot().as_ref().is_some_and(|expected| {
            same_token(given.as_bytes(), expected.expose_secret().as_bytes())
        })
    }

    /// When a cycle may start again, if [`effective_min_spacing`] forbids one now. Rounded
    /// up to the second, so a client that waits until then is not refused again.
    pub fn next_start_allowed(&self) -> Option<DateTime<Utc>> {
        let v = self.view();
        let since = v.last_start?.elapsed();
        let left = v.min_spacing.checked_sub(since).filter(|d| !d.is_zero())?;
        let at = self.clock.now() + chrono::Duration::from_std(left).ok()?;
        use chrono::{SubsecRound, Timelike};
        let whole = at.trunc_subsecs(0);
        Some(if at.nanosecond() > 0 {
            whole + chrono::Duration::seconds(1)
        } else {
            whole
        })
    }

    /// The minimum spacing in force, in seconds (for messages).
    pub fn min_spacing_secs(&self) -> u64 {
        self.view().min_spacing.as_secs()
    }

    /// Queues one run request (at most one waits).
    pub fn request_run(&self) -> Result<(), &'static str> {
        self.run_tx
            .try_send(())
            .map_err(|_| "a run is already requested")
    }
}

impl LiveSource for Shared {
    fn live_view(&self) -> LiveView {
        let ready = self.not_ready_reasons().is_empty();
        let v = self.view();
        LiveView {
            api: v
                .client
                .as_ref()
                .map(GenesysClient::stats)
                .unwrap_or_default(),
            ready,
            has_token: v.client.as_ref().is_some_and(GenesysClient::has_token),
            ledger_open: v.ledger_open,
            cycle_running: v.cycle_running,
            config_fingerprint: v.fingerprint.clone(),
            schedule: v.schedule.clone(),
            next_run: v.next_run,
        }
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess
/// was right (only the expected length shapes it, and that is not the secret).
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ e);
    }
    std::hint::black_box(diff) == 0
}

/// The live parts built from one config.
struct Current {
    clock: Clock,
    settings: Arc<Settings>,
    /// A keyed hash of the client secret in use, so a rotated secret rebuilds the client.
    secret_digest: u64,
    schedule: Schedule,
    client: GenesysClient,
    login: tokio::task::JoinHandle<()>,
    ledger: Option<Arc<Ledger>>,
    /// The bearer token of `POST /run` (`None` = endpoint off).
    run_token: Option<SecretString>,
}

type CycleFuture = Pin<Box<dyn Future<Output = (Result<CycleReport, CycleError>, f64)>>>;

struct Running {
    future: CycleFuture,
    stop: StopSignal,
    /// The client the cycle uses (a reload may have replaced `Current`'s since): shutdown
    /// ends its waits.
    client: GenesysClient,
    /// The cycle's span (with its `cycle_id`), for the loop's own lines about it.
    span: tracing::Span,
    /// What started it and when, for the STATUS line; `announced` once that line was sent.
    trigger: &'static str,
    since: DateTime<Utc>,
    announced: bool,
}

type LoginCheck = Pin<Box<dyn Future<Output = (Candidate, Result<(), ReloadError>)>>>;

/// A reload waiting for its new credentials to obtain a token.
struct PendingReload {
    future: LoginCheck,
    /// The candidate's client, so its counters survive a superseded check.
    client: GenesysClient,
}

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
    let settings = Arc::new(settings);
    let schedule = Schedule::parse(&settings.daemon.schedule, &settings.daemon.time_zone)?;
    let (secret, source) = secret::load_client_secret(&settings.genesys)
        .map_err(|e| DaemonError::Startup(e.into()))?;
    tracing::info!(%source, "client secret found");
    if let Some(warning) = secret::mismatched_pair(&settings.genesys.client_id, &source) {
        tracing::warn!("{warning}");
    }
    let secret_digest = digest(&secret, &settings);
    let run_token = load_run_token(&settings).map_err(|e| DaemonError::Startup(e.into()))?;
    let client = runtime::client_with_secret(&settings, secret, &clock)?;
    // One daemon per ledger: a second one is refused (exit 5, naming the first) before it
    // binds the admin port or logs in. Any other ledger problem leaves it up but not ready.
    let ledger = match runtime::open_daemon_ledger(&settings, &clock) {
        Err(crate::history::LedgerError::Lock(e)) if e.is_held() => {
            return Err(DaemonError::Startup(StartupError::Ledger(e.into())))
        }
        opened => ledger_logged(opened, &settings),
    };

    let (run_tx, mut run_rx) = mpsc::channel(1);
    let shared = Arc::new(Shared {
        metrics: Metrics::new(clock.clone()),
        view: Mutex::new(View::default()),
        heartbeat: Mutex::new(Instant::now()),
        run_tx,
        run_token: Mutex::new(None),
        clock: clock.clone(),
    });
    let source: std::sync::Weak<Shared> = Arc::downgrade(&shared);
    shared.metrics.attach(source);

    let listener = tokio::net::TcpListener::bind(&settings.daemon.admin_listen)
        .await
        .map_err(|source| DaemonError::AdminListen {
            addr: settings.daemon.admin_listen.clone(),
            source,
        })?;
    let local = listener.local_addr().ok();
    let admin_addr = local.map(|a| a.to_string()).unwrap_or_default();
    if local.is_some_and(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            admin = %admin_addr,
            run_endpoint = settings.daemon.enable_run_endpoint,
            "the admin listener is not loopback (daemon.admin_public = true): /healthz, /readyz and /metrics answer anyone who reaches it; restrict who can"
        );
    }
    let router = admin::router(shared.clone());
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "admin listener stopped");
        }
    });

    let login = spawn_login(client.clone(), settings.clone());
    let mut cur = Current {
        clock,
        settings,
        secret_digest,
        schedule,
        client,
        login,
        ledger,
        run_token,
    };
    let mut next_tick = first_tick(&cur.schedule, cur.clock.now());
    let mut next_fire = with_jitter(next_tick, cur.settings.daemon.jitter_secs);
    set_next_run(&shared, next_fire);
    publish(&shared, &cur);
    let mut start_pending = cur.settings.daemon.run_on_start;
    let mut running: Option<Running> = None;
    let mut reloading: Option<PendingReload> = None;
    let mut last_watchdog = Instant::now();
    let watchdog_every = notifier.watchdog_interval().map(|d| d / 2);

    tracing::info!(
        config = %config_path.display(),
        schedule = %cur.schedule.expression(),
        time_zone = %cur.settings.daemon.time_zone,
        next_run = %next_fire.map_or_else(|| "none".to_string(), |t| t.to_rfc3339()),
        admin = %admin_addr,
        run_endpoint = cur.settings.daemon.enable_run_endpoint,
        watchdog_secs = notifier.watchdog_interval().map_or(0.0, |w| w.as_secs_f64()),
        "skill-tuner daemon started"
    );
    notifier.ready(&status_line(&cur, next_fire, None));
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
        if start_pending && running.is_none() && ready(&mut cur, &shared) {
            start_pending = false;
            running = Some(start_cycle(&cur, RunTrigger::Startup, &shared));
        }
        if let Some(run) = running.as_mut().filter(|r| !r.announced) {
            run.announced = true;
            notifier.status(&status_line(&cur, next_fire, Some(&*run)));
        }

        let sleep = sleep_until_wall(&cur.clock, next_fire);
        let event = tokio::select! {
            biased;
            sig = signals.next() => Event::Signal(sig),
            (result, secs, span) = poll_running(&mut running) => Event::CycleDone(Box::new(result), secs, span),
            (candidate, result) = poll_reload(&mut reloading) => Event::LoginChecked(Box::new(candidate), result),
            () = sleep => Event::Tick,
            Some(()) = run_rx.recv() => Event::RunRequested,
            _ = housekeeping.tick() => Event::Housekeeping,
        };

        match event {
            Event::Housekeeping => {}
            Event::CycleDone(result, secs, span) => {
                running = None;
                span.in_scope(|| finish_cycle(&shared, *result, secs));
                notifier.status(&status_line(&cur, next_fire, None));
            }
            Event::Tick => {
                if let Some(tick) = next_tick {
                    try_start(
                        &mut running,
                        &mut cur,
                        &shared,
                        RunTrigger::Schedule,
                        tick.to_rfc3339(),
                    );
                }
                next_tick = following_tick(&cur.schedule, next_tick, cur.clock.now());
                next_fire = with_jitter(next_tick, cur.settings.daemon.jitter_secs);
                set_next_run(&shared, next_fire);
            }
            Event::RunRequested => {
                try_start(
                    &mut running,
                    &mut cur,
                    &shared,
                    RunTrigger::Http,
                    String::new(),
                );
            }
            Event::Signal(Sig::RunNow) => {
                try_start(
                    &mut running,
                    &mut cur,
                    &shared,
                    RunTrigger::Signal,
                    String::new(),
                );
            }
            Event::Signal(Sig::Reload) => {
                notifier.reloading();
                if let Some(superseded) = reloading.take() {
                    // The file changed again: the newest one is what counts.
                    shared
                        .metrics
                        .retire_client_stats(&superseded.client.stats());
                    tracing::info!(
                        "a newer SIGHUP replaces the reload that was still checking its login"
                    );
                }
                let swapped = match prepare_reload(&config_path, &cur) {
                    Err(e) => {
                        reload_failed(&config_path, &shared, &e);
                        false
                    }
                    Ok(candidate) => match candidate.client.clone() {
                        Some(client) => {
                            tracing::info!(client_id = %client.client_id(), "config reload: checking the changed credentials with one token request");
                            reloading = Some(PendingReload {
                                future: Box::pin(check_login(candidate)),
                                client,
                            });
                            // READY follows when the check ends.
                            continue;
                        }
                        None => {
                            apply_reload(&config_path, &mut cur, &shared, candidate);
                            true
                        }
                    },
                };
                reload_done(
                    swapped,
                    &cur,
                    &shared,
                    &notifier,
                    running.as_ref(),
                    &mut next_tick,
                    &mut next_fire,
                );
            }
            Event::LoginChecked(candidate, result) => {
                reloading = None;
                let swapped = match result {
                    Ok(()) => {
                        apply_reload(&config_path, &mut cur, &shared, *candidate);
                        true
                    }
                    Err(e) => {
                        if let Some(client) = &candidate.client {
                            shared.metrics.retire_client_stats(&client.stats());
                        }
                        reload_failed(&config_path, &shared, &e);
                        false
                    }
                };
                reload_done(
                    swapped,
                    &cur,
                    &shared,
                    &notifier,
                    running.as_ref(),
                    &mut next_tick,
                    &mut next_fire,
                );
            }
            Event::Signal(Sig::Terminate(name)) => {
                notifier.stopping();
                return Ok(shutdown(name, running, &cur, &shared, &mut signals, &notifier).await);
            }
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
    cur.login.abort();
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

/// The end of a SIGHUP: a swapped-in config re-registers its schedule; READY either way.
fn reload_done(
    swapped: bool,
    cur: &Current,
    shared: &Shared,
    notifier: &Notifier,
    running: Option<&Running>,
    next_tick: &mut Option<DateTime<Utc>>,
    next_fire: &mut Option<DateTime<Utc>>,
) {
    if swapped {
        *next_tick = first_tick(&cur.schedule, cur.clock.now());
        *next_fire = with_jitter(*next_tick, cur.settings.daemon.jitter_secs);
        set_next_run(shared, *next_fire);
    }
    notifier.ready(&status_line(cur, *next_fire, running));
}

/// The pending reload's login check, or never.
async fn poll_reload(
    reloading: &mut Option<PendingReload>,
) -> (Candidate, Result<(), ReloadError>) {
    match reloading {
        Some(pending) => (&mut pending.future).await,
        None => std::future::pending().await,
    }
}

async fn poll_running(
    running: &mut Option<Running>,
) -> (Result<CycleReport, CycleError>, f64, tracing::Span) {
    match running {
        Some(run) => {
            let (result, secs) = (&mut run.future).await;
            (result, secs, run.span.clone())
        }
        None => std::future::pending().await,
    }
}

/// Sleeps until a wall-clock instant; re-evaluated every loop turn, so a clock step is
/// corrected within a second.
async fn sleep_until_wall(clock: &Clock, at: Option<DateTime<Utc>>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn first_tick(schedule: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.next_after(now)
}

/// The tick after `previous`; ticks missed while the process could not run are not caught up.
fn following_tick(
    schedule: &Schedule,
    previous: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let base = previous.map_or(now, |p| p.max(now - chrono::Duration::seconds(1)));
    let next = schedule.next_after(base)?;
    if next < now {
        schedule.next_after(now)
    } else {
        Some(next)
    }
}

fn with_jitter(tick: Option<DateTime<Utc>>, jitter_secs: u64) -> Option<DateTime<Utc>> {
    let tick = tick?;
    if jitter_secs == 0 {
        return Some(tick);
    }
    // Validation bounds the jitter to a day; the arithmetic stays checked regardless.
    let ms = fastrand::u64(0..=jitter_secs.saturating_mul(1000));
    let delay = chrono::Duration::try_milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))?;
    tick.checked_add_signed(delay)
}

fn set_next_run(shared: &Shared, next: Option<DateTime<Utc>>) {
    shared.view().next_run = next.map(|t| t.timestamp_millis() as f64 / 1000.0);
}

fn publish(shared: &Shared, cur: &Current) {
    let mut v = shared.view();
    v.client = Some(cur.client.clone());
    v.ledger_open = cur.ledger.is_some();
    v.fingerprint = cur.settings.fingerprint();
    v.schedule = format!(
        "{} {}",
        cur.schedule.expression(),
        cur.settings.daemon.time_zone
    );
    v.min_spacing = effective_min_spacing(&cur.settings, &cur.schedule, cur.clock.now());
    drop(v);
    *shared.token_slot() = cur.run_token.clone();
}

fn status_line(cur: &Current, next: Option<DateTime<Utc>>, running: Option<&Running>) -> String {
    status_text(
        cur.schedule.expression(),
        next,
        running.map(|r| (r.trigger, r.since)),
    )
}

/// systemd's STATUS= text: what the daemon is doing now (a cycle, with its trigger and
/// start, or idle) and when the next cycle is due.
fn status_text(
    schedule: &str,
    next: Option<DateTime<Utc>>,
    running: Option<(&str, DateTime<Utc>)>,
) -> String {
    let now = match running {
        Some((trigger, since)) => format!(
            "running cycle ({trigger}) since {}",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => "idle".to_string(),
    };
    match next {
        Some(t) => format!("{now}; next cycle {} ({schedule})", t.to_rfc3339()),
        None => format!("{now}; `{schedule}` has no further ticks"),
    }
}

/// Ready to run a cycle: token present and ledger open (retrying the ledger if it is not).
fn ready(cur: &mut Current, shared: &Shared) -> bool {
    if cur.ledger.is_none() {
        if let Some(ledger) = try_open_ledger(&cur.settings, &cur.clock) {
            tracing::info!(path = %ledger.path().display(), "history ledger opened");
            cur.ledger = Some(ledger);
            shared.view().ledger_open = true;
        }
    }
    cur.ledger.is_some() && cur.client.has_token()
}

fn try_start(
    running: &mut Option<Running>,
    cur: &mut Current,
    shared: &Shared,
    trigger: RunTrigger,
    tick: String,
) {
    let trigger_name = trigger.as_str();
    if running.is_some() {
        tracing::warn!(
            trigger = trigger_name,
            tick,
            "a cycle is still running: this run is skipped (cycles never overlap)"
        );
        shared.metrics.record_skipped_tick("overlap");
        return;
    }
    if let Some(at) = shared.next_start_allowed() {
        tracing::warn!(
            trigger = trigger_name,
            tick,
            not_before = %at.to_rfc3339(),
            min_spacing_secs = shared.min_spacing_secs(),
            "the last cycle started less than daemon.min_spacing_secs ago: this run is skipped"
        );
        shared.metrics.record_skipped_tick("min_spacing");
        return;
    }
    if !ready(cur, shared) {
        tracing::warn!(
            trigger = trigger_name,
            tick,
            reasons = %shared.not_ready_reasons().join("; "),
            "not ready: this run is skipped"
        );
        shared.metrics.record_skipped_tick("not_ready");
        return;
    }
    *running = Some(start_cycle(cur, trigger, shared));
}

fn start_cycle(cur: &Current, trigger: RunTrigger, shared: &Shared) -> Running {
    let stop = StopSignal::default();
    let client = cur.client.clone();
    let cycle_client = client.clone();
    let settings = cur.settings.clone();
    let ledger = cur.ledger.clone();
    let clock = cur.clock.clone();
    let cycle_stop = stop.clone();
    let cycle_id = uuid::Uuid::new_v4();
    let span = tracing::info_span!("cycle", %cycle_id, trigger = trigger.as_str());
    span.in_scope(|| tracing::info!("cycle starting"));
    {
        let mut v = shared.view();
        v.cycle_running = true;
        v.last_start = Some(Instant::now());
    }
    let future = Box::pin(
        async move {
            let started = Instant::now();
            let result = match ledger {
                Some(ledger) => {
                    run_cycle(
                        &client,
                        &settings,
                        &ledger,
                        Mode::Scheduled(trigger),
                        &cycle_stop,
                        &clock,
                    )
                    .await
                }
                // `ready` checked the ledger; kept total rather than panicking.
                None => Err(CycleError::Ledger(crate::history::LedgerError::NotFound(
                    "the ledger is not open".into(),
                ))),
            };
            (result, started.elapsed().as_secs_f64())
        }
        .instrument(span.clone()),
    );
    Running {
        future,
        stop,
        client: cycle_client,
        span,
        trigger: trigger.as_str(),
        since: cur.clock.now(),
        announced: false,
    }
}

fn finish_cycle(shared: &Shared, result: Result<CycleReport, CycleError>, secs: f64) {
    shared.view().cycle_running = false;
    match result {
        Ok(report) => {
            shared.metrics.record_cycle(&report);
            tracing::info!(
                run_id = report.run_id,
                outcome = %report.outcome,
                changed = report.agents_changed,
                conflicts = report.conflicts,
                failed = report.failed,
                duration_secs = secs,
                "cycle done"
            );
        }
        Err(e) => {
            shared.metrics.record_cycle_error(secs);
            tracing::error!(error = %e, duration_secs = secs, "cycle failed");
        }
    }
}

/// Logs in (token refresher, org rate limit) in the background, retrying with backoff, so a
/// login endpoint that is down at start-up leaves the daemon up but not ready.
fn spawn_login(client: GenesysClient, settings: Arc<Settings>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = LOGIN_BACKOFF_START;
        loop {
            match runtime::start_client(&client, &settings).await {
                Ok(()) => {
                    tracing::info!(client_id = %client.client_id(), "logged in; ready");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_secs = delay.as_secs(), "login failed; not ready, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(LOGIN_BACKOFF_MAX);
                }
            }
        }
    })
}

fn try_open_ledger(settings: &Settings, clock: &Clock) -> Option<Arc<Ledger>> {
    runtime::open_daemon_ledger(settings, clock)
        .ok()
        .map(Arc::new)
}

fn open_ledger_logged(settings: &Settings, clock: &Clock) -> Option<Arc<Ledger>> {
    ledger_logged(runtime::open_daemon_ledger(settings, clock), settings)
}

fn ledger_logged(
    opened: Result<Ledger, crate::history::LedgerError>,
    settings: &Settings,
) -> Option<Arc<Ledger>> {
    match opened {
        Ok(l) => Some(Arc::new(l)),
        Err(e) => {
            tracing::error!(error = %e, path = %runtime::ledger_path(settings).display(), "cannot open the history ledger: no cycles run until it opens (retried at each tick and on SIGHUP); not ready");
            None
        }
    }
}

/// The run token for `settings` (refusing `enable_run_endpoint` without one), logged by
/// where it was found, never by value.
fn load_run_token(settings: &Settings) -> Result<Option<SecretString>, ConfigError> {
    let found =
        secret::run_token_if_enabled(&settings.daemon, settings.genesys.strict_file_permissions)?;
    Ok(found.map(|(token, source)| {
        tracing::info!(%source, "POST /run enabled; bearer token found");
        token
    }))
}

/// What a reload would swap in, built completely before anything is swapped.
struct Candidate {
    settings: Arc<Settings>,
    secret_digest: u64,
    schedule: Schedule,
    /// A new client, when `[genesys]` or the secret changed; swapped in only after it
    /// obtained a token.
    client: Option<GenesysClient>,
    ledger: Option<Option<Arc<Ledger>>>,
    run_token: Option<SecretString>,
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0} (key `{key}`)", key = .0.key())]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("key `history.path`: cannot open the new ledger: {0}")]
    Ledger(#[from] crate::history::LedgerError),
    #[error("the changed `[genesys]` settings or client secret cannot log in, so the running client is kept: {0}")]
    Login(ApiError),
    #[error("the changed `[genesys]` settings or client secret could not be checked: no answer from the login endpoint within {0:?}, so the running client is kept")]
    LoginTimeout(Duration),
}

/// Reads and checks the config at `path` against the running parts.
fn prepare_reload(path: &Path, cur: &Current) -> Result<Candidate, ReloadError> {
    let settings = Settings::load(path)?;
    let schedule = Schedule::parse(&settings.daemon.schedule, &settings.daemon.time_zone)?;
    // Credentials must be present even when the client is kept (a removed secret file would
    // otherwise surface only at the next restart); a rotated secret rebuilds the client.
    let (secret, _) = secret::load_client_secret(&settings.genesys)?;
    let secret_digest = digest(&secret, &settings);
    let client = if settings.genesys == cur.settings.genesys && secret_digest == cur.secret_digest {
        None
    } else {
        Some(runtime::client_with_secret(&settings, secret, &cur.clock)?)
    };
    let run_token = load_run_token(&settings)?;
    // A new `history.path` must open (else the reload fails); the same path that could not
    // be opened before is retried without failing the reload over it (not a config problem).
    let ledger = if runtime::ledger_path(&settings) != runtime::ledger_path(&cur.settings) {
        Some(Some(Arc::new(runtime::open_daemon_ledger(
            &settings, &cur.clock,
        )?)))
    } else if cur.ledger.is_none() {
        Some(open_ledger_logged(&settings, &cur.clock))
    } else {
        None
    };
    Ok(Candidate {
        settings: Arc::new(settings),
        secret_digest,
        schedule,
        client,
        ledger,
        run_token,
    })
}

/// Asks for one token with the candidate's new client. Bounded by the new
/// `genesys.request_timeout_secs`: the token request itself has no timeout of its own, and a
/// login endpoint that never answers must fail the reload, not leave it pending.
async fn check_login(candidate: Candidate) -> (Candidate, Result<(), ReloadError>) {
    let Some(client) = candidate.client.clone() else {
        return (candidate, Ok(()));
    };
    let limit = Duration::from_secs(candidate.settings.genesys.request_timeout_secs.max(1));
    let result = match tokio::time::timeout(limit, client.login()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ReloadError::Login(e)),
        Err(_) => Err(ReloadError::LoginTimeout(limit)),
    };
    (candidate, result)
}

/// A refused reload: counted, logged with its reason; the running config stays.
fn reload_failed(path: &Path, shared: &Shared, error: &ReloadError) {
    shared.metrics.record_reload(false);
    tracing::error!(config = %path.display(), error = %error, "config reload failed: keeping the running config (the next SIGHUP tries again)");
}

/// Swaps a checked candidate in: the next cycle uses it.
fn apply_reload(path: &Path, cur: &mut Current, shared: &Shared, candidate: Candidate) {
    let old = cur.settings.clone();
    let new = &candidate.settings;
    if new.daemon.admin_listen != old.daemon.admin_listen {
        tracing::warn!(
            key = "daemon.admin_listen",
            "the admin listener address changes only at restart"
        );
    }
    if new.log != old.log {
        tracing::warn!(key = "log", "log settings change only at restart");
    }
    let schedule_changed =
        new.daemon.schedule != old.daemon.schedule || new.daemon.time_zone != old.daemon.time_zone;
    let client_rebuilt = candidate.client.is_some();
    if let Some(client) = candidate.client {
        cur.login.abort();
        shared.metrics.retire_client_stats(&cur.client.stats());
        cur.login = spawn_login(client.clone(), candidate.settings.clone());
        cur.client = client;
    }
    if let Some(ledger) = candidate.ledger {
        cur.ledger = ledger;
    }
    cur.settings = candidate.settings;
    cur.secret_digest = candidate.secret_digest;
    cur.schedule = candidate.schedule;
    cur.run_token = candidate.run_token;
    publish(shared, cur);
    shared.metrics.record_reload(true);
    tracing::info!(
        config = %path.display(),
        fingerprint = %cur.settings.fingerprint(),
        schedule_changed,
        client_rebuilt,
        "config reloaded: the next cycle uses it"
    );
}

/// Compares secrets without keeping them twice: SipHash with a per-process random key, never
/// logged or exported. Besides the client secret it covers what the client is built from
/// outside the config text — the proxy's credentials and the CA bundle's contents — so
/// rotating either file rebuilds the client at the next reload (an unreadable one is
/// refused when the client is built).
fn digest(secret: &secrecy::SecretString, settings: &Settings) -> u64 {
    use secrecy::ExposeSecret;
    use std::hash::{BuildHasher, Hasher};
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = KEYS
        .get_or_init(std::collections::hash_map::RandomState::new)
        .build_hasher();
    h.write(secret.expose_secret().as_bytes());
    let g = &settings.genesys;
    if g.proxy.is_some() {
        if let Ok(Some((credentials, _))) = secret::load_proxy_credentials(g) {
            h.write_u8(1);
            h.write(credentials.expose_secret().as_bytes());
        }
    }
    if let Some(bytes) = g
        .ca_bundle_file
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
    {
        h.write_u8(2);
        h.write(&bytes);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn following_tick_does_not_catch_up_missed_ticks() {
        let s = Schedule::parse("0 * * * * *", "UTC").unwrap();
        let prev = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 5, 30).unwrap();
        assert_eq!(
            following_tick(&s, Some(prev), now),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 6, 0).unwrap())
        );
        // Fired a little early (timer granularity): the same tick is not taken twice.
        let now = prev - chrono::Duration::milliseconds(5);
        assert_eq!(
            following_tick(&s, Some(prev), now),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap())
        );
    }

    #[test]
    fn status_says_a_cycle_is_running_and_since_when() {
        let next = Utc.with_ymd_and_hms(2026, 1, 2, 2, 0, 0).unwrap();
        let since = Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 3).unwrap();
        let running = status_text("0 0 2 * * *", Some(next), Some(("SIGUSR1", since)));
        assert!(
            running.starts_with("running cycle (SIGUSR1) since 2026-01-01T02:00:03Z"),
            "{running}"
        );
        assert!(!running.contains("idle"), "{running}");
        assert!(
            running.contains("next cycle 2026-01-02T02:00:00"),
            "{running}"
        );
        let idle = status_text("0 0 2 * * *", Some(next), None);
        assert!(idle.starts_with("idle; next cycle"), "{idle}");
        let last = status_text("0 0 2 1 1 * 2026", None, Some(("schedule", since)));
        assert!(last.starts_with("running cycle (schedule)"), "{last}");
    }

    #[test]
    fn run_tokens_match_only_whole() {
        let token = b"abcdefghijklmnop";
        assert!(same_token(token, token));
        assert!(!same_token(b"abcdefghijklmnoq", token));
        assert!(!same_token(b"abcdefghijklmno", token));
        assert!(!same_token(b"abcdefghijklmnop\0", token));
        assert!(!same_token(b"", token));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for _ in 0..100 {
            let j = with_jitter(Some(t), 30).unwrap();
            assert!(j >= t && j <= t + chrono::Duration::seconds(30));
        }
        assert_eq!(with_jitter(Some(t), 0), Some(t));
        assert_eq!(with_jitter(None, 5), None);
    }
}
