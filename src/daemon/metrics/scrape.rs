//! What `/metrics` reads at scrape time from what others own: the live view of the daemon's
//! state and the API counters of the client in use (plus those of replaced clients).

use super::{lock, Kept};
use crate::genesys::stats::LATENCY_BUCKETS;
use crate::genesys::StatsSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::sync::{Arc, Weak};

/// Reads what others own at scrape time (see the module comment).
#[derive(Debug)]
pub(super) struct Scrape {
    pub(super) kept: Arc<Kept>,
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
