//! What the daemon shows outside the loop: the state the admin listener and `/metrics` read
//! (the loop writes it), and systemd's STATUS= line.

use super::metrics::{LiveSource, LiveView, Metrics, OrgKey};
use crate::clock::Clock;
use crate::genesys::GenesysClient;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// State the admin listener reads; the org loops and the supervisor write it.
#[derive(Debug)]
pub struct Shared {
    pub metrics: Metrics,
    /// Each running org's view, by name.
    orgs: Mutex<BTreeMap<String, View>>,
    /// The supervisor's own heartbeat (each org loop has its own in its view).
    heartbeat: Mutex<Instant>,
    /// Names the org a `POST /run` was accepted for; at most one waits per org (see
    /// [`View::run_requested`]), so the queue never holds more than the orgs.
    run_tx: mpsc::UnboundedSender<String>,
    /// The bearer token of `POST /run`; `None` = the endpoint is off. `Debug` redacts it.
    run_token: Mutex<Option<SecretString>>,
    /// For the RFC 3339 time a throttled `POST /run` is told.
    pub(super) clock: Clock,
    /// Set once the supervisor has registered every org of the start-up config. The admin
    /// listener answers before that (it is bound first), and with no org registered yet
    /// "every org is ready" would hold vacuously: `/readyz` 200 with `POST /run` refused
    /// and no `config_info` to scrape.
    started: AtomicBool,
}

/// What an org loop has in use, as the admin listener and status line show it.
pub(super) struct InUse {
    pub client: GenesysClient,
    pub ledger_open: bool,
    pub fingerprint: String,
    /// The schedule and its time zone, as shown.
    pub schedule: String,
    pub min_spacing: Duration,
}

#[derive(Debug)]
struct View {
    /// The org's metric label (`None`: the one org of a config without `[[orgs]]`).
    key: OrgKey,
    heartbeat: Instant,
    client: Option<GenesysClient>,
    ledger_open: bool,
    cycle_running: bool,
    fingerprint: String,
    schedule: String,
    next_run: Option<f64>,
    /// When the last cycle started (monotonic, so a clock step cannot shorten the spacing).
    last_start: Option<Instant>,
    min_spacing: Duration,
    /// A `POST /run` for this org waits in the queue to the supervisor: another is refused
    /// as already requested rather than queued behind it.
    run_requested: bool,
}

impl View {
    fn new(key: OrgKey) -> Self {
        View {
            key,
            heartbeat: Instant::now(),
            client: None,
            ledger_open: false,
            cycle_running: false,
            fingerprint: String::new(),
            schedule: String::new(),
            next_run: None,
            last_start: None,
            min_spacing: Duration::ZERO,
            run_requested: false,
        }
    }

    fn show(&mut self, parts: InUse) {
        self.client = Some(parts.client);
        self.ledger_open = parts.ledger_open;
        self.fingerprint = parts.fingerprint;
        self.schedule = parts.schedule;
        self.min_spacing = parts.min_spacing;
    }

    /// What this org lacks to run a cycle (see [`Shared::not_ready_reasons`]).
    fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if !self.client.as_ref().is_some_and(GenesysClient::has_token) {
            missing.push("no valid API token (login pending or failing)");
        }
        if !self.ledger_open {
            missing.push("the history ledger is not open");
        }
        missing
    }

    /// When this org may start a cycle again, if its minimum spacing forbids one now.
    fn next_start_allowed(&self) -> Option<Duration> {
        let since = self.last_start?.elapsed();
        self.min_spacing.checked_sub(since).filter(|d| !d.is_zero())
    }

    /// What a requested run would meet in this org now, checked in the order the org loop
    /// checks them (see [`RunVerdict`]).
    fn run_verdict(&self, now: DateTime<Utc>) -> RunVerdict {
        let missing = self.missing();
        if !missing.is_empty() {
            return RunVerdict::NotReady(missing);
        }
        if self.cycle_running {
            return RunVerdict::Running;
        }
        if let Some(at) = self
            .next_start_allowed()
            .and_then(|left| round_up(now + chrono::Duration::from_std(left).ok()?))
        {
            return RunVerdict::Spaced {
                at,
                spacing_secs: self.min_spacing.as_secs(),
            };
        }
        if self.run_requested {
            return RunVerdict::AlreadyRequested;
        }
        RunVerdict::Requested
    }

    /// What this org lacks, each reason prefixed with its name when it has one.
    fn said_missing(&self) -> Vec<String> {
        self.missing()
            .into_iter()
            .map(|reason| match &self.key {
                Some(name) => format!("org `{name}`: {reason}"),
                None => reason.to_string(),
            })
            .collect()
    }
}

/// What `POST /run` did for one org. Only [`RunVerdict::Requested`] queued a run; the org
/// loop applies the same guards again when it takes it, so a race loses nothing but a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RunVerdict {
    /// Queued for the org's loop.
    Requested,
    /// The org lacks these to run a cycle.
    NotReady(Vec<&'static str>),
    /// A cycle of the org is running (cycles never overlap).
    Running,
    /// `daemon.min_spacing_secs` forbids a start before `at` (rounded up to the second).
    Spaced {
        at: DateTime<Utc>,
        spacing_secs: u64,
    },
    /// A run for the org is already queued and not yet taken.
    AlreadyRequested,
}

impl RunVerdict {
    /// The reason a refusal is counted under in `skill_tuner_ticks_skipped_total`; `None`
    /// for what is not counted (accepted, or a duplicate of a queued request).
    fn skipped_reason(&self) -> Option<&'static str> {
        match self {
            RunVerdict::NotReady(_) => Some("not_ready"),
            RunVerdict::Running => Some("overlap"),
            RunVerdict::Spaced { .. } => Some("min_spacing"),
            RunVerdict::Requested | RunVerdict::AlreadyRequested => None,
        }
    }
}

impl Shared {
    /// The state, with its metrics reading it at scrape time, and the receiver of the run
    /// requests [`Shared::request_run`] queues.
    pub(super) fn new(clock: Clock) -> (Arc<Self>, mpsc::UnboundedReceiver<String>) {
        let (run_tx, run_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            metrics: Metrics::new(clock.clone()),
            orgs: Mutex::new(BTreeMap::new()),
            heartbeat: Mutex::new(Instant::now()),
            run_tx,
            run_token: Mutex::new(None),
            clock,
            started: AtomicBool::new(false),
        });
        let source: std::sync::Weak<Shared> = Arc::downgrade(&shared);
        shared.metrics.attach(source);
        (shared, run_rx)
    }

    fn orgs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, View>> {
        self.orgs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on `org`'s view (nothing when it was removed).
    fn with_org<T: Default>(&self, org: &str, f: impl FnOnce(&mut View) -> T) -> T {
        self.orgs().get_mut(org).map(f).unwrap_or_default()
    }

    /// Shows an org that starts running: its series exported at 0, its config (`config_info`)
    /// as soon as it is scraped, not ready until its loop has a token.
    pub(super) fn add_org(&self, name: &str, key: OrgKey, parts: InUse) {
        self.metrics.add_org(key.as_deref());
        let mut view = View::new(key);
        view.show(parts);
        self.orgs().insert(name.to_string(), view);
    }

    /// Every org of the start-up config is registered: readiness is now theirs to tell.
    pub(super) fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Why the daemon as a whole cannot be ready whatever its orgs say: still starting, or
    /// no org running.
    fn not_running(&self, orgs: &BTreeMap<String, View>) -> Option<String> {
        if !self.started.load(Ordering::Acquire) {
            Some("starting: the org loops are not running yet".to_string())
        } else if orgs.is_empty() {
            Some("no org is running".to_string())
        } else {
            None
        }
    }

    /// Forgets an org that stopped (removed by a reload): readiness no longer waits for it.
    pub(super) fn remove_org(&self, name: &str) {
        self.orgs().remove(name);
    }

    /// The supervisor's beat.
    pub(super) fn beat(&self) {
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// An org loop's beat.
    pub(super) fn beat_org(&self, org: &str) {
        self.with_org(org, |v| v.heartbeat = Instant::now());
    }

    /// Time since the least recent loop (the supervisor or an org's) last turned.
    pub fn heartbeat_age(&self) -> Duration {
        let own = self
            .heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        self.orgs()
            .values()
            .map(|v| v.heartbeat.elapsed())
            .fold(own, Duration::max)
    }

    /// Empty when every org is ready; otherwise what is missing (named by org when the
    /// config lists them). The config in use is always valid (an invalid one is never
    /// swapped in), so only a token and the ledger can be missing. The token is the current
    /// one: refused with no new one obtainable is missing too.
    pub fn not_ready_reasons(&self) -> Vec<String> {
        let orgs = self.orgs();
        if let Some(reason) = self.not_running(&orgs) {
            return vec![reason];
        }
        orgs.values().flat_map(View::said_missing).collect()
    }

    /// `org`'s own missing parts (see [`Shared::not_ready_reasons`]).
    pub(super) fn org_not_ready_reasons(&self, org: &str) -> Vec<&'static str> {
        self.with_org(org, |v| v.missing())
    }

    /// Why the daemon cannot take a `POST /run` at all, whatever its orgs say: still
    /// starting, or no org running.
    pub(super) fn not_running_reason(&self) -> Option<String> {
        self.not_running(&self.orgs())
    }

    /// Whether the running orgs are `[[orgs]]` ones (named in what the daemon says).
    pub(super) fn orgs_listed(&self) -> bool {
        self.orgs().values().any(|v| v.key.is_some())
    }

    /// The names of the running orgs, in order.
    pub(super) fn org_names(&self) -> Vec<String> {
        self.orgs().keys().cloned().collect()
    }

    /// Requests a run of `org` if it can start one now, and counts a refusal by its reason
    /// under the org; `None` when no such org is running.
    pub(super) fn request_run(&self, org: &str) -> Option<RunVerdict> {
        let (verdict, key) = {
            let mut orgs = self.orgs();
            let view = orgs.get_mut(org)?;
            let verdict = view.run_verdict(self.clock.now());
            if verdict == RunVerdict::Requested {
                view.run_requested = true;
                // The receiver lives as long as the supervisor; without it nothing runs
                // anyway, and the flag keeps further requests from piling up.
                let _ = self.run_tx.send(org.to_string());
            }
            (verdict, view.key.clone())
        };
        if let Some(reason) = verdict.skipped_reason() {
            self.metrics.record_skipped_tick(key.as_deref(), reason);
        }
        Some(verdict)
    }

    /// The supervisor took `org`'s queued run: the next `POST /run` for it may queue again.
    pub(super) fn run_taken(&self, org: &str) {
        self.with_org(org, |v| v.run_requested = false);
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

    /// The run token in force (start-up, and each reload that is swapped in).
    pub(super) fn set_run_token(&self, token: Option<SecretString>) {
        *self.token_slot() = token;
    }

    /// When `org` may start a cycle again, if [`super::effective_min_spacing`] forbids one
    /// now; rounded up to the second, so a client that waits until then is not refused again.
    pub(super) fn org_next_start_allowed(&self, org: &str) -> Option<DateTime<Utc>> {
        let left = self.with_org(org, |v| v.next_start_allowed())?;
        round_up(self.clock.now() + chrono::Duration::from_std(left).ok()?)
    }

    /// `org`'s minimum spacing, in seconds.
    pub(super) fn org_min_spacing_secs(&self, org: &str) -> u64 {
        self.with_org(org, |v| v.min_spacing.as_secs())
    }

    /// Shows `org`'s parts in use: after start-up and after every reload.
    pub(super) fn publish(&self, org: &str, parts: InUse) {
        self.with_org(org, |v| v.show(parts));
    }

    pub(super) fn set_ledger_open(&self, org: &str) {
        self.with_org(org, |v| v.ledger_open = true);
    }

    /// One of `org`'s cycles started now: its spacing to the next one counts from here.
    pub(super) fn cycle_started(&self, org: &str) {
        self.with_org(org, |v| {
            v.cycle_running = true;
            v.last_start = Some(Instant::now());
        });
    }

    pub(super) fn cycle_ended(&self, org: &str) {
        self.with_org(org, |v| v.cycle_running = false);
    }

    pub(super) fn set_next_run(&self, org: &str, next: Option<DateTime<Utc>>) {
        self.with_org(org, |v| {
            v.next_run = next.map(|t| t.timestamp_millis() as f64 / 1000.0)
        });
    }
}

/// Up to the next whole second.
fn round_up(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::{SubsecRound, Timelike};
    let whole = at.trunc_subsecs(0);
    Some(if at.nanosecond() > 0 {
        whole + chrono::Duration::seconds(1)
    } else {
        whole
    })
}

impl LiveSource for Shared {
    fn live_views(&self) -> Vec<(OrgKey, LiveView)> {
        self.orgs()
            .values()
            .map(|v| {
                let live = LiveView {
                    api: v
                        .client
                        .as_ref()
                        .map(GenesysClient::stats)
                        .unwrap_or_default(),
                    ready: v.missing().is_empty(),
                    has_token: v.client.as_ref().is_some_and(GenesysClient::has_token),
                    ledger_open: v.ledger_open,
                    cycle_running: v.cycle_running,
                    config_fingerprint: v.fingerprint.clone(),
                    schedule: v.schedule.clone(),
                    next_run: v.next_run,
                };
                (v.key.clone(), live)
            })
            .collect()
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

/// systemd's STATUS= text: what the daemon is doing now (a cycle, with its trigger and
/// start, or idle) and when the next cycle is due.
pub(super) fn status_text(
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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

    fn in_use(fingerprint: &str) -> InUse {
        use crate::genesys::{ClientConfig, Credentials, Endpoints};
        let endpoints = Endpoints::resolve("eu-west-1", None, None, false).unwrap();
        let credentials = Credentials {
            client_id: "id".into(),
            client_secret: SecretString::from("secret".to_string()),
        };
        InUse {
            client: GenesysClient::new(ClientConfig::new(endpoints, credentials)).unwrap(),
            ledger_open: true,
            fingerprint: fingerprint.into(),
            schedule: "0 0 2 * * * UTC".into(),
            min_spacing: Duration::from_secs(60),
        }
    }

    /// The admin listener answers before the org loops are registered: until they are, the
    /// daemon is not ready (nothing vacuous), and an org shows its config from the moment
    /// it is registered, before its loop turns.
    #[tokio::test]
    async fn not_ready_until_started_and_config_shown_at_once() {
        let clock = Clock::manual(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        let (shared, _rx) = Shared::new(clock);
        let starting = shared.not_ready_reasons();
        assert!(
            starting.iter().any(|r| r.starts_with("starting")),
            "{starting:?}"
        );
        assert!(shared.not_running_reason().is_some());
        assert_eq!(shared.request_run("default"), None);

        shared.add_org("default", None, in_use("abc123"));
        let views = shared.live_views();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].1.config_fingerprint, "abc123");
        assert_eq!(views[0].1.schedule, "0 0 2 * * * UTC");
        assert!(shared.not_ready_reasons()[0].starts_with("starting"));

        shared.mark_started();
        // Now only the org's own state counts: no token yet.
        let reasons = shared.not_ready_reasons();
        assert_eq!(reasons, ["no valid API token (login pending or failing)"]);
        assert_eq!(shared.not_running_reason(), None);
        assert_eq!(
            shared.request_run("default"),
            Some(RunVerdict::NotReady(vec![
                "no valid API token (login pending or failing)"
            ]))
        );
        assert_eq!(shared.request_run("other"), None);

        shared.remove_org("default");
        assert_eq!(shared.not_ready_reasons(), ["no org is running"]);
        assert_eq!(
            shared.not_running_reason().as_deref(),
            Some("no org is running")
        );
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
}
