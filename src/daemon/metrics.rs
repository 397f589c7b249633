//! The daemon's counters and their Prometheus text rendering (exposition format 0.0.4).
//!
//! Rendered by hand: a dozen families do not justify an exporter crate, and the API counters
//! already live in the client ([`StatsSnapshot`]) — they are read at scrape time rather than
//! copied, so `/metrics` and the cycle reports can never disagree.

use crate::genesys::StatsSnapshot;
use crate::report::CycleReport;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds (seconds) of the cycle-duration histogram: from a tiny org to a slow big one.
const DURATION_BUCKETS: [f64; 11] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// Counters kept across cycles, reloads and client rebuilds.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
    /// The daemon's clock: the `*_timestamp_seconds` gauges read it.
    clock: crate::clock::Clock,
}

#[derive(Debug, Default)]
struct State {
    cycles: BTreeMap<String, u64>,
    changes: BTreeMap<String, u64>,
    conflicts: u64,
    conflicts_matching_policy: u64,
    alerts: u64,
    workitems_created: u64,
    workitems_failed: u64,
    breaker_trips: u64,
    duration_buckets: [u64; DURATION_BUCKETS.len()],
    duration_count: u64,
    duration_sum: f64,
    last_duration: f64,
    last_success: Option<f64>,
    last_cycle: Option<f64>,
    reloads_ok: u64,
    reloads_failed: u64,
    last_reload_ok: bool,
    last_reload_success: f64,
    ticks_skipped: BTreeMap<String, u64>,
    /// API counters of clients replaced by a reload, so the totals stay monotonic.
    retired_api: StatsSnapshot,
}

/// What is read live at scrape time.
#[derive(Debug, Default, Clone)]
pub struct LiveView {
    pub api: StatsSnapshot,
    pub ready: bool,
    pub has_token: bool,
    pub ledger_open: bool,
    pub cycle_running: bool,
    pub config_fingerprint: String,
    pub schedule: String,
    pub next_run: Option<f64>,
}

impl Metrics {
    fn now_secs(&self) -> f64 {
        self.clock.now().timestamp_millis() as f64 / 1000.0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh set, with the start-up config counted as a successful load.
    pub fn new(clock: crate::clock::Clock) -> Self {
        let m = Self {
            state: Mutex::default(),
            clock,
        };
        {
            let mut s = m.lock();
            s.last_reload_ok = true;
            s.last_reload_success = m.now_secs();
        }
        m
    }

    /// Counts a finished cycle.
    pub fn record_cycle(&self, report: &CycleReport) {
        let mut s = self.lock();
        *s.cycles.entry(report.outcome.clone()).or_insert(0) += 1;
        for line in &report.changes {
            *s.changes.entry(line.status.clone()).or_insert(0) += 1;
        }
        s.conflicts += report.conflicts as u64;
        s.conflicts_matching_policy += report.conflicts_matching_policy as u64;
        s.alerts += report.alerts.over_threshold as u64;
        s.workitems_created += report.alerts.workitems_created as u64;
        s.workitems_failed += report.alerts.workitems_failed as u64;
        if report.breaker.is_some() {
            s.breaker_trips += 1;
        }
        let secs = report.duration_ms as f64 / 1000.0;
        s.observe_duration(secs);
        let now = self.now_secs();
        s.last_cycle = Some(now);
        if matches!(report.outcome.as_str(), "ok" | "dry_run") {
            s.last_success = Some(now);
        }
    }

    /// Counts a cycle that could not run at all.
    pub fn record_cycle_error(&self, duration_secs: f64) {
        let mut s = self.lock();
        *s.cycles.entry("failed".into()).or_insert(0) += 1;
        s.observe_duration(duration_secs);
        s.last_cycle = Some(self.now_secs());
    }

    pub fn record_reload(&self, ok: bool) {
        let mut s = self.lock();
        s.last_reload_ok = ok;
        if ok {
            s.reloads_ok += 1;
            s.last_reload_success = self.now_secs();
        } else {
            s.reloads_failed += 1;
        }
    }

    pub fn record_skipped_tick(&self, reason: &str) {
        *self
            .lock()
            .ticks_skipped
            .entry(reason.to_string())
            .or_insert(0) += 1;
    }

    /// Keeps the counters of a client that is being replaced.
    pub fn retire_client_stats(&self, stats: &StatsSnapshot) {
        let mut s = self.lock();
        s.retired_api = merge(&s.retired_api, stats);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, live: &LiveView) -> String {
        let s = self.lock();
        let api = merge(&s.retired_api, &live.api);
        let mut out = String::with_capacity(4096);
        let w = &mut out;

        family(w, "skill_tuner_up", "gauge", "1 while the daemon runs.");
        sample(w, "skill_tuner_up", &[], 1.0);
        family(w, "skill_tuner_build_info", "gauge", "The running version.");
        sample(
            w,
            "skill_tuner_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        family(
            w,
            "skill_tuner_ready",
            "gauge",
            "1 when the token is valid (or renewable), the config is valid and the ledger is open.",
        );
        sample(w, "skill_tuner_ready", &[], bool_f(live.ready));
        family(
            w,
            "skill_tuner_token_valid",
            "gauge",
            "1 while the API client's token is valid or can be renewed (the last token request worked).",
        );
        sample(w, "skill_tuner_token_valid", &[], bool_f(live.has_token));
        family(
            w,
            "skill_tuner_ledger_open",
            "gauge",
            "1 when the history ledger is open.",
        );
        sample(w, "skill_tuner_ledger_open", &[], bool_f(live.ledger_open));
        family(
            w,
            "skill_tuner_cycle_running",
            "gauge",
            "1 while a cycle runs.",
        );
        sample(
            w,
            "skill_tuner_cycle_running",
            &[],
            bool_f(live.cycle_running),
        );
        family(
            w,
            "skill_tuner_config_info",
            "gauge",
            "The config in use: its fingerprint and schedule.",
        );
        sample(
            w,
            "skill_tuner_config_info",
            &[
                ("fingerprint", &live.config_fingerprint),
                ("schedule", &live.schedule),
            ],
            1.0,
        );
        if let Some(next) = live.next_run {
            family(
                w,
                "skill_tuner_next_run_timestamp_seconds",
                "gauge",
                "When the next scheduled cycle starts (jitter included).",
            );
            sample(w, "skill_tuner_next_run_timestamp_seconds", &[], next);
        }

        family(
            w,
            "skill_tuner_cycles_total",
            "counter",
            "Cycles by outcome.",
        );
        for outcome in ["ok", "partial", "breaker", "failed", "dry_run"] {
            let n = s.cycles.get(outcome).copied().unwrap_or(0);
            sample(
                w,
                "skill_tuner_cycles_total",
                &[("outcome", outcome)],
                n as f64,
            );
        }
        for (outcome, n) in &s.cycles {
            if !matches!(
                outcome.as_str(),
                "ok" | "partial" | "breaker" | "failed" | "dry_run"
            ) {
                sample(
                    w,
                    "skill_tuner_cycles_total",
                    &[("outcome", outcome)],
                    *n as f64,
                );
            }
        }
        family(
            w,
            "skill_tuner_ticks_skipped_total",
            "counter",
            "Scheduled or requested runs not started, by reason (overlap, not_ready, min_spacing).",
        );
        for reason in ["overlap", "not_ready", "min_spacing"] {
            let n = s.ticks_skipped.get(reason).copied().unwrap_or(0);
            sample(
                w,
                "skill_tuner_ticks_skipped_total",
                &[("reason", reason)],
                n as f64,
            );
        }
        family(
            w,
            "skill_tuner_changes_total",
            "counter",
            "Planned proficiency changes by final status (applied, conflict, failed, skipped, held, planned).",
        );
        for (status, n) in &s.changes {
            sample(
                w,
                "skill_tuner_changes_total",
                &[("status", status)],
                *n as f64,
            );
        }
        counter(
            w,
            "skill_tuner_conflicts_total",
            "Changes left alone because a person edited the skill.",
            s.conflicts,
        );
        counter(
            w,
            "skill_tuner_conflicts_matching_policy_total",
            "Conflicts whose value was exactly what this policy would have written (a second tuner?).",
            s.conflicts_matching_policy,
        );
        counter(
            w,
            "skill_tuner_alerts_total",
            "Over-threshold changes alerted to supervisors.",
            s.alerts,
        );
        counter(
            w,
            "skill_tuner_workitems_created_total",
            "Review workitems created.",
            s.workitems_created,
        );
        counter(
            w,
            "skill_tuner_workitems_failed_total",
            "Review workitems that could not be created.",
            s.workitems_failed,
        );
        counter(
            w,
            "skill_tuner_breaker_trips_total",
            "Cycles stopped by the blast-radius breaker.",
            s.breaker_trips,
        );

        family(
            w,
            "skill_tuner_cycle_duration_seconds",
            "histogram",
            "Cycle wall time.",
        );
        let mut cumulative = 0;
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += s.duration_buckets[i];
            sample(
                w,
                "skill_tuner_cycle_duration_seconds_bucket",
                &[("le", &fmt_f(*le))],
                cumulative as f64,
            );
        }
        sample(
            w,
            "skill_tuner_cycle_duration_seconds_bucket",
            &[("le", "+Inf")],
            s.duration_count as f64,
        );
        sample(
            w,
            "skill_tuner_cycle_duration_seconds_sum",
            &[],
            s.duration_sum,
        );
        sample(
            w,
            "skill_tuner_cycle_duration_seconds_count",
            &[],
            s.duration_count as f64,
        );
        family(
            w,
            "skill_tuner_last_cycle_duration_seconds",
            "gauge",
            "Wall time of the last cycle.",
        );
        sample(
            w,
            "skill_tuner_last_cycle_duration_seconds",
            &[],
            s.last_duration,
        );
        if let Some(t) = s.last_cycle {
            family(
                w,
                "skill_tuner_last_cycle_timestamp_seconds",
                "gauge",
                "When the last cycle finished.",
            );
            sample(w, "skill_tuner_last_cycle_timestamp_seconds", &[], t);
        }
        family(
            w,
            "skill_tuner_last_success_timestamp_seconds",
            "gauge",
            "When a cycle last finished with outcome ok (0 = never): alert on its age.",
        );
        sample(
            w,
            "skill_tuner_last_success_timestamp_seconds",
            &[],
            s.last_success.unwrap_or(0.0),
        );

        family(
            w,
            "skill_tuner_config_reloads_total",
            "counter",
            "SIGHUP reloads by result.",
        );
        sample(
            w,
            "skill_tuner_config_reloads_total",
            &[("result", "ok")],
            s.reloads_ok as f64,
        );
        sample(
            w,
            "skill_tuner_config_reloads_total",
            &[("result", "failed")],
            s.reloads_failed as f64,
        );
        family(
            w,
            "skill_tuner_config_last_reload_successful",
            "gauge",
            "1 when the last config load (start-up or SIGHUP) succeeded.",
        );
        sample(
            w,
            "skill_tuner_config_last_reload_successful",
            &[],
            bool_f(s.last_reload_ok),
        );
        family(
            w,
            "skill_tuner_config_last_reload_success_timestamp_seconds",
            "gauge",
            "When the config was last loaded successfully.",
        );
        sample(
            w,
            "skill_tuner_config_last_reload_success_timestamp_seconds",
            &[],
            s.last_reload_success,
        );

        family(
            w,
            "skill_tuner_api_calls_total",
            "counter",
            "Genesys Cloud API requests by endpoint template and status (error = no response).",
        );
        for (endpoint, by_status) in &api.calls {
            for (status, n) in by_status {
                sample(
                    w,
                    "skill_tuner_api_calls_total",
                    &[("endpoint", endpoint), ("status", status)],
                    *n as f64,
                );
            }
        }
        counter(
            w,
            "skill_tuner_api_rate_limited_total",
            "API responses with status 429.",
            api.with_status("429"),
        );
        family(
            w,
            "skill_tuner_api_retries_total",
            "counter",
            "API retries by reason.",
        );
        for (reason, n) in [
            ("rate_limited", api.retries_rate_limited),
            ("server_error", api.retries_server_error),
            ("timeout", api.retries_timeout),
            ("connect", api.retries_connect),
            ("unauthorized", api.unauthorized_refreshes),
        ] {
            sample(
                w,
                "skill_tuner_api_retries_total",
                &[("reason", reason)],
                n as f64,
            );
        }
        counter(
            w,
            "skill_tuner_token_requests_total",
            "OAuth token requests (logins and refreshes).",
            api.token_requests,
        );
        counter(
            w,
            "skill_tuner_token_failures_total",
            "OAuth token requests that failed.",
            api.token_failures,
        );
        counter(
            w,
            "skill_tuner_api_decode_errors_total",
            "Successful answers whose body could not be read (malformed or truncated).",
            api.decode_errors,
        );
        out
    }
}

impl State {
    fn observe_duration(&mut self, secs: f64) {
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.duration_buckets[i] += 1;
                break;
            }
        }
        self.duration_count += 1;
        self.duration_sum += secs;
        self.last_duration = secs;
    }
}

/// `a + b`, counter by counter.
pub fn merge(a: &StatsSnapshot, b: &StatsSnapshot) -> StatsSnapshot {
    let mut calls = a.calls.clone();
    for (endpoint, by) in &b.calls {
        let into = calls.entry(endpoint.clone()).or_default();
        for (status, n) in by {
            *into.entry(status.clone()).or_insert(0) += n;
        }
    }
    StatsSnapshot {
        calls,
        retries_rate_limited: a.retries_rate_limited + b.retries_rate_limited,
        retries_server_error: a.retries_server_error + b.retries_server_error,
        retries_timeout: a.retries_timeout + b.retries_timeout,
        retries_connect: a.retries_connect + b.retries_connect,
        unauthorized_refreshes: a.unauthorized_refreshes + b.unauthorized_refreshes,
        token_requests: a.token_requests + b.token_requests,
        token_failures: a.token_failures + b.token_failures,
        decode_errors: a.decode_errors + b.decode_errors,
    }
}

fn bool_f(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn fmt_f(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        out,
        "# HELP {name} {}",
        help.replace('\\', "\\\\").replace('\n', "\\n")
    );
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    sample(out, name, &[], value as f64);
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", fmt_f(value));
}

/// Label values escape backslash, double quote and newline (exposition format).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_and_escapes_labels() {
        let m = Metrics::new(crate::clock::Clock::system());
        let report = CycleReport {
            outcome: "ok".into(),
            duration_ms: 2500,
            conflicts: 2,
            conflicts_matching_policy: 1,
            ..CycleReport::default()
        };
        m.record_cycle(&report);
        m.record_reload(false);
        m.record_skipped_tick("overlap");
        let mut live = LiveView {
            schedule: "0 \"0\" 2 * * *".into(),
            ..LiveView::default()
        };
        live.api
            .calls
            .entry("GET /api/v2/users".into())
            .or_default()
            .insert("429".into(), 3);
        let text = m.render(&live);
        assert!(text.contains("skill_tuner_cycles_total{outcome=\"ok\"} 1\n"));
        assert!(text.contains("skill_tuner_conflicts_total 2\n"));
        assert!(text.contains("skill_tuner_conflicts_matching_policy_total 1\n"));
        assert!(text.contains("skill_tuner_api_rate_limited_total 3\n"));
        assert!(text.contains("skill_tuner_config_last_reload_successful 0\n"));
        assert!(text.contains("skill_tuner_config_reloads_total{result=\"failed\"} 1\n"));
        assert!(text.contains("skill_tuner_ticks_skipped_total{reason=\"overlap\"} 1\n"));
        assert!(text.contains("schedule=\"0 \\\"0\\\" 2 * * *\""));
        assert!(text.contains("skill_tuner_cycle_duration_seconds_bucket{le=\"5\"} 1\n"));
        assert!(text.contains("skill_tuner_cycle_duration_seconds_bucket{le=\"1\"} 0\n"));
        assert!(text.contains("skill_tuner_cycle_duration_seconds_sum 2.5\n"));
    }

    #[test]
    fn retired_client_counters_stay_in_the_totals() {
        let m = Metrics::new(crate::clock::Clock::system());
        let old = StatsSnapshot {
            token_requests: 4,
            ..StatsSnapshot::default()
        };
        m.retire_client_stats(&old);
        let mut live = LiveView::default();
        live.api.token_requests = 1;
        assert!(m
            .render(&live)
            .contains("skill_tuner_token_requests_total 5\n"));
    }
}
