//! Issued access tokens and their per-token rate-limit windows.
//!
//! Genesys limits client-credentials traffic per token (300 requests per minute by default);
//! the simulator models that as a fixed window (a minute unless configured) that opens with
//! the token's first request. The count covers every request of the token: the client's own
//! and, when configured, those of another user of the same token, who spends a share of each
//! window evenly over it. That user's requests are charged lazily (whenever the token is
//! charged or the statistics are read), in the order they would have arrived.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::state::counters::OtherUserStats;
use crate::SimConfig;

/// The limit every token is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateLimit {
    /// Requests per window; 0 = unlimited.
    allowed: u32,
    window: Duration,
    /// Requests the token's other user makes per window.
    other_quota: u32,
}

impl RateLimit {
    pub(crate) fn of(config: &SimConfig) -> Self {
        Self {
            allowed: config.window_allowance(),
            window: config.rate_window(),
            other_quota: config.other_user_quota(),
        }
    }

    /// The other user's requests due `elapsed` into a window: its quota spread evenly.
    fn other_due(&self, elapsed: Duration) -> u32 {
        if self.other_quota == 0 {
            return 0;
        }
        let due = u128::from(self.other_quota) * elapsed.min(self.window).as_nanos()
            / self.window.as_nanos().max(1);
        u32::try_from(due).unwrap_or(self.other_quota)
    }
}

#[derive(Debug, Clone)]
struct Window {
    start: Instant,
    /// Every request of the token in this window, refused ones included.
    count: u32,
    /// The other user's requests charged so far in this window.
    other_done: u32,
}

impl Window {
    fn open(start: Instant) -> Self {
        Self {
            start,
            count: 0,
            other_done: 0,
        }
    }

    /// Charges the other user's requests due by `elapsed` into the window.
    fn settle_other(&mut self, limit: &RateLimit, elapsed: Duration, stats: &mut OtherUserStats) {
        let due = limit.other_due(elapsed);
        let n = due.saturating_sub(self.other_done);
        let room = if limit.allowed == 0 {
            n
        } else {
            limit.allowed.saturating_sub(self.count).min(n)
        };
        stats.requests += u64::from(n);
        stats.rate_limited += u64::from(n - room);
        self.count = self.count.saturating_add(n);
        self.other_done = due;
    }
}

/// Brings `window` up to `now`: closes a window that has ended (windows follow each other
/// back to back while the other user keeps the token busy; otherwise the next request opens
/// one) and charges the other user's requests due by now.
fn advance<'w>(
    window: &'w mut Option<Window>,
    limit: &RateLimit,
    now: Instant,
    stats: &mut OtherUserStats,
) -> &'w mut Window {
    let w = window.get_or_insert_with(|| Window::open(now));
    let elapsed = now.duration_since(w.start);
    if elapsed >= limit.window {
        w.settle_other(limit, limit.window, stats);
        if limit.other_quota > 0 {
            let periods = elapsed.as_nanos() / limit.window.as_nanos().max(1);
            // Whole windows with no request of the client: the other user's share fits.
            let idle = u64::try_from(periods.saturating_sub(1)).unwrap_or(u64::MAX);
            stats.requests = stats
                .requests
                .saturating_add(idle.saturating_mul(u64::from(limit.other_quota)));
            let step = u32::try_from(periods).unwrap_or(u32::MAX);
            *w = Window::open(w.start + limit.window * step);
        } else {
            *w = Window::open(now);
        }
    }
    let elapsed = now.duration_since(w.start);
    w.settle_other(limit, elapsed, stats);
    w
}

#[derive(Debug)]
struct Token {
    expires: Instant,
    epoch: u64,
    window: Option<Window>,
}

/// Outcome of charging one request to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charge {
    /// Allowed: requests of the token in this window, seconds until the window resets.
    Ok { count: u32, reset_secs: u64 },
    /// Over the limit: requests of the token in this window, seconds until the window resets.
    Limited { count: u32, reset_secs: u64 },
    /// Unknown, expired or revoked.
    Invalid,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Token>,
    other: OtherUserStats,
}

#[derive(Debug)]
pub(crate) struct Tokens {
    inner: Mutex<Inner>,
    limit: RateLimit,
}

/// Whole seconds, rounded up to the nanosecond: a reset never says less than is left.
fn ceil_secs(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
}

impl Tokens {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues a random opaque token valid for `ttl` in revocation epoch `epoch`.
    pub(crate) fn issue(&self, ttl: Duration, epoch: u64) -> String {
        let token: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(48)
            .collect();
        let mut inner = self.lock();
        let now = Instant::now();
        inner.map.retain(|_, t| t.expires > now);
        inner.map.insert(
            token.clone(),
            Token {
                expires: now + ttl,
                epoch,
                window: None,
            },
        );
        token
    }

    /// Every token issued and not yet expired (for tests that prove no token leaks).
    pub(crate) fn issued(&self) -> Vec<String> {
        self.lock().map.keys().cloned().collect()
    }

    /// Validates `token` and charges one request to its window.
    pub(crate) fn charge(&self, token: &str, epoch: u64) -> Charge {
        self.charge_at(token, epoch, Instant::now())
    }

    fn charge_at(&self, token: &str, epoch: u64, now: Instant) -> Charge {
        let limit = self.limit;
        let mut inner = self.lock();
        let Inner { map, other } = &mut *inner;
        let Some(t) = map.get_mut(token) else {
            return Charge::Invalid;
        };
        if t.expires <= now || t.epoch != epoch {
            return Charge::Invalid;
        }
        let w = advance(&mut t.window, &limit, now, other);
        let reset_secs = ceil_secs(limit.window.saturating_sub(now.duration_since(w.start))).max(1);
        w.count = w.count.saturating_add(1);
        if limit.allowed > 0 && w.count > limit.allowed {
            Charge::Limited {
                count: w.count,
                reset_secs,
            }
        } else {
            Charge::Ok {
                count: w.count,
                reset_secs,
            }
        }
    }

    /// The other user's requests, as they stand once every token's current window has run
    /// out with no further request of the client: the client left it room, or it did not.
    pub(crate) fn other_user(&self) -> OtherUserStats {
        self.other_user_at(Instant::now())
    }

    fn other_user_at(&self, now: Instant) -> OtherUserStats {
        let inner = self.lock();
        let mut stats = inner.other;
        for t in inner.map.values() {
            let mut window = t.window.clone();
            if window.is_some() {
                advance(&mut window, &self.limit, now, &mut stats).settle_other(
                    &self.limit,
                    self.limit.window,
                    &mut stats,
                );
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(rate_limit_per_minute: u32, other_user_share: f64) -> Tokens {
        Tokens::new(RateLimit::of(&SimConfig {
            rate_limit_per_minute,
            other_user_share,
            ..SimConfig::default()
        }))
    }

    #[test]
    fn window_limits_and_revocation() {
        let tokens = tokens(2, 0.0);
        let t = tokens.issue(Duration::from_secs(60), 0);
        assert!(matches!(tokens.charge(&t, 0), Charge::Ok { count: 1, .. }));
        assert!(matches!(tokens.charge(&t, 0), Charge::Ok { count: 2, .. }));
        assert!(matches!(tokens.charge(&t, 0), Charge::Limited { .. }));
        assert_eq!(tokens.charge(&t, 1), Charge::Invalid);
        assert_eq!(tokens.charge("nope", 0), Charge::Invalid);
    }

    #[test]
    fn the_other_user_spends_its_share_evenly_in_the_same_count() {
        // 600 a minute, half of it the other user's: 5 a second.
        let tokens = tokens(600, 0.5);
        let t = tokens.issue(Duration::from_secs(3600), 0);
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(
            tokens.charge_at(&t, 0, start),
            Charge::Ok {
                count: 1,
                reset_secs: 60
            }
        );
        // 50 of the other user's, then ours.
        assert_eq!(
            tokens.charge_at(&t, 0, at(10)),
            Charge::Ok {
                count: 52,
                reset_secs: 50
            }
        );
        // Nothing more of ours: the other user's 300 fit.
        assert_eq!(
            tokens.other_user_at(at(10)),
            OtherUserStats {
                requests: 300,
                rate_limited: 0
            }
        );
        // The next window follows back to back, and its count starts again.
        assert_eq!(
            tokens.charge_at(&t, 0, at(65)),
            Charge::Ok {
                count: 26,
                reset_secs: 55
            }
        );
    }

    #[test]
    fn a_spent_window_refuses_the_other_user_too() {
        let tokens = tokens(600, 0.5);
        let t = tokens.issue(Duration::from_secs(3600), 0);
        let start = Instant::now();
        for _ in 0..600 {
            tokens.charge_at(&t, 0, start);
        }
        let stats = tokens.other_user_at(start);
        assert_eq!((stats.requests, stats.rate_limited), (300, 300));
    }
}
