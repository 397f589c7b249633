//! The daemon's metrics, kept and encoded by `prometheus-client`.
//!
//! What the daemon itself counts (cycles, reloads, skipped ticks) are registered metrics.
//! What belongs to something else is read at scrape time by a [`Collector`] instead of
//! being copied: readiness, the token, the ledger, the next run and the API counters of the
//! client in use — so `/metrics` and the cycle reports can never disagree. The crate has no
//! process collector, so the `process_*` families are read from `/proc` here.
//!
//! Every `*_timestamp_seconds` value comes from the daemon's [`Clock`], so a run at a
//! simulated instant exports that instant.

use crate::clock::Clock;
use crate::cycle::report::CycleReport;
use crate::genesys::stats::LATENCY_BUCKETS;
use crate::genesys::StatsSnapshot;
use crate::history::{ChangeStatus, RunOutcome};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
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

/// A one-label set (`outcome`, `status`, `reason`, `result`).
type Label = [(&'static str, String); 1];
type FloatGauge = Gauge<f64, AtomicU64>;

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

/// Where the scrape-time collector gets the [`LiveView`] from.
pub trait LiveSource: Send + Sync + 'static {
    fn live_view(&self) -> LiveView;
}

/// The daemon's metrics: kept across cycles, reloads and client rebuilds.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    clock: Clock,
    cycles: Family<Label, Counter>,
    ticks_skipped: Family<Label, Counter>,
    changes: Family<Label, Counter>,
    conflicts: Counter,
    conflicts_matching_policy: Counter,
    alerts: Counter,
    workitems_created: Counter,
    workitems_failed: Counter,
    breaker_trips: Counter,
    cycle_duration: Histogram,
    last_cycle_duration: FloatGauge,
    last_success: FloatGauge,
    reloads: Family<Label, Counter>,
    last_reload_ok: Gauge,
    last_reload_success: FloatGauge,
    kept: Arc<Kept>,
}

/// What the scrape-time collector reads besides the live view.
#[derive(Debug, Default)]
struct Kept {
    /// API counters of clients replaced by a reload, so the totals stay monotonic.
    retired_api: Mutex<StatsSnapshot>,
    /// When the last cycle finished: absent until one has (0 would read as "long ago").
    last_cycle: Mutex<Option<f64>>,
    /// Weak: the source (the daemon's shared state) owns these metrics.
    live: OnceLock<Weak<dyn LiveSource>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn label(key: &'static str, value: &str) -> Label {
    [(key, value.to_string())]
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
            conflicts: Counter::default(),
            conflicts_matching_policy: Counter::default(),
            alerts: Counter::default(),
            workitems_created: Counter::default(),
            workitems_failed: Counter::default(),
            breaker_trips: Counter::default(),
            cycle_duration: Histogram::new(DURATION_BUCKETS),
            last_cycle_duration: FloatGauge::default(),
            last_success: FloatGauge::default(),
            reloads: Family::default(),
            last_reload_ok: Gauge::default(),
            last_reload_success: FloatGauge::default(),
            kept: Arc::default(),
        };
        m.register()
    }

    fn register(mut self) -> Self {
        let outcomes = OUTCOMES.map(RunOutcome::as_str);
        let statuses: Vec<&str> = ChangeStatus::ALL.iter().map(|s| s.as_str()).collect();
        let zeroes = [
            (&self.cycles, "outcome", &outcomes[..]),
            (&self.ticks_skipped, "reason", &SKIP_REASONS[..]),
            (&self.changes, "status", &statuses[..]),
            (&self.reloads, "result", &["ok", "failed"][..]),
        ];
        for (family, key, values) in zeroes {
            for value in values {
                family.get_or_create(&label(key, value)).inc_by(0);
            }
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
            ("config_reloads", "SIGHUP reloads by result", &self.reloads),
        ] {
            r.register(name, help, family.clone());
        }
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
            (
                "config_last_reload_success_timestamp_seconds",
                "When the config was last loaded successfully",
                &self.last_reload_success,
            ),
        ] {
            r.register(name, help, gauge.clone());
        }
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

    /// Counts a finished cycle.
    pub fn record_cycle(&self, report: &CycleReport) {
        self.cycles
            .get_or_create(&label("outcome", report.outcome.as_str()))
            .inc();
        for line in &report.changes {
            self.changes
                .get_or_create(&label("status", line.status.as_str()))
                .inc();
        }
        self.conflicts.inc_by(report.conflicts as u64);
        self.conflicts_matching_policy
            .inc_by(report.conflicts_matching_policy as u64);
        self.alerts.inc_by(report.alerts.over_threshold as u64);
        self.workitems_created
            .inc_by(report.alerts.workitems_created as u64);
        self.workitems_failed
            .inc_by(report.alerts.workitems_failed as u64);
        if report.breaker.is_some() {
            self.breaker_trips.inc();
        }
        self.observe_duration(report.duration_ms as f64 / 1000.0);
        let now = secs_of(&self.clock);
        *lock(&self.kept.last_cycle) = Some(now);
        if matches!(report.outcome, RunOutcome::Ok | RunOutcome::DryRun) {
            self.last_success.set(now);
        }
    }

    /// Counts a cycle that could not run at all.
    pub fn record_cycle_error(&self, duration_secs: f64) {
        self.cycles
            .get_or_create(&label("outcome", RunOutcome::Failed.as_str()))
            .inc();
        self.observe_duration(duration_secs);
        *lock(&self.kept.last_cycle) = Some(secs_of(&self.clock));
    }

    fn observe_duration(&self, secs: f64) {
        self.cycle_duration.observe(secs);
        self.last_cycle_duration.set(secs);
    }

    pub fn record_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&label("result", result)).inc();
        self.last_reload_ok.set(i64::from(ok));
        if ok {
            self.last_reload_success.set(secs_of(&self.clock));
        }
    }

    pub fn record_skipped_tick(&self, reason: &str) {
        self.ticks_skipped
            .get_or_create(&label("reason", reason))
            .inc();
    }

    /// Keeps the counters of a client that is being replaced.
    pub fn retire_client_stats(&self, stats: &StatsSnapshot) {
        let mut retired = lock(&self.kept.retired_api);
        *retired = retired.plus(stats);
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

/// Reads what others own at scrape time (see the module comment).
#[derive(Debug)]
struct Scrape {
    kept: Arc<Kept>,
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(at) = *lock(&self.kept.last_cycle) {
            gauge(
                &mut enc,
                "last_cycle_timestamp_seconds",
                "When the last cycle finished.",
                at,
            )?;
        }
        let live = self
            .kept
            .live
            .get()
            .and_then(Weak::upgrade)
            .map(|source| source.live_view());
        let retired = lock(&self.kept.retired_api).clone();
        let Some(live) = live else {
            return encode_api(&mut enc, &retired);
        };
        let flags = [
            ("ready", "1 when the token is valid (or renewable), the config is valid and the ledger is open.", live.ready),
            ("token_valid", "1 while the API client's token is valid or can be renewed (the last token request worked).", live.has_token),
            ("ledger_open", "1 when the history ledger is open.", live.ledger_open),
            ("cycle_running", "1 while a cycle runs.", live.cycle_running),
        ];
        for (name, help, value) in flags {
            ConstGauge::new(i64::from(value)).encode(enc.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        enc.encode_descriptor(
            "config",
            "The config in use: its fingerprint and schedule.",
            None,
            MetricType::Info,
        )?
        .encode_info(&[
            ("fingerprint", live.config_fingerprint.as_str()),
            ("schedule", live.schedule.as_str()),
        ])?;
        if let Some(next) = live.next_run {
            gauge(
                &mut enc,
                "next_run_timestamp_seconds",
                "When the next scheduled cycle starts (jitter included).",
                next,
            )?;
        }
        encode_api(&mut enc, &retired.plus(&live.api))
    }
}

fn gauge<N>(enc: &mut DescriptorEncoder, name: &str, help: &str, value: N) -> std::fmt::Result
where
    N: prometheus_client::encoding::EncodeGaugeValue,
{
    ConstGauge::new(value).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn counter<N>(enc: &mut DescriptorEncoder, name: &str, help: &str, value: N) -> std::fmt::Result
where
    N: prometheus_client::encoding::EncodeCounterValue,
{
    ConstCounter::new(value).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// The client's endpoint labels are `METHOD /route/template`.
fn method_and_route(endpoint: &str) -> (&str, &str) {
    endpoint.split_once(' ').unwrap_or(("", endpoint))
}

/// The API families, from one set of counters.
fn encode_api(enc: &mut DescriptorEncoder, api: &StatsSnapshot) -> std::fmt::Result {
    let mut calls = enc.encode_descriptor(
        "api_calls",
        "Genesys Cloud API requests by method, route template and status (error = no response).",
        None,
        MetricType::Counter,
    )?;
    for (endpoint, by_status) in &api.calls {
        let (method, route) = method_and_route(endpoint);
        for (status, n) in by_status {
            let labels = [("method", method), ("route", route), ("status", status)];
            ConstCounter::new(*n).encode(calls.encode_family(&labels)?)?;
        }
    }
    let mut latency = enc.encode_descriptor(
        "api_request_duration_seconds",
        "Genesys Cloud API request latency by method and route template, from sending to the last byte of the answer (pacing excluded).",
        None,
        MetricType::Histogram,
    )?;
    for (endpoint, lat) in &api.latency {
        let (method, route) = method_and_route(endpoint);
        let labels = [("method", method), ("route", route)];
        let finite: u64 = lat.buckets.iter().sum();
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .zip(lat.buckets)
            .chain([(f64::INFINITY, lat.count.saturating_sub(finite))])
            .collect();
        latency
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(lat.sum_secs, lat.count, &buckets, None)?;
    }
    let mut retries = enc.encode_descriptor(
        "api_retries",
        "API retries by reason.",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in [
        ("rate_limited", api.retries_rate_limited),
        ("server_error", api.retries_server_error),
        ("timeout", api.retries_timeout),
        ("connect", api.retries_connect),
        ("unauthorized", api.unauthorized_refreshes),
    ] {
        ConstCounter::new(n).encode(retries.encode_family(&[("reason", reason)])?)?;
    }
    counter(
        enc,
        "token_requests",
        "OAuth token requests (logins and refreshes).",
        api.token_requests,
    )?;
    counter(
        enc,
        "token_failures",
        "OAuth token requests that failed.",
        api.token_failures,
    )?;
    counter(
        enc,
        "api_decode_errors",
        "Successful answers whose body could not be read (malformed or truncated).",
        api.decode_errors,
    )
}

/// The standard `process_*` families, read from `/proc` at scrape time; a file that cannot
/// be read (not Linux) leaves its family out rather than exporting a made-up value.
#[derive(Debug)]
struct Process {
    /// From the [`Clock`] (now minus the process's age), like every exported timestamp.
    start_time: f64,
}

impl Collector for Process {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        if let (Some(stat), Some(hz)) = (stat.as_deref().and_then(ProcStat::parse), clock_ticks()) {
            counter(
                &mut enc,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                (stat.utime + stat.stime) as f64 / hz,
            )?;
        }
        let status = std::fs::read_to_string("/proc/self/status").ok();
        if let Some(rss) = status.as_deref().and_then(resident_bytes) {
            gauge(
                &mut enc,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                rss,
            )?;
        }
        gauge(
            &mut enc,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            self.start_time,
        )?;
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                &mut enc,
                "process_open_fds",
                "Number of open file descriptors.",
                fds.count(),
            )?;
        }
        Ok(())
    }
}

/// The fields of `/proc/self/stat` used here, in clock ticks.
#[derive(Debug, PartialEq)]
struct ProcStat {
    utime: u64,
    stime: u64,
    starttime: u64,
}

impl ProcStat {
    /// Fields are counted after the command name, which is in parentheses and may itself
    /// hold spaces and parentheses: hence the last `)`.
    fn parse(text: &str) -> Option<ProcStat> {
        let (_, rest) = text.rsplit_once(')')?;
        // `rest` starts at field 3 (state); utime, stime and starttime are fields 14, 15, 22.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse().ok();
        Some(ProcStat {
            utime: field(14)?,
            stime: field(15)?,
            starttime: field(22)?,
        })
    }
}

/// `VmRSS` of `/proc/self/status`, which the kernel gives in kB.
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

/// `USER_HZ`, the unit of `/proc`'s CPU times.
fn clock_ticks() -> Option<f64> {
    // SAFETY: sysconf reads a constant and has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then_some(hz as f64)
}

/// How long this process has run: the system's uptime minus the process's start in ticks
/// after boot. Used with the injected clock rather than `btime`, so that the start time
/// agrees with every other exported timestamp.
fn process_age_secs() -> Option<f64> {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = ProcStat::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    Some((uptime - stat.starttime as f64 / clock_ticks()?).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    struct Fixed(LiveView);

    impl LiveSource for Fixed {
        fn live_view(&self) -> LiveView {
            self.0.clone()
        }
    }

    /// A live view with a sample of everything: two routes, a 429, latency, retries.
    fn sample_live() -> LiveView {
        let stats = crate::genesys::ApiStats::default();
        stats.record_call("GET /api/v2/users", "200", Duration::from_millis(40));
        stats.record_call("GET /api/v2/users", "429", Duration::from_millis(10));
        stats.record_call(
            "PATCH /api/v2/users/{id}/routingskills/bulk",
            "200",
            Duration::from_secs(40),
        );
        stats.record_retry(crate::genesys::retry::RetryReason::RateLimited);
        stats.record_token_request(true);
        LiveView {
            api: stats.snapshot(),
            ready: true,
            has_token: true,
            ledger_open: true,
            cycle_running: false,
            config_fingerprint: "abc123".into(),
            schedule: "0 \"0\" 2 * * * UTC".into(),
            next_run: Some(1_800_000_000.5),
        }
    }

    fn sample_metrics() -> (Metrics, Arc<Fixed>) {
        let clock = Clock::manual(chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap());
        let m = Metrics::new(clock);
        let source = Arc::new(Fixed(sample_live()));
        let weak: Weak<Fixed> = Arc::downgrade(&source);
        m.attach(weak);
        let report = CycleReport {
            outcome: RunOutcome::Ok,
            duration_ms: 2500,
            conflicts: 2,
            conflicts_matching_policy: 1,
            changes: vec![crate::cycle::report::ChangeLine {
                change_id: "c1".into(),
                agent_id: "a1".into(),
                agent: "Agent One".into(),
                skill: "Billing".into(),
                current: 1.0,
                target: Some(2.0),
                proposed: 2.0,
                status: ChangeStatus::Applied,
                alert: false,
                reason: String::new(),
            }],
            ..CycleReport::default()
        };
        m.record_cycle(&report);
        m.record_reload(false);
        m.record_skipped_tick("overlap");
        (m, source)
    }

    /// Every family `/metrics` exports: name, type and label names (`le` for histogram
    /// buckets). A rename, a new family or a changed label set must show up here (and in
    /// deploy/README.md).
    const FAMILIES: &[(&str, &str, &[&str])] = &[
        ("process_cpu_seconds_total", "counter", &[]),
        ("process_resident_memory_bytes", "gauge", &[]),
        ("process_start_time_seconds", "gauge", &[]),
        ("process_open_fds", "gauge", &[]),
        ("skill_tuner_build_info", "gauge", &["version"]),
        ("skill_tuner_cycles_total", "counter", &["outcome"]),
        ("skill_tuner_ticks_skipped_total", "counter", &["reason"]),
        ("skill_tuner_changes_total", "counter", &["status"]),
        ("skill_tuner_conflicts_total", "counter", &[]),
        (
            "skill_tuner_conflicts_matching_policy_total",
            "counter",
            &[],
        ),
        ("skill_tuner_alerts_total", "counter", &[]),
        ("skill_tuner_workitems_created_total", "counter", &[]),
        ("skill_tuner_workitems_failed_total", "counter", &[]),
        ("skill_tuner_breaker_trips_total", "counter", &[]),
        ("skill_tuner_cycle_duration_seconds", "histogram", &["le"]),
        ("skill_tuner_last_cycle_duration_seconds", "gauge", &[]),
        ("skill_tuner_last_success_timestamp_seconds", "gauge", &[]),
        ("skill_tuner_config_reloads_total", "counter", &["result"]),
        ("skill_tuner_config_last_reload_successful", "gauge", &[]),
        (
            "skill_tuner_config_last_reload_success_timestamp_seconds",
            "gauge",
            &[],
        ),
        ("skill_tuner_last_cycle_timestamp_seconds", "gauge", &[]),
        ("skill_tuner_ready", "gauge", &[]),
        ("skill_tuner_token_valid", "gauge", &[]),
        ("skill_tuner_ledger_open", "gauge", &[]),
        ("skill_tuner_cycle_running", "gauge", &[]),
        (
            "skill_tuner_config_info",
            "gauge",
            &["fingerprint", "schedule"],
        ),
        ("skill_tuner_next_run_timestamp_seconds", "gauge", &[]),
        (
            "skill_tuner_api_calls_total",
            "counter",
            &["method", "route", "status"],
        ),
        (
            "skill_tuner_api_request_duration_seconds",
            "histogram",
            &["le", "method", "route"],
        ),
        ("skill_tuner_api_retries_total", "counter", &["reason"]),
        ("skill_tuner_token_requests_total", "counter", &[]),
        ("skill_tuner_token_failures_total", "counter", &[]),
        ("skill_tuner_api_decode_errors_total", "counter", &[]),
    ];

    /// `family → (type, label names of its samples)` from a text 0.0.4 exposition.
    fn families(text: &str) -> BTreeMap<String, (String, BTreeSet<Vec<String>>)> {
        let mut out: BTreeMap<String, (String, BTreeSet<Vec<String>>)> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    out.insert(name.into(), (kind.into(), BTreeSet::new()))
                        .is_none(),
                    "{name} twice"
                );
            } else if !line.starts_with('#') {
                let series = line.rsplit_once(' ').unwrap().0;
                let (name, labels) = series.split_once('{').unwrap_or((series, ""));
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| out.contains_key(*f)))
                    .unwrap_or(name);
                let mut keys: Vec<String> = labels
                    .split("\",")
                    .filter_map(|kv| kv.split_once("=\"").map(|(k, _)| k.to_string()))
                    .collect();
                keys.sort();
                let entry = out.get_mut(family).unwrap_or_else(|| panic!("{line}"));
                if name.ends_with("_bucket") || !matches!(entry.0.as_str(), "histogram") {
                    entry.1.insert(keys);
                }
            }
        }
        out
    }

    #[test]
    fn every_family_has_its_pinned_name_type_and_labels() {
        let (m, _source) = sample_metrics();
        let text = m.render(Format::Prometheus).unwrap();
        let got = families(&text);
        let want: BTreeMap<String, (String, BTreeSet<Vec<String>>)> = FAMILIES
            .iter()
            .map(|(name, kind, labels)| {
                let mut labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
                labels.sort();
                (
                    name.to_string(),
                    (kind.to_string(), BTreeSet::from([labels])),
                )
            })
            .collect();
        assert_eq!(got, want, "{text}");
        // Both formats carry the same families; OpenMetrics names counters without
        // `_total` in its TYPE lines and ends with `# EOF`.
        let open = m.render(Format::OpenMetrics).unwrap();
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(
            open.contains("# TYPE skill_tuner_cycles counter\n"),
            "{open}"
        );
        assert!(open.contains("# TYPE skill_tuner_build info\n"), "{open}");
    }

    #[test]
    fn renders_values_and_escapes_labels() {
        let (m, _source) = sample_metrics();
        let text = m.render(Format::Prometheus).unwrap();
        for sample in [
            "skill_tuner_cycles_total{outcome=\"ok\"} 1\n",
            "skill_tuner_cycles_total{outcome=\"dry_run\"} 0\n",
            "skill_tuner_changes_total{status=\"applied\"} 1\n",
            "skill_tuner_conflicts_total 2\n",
            "skill_tuner_conflicts_matching_policy_total 1\n",
            "skill_tuner_config_last_reload_successful 0\n",
            "skill_tuner_config_reloads_total{result=\"failed\"} 1\n",
            "skill_tuner_ticks_skipped_total{reason=\"overlap\"} 1\n",
            "skill_tuner_ticks_skipped_total{reason=\"min_spacing\"} 0\n",
            "schedule=\"0 \\\"0\\\" 2 * * * UTC\"",
            "skill_tuner_cycle_duration_seconds_bucket{le=\"5\"} 1\n",
            "skill_tuner_cycle_duration_seconds_bucket{le=\"1\"} 0\n",
            "skill_tuner_cycle_duration_seconds_sum 2.5\n",
            "skill_tuner_last_cycle_timestamp_seconds 1790000000.0\n",
            "skill_tuner_last_success_timestamp_seconds 1790000000.0\n",
            "skill_tuner_next_run_timestamp_seconds 1800000000.5\n",
            "skill_tuner_api_calls_total{method=\"GET\",route=\"/api/v2/users\",status=\"429\"} 1\n",
            "skill_tuner_api_retries_total{reason=\"rate_limited\"} 1\n",
            "skill_tuner_api_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v2/users\",le=\"0.025\"} 1\n",
            "skill_tuner_api_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v2/users\",le=\"0.05\"} 2\n",
            "skill_tuner_api_request_duration_seconds_bucket{method=\"PATCH\",route=\"/api/v2/users/{id}/routingskills/bulk\",le=\"30\"} 0\n",
            "skill_tuner_api_request_duration_seconds_bucket{method=\"PATCH\",route=\"/api/v2/users/{id}/routingskills/bulk\",le=\"+Inf\"} 1\n",
            "skill_tuner_api_request_duration_seconds_count{method=\"PATCH\",route=\"/api/v2/users/{id}/routingskills/bulk\"} 1\n",
        ] {
            assert!(text.contains(sample), "no {sample:?} in\n{text}");
        }
        let start = text
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap();
        // The manual clock's "now" minus this test process's age.
        assert!(
            start <= 1_790_000_000.0 && start > 1_790_000_000.0 - 86_400.0,
            "{start}"
        );
    }

    #[test]
    fn retired_client_counters_stay_in_the_totals() {
        let (m, source) = sample_metrics();
        let old = StatsSnapshot {
            token_requests: 4,
            ..StatsSnapshot::default()
        };
        m.retire_client_stats(&old);
        let text = m.render(Format::Prometheus).unwrap();
        assert!(
            text.contains("skill_tuner_token_requests_total 5\n"),
            "{text}"
        );
        // With the source gone only what the metrics own is left, retired API totals included.
        drop(source);
        let text = m.render(Format::Prometheus).unwrap();
        assert!(!text.contains("skill_tuner_ready"), "{text}");
        assert!(
            text.contains("skill_tuner_token_requests_total 4\n"),
            "{text}"
        );
    }

    #[test]
    fn accept_header_picks_the_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(prometheus), Format::OpenMetrics);
        assert_eq!(Format::from_accept("*/*"), Format::Prometheus);
        assert_eq!(Format::from_accept(""), Format::Prometheus);
    }

    #[test]
    fn proc_stat_fields_follow_the_last_parenthesis() {
        let line = "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 3 0 98765 1000 200 18446744073709551615";
        assert_eq!(
            ProcStat::parse(line),
            Some(ProcStat {
                utime: 123,
                stime: 45,
                starttime: 98765
            })
        );
        assert_eq!(ProcStat::parse("4242 (truncated"), None);
        assert_eq!(
            resident_bytes("Name:\tx\nVmRSS:\t  1234 kB\nThreads: 3\n"),
            Some(1234 * 1024)
        );
        assert_eq!(resident_bytes("Name:\tx\n"), None);
    }
}
