//! What `/metrics` reads at scrape time from what others own: the live view of the daemon's
//! state and the API counters of the client in use (plus those of replaced clients).

use super::{lock, org_labels, Kept, LiveView, OrgKey};
use crate::genesys::stats::LATENCY_BUCKETS;
use crate::genesys::StatsSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

/// Reads what others own at scrape time (see the module comment).
#[derive(Debug)]
pub(super) struct Scrape {
    pub(super) kept: Arc<Kept>,
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let last_cycle = lock(&self.kept.last_cycle).clone();
        if !last_cycle.is_empty() {
            let mut family = enc.encode_descriptor(
                "last_cycle_timestamp_seconds",
                "When the last cycle finished.",
                None,
                MetricType::Gauge,
            )?;
            for (org, at) in &last_cycle {
                ConstGauge::new(*at).encode(family.encode_family(&org_labels(org.as_deref()))?)?;
            }
        }
        let views = self
            .kept
            .live
            .get()
            .and_then(Weak::upgrade)
            .map(|source| source.live_views())
            .unwrap_or_default();
        let mut api = lock(&self.kept.retired_api).clone();
        if views.is_empty() {
            return encode_api(&mut enc, &api);
        }
        type Flag = fn(&LiveView) -> bool;
        let flags: [(&str, &str, Flag); 4] = [
            ("ready", "1 when the token is valid (or renewable), the config is valid and the ledger is open.", |l| l.ready),
            ("token_valid", "1 while the API client's token is valid or can be renewed (the last token request worked).", |l| l.has_token),
            ("ledger_open", "1 when the history ledger is open.", |l| l.ledger_open),
            ("cycle_running", "1 while a cycle runs.", |l| l.cycle_running),
        ];
        for (name, help, flag) in flags {
            let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (org, live) in &views {
                ConstGauge::new(i64::from(flag(live)))
                    .encode(family.encode_family(&org_labels(org.as_deref()))?)?;
            }
        }
        let mut info = enc.encode_descriptor(
            "config",
            "The config in use: its fingerprint and schedule.",
            None,
            MetricType::Info,
        )?;
        for (org, live) in &views {
            let mut labels = org_labels(org.as_deref());
            labels.push(("fingerprint", live.config_fingerprint.clone()));
            labels.push(("schedule", live.schedule.clone()));
            info.encode_info(&labels)?;
        }
        if views.iter().any(|(_, live)| live.next_run.is_some()) {
            let mut family = enc.encode_descriptor(
                "next_run_timestamp_seconds",
                "When the next scheduled cycle starts (jitter included).",
                None,
                MetricType::Gauge,
            )?;
            for (org, live) in &views {
                if let Some(next) = live.next_run {
                    ConstGauge::new(next)
                        .encode(family.encode_family(&org_labels(org.as_deref()))?)?;
                }
            }
        }
        for (org, live) in &views {
            let kept = api.entry(org.clone()).or_default();
            *kept = kept.plus(&live.api);
        }
        encode_api(&mut enc, &api)
    }
}

pub(super) fn gauge<N>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> std::fmt::Result
where
    N: prometheus_client::encoding::EncodeGaugeValue,
{
    ConstGauge::new(value).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

pub(super) fn counter<N>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> std::fmt::Result
where
    N: prometheus_client::encoding::EncodeCounterValue,
{
    ConstCounter::new(value).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// The client's endpoint labels are `METHOD /route/template`.
fn method_and_route(endpoint: &str) -> (&str, &str) {
    endpoint.split_once(' ').unwrap_or(("", endpoint))
}

/// The API families, from each org's counters.
fn encode_api(
    enc: &mut DescriptorEncoder,
    by_org: &BTreeMap<OrgKey, StatsSnapshot>,
) -> std::fmt::Result {
    let mut calls = enc.encode_descriptor(
        "api_calls",
        "Genesys Cloud API requests by method, route template and status (error = no response).",
        None,
        MetricType::Counter,
    )?;
    for (org, api) in by_org {
        for (endpoint, by_status) in &api.calls {
            let (method, route) = method_and_route(endpoint);
            for (status, n) in by_status {
                let labels = with_org(
                    org,
                    [("method", method), ("route", route), ("status", status)],
                );
                ConstCounter::new(*n).encode(calls.encode_family(&labels)?)?;
            }
        }
    }
    let mut latency = enc.encode_descriptor(
        "api_request_duration_seconds",
        "Genesys Cloud API request latency by method and route template, from sending to the last byte of the answer (pacing excluded).",
        None,
        MetricType::Histogram,
    )?;
    for (org, api) in by_org {
        for (endpoint, lat) in &api.latency {
            let (method, route) = method_and_route(endpoint);
            let labels = with_org(org, [("method", method), ("route", route)]);
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
    }
    let mut retries = enc.encode_descriptor(
        "api_retries",
        "API retries by reason.",
        None,
        MetricType::Counter,
    )?;
    for (org, api) in by_org {
        for (reason, n) in [
            ("rate_limited", api.retries_rate_limited),
            ("server_error", api.retries_server_error),
            ("timeout", api.retries_timeout),
            ("connect", api.retries_connect),
            ("unauthorized", api.unauthorized_refreshes),
        ] {
            ConstCounter::new(n)
                .encode(retries.encode_family(&with_org(org, [("reason", reason)]))?)?;
        }
    }
    type Count = fn(&StatsSnapshot) -> u64;
    let counts: [(&str, &str, Count); 3] = [
        (
            "token_requests",
            "OAuth token requests (logins and refreshes).",
            |a| a.token_requests,
        ),
        ("token_failures", "OAuth token requests that failed.", |a| {
            a.token_failures
        }),
        (
            "api_decode_errors",
            "Successful answers whose body could not be read (malformed or truncated).",
            |a| a.decode_errors,
        ),
    ];
    for (name, help, count) in counts {
        let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
        if by_org.is_empty() {
            ConstCounter::new(0u64).encode(family)?;
            continue;
        }
        for (org, api) in by_org {
            ConstCounter::new(count(api))
                .encode(family.encode_family(&org_labels(org.as_deref()))?)?;
        }
    }
    Ok(())
}

/// `org`'s label (if it has one) before a family's own.
fn with_org<'a, const N: usize>(
    org: &'a OrgKey,
    own: [(&'static str, &'a str); N],
) -> Vec<(&'static str, &'a str)> {
    org.as_deref()
        .map(|name| ("org", name))
        .into_iter()
        .chain(own)
        .collect()
}
