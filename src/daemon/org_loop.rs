//! One org's loop: its schedule, its cycles (never two at once), its reloads and its part of
//! a shutdown — the single daemon loop of a config without `[[orgs]]`, run once per org.
//! The supervisor ([`super`]) talks to it through [`Control`] messages only.

use super::current::Current;
use super::cycles::{finish_cycle, poll_running, start_cycle, try_start, Running};
use super::notify::Notifier;
use super::reload::{self, Candidate, PendingReload, ReloadError};
use super::shared::{status_text, Shared};
use super::ticks::{sleep_until_wall, Ticks};
use super::{Exit, HOUSEKEEPING};
use crate::config::Settings;
use crate::history::RunTrigger;
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

/// What the supervisor asks of an org loop.
pub(super) enum Control {
    /// Start a cycle now (SIGUSR1, `POST /run`), unless the org cannot.
    Run(RunTrigger),
    /// Swap these settings in at the next idle point; `done` says whether they were.
    Reload {
        settings: Box<Settings>,
        done: oneshot::Sender<bool>,
    },
    /// The org left the config: stop after the running cycle.
    Retire,
    /// SIGTERM/SIGINT (named): stop as a daemon does.
    Terminate(&'static str),
}

/// The supervisor's handle on a running org loop.
pub(super) struct OrgTask {
    pub name: String,
    pub id: tokio::task::Id,
    /// The settings last handed to the loop, and their secret's digest: what a reload
    /// compares with to leave an unchanged org alone.
    pub settings: Arc<Settings>,
    pub digest: u64,
    /// The loop refused the last settings it was handed (a login check failed): the next
    /// reload hands them again even if the file did not change.
    pub stale: bool,
    tx: mpsc::UnboundedSender<Control>,
}

impl OrgTask {
    pub fn send(&self, control: Control) {
        // A loop that already ended (retired) has nothing left to do with it.
        let _ = self.tx.send(control);
    }
}

/// Starts `cur`'s loop on the supervisor's thread.
pub(super) fn spawn(
    cur: Current,
    digest: u64,
    path: Arc<PathBuf>,
    shared: Arc<Shared>,
    notifier: Arc<Notifier>,
    set: &mut JoinSet<Exit>,
) -> OrgTask {
    let (tx, rx) = mpsc::unbounded_channel();
    let name = cur.name().to_string();
    let settings = cur.settings.clone();
    // Shown, config and all (not ready yet: no token), before the loop first turns.
    shared.add_org(&name, settings.org.clone(), cur.in_use());
    let span = match &settings.org {
        Some(org) => tracing::info_span!("org", org = %org),
        None => tracing::Span::none(),
    };
    let handle = set.spawn_local(org_loop(cur, path, shared, notifier, rx).instrument(span));
    OrgTask {
        name,
        id: handle.id(),
        settings,
        digest,
        stale: false,
        tx,
    }
}

/// What woke an org loop.
enum Event {
    Tick,
    Housekeeping,
    Control(Option<Control>),
    CycleDone(
        Box<Result<crate::cycle::report::CycleReport, crate::cycle::CycleError>>,
        f64,
        tracing::Span,
    ),
    LoginChecked(Box<Candidate>, Result<(), ReloadError>),
}

/// A reload waiting for its answer: deferred while a cycle runs, or checking its login.
#[derive(Default)]
struct Reloads {
    /// Settings that came while a cycle ran: swapped in when it ends.
    deferred: Option<(Settings, oneshot::Sender<bool>)>,
    /// The answer owed for the reload whose login is being checked.
    checking: Option<oneshot::Sender<bool>>,
    pending: Option<PendingReload>,
}

impl Reloads {
    /// Supersedes whatever reload was waiting: it will not be swapped in.
    fn supersede(&mut self) {
        for done in [
            self.deferred.take().map(|(_, done)| done),
            self.checking.take(),
        ]
        .into_iter()
        .flatten()
        {
            let _ = done.send(false);
        }
    }
}

struct OrgLoop {
    cur: Current,
    path: Arc<PathBuf>,
    shared: Arc<Shared>,
    notifier: Arc<Notifier>,
    ticks: Ticks,
    /// What `ticks` were computed from: schedule, time zone, jitter.
    registered: (String, String, u64),
    running: Option<Running>,
    reloads: Reloads,
}

async fn org_loop(
    cur: Current,
    path: Arc<PathBuf>,
    shared: Arc<Shared>,
    notifier: Arc<Notifier>,
    mut rx: mpsc::UnboundedReceiver<Control>,
) -> Exit {
    let ticks = Ticks::first(
        &cur.schedule,
        cur.clock.now(),
        cur.settings.daemon.jitter_secs,
    );
    let registered = schedule_of(&cur.settings);
    let mut l = OrgLoop {
        cur,
        path,
        shared,
        notifier,
        ticks,
        registered,
        running: None,
        reloads: Reloads::default(),
    };
    let name = l.cur.name().to_string();
    l.cur.log_in();
    l.shared.set_next_run(&name, l.ticks.fire);
    tracing::info!(
        schedule = %l.cur.schedule.expression(),
        time_zone = %l.cur.settings.daemon.time_zone,
        next_run = %l.ticks.fire.map_or_else(|| "none".to_string(), |t| t.to_rfc3339()),
        "org loop started"
    );
    l.say_status(None);
    let mut start_pending = l.cur.settings.daemon.run_on_start;
    let mut retiring = false;
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        l.shared.beat_org(&name);
        if retiring && l.running.is_none() {
            l.cur.stop_login();
            l.reloads.supersede();
            l.shared.remove_org(&name);
            tracing::info!("org removed from the config: stopped");
            return Exit::Clean;
        }
        if start_pending && l.running.is_none() && l.cur.ready(&l.shared) {
            start_pending = false;
            l.running = Some(start_cycle(&l.cur, RunTrigger::Startup, &l.shared));
        }
        if let Some(run) = l.running.as_mut().filter(|r| !r.announced) {
            run.announced = true;
            let (trigger, since) = (run.trigger, run.since);
            l.say_status(Some((trigger, since)));
        }

        let sleep = sleep_until_wall(&l.cur.clock, l.ticks.fire);
        let event = tokio::select! {
            biased;
            control = rx.recv() => Event::Control(control),
            (result, secs, span) = poll_running(&mut l.running) => Event::CycleDone(Box::new(result), secs, span),
            (candidate, result) = reload::poll(&mut l.reloads.pending) => Event::LoginChecked(Box::new(candidate), result),
            () = sleep => Event::Tick,
            _ = housekeeping.tick() => Event::Housekeeping,
        };

        match event {
            Event::Housekeeping => {}
            Event::CycleDone(result, secs, span) => {
                l.running = None;
                let key = l.cur.settings.org.clone();
                span.in_scope(|| finish_cycle(&l.shared, (&name, key.as_deref()), *result, secs));
                l.say_status(None);
                // The idle point a deferred reload waited for.
                if let Some((settings, done)) = l.reloads.deferred.take() {
                    l.begin_reload(settings, done);
                }
            }
            Event::Tick => {
                if let Some(tick) = l.ticks.tick.filter(|_| !retiring) {
                    let tick = tick.to_rfc3339();
                    try_start(
                        &mut l.running,
                        &mut l.cur,
                        &l.shared,
                        RunTrigger::Schedule,
                        tick,
                    );
                }
                l.ticks = l.ticks.following(
                    &l.cur.schedule,
                    l.cur.clock.now(),
                    l.cur.settings.daemon.jitter_secs,
                );
                l.shared.set_next_run(&name, l.ticks.fire);
            }
            Event::Control(Some(Control::Run(trigger))) => {
                if !retiring {
                    try_start(
                        &mut l.running,
                        &mut l.cur,
                        &l.shared,
                        trigger,
                        String::new(),
                    );
                }
            }
            Event::Control(Some(Control::Reload { settings, done })) => {
                l.reloads.supersede();
                if l.running.is_some() {
                    tracing::info!("config reload: the org's new settings are swapped in when its running cycle ends");
                    l.reloads.deferred = Some((*settings, done));
                } else {
                    l.begin_reload(*settings, done);
                }
            }
            Event::LoginChecked(candidate, login) => {
                l.reloads.pending = None;
                let swapped = reload::finish(&l.path, &mut l.cur, &l.shared, *candidate, login);
                l.swapped(swapped);
                if let Some(done) = l.reloads.checking.take() {
                    let _ = done.send(swapped);
                }
            }
            Event::Control(Some(Control::Retire)) => {
                retiring = true;
                start_pending = false;
            }
            Event::Control(Some(Control::Terminate(signal))) => {
                l.reloads.supersede();
                return shutdown(signal, l.running.take(), &l.cur, &l.shared).await;
            }
            // The supervisor is gone: nothing will ask for anything again.
            Event::Control(None) => {
                return shutdown("supervisor gone", l.running.take(), &l.cur, &l.shared).await
            }
        }
    }
}

impl OrgLoop {
    /// Starts swapping `settings` in; answers `done` now, or when the login check ends.
    fn begin_reload(&mut self, settings: Settings, done: oneshot::Sender<bool>) {
        match reload::begin(
            &self.path,
            settings,
            &mut self.cur,
            &self.shared,
            &mut self.reloads.pending,
        ) {
            Some(swapped) => {
                self.swapped(swapped);
                let _ = done.send(swapped);
            }
            None => self.reloads.checking = Some(done),
        }
    }

    /// A swapped-in config with another schedule re-registers it; the same schedule keeps
    /// its next tick (and jitter).
    fn swapped(&mut self, swapped: bool) {
        let schedule = schedule_of(&self.cur.settings);
        if swapped && schedule != self.registered {
            self.registered = schedule;
            self.ticks = Ticks::first(
                &self.cur.schedule,
                self.cur.clock.now(),
                self.cur.settings.daemon.jitter_secs,
            );
            self.shared.set_next_run(self.cur.name(), self.ticks.fire);
            self.say_status(None);
        }
    }

    /// systemd's STATUS= line for this org (named when the config lists its orgs).
    fn say_status(&self, running: Option<(&str, DateTime<Utc>)>) {
        let line = status_text(self.cur.schedule.expression(), self.ticks.fire, running);
        match &self.cur.settings.org {
            Some(org) => self.notifier.status(&format!("org `{org}`: {line}")),
            None => self.notifier.status(&line),
        }
    }
}

/// What an org's ticks are computed from.
fn schedule_of(settings: &Settings) -> (String, String, u64) {
    let d = &settings.daemon;
    (d.schedule.clone(), d.time_zone.clone(), d.jitter_secs)
}

/// Stops the org: lets the running cycle finish its writes in flight within the grace period.
async fn shutdown(name: &str, running: Option<Running>, cur: &Current, shared: &Shared) -> Exit {
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
    match tokio::time::timeout(grace, &mut run.future).await {
        Ok((result, secs)) => {
            let key = cur.settings.org.clone();
            run.span
                .in_scope(|| finish_cycle(shared, (cur.name(), key.as_deref()), result, secs));
            tracing::info!("stopped after the running cycle finished");
            Exit::Clean
        }
        Err(_) => {
            tracing::error!(grace_secs = grace.as_secs(), "the running cycle did not finish within daemon.shutdown_grace_secs; exiting (the next start reconciles the ledger)");
            Exit::GraceExceeded
        }
    }
}
