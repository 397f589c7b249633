//! What the client did: calls by endpoint and status with their latency, retries, token
//! requests. The cycle report, the benchmark and `/metrics` all read these.
//!
//! The counters are declared once, in [`StatsSnapshot`]; [`ApiStats`] is that struct behind
//! a lock. A lock per call costs nothing next to a paced HTTP request, and one declaration
//! means a new counter cannot reach the report without reaching `/metrics` (or the reverse).

use super::error::RetryReason;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the API latency histogram: a quick read is tens of
/// milliseconds, a large analytics query seconds, and a request is cut off at
/// `genesys.request_timeout_secs` (16 s by default).
pub const LATENCY_BUCKETS: [f64; 10] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// One endpoint's request latencies. `buckets[i]` counts the requests that took at most
/// `LATENCY_BUCKETS[i]` and more than the bound before it (not cumulative); `count` counts
/// them all, so the slower ones are `count` minus the buckets' sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub count: u64,
    pub sum_secs: f64,
}

impl Latency {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|le| secs <= *le) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_secs += secs;
    }

    fn combine(&self, other: &Latency, op: Op) -> Latency {
        let mut buckets = self.buckets;
        for (b, o) in buckets.iter_mut().zip(other.buckets) {
            *b = op.u64(*b, o);
        }
        Latency {
            buckets,
            count: op.u64(self.count, other.count),
            sum_secs: op.f64(self.sum_secs, other.sum_secs),
        }
    }
}

/// Every counter of one client at one moment; [`ApiStats`] keeps the live one.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StatsSnapshot {
    /// `"GET /api/v2/users" → {"200": 3}`; transport failures count under `"error"`.
    pub calls: BTreeMap<String, BTreeMap<String, u64>>,
    pub retries_rate_limited: u64,
    pub retries_server_error: u64,
    pub retries_timeout: u64,
    pub retries_connect: u64,
    pub unauthorized_refreshes: u64,
    pub token_requests: u64,
    pub token_failures: u64,
    /// 2xx answers whose body could not be read (truncated or malformed), whether or not
    /// they were fetched again: a proxy or the API misbehaving shows here, not only in logs.
    pub decode_errors: u64,
    /// Time on the wire per endpoint (same keys as `calls`), from sending the request to
    /// the last byte of the answer or the transport error; pacing and queueing excluded.
    /// For `/metrics`, not for the report (a cycle's report has its own duration).
    #[serde(skip)]
    pub latency: BTreeMap<String, Latency>,
}

/// How [`StatsSnapshot::combine`] joins two values.
#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
}

impl Op {
    fn u64(self, a: u64, b: u64) -> u64 {
        match self {
            Op::Add => a.saturating_add(b),
            Op::Sub => a.saturating_sub(b),
        }
    }

    fn f64(self, a: f64, b: f64) -> f64 {
        match self {
            Op::Add => a + b,
            Op::Sub => (a - b).max(0.0),
        }
    }
}

impl StatsSnapshot {
    /// Every API request sent (token requests excluded).
    pub fn total_calls(&self) -> u64 {
        self.calls.values().flat_map(|by| by.values()).sum()
    }

    /// Calls to one endpoint template, any status.
    pub fn calls_to(&self, endpoint: &str) -> u64 {
        self.calls.get(endpoint).map_or(0, |by| by.values().sum())
    }

    /// Calls answered with one status, any endpoint.
    pub fn with_status(&self, status: &str) -> u64 {
        self.calls.values().filter_map(|by| by.get(status)).sum()
    }

    pub fn retries(&self) -> u64 {
        self.retries_rate_limited
            + self.retries_server_error
            + self.retries_timeout
            + self.retries_connect
    }

    /// What happened between `earlier` and `self` (for one cycle's report).
    pub fn since(&self, earlier: &StatsSnapshot) -> StatsSnapshot {
        self.combine(earlier, Op::Sub)
    }

    /// `self + other`, counter by counter: the totals of a replaced client and its successor.
    pub fn plus(&self, other: &StatsSnapshot) -> StatsSnapshot {
        self.combine(other, Op::Add)
    }

    /// The one place that lists every counter besides the declaration. Entries that come
    /// out zero are left out, as a live client never holds one.
    fn combine(&self, other: &StatsSnapshot, op: Op) -> StatsSnapshot {
        let mut calls: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let endpoints = self.calls.keys().chain(other.calls.keys());
        for endpoint in endpoints {
            let mine = self.calls.get(endpoint);
            let theirs = other.calls.get(endpoint);
            let statuses = mine
                .into_iter()
                .chain(theirs)
                .flat_map(|by| by.keys())
                .cloned()
                .collect::<Vec<_>>();
            for status in statuses {
                let get = |by: Option<&BTreeMap<String, u64>>| {
                    by.and_then(|b| b.get(&status)).copied().unwrap_or(0)
                };
                let n = op.u64(get(mine), get(theirs));
                if n > 0 {
                    calls.entry(endpoint.clone()).or_default().insert(status, n);
                }
            }
        }
        let mut latency = BTreeMap::new();
        for endpoint in self.latency.keys().chain(other.latency.keys()) {
            let zero = Latency::default();
            let mine = self.latency.get(endpoint).unwrap_or(&zero);
            let theirs = other.latency.get(endpoint).unwrap_or(&zero);
            let joined = mine.combine(theirs, op);
            if joined.count > 0 {
                latency.insert(endpoint.clone(), joined);
            }
        }
        StatsSnapshot {
            calls,
            retries_rate_limited: op.u64(self.retries_rate_limited, other.retries_rate_limited),
            retries_server_error: op.u64(self.retries_server_error, other.retries_server_error),
            retries_timeout: op.u64(self.retries_timeout, other.retries_timeout),
            retries_connect: op.u64(self.retries_connect, other.retries_connect),
            unauthorized_refreshes: op
                .u64(self.unauthorized_refreshes, other.unauthorized_refreshes),
            token_requests: op.u64(self.token_requests, other.token_requests),
            token_failures: op.u64(self.token_failures, other.token_failures),
            decode_errors: op.u64(self.decode_errors, other.decode_errors),
            latency,
        }
    }
}

/// The live counters of one client, shared by every call it makes.
#[derive(Debug, Default)]
pub struct ApiStats(Mutex<StatsSnapshot>);

impl ApiStats {
    fn with(&self, f: impl FnOnce(&mut StatsSnapshot)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// One request that got an answer (`status` as a number) or none (`"error"`), and how
    /// long it was on the wire.
    pub fn record_call(&self, endpoint: &str, status: &str, elapsed: Duration) {
        self.with(|s| {
            *s.calls
                .entry(endpoint.to_string())
                .or_default()
                .entry(status.to_string())
                .or_insert(0) += 1;
            s.latency
                .entry(endpoint.to_string())
                .or_default()
                .observe(elapsed.as_secs_f64());
        });
    }

    pub fn record_retry(&self, reason: RetryReason) {
        self.with(|s| {
            let counter = match reason {
                RetryReason::RateLimited => &mut s.retries_rate_limited,
                RetryReason::ServerError => &mut s.retries_server_error,
                RetryReason::Timeout => &mut s.retries_timeout,
                RetryReason::Connect => &mut s.retries_connect,
                RetryReason::Unauthorized => &mut s.unauthorized_refreshes,
            };
            *counter += 1;
        });
    }

    pub fn record_token_request(&self, ok: bool) {
        self.with(|s| {
            s.token_requests += 1;
            if !ok {
                s.token_failures += 1;
            }
        });
    }

    pub fn record_decode_error(&self) {
        self.with(|s| s.decode_errors += 1);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_and_plus_cover_every_counter_and_latency() {
        let stats = ApiStats::default();
        stats.record_call("GET /a", "200", Duration::from_millis(250));
        let before = stats.snapshot();
        stats.record_call("GET /a", "200", Duration::from_millis(500));
        stats.record_call("GET /a", "429", Duration::from_secs(64));
        stats.record_retry(RetryReason::RateLimited);
        stats.record_retry(RetryReason::Unauthorized);
        stats.record_token_request(false);
        stats.record_decode_error();
        let delta = stats.snapshot().since(&before);
        assert_eq!(delta.calls_to("GET /a"), 2);
        assert_eq!(delta.with_status("429"), 1);
        assert_eq!(
            (
                delta.retries_rate_limited,
                delta.unauthorized_refreshes,
                delta.token_requests,
                delta.token_failures,
                delta.decode_errors
            ),
            (1, 1, 1, 1, 1)
        );
        let lat = &delta.latency["GET /a"];
        assert_eq!(lat.count, 2);
        // 0.5 s in the 0.5 bucket; 64 s above every bound (sums exact in binary).
        assert_eq!(lat.buckets.iter().sum::<u64>(), 1);
        assert_eq!(lat.buckets[4], 1);
        assert_eq!(lat.sum_secs, 64.5);

        let total = before.plus(&delta);
        assert_eq!(total, stats.snapshot());
        assert_eq!(total.since(&total), StatsSnapshot::default());
    }
}
