//! The exposition pinned: every family's name, type and labels, sample values, and the
//! API totals across a replaced client.

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

struct Fixed(LiveView);

impl LiveSource for Fixed {
    fn live_views(&self) -> Vec<(OrgKey, LiveView)> {
        vec![(None, self.0.clone())]
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
    m.add_org(None);
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
    m.record_cycle(None, &report);
    m.record_reload(false);
    m.record_skipped_tick(None, "overlap");
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
    m.retire_client_stats(None, &old);
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
