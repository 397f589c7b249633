//! Request counters, keyed by method, route template and status.
//!
//! Tests assert on them (e.g. that the replacing `PUT .../routingskills/bulk` was never used,
//! or how many requests a run of the daemon cost).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The live counters inside the server.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    map: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl Counters {
    pub(crate) fn record(&self, method: &str, template: &str, status: u16) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((method.to_string(), template.to_string(), status))
            .or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> RequestCounters {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        RequestCounters {
            entries: m.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    pub(crate) fn reset(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A snapshot of the request counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounters {
    entries: BTreeMap<(String, String, u16), u64>,
}

impl RequestCounters {
    /// All requests counted (every route except the `/_sim/faults` control endpoint).
    pub fn total(&self) -> u64 {
        self.entries.values().sum()
    }

    /// Keyed `"GET /api/v2/users/{id}/routingskills 200"`.
    pub fn by_endpoint(&self) -> BTreeMap<String, u64> {
        self.entries
            .iter()
            .map(|((m, t, s), n)| (format!("{m} {t} {s}"), *n))
            .collect()
    }

    /// Requests to `method` + `route_template` (e.g. `"/api/v2/users/{id}"`), any status.
    pub fn count(&self, method: &str, route_template: &str) -> u64 {
        self.entries
            .iter()
            .filter(|((m, t, _), _)| m.eq_ignore_ascii_case(method) && t == route_template)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests answered with `status`, any route.
    pub fn status_count(&self, status: u16) -> u64 {
        self.entries
            .iter()
            .filter(|((_, _, s), _)| *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests answered 429 (real limit or injected storm).
    pub fn rate_limited(&self) -> u64 {
        self.status_count(429)
    }
}

/// What the other user of the simulated tokens sent ([`crate::SimConfig::other_user_share`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtherUserStats {
    /// Its requests, refused ones included.
    pub requests: u64,
    /// Its requests refused because the window was spent.
    pub rate_limited: u64,
}
