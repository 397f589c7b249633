//! The daemon's metrics, kept and encoded by `prometheus-client`.
//!
//! What the daemon itself counts (cycles, reloads, skipped ticks) are registered metrics.
//! What belongs to something else is read at scrape time by a collector (`scrape`) instead of
//! being copied: readiness, the token, the ledger, the next run and the API counters of the
//! client in use — so `/metrics` and the cycle reports can never disagree. The crate has no
//! process collector, so the `process_*` families are read from `/proc` (in `process`).
//!
//! Every `*_timestamp_seconds` value comes from the daemon's [`Clock`], so a run at a
//! simulated instant exports that instant.
//!
//! What belongs to one org (its cycles, changes, readiness, API counters, …) carries an
//! `org` label when the config lists its orgs (`[[orgs]]`); the one org of a config without
//! them exports its series without the label, exactly as before orgs existed. The process's
//! own families (`process_*`, `build_info`, config reloads) never carry it.

mod process;
mod scrape;
#[cfg(test)]
mod tests;

use crate::clock::Clock;
use crate::cycle::report::CycleReport;
use crate::genesys::StatsSnapshot;
use crate::history::{ChangeStatus, RunOutcome};
use process::{process_age_secs, Process};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use scrape::Scrape;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// Upper bounds (seconds) of the cycle-duration histogram: from a tiny org to a slow big one.
const DURATION_BUCKETS: [f64; 11] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// Outcomes and reasons exported at 0 before they first happen, so `rate()` and alerts on
/// them see a series from the start (so is every change status).
const OUTCOMES: [RunOutcome; 6] = [
    RunOutcome::Ok,
    RunOutcome::Partial,
    RunOutcome::Breaker,
    RunOutcome::Failed,
    RunOutcome::DryRun,
    RunOutcome::Interrupted,
];
const SKIP_REASONS: [&str; 3] = ["overlap", "not_ready", "min_spacing"];

/// A one-label set (`result`).
type Label = [(&'static str, String); 1];
/// An org's labels (none, or `org`), then the family's own.
type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;
type DurationFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Which org a series belongs to: its `[[orgs]]` name, or `None` for the one org of a config
/// without `[[orgs]]` (no `org` label).
pub type OrgKey = Option<String>;

/// The `org` label of `org`, if it has one.
pub fn org_labels(org: Option<&str>) -> Labels {
    org.map(|name| vec![("org", name.to_string())])
        .unwrap_or_default()
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The two exposition formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4: what `curl` and older scrapers get.
    Prometheus,
    /// OpenMetrics 1.0.0: what Prometheus asks for first.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics only when it is named, since a
    /// client that names nothing may not parse its `# EOF` and `info` type.
    pub fn from_accept(accept: &str) -> Self {
        if accept.contains("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Why `/metrics` could not be rendered (a collector refused to encode).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the metrics")]
pub struct RenderError(#[from] std::fmt::Error);

/// What the daemon owns that `/metrics` reads live at scrape time.
#[derive(Debug, Default, Clone)]
pub struct LiveView {
    /// The counters of the client in use (replaced clients are in the retired totals).
    pub api: StatsSnapshot,
    pub ready: bool,
    pub has_token: bool,
    pub ledger_open: bool,
    pub cycle_running: bool,
    pub config_fingerprint: String,
    pub schedule: String,
    pub next_run: Option<f64>,
}

/// Where the scrape-time collector gets each org's [`LiveView`] from.
pub trait LiveSource: Send + Sync + 'static {
    fn live_views(&self) -> Vec<(OrgKey, LiveView)>;
}

/// The daemon's metrics: kept across cycles, reloads and client rebuilds.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    clock: Clock,
    cycles: Family<Labels, Counter>,
    ticks_skipped: Family<Labels, Counter>,
    changes: Family<Labels, Counter>,
    conflicts: Family<Labels, Counter>,
    conflicts_matching_policy: Family<Labels, Counter>,
    alerts: Family<Labels, Counter>,
    workitems_created: Family<Labels, Counter>,
    workitems_failed: Family<Labels, Counter>,
    breaker_trips: Family<Labels, Counter>,
    cycle_duration: DurationFamily,
    last_cycle_duration: Family<Labels, FloatGauge>,
    last_success: Family<Labels, FloatGauge>,
    reloads: Family<Label, Counter>,
    last_reload_ok: Gauge,
    last_reload_success: FloatGauge,
    kept: Arc<Kept>,
}

/// What the scrape-time collector reads besides the live views.
#[derive(Debug, Default)]
struct Kept {
    /// Each org's API counters of clients replaced by a reload, so the totals stay monotonic.
    retired_api: Mutex<std::collections::BTreeMap<OrgKey, StatsSnapshot>>,
    /// When each org's last cycle finished: absent until one has (0 would read as "long ago").
    last_cycle: Mutex<std::collections::BTreeMap<OrgKey, f64>>,
    /// Weak: the source (the daemon's shared state) owns these metrics.
    live: OnceLock<Weak<dyn LiveSource>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn label(key: &'static str, value: &str) -> Label {
    [(key, value.to_string())]
}

/// `org`'s labels and one of the family's own.
fn labels(org: Option<&str>, key: &'static str, value: &str) -> Labels {
    let mut all = org_labels(org);
    all.push((key, value.to_string()));
    all
}

fn secs_of(clock: &Clock) -> f64 {
    clock.now().timestamp_millis() as f64 / 1000.0
}

impl Metrics {
    /// A fresh set, with the start-up config counted as a successful load.
    pub fn new(clock: Clock) -> Self {
        let m = Metrics {
            registry: Registry::default(),
            clock,
            cycles: Family::default(),
            ticks_skipped: Family::default(),
            changes: Family::default(),
            conflicts: Family::default(),
            conflicts_matching_policy: Family::default(),
            alerts: Family::default(),
            workitems_created: Family::default(),
            workitems_failed: Family::default(),
            breaker_trips: Family::default(),
            cycle_duration: Family::new_with_constructor(duration_histogram),
            last_cycle_duration: Family::default(),
            last_success: Family::default(),
            reloads: Family::default(),
            last_reload_ok: Gauge::default(),
            last_reload_success: FloatGauge::default(),
            kept: Arc::default(),
        };
        m.register()
    }

    /// Exports `org`'s series at 0 before anything happens to it (see [`OUTCOMES`]): at
    /// start-up for each org, and for an org a reload adds.
    pub fn add_org(&self, org: Option<&str>) {
        let outcomes = OUTCOMES.map(RunOutcome::as_str);
        let statuses: Vec<&str> = ChangeStatus::ALL.iter().map(|s| s.as_str()).collect();
        let zeroes = [
            (&self.cycles, "outcome", &outcomes[..]),
            (&self.ticks_skipped, "reason", &SKIP_REASONS[..]),
            (&self.changes, "status", &statuses[..]),
        ];
        for (family, key, values) in zeroes {
            for value in values {
                family.get_or_create(&labels(org, key, value)).inc_by(0);
            }
        }
        let own = org_labels(org);
        for family in self.org_counters() {
            family.get_or_create(&own).inc_by(0);
        }
        let _ = self.cycle_duration.get_or_create(&own);
        let _ = self.last_cycle_duration.get_or_create(&own);
        let _ = self.last_success.get_or_create(&own);
    }

    fn org_counters(&self) -> [&Family<Labels, Counter>; 6] {
        [
            &self.conflicts,
            &self.conflicts_matching_policy,
            &self.alerts,
            &self.workitems_created,
            &self.workitems_failed,
            &self.breaker_trips,
        ]
    }

    fn register(mut self) -> Self {
        for value in ["ok", "failed"] {
            self.reloads
                .get_or_create(&label("result", value))
                .inc_by(0);
        }
        self.last_reload_ok.set(1);
        self.last_reload_success.set(secs_of(&self.clock));

        let process = Process {
            start_time: secs_of(&self.clock) - process_age_secs().unwrap_or(0.0),
        };
        self.registry.register_collector(Box::new(process));
        let r = self.registry.sub_registry_with_prefix("skill_tuner");
        let version = Info::new([("version", env!("CARGO_PKG_VERSION"))]);
        r.register("build", "The running version", version);
        for (name, help, family) in [
            ("cycles", "Cycles by outcome", &self.cycles),
            ("ticks_skipped", "Scheduled or requested runs not started, by reason (overlap, not_ready, min_spacing)", &self.ticks_skipped),
            ("changes", "Planned proficiency changes by final status (applied, conflict, failed, skipped, held, planned)", &self.changes),
        ] {
            r.register(name, help, family.clone());
        }
        r.register(
            "config_reloads",
            "SIGHUP reloads by result",
            self.reloads.clone(),
        );
        for (name, help, counter) in [
            ("conflicts", "Changes left alone because a person edited the skill", &self.conflicts),
            ("conflicts_matching_policy", "Conflicts whose value was exactly what this policy would have written (a second tuner?)", &self.conflicts_matching_policy),
            ("alerts", "Over-threshold changes alerted to supervisors", &self.alerts),
            ("workitems_created", "Review workitems created", &self.workitems_created),
            ("workitems_failed", "Review workitems that could not be created", &self.workitems_failed),
            ("breaker_trips", "Cycles stopped by the blast-radius breaker", &self.breaker_trips),
        ] {
            r.register(name, help, counter.clone());
        }
        r.register(
            "cycle_duration_seconds",
            "Cycle wall time",
            self.cycle_duration.clone(),
        );
        for (name, help, gauge) in [
            (
                "last_cycle_duration_seconds",
                "Wall time of the last cycle",
                &self.last_cycle_duration,
            ),
            (
                "last_success_timestamp_seconds",
                "When a cycle last finished with outcome ok (0 = never): alert on its age",
                &self.last_success,
            ),
        ] {
            r.register(name, help, gauge.clone());
        }
        r.register(
            "config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully",
            self.last_reload_success.clone(),
        );
        r.register(
            "config_last_reload_successful",
            "1 when the last config load (start-up or SIGHUP) succeeded",
            self.last_reload_ok.clone(),
        );
        r.register_collector(Box::new(Scrape {
            kept: self.kept.clone(),
        }));
        self
    }

    /// Names where the live view comes from; the first call wins (the daemon makes one).
    pub fn attach(&self, source: Weak<dyn LiveSource>) {
        let _ = self.kept.live.set(source);
    }

    /// Counts one of `org`'s finished cycles.
    pub fn record_cycle(&self, org: Option<&str>, report: &CycleReport) {
        self.cycles
            .get_or_create(&labels(org, "outcome", report.outcome.as_str()))
            .inc();
        for line in &report.changes {
            self.changes
                .get_or_create(&labels(org, "status", line.status.as_str()))
                .inc();
        }
        let own = org_labels(org);
        let [conflicts, matching, alerts, created, failed, trips] = self.org_counters();
        conflicts
            .get_or_create(&own)
            .inc_by(report.conflicts as u64);
        matching
            .get_or_create(&own)
            .inc_by(report.conflicts_matching_policy as u64);
        alerts
            .get_or_create(&own)
            .inc_by(report.alerts.over_threshold as u64);
        created
            .get_or_create(&own)
            .inc_by(report.alerts.workitems_created as u64);
        failed
            .get_or_create(&own)
            .inc_by(report.alerts.workitems_failed as u64);
        if report.breaker.is_some() {
            trips.get_or_create(&own).inc();
        }
        self.observe_duration(&own, report.duration_ms as f64 / 1000.0);
        let now = secs_of(&self.clock);
        lock(&self.kept.last_cycle).insert(org.map(str::to_string), now);
        if matches!(report.outcome, RunOutcome::Ok | RunOutcome::DryRun) {
            self.last_success.get_or_create(&own).set(now);
        }
    }

    /// Counts one of `org`'s cycles that could not run at all.
    pub fn record_cycle_error(&self, org: Option<&str>, duration_secs: f64) {
        self.cycles
            .get_or_create(&labels(org, "outcome", RunOutcome::Failed.as_str()))
            .inc();
        self.observe_duration(&org_labels(org), duration_secs);
        lock(&self.kept.last_cycle).insert(org.map(str::to_string), secs_of(&self.clock));
    }

    fn observe_duration(&self, own: &Labels, secs: f64) {
        self.cycle_duration.get_or_create(own).observe(secs);
        self.last_cycle_duration.get_or_create(own).set(secs);
    }

    pub fn record_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&label("result", result)).inc();
        self.last_reload_ok.set(i64::from(ok));
        if ok {
            self.last_reload_success.set(secs_of(&self.clock));
        }
    }

    pub fn record_skipped_tick(&self, org: Option<&str>, reason: &str) {
        self.ticks_skipped
            .get_or_create(&labels(org, "reason", reason))
            .inc();
    }

    /// Keeps the counters of one of `org`'s clients that is being replaced.
    pub fn retire_client_stats(&self, org: Option<&str>, stats: &StatsSnapshot) {
        let mut retired = lock(&self.kept.retired_api);
        let kept = retired.entry(org.map(str::to_string)).or_default();
        *kept = kept.plus(stats);
    }

    /// The exposition in `format`.
    pub fn render(&self, format: Format) -> Result<String, RenderError> {
        let mut out = String::with_capacity(8192);
        match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)?
            }
        }
        Ok(out)
    }
}
