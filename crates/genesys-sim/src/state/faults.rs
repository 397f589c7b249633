//! The fault switchboard: failures a test can switch on while the server runs.
//!
//! All methods take `&self` and are thread-safe, so a test can flip faults between two calls of
//! the client under test. Request-count faults (`fail_next`, `storm_429`, `malformed_next`,
//! `conflict_next_patch`) are consumed one per matching request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone)]
struct CountedFault {
    remaining: u32,
    path_contains: String,
    status: u16,
}

/// A person's edit waiting for a routing-skills read of `user_id`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingEdit {
    pub(crate) user_id: String,
    pub(crate) skill_id: String,
    pub(crate) value: f64,
}

#[derive(Debug, Default)]
struct State {
    fail: Vec<CountedFault>,
    malformed: Vec<CountedFault>,
    storm: Option<(u32, u64)>,
    latency: Duration,
    latency_for: Vec<(String, Duration)>,
    edit_before: Vec<PendingEdit>,
    edit_after: Vec<PendingEdit>,
    conflicts: Vec<(String, u32)>,
}

/// The fault switchboard. Get it from [`crate::Simulator::faults`].
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
    login_down: AtomicBool,
    revocations: AtomicU64,
}

fn take_counted(list: &mut Vec<CountedFault>, path: &str) -> Option<u16> {
    let pos = list
        .iter()
        .position(|f| f.remaining > 0 && path.contains(&f.path_contains))?;
    let f = &mut list[pos];
    f.remaining -= 1;
    let status = f.status;
    if f.remaining == 0 {
        list.remove(pos);
    }
    Some(status)
}

fn same_id(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `n` API requests whose path contains `path_contains` answer `status`
    /// with an ErrorBody (`""` matches every API request).
    pub fn fail_next(&self, n: u32, status: u16, path_contains: &str) {
        if n > 0 {
            self.lock().fail.push(CountedFault {
                remaining: n,
                path_contains: path_contains.to_string(),
                status,
            });
        }
    }

    /// Adds `d` before every answer; `Duration::ZERO` clears.
    pub fn latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// Adds `d` before answering requests whose path contains `path_contains`;
    /// `Duration::ZERO` clears that entry.
    pub fn latency_for(&self, path_contains: &str, d: Duration) {
        let mut s = self.lock();
        s.latency_for.retain(|(p, _)| p != path_contains);
        if !d.is_zero() {
            s.latency_for.push((path_contains.to_string(), d));
        }
    }

    /// The next `n` API requests answer 429 with `Retry-After: retry_after_secs`.
    pub fn storm_429(&self, n: u32, retry_after_secs: u64) {
        self.lock().storm = (n > 0).then_some((n, retry_after_secs));
    }

    /// Every token issued so far becomes invalid.
    pub fn revoke_tokens(&self) {
        self.revocations.fetch_add(1, Ordering::SeqCst);
    }

    /// While `true`, `POST /oauth/token` answers 503.
    pub fn login_down(&self, down: bool) {
        self.login_down.store(down, Ordering::SeqCst);
    }

    /// The next `n` matching API requests answer 200 with a truncated JSON body.
    pub fn malformed_next(&self, n: u32, path_contains: &str) {
        if n > 0 {
            self.lock().malformed.push(CountedFault {
                remaining: n,
                path_contains: path_contains.to_string(),
                status: 200,
            });
        }
    }

    /// A person sets `user_id`/`skill_id` to `value` just before the next
    /// `GET /api/v2/users/{user_id}/routingskills` is answered (the read sees it).
    pub fn edit_on_next_read(&self, user_id: &str, skill_id: &str, value: f64) {
        self.lock().edit_before.push(PendingEdit {
            user_id: user_id.to_string(),
            skill_id: skill_id.to_string(),
            value,
        });
    }

    /// A person sets the value just after that read is answered (the read misses it).
    pub fn edit_after_next_read(&self, user_id: &str, skill_id: &str, value: f64) {
        self.lock().edit_after.push(PendingEdit {
            user_id: user_id.to_string(),
            skill_id: skill_id.to_string(),
            value,
        });
    }

    /// The next `n` bulk PATCHes of `user_id`'s skills answer 409.
    pub fn conflict_next_patch(&self, user_id: &str, n: u32) {
        let mut s = self.lock();
        s.conflicts.retain(|(u, _)| !same_id(u, user_id));
        if n > 0 {
            s.conflicts.push((user_id.to_string(), n));
        }
    }

    /// Switches every fault off (issued-token revocations stay in effect).
    pub fn clear(&self) {
        *self.lock() = State::default();
        self.login_down.store(false, Ordering::SeqCst);
    }

    // ---- consumed by the server ----

    pub(crate) fn is_login_down(&self) -> bool {
        self.login_down.load(Ordering::SeqCst)
    }

    pub(crate) fn revocation_epoch(&self) -> u64 {
        self.revocations.load(Ordering::SeqCst)
    }

    pub(crate) fn delay_for(&self, path: &str) -> Duration {
        let s = self.lock();
        let specific = s
            .latency_for
            .iter()
            .filter(|(p, _)| path.contains(p.as_str()))
            .map(|(_, d)| *d)
            .max()
            .unwrap_or_default();
        s.latency + specific
    }

    pub(crate) fn take_storm(&self) -> Option<u64> {
        let mut s = self.lock();
        let (n, secs) = s.storm?;
        s.storm = (n > 1).then_some((n - 1, secs));
        Some(secs)
    }

    pub(crate) fn take_failure(&self, path: &str) -> Option<u16> {
        take_counted(&mut self.lock().fail, path)
    }

    pub(crate) fn take_malformed(&self, path: &str) -> bool {
        take_counted(&mut self.lock().malformed, path).is_some()
    }

    pub(crate) fn take_conflict(&self, user_id: &str) -> bool {
        let mut s = self.lock();
        let Some(pos) = s.conflicts.iter().position(|(u, _)| same_id(u, user_id)) else {
            return false;
        };
        s.conflicts[pos].1 -= 1;
        if s.conflicts[pos].1 == 0 {
            s.conflicts.remove(pos);
        }
        true
    }

    pub(crate) fn take_edits_before(&self, user_id: &str) -> Vec<PendingEdit> {
        let mut s = self.lock();
        let (hit, keep) = s
            .edit_before
            .drain(..)
            .partition(|e| same_id(&e.user_id, user_id));
        s.edit_before = keep;
        hit
    }

    pub(crate) fn take_edits_after(&self, user_id: &str) -> Vec<PendingEdit> {
        let mut s = self.lock();
        let (hit, keep) = s
            .edit_after
            .drain(..)
            .partition(|e| same_id(&e.user_id, user_id));
        s.edit_after = keep;
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_are_consumed() {
        let f = Faults::default();
        f.fail_next(2, 503, "/users");
        assert_eq!(f.take_failure("/api/v2/routing/skills"), None);
        assert_eq!(f.take_failure("/api/v2/users"), Some(503));
        assert_eq!(f.take_failure("/api/v2/users/x"), Some(503));
        assert_eq!(f.take_failure("/api/v2/users"), None);
        f.storm_429(1, 7);
        assert_eq!(f.take_storm(), Some(7));
        assert_eq!(f.take_storm(), None);
        f.conflict_next_patch("U", 1);
        assert!(f.take_conflict("u"));
        assert!(!f.take_conflict("u"));
        f.latency(Duration::from_millis(5));
        f.latency_for("/a", Duration::from_millis(7));
        assert_eq!(f.delay_for("/a/b"), Duration::from_millis(12));
        f.clear();
        assert_eq!(f.delay_for("/a/b"), Duration::ZERO);
    }
}
