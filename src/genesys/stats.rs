//! Counters of what the client did: calls by endpoint and status, retries, token refreshes.
//! The cycle report, the benchmark and `/metrics` all read these.

use super::retry::RetryReason;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Live counters, shared by every call of one client.
#[derive(Debug, Default)]
pub struct ApiStats {
    calls: Mutex<BTreeMap<(String, String), u64>>,
    retries_rate_limited: AtomicU64,
    retries_server_error: AtomicU64,
    retries_timeout: AtomicU64,
    retries_connect: AtomicU64,
    unauthorized_refreshes: AtomicU64,
    token_requests: AtomicU64,
    token_failures: AtomicU64,
    decode_errors: AtomicU64,
}

/// A point-in-time copy of [`ApiStats`].
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
        let mut calls = BTreeMap::new();
        for (endpoint, by) in &self.calls {
            for (status, n) in by {
                let before = earlier
                    .calls
                    .get(endpoint)
                    .and_then(|b| b.get(status))
                    .copied()
                    .unwrap_or(0);
                if *n > before {
                    calls
                        .entry(endpoint.clone())
                        .or_insert_with(BTreeMap::new)
                        .insert(status.clone(), n - before);
                }
            }
        }
        StatsSnapshot {
            calls,
            retries_rate_limited: self.retries_rate_limited - earlier.retries_rate_limited,
            retries_server_error: self.retries_server_error - earlier.retries_server_error,
            retries_timeout: self.retries_timeout - earlier.retries_timeout,
            retries_connect: self.retries_connect - earlier.retries_connect,
            unauthorized_refreshes: self.unauthorized_refreshes - earlier.unauthorized_refreshes,
            token_requests: self.token_requests - earlier.token_requests,
            token_failures: self.token_failures - earlier.token_failures,
            decode_errors: self.decode_errors - earlier.decode_errors,
        }
    }
}

impl ApiStats {
    pub fn record_call(&self, endpoint: &str, status: &str) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        *calls
            .entry((endpoint.to_string(), status.to_string()))
            .or_insert(0) += 1;
    }

    pub fn record_retry(&self, reason: RetryReason) {
        let counter = match reason {
            RetryReason::RateLimited => &self.retries_rate_limited,
            RetryReason::ServerError => &self.retries_server_error,
            RetryReason::Timeout => &self.retries_timeout,
            RetryReason::Connect => &self.retries_connect,
            RetryReason::Unauthorized => &self.unauthorized_refreshes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_token_request(&self, ok: bool) {
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.token_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn record_decode_error(&self) {
        self.decode_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_endpoint: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((endpoint, status), n) in calls.iter() {
            by_endpoint
                .entry(endpoint.clone())
                .or_default()
                .insert(status.clone(), *n);
        }
        StatsSnapshot {
            calls: by_endpoint,
            retries_rate_limited: self.retries_rate_limited.load(Ordering::Relaxed),
            retries_server_error: self.retries_server_error.load(Ordering::Relaxed),
            retries_timeout: self.retries_timeout.load(Ordering::Relaxed),
            retries_connect: self.retries_connect.load(Ordering::Relaxed),
            unauthorized_refreshes: self.unauthorized_refreshes.load(Ordering::Relaxed),
            token_requests: self.token_requests.load(Ordering::Relaxed),
            token_failures: self.token_failures.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
        }
    }
}
