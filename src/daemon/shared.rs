//! What the daemon shows outside the loop: the state the admin listener and `/metrics` read
//! (the loop writes it), and systemd's STATUS= line.

use super::metrics::{LiveSource, LiveView, Metrics};
use crate::clock::Clock;
use crate::genesys::GenesysClient;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

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
    pub(super) clock: Clock,
}

/// What the loop has in use, as the admin listener and status line show it.
pub(super) struct InUse {
    pub client: GenesysClient,
    pub ledger_open: bool,
    pub fingerprint: String,
    /// The schedule and its time zone, as shown.
    pub schedule: String,
    pub min_spacing: Duration,
    pub run_token: Option<SecretString>,
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
    /// The state, with its metrics reading it at scrape time, and the receiver of the run
    /// requests [`Shared::request_run`] queues.
    pub(super) fn new(clock: Clock) -> (Arc<Self>, mpsc::Receiver<()>) {
        let (run_tx, run_rx) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            metrics: Metrics::new(clock.clone()),
            view: Mutex::new(View::default()),
            heartbeat: Mutex::new(Instant::now()),
            run_tx,
            run_token: Mutex::new(None),
            clock,
        });
        let source: std::sync::Weak<Shared> = Arc::downgrade(&shared);
        shared.metrics.attach(source);
        (shared, run_rx)
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn beat(&self) {
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

    /// When a cycle may start again, if [`super::effective_min_spacing`] forbids one now.
    /// Rounded up to the second, so a client that waits until then is not refused again.
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

    /// Shows the parts in use: after start-up and after every reload.
    pub(super) fn publish(&self, parts: InUse) {
        let mut v = self.view();
        v.client = Some(parts.client);
        v.ledger_open = parts.ledger_open;
        v.fingerprint = parts.fingerprint;
        v.schedule = parts.schedule;
        v.min_spacing = parts.min_spacing;
        drop(v);
        *self.token_slot() = parts.run_token;
    }

    pub(super) fn set_ledger_open(&self) {
        self.view().ledger_open = true;
    }

    /// A cycle started now: the spacing to the next one counts from here.
    pub(super) fn cycle_started(&self) {
        let mut v = self.view();
        v.cycle_running = true;
        v.last_start = Some(Instant::now());
    }

    pub(super) fn cycle_ended(&self) {
        self.view().cycle_running = false;
    }

    pub(super) fn set_next_run(&self, next: Option<DateTime<Utc>>) {
        self.view().next_run = next.map(|t| t.timestamp_millis() as f64 / 1000.0);
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
