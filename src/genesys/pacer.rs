//! Client-side pacing: keeps the request rate under the API's allowed rate, so that a cycle does
//! not discover the limit by hitting it.
//!
//! A GCRA-style scheduler (one slot every `interval`, with a small burst) rather than a
//! per-minute bucket: `governor::per_minute(300)` would allow 300 requests at once. The limit
//! can change at run time (org limits at start-up, `inin-ratelimit-allowed` on every response),
//! and a 429 or an exhausted window holds every caller until the window resets.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Share of the allowed rate we aim for, leaving room for clock skew and other clients.
const HEADROOM: f64 = 0.95;

/// The pacing limiter shared by every request of one client (one token).
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The most we will ever use (configuration / org limits).
    ceiling_per_minute: u32,
    /// What we currently pace to (≤ ceiling; lowered by the server's headers).
    limit_per_minute: u32,
    burst: u32,
    interval: Duration,
    /// Theoretical arrival time of the next request.
    next_slot: Instant,
    /// Nobody sends before this (after a 429 or an exhausted window).
    hold_until: Option<Instant>,
}

/// The longest hold an `inin-ratelimit-reset` header can impose (the documented window is
/// 60 s; an hour leaves room for a slow server without trusting arbitrary numbers).
pub const MAX_RESET_SECS: u64 = 3600;

/// The `inin-ratelimit-*` headers of one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub allowed: Option<u32>,
    pub count: Option<u32>,
    pub reset_secs: Option<u64>,
}

impl RateLimitHeaders {
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Self {
        let num = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
        Self {
            allowed: num("inin-ratelimit-allowed").and_then(|v| u32::try_from(v).ok()),
            count: num("inin-ratelimit-count").and_then(|v| u32::try_from(v).ok()),
            reset_secs: num("inin-ratelimit-reset"),
        }
    }
}

fn interval_for(limit_per_minute: u32) -> Duration {
    if limit_per_minute == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(60.0 / (f64::from(limit_per_minute) * HEADROOM))
}

impl Pacer {
    /// `limit_per_minute == 0` disables pacing (tests, a simulator without limits).
    pub fn new(limit_per_minute: u32, burst: u32) -> Self {
        Self {
            state: Mutex::new(State {
                ceiling_per_minute: limit_per_minute,
                limit_per_minute,
                burst: burst.max(1),
                interval: interval_for(limit_per_minute),
                next_slot: Instant::now(),
                hold_until: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned pacer only means a panic elsewhere; its numbers are still sound.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rate we currently pace to, per minute.
    pub fn limit_per_minute(&self) -> u32 {
        self.lock().limit_per_minute
    }

    /// Sets the most we may use (from configuration or the org's limits).
    pub fn set_ceiling(&self, per_minute: u32) {
        let mut s = self.lock();
        s.ceiling_per_minute = per_minute;
        s.limit_per_minute = per_minute;
        s.interval = interval_for(per_minute);
    }

    /// Waits for this caller's slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut s = self.lock();
            if s.limit_per_minute == 0 {
                match s.hold_until {
                    Some(t) if t > Instant::now() => t,
                    _ => return,
                }
            } else {
                let now = Instant::now();
                let mut base = s.next_slot.max(now);
                if let Some(hold) = s.hold_until {
                    base = base.max(hold);
                }
                let burst_window = s.interval * (s.burst - 1);
                let earliest = base.checked_sub(burst_window).unwrap_or(now).max(now);
                let slot = match s.hold_until {
                    Some(hold) => earliest.max(hold),
                    None => earliest,
                };
                s.next_slot = base + s.interval;
                slot
            }
        };
        tokio::time::sleep_until(slot).await;
    }

    /// As [`Pacer::acquire`], but gives up (false) as soon as `shutdown` is triggered: a
    /// stopping process must not sit out a hold of minutes.
    pub async fn acquire_unless(&self, shutdown: &super::shutdown::Shutdown) -> bool {
        tokio::select! {
            () = self.acquire() => true,
            () = shutdown.triggered() => false,
        }
    }

    /// Holds every caller until `until` (a 429's `Retry-After`, or an exhausted window).
    pub fn hold_until(&self, until: Instant) {
        let mut s = self.lock();
        s.hold_until = Some(s.hold_until.map_or(until, |h| h.max(until)));
    }

    /// Adapts to the server's view: a lower allowed rate lowers ours; a nearly spent window
    /// holds everyone until it resets.
    pub fn observe(&self, h: RateLimitHeaders) {
        let mut s = self.lock();
        if let Some(allowed) = h.allowed.filter(|a| *a > 0) {
            let target = if s.ceiling_per_minute == 0 {
                s.limit_per_minute
            } else {
                allowed.min(s.ceiling_per_minute)
            };
            if target != s.limit_per_minute && target > 0 {
                s.limit_per_minute = target;
                s.interval = interval_for(target);
            }
            if let (Some(count), Some(reset)) = (h.count, h.reset_secs) {
                if count >= allowed && reset > 0 {
                    // The header comes from the network: a window resets within a minute, so
                    // cap absurd values (u64::MAX would overflow `Instant` and panic).
                    let until = Instant::now() + Duration::from_secs(reset.min(MAX_RESET_SECS));
                    s.hold_until = Some(s.hold_until.map_or(until, |x| x.max(until)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_absurd_reset_header_is_capped_not_a_panic() {
        let pacer = Pacer::new(300, 3);
        pacer.observe(RateLimitHeaders {
            allowed: Some(300),
            count: Some(300),
            reset_secs: Some(u64::MAX),
        });
        let start = Instant::now();
        pacer.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(MAX_RESET_SECS));
    }

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_limit_after_a_small_burst() {
        let pacer = Pacer::new(300, 3);
        let start = Instant::now();
        for _ in 0..33 {
            pacer.acquire().await;
        }
        // 3 at once, then 30 more at 60/(300*0.95) s each.
        let expected = interval_for(300) * 30;
        let elapsed = start.elapsed();
        assert!(
            elapsed >= expected && elapsed <= expected + Duration::from_millis(5),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_ends_a_hold() {
        let pacer = Pacer::new(0, 1);
        let shutdown = super::super::shutdown::Shutdown::default();
        let start = Instant::now();
        pacer.hold_until(start + Duration::from_secs(170));
        let (acquired, ()) = tokio::join!(pacer.acquire_unless(&shutdown), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            shutdown.trigger();
        });
        assert!(!acquired);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(!pacer.acquire_unless(&shutdown).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_stops_everyone_until_it_ends() {
        let pacer = Pacer::new(0, 1);
        let start = Instant::now();
        pacer.hold_until(start + Duration::from_secs(7));
        pacer.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    #[test]
    fn headers_lower_the_rate_but_never_above_the_ceiling() {
        let pacer = Pacer::new(300, 1);
        pacer.observe(RateLimitHeaders {
            allowed: Some(180),
            count: Some(1),
            reset_secs: Some(50),
        });
        assert_eq!(pacer.limit_per_minute(), 180);
        pacer.observe(RateLimitHeaders {
            allowed: Some(1000),
            count: Some(1),
            reset_secs: Some(50),
        });
        assert_eq!(pacer.limit_per_minute(), 300);
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_window_holds_until_reset() {
        let pacer = Pacer::new(300, 10);
        let start = Instant::now();
        pacer.observe(RateLimitHeaders {
            allowed: Some(300),
            count: Some(300),
            reset_secs: Some(12),
        });
        pacer.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(12));
    }
}
