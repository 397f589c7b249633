//! The retry layer: one loop, wrapped around every API call, with a total budget.
//!
//! Why our own ~100 lines instead of a crate: the usual choice, `backoff`, is unmaintained
//! (RUSTSEC-2025-0012), and `backon` retries a closure but has no notion of a retry budget
//! shared across concurrent calls, of "refresh the token once on 401", or of holding the
//! shared pacer on a 429. The policy below is the AWS SDK "standard" mode: exponential
//! backoff with full jitter, bounded by attempts and total elapsed time, plus a quota bucket
//! so that an outage stops the retrying instead of feeding it.

use super::error::ApiError;
pub use super::error::RetryReason;
use super::pacer::Pacer;
use super::shutdown::Shutdown;
use super::stats::ApiStats;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Bounds of the retry loop.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff ceiling; doubles each retry.
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
    /// A 429 asking us to wait longer than this is not retried (the Go SDK uses 180 s).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(180),
            max_retry_after: Duration::from_secs(180),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a uniform wait in `[0, min(max_delay, base × 2^retry)]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(20)))
            .min(self.max_delay);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt<T> {
    Done(T),
    Retry {
        reason: RetryReason,
        /// What the server asked for (`Retry-After`), if anything.
        after: Option<Duration>,
        error: ApiError,
    },
    Fail(ApiError),
}

/// A quota of retries shared by every call of a client: each retry spends tokens, each
/// success returns one. When it is empty, calls fail at their first error.
#[derive(Debug)]
pub struct RetryBudget {
    tokens: AtomicU32,
    capacity: u32,
}

impl RetryBudget {
    pub fn new(capacity: u32) -> Self {
        Self {
            tokens: AtomicU32::new(capacity),
            capacity,
        }
    }

    pub fn available(&self) -> u32 {
        self.tokens.load(Ordering::Relaxed)
    }

    fn try_spend(&self, cost: u32) -> bool {
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(cost))
            .is_ok()
    }

    fn refund(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t < self.capacity).then_some(t + 1)
            });
    }
}

/// Which HTTP answers are retried, and how. Other 4xx (400, 403, 404, 409 …) never are: 409 is
/// handled above this layer by re-reading and re-deciding, never by resending the same body.
pub fn classify_status(status: u16, idempotent: bool) -> Option<RetryReason> {
    match status {
        401 => Some(RetryReason::Unauthorized),
        // The request was not processed: safe for any method.
        429 => Some(RetryReason::RateLimited),
        502..=504 if idempotent => Some(RetryReason::ServerError),
        _ => None,
    }
}

/// Parses `Retry-After` as delta-seconds or an HTTP date (a date is measured from `now`).
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::from(now))
            .unwrap_or(Duration::ZERO),
    )
}

/// Everything the loop needs besides the attempt itself.
pub struct RetryContext<'a> {
    pub policy: &'a RetryPolicy,
    pub budget: &'a RetryBudget,
    pub pacer: &'a Pacer,
    pub stats: &'a ApiStats,
    /// Ends the waits between attempts when the process stops.
    pub shutdown: &'a Shutdown,
}

/// Runs `attempt` until it is done, fails, or the policy or budget says stop.
pub async fn execute<T, F, Fut>(ctx: &RetryContext<'_>, mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let started = Instant::now();
    let mut refreshed = false;
    let mut retries = 0u32;
    // Whether an attempt so far may have been processed (a timeout or a 5xx): a call given up
    // at shutdown then says so, and a write is not taken for one that never happened.
    let mut maybe_sent = false;
    for number in 1.. {
        let (reason, after, error) = match attempt(number).await {
            Attempt::Done(value) => {
                ctx.budget.refund();
                return Ok(value);
            }
            Attempt::Fail(ApiError::Cancelled { endpoint, .. }) => {
                return Err(ApiError::Cancelled {
                    endpoint,
                    maybe_sent,
                })
            }
            Attempt::Fail(error) => return Err(error),
            Attempt::Retry {
                reason,
                after,
                error,
            } => (reason, after, error),
        };
        if reason == RetryReason::Unauthorized {
            // One refresh, one repeat: a second 401 means the client lacks access.
            if refreshed {
                return Err(error);
            }
            refreshed = true;
            ctx.stats.record_retry(reason);
            continue;
        }
        if number >= ctx.policy.max_attempts {
            return Err(error);
        }
        let wait = match (reason, after) {
            (RetryReason::RateLimited, Some(after)) if after > ctx.policy.max_retry_after => {
                return Err(error);
            }
            (_, Some(after)) => after,
            (_, None) => ctx.policy.backoff(retries),
        };
        // Saturating: `wait` may come from a server's `Retry-After` (a 503 with an absurd
        // value must end the retries, not overflow and panic).
        if started.elapsed().saturating_add(wait) > ctx.policy.max_elapsed {
            return Err(error);
        }
        if !ctx.budget.try_spend(reason.cost()) {
            return Err(ApiError::RetryBudgetSpent {
                endpoint: endpoint_of(&error),
                last: Box::new(error),
            });
        }
        retries += 1;
        maybe_sent |= matches!(reason, RetryReason::ServerError | RetryReason::Timeout);
        ctx.stats.record_retry(reason);
        tracing::debug!(attempt = number, ?reason, wait_ms = wait.as_millis() as u64, %error, "retrying");
        if reason == RetryReason::RateLimited {
            // Everyone waits, not just this caller: the limit is per token.
            ctx.pacer.hold_until(Instant::now() + wait);
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = ctx.shutdown.triggered() => {
                return Err(ApiError::Cancelled {
                    endpoint: endpoint_of(&error),
                    maybe_sent,
                });
            }
        }
    }
    unreachable!("the attempt loop only ends by returning")
}

fn endpoint_of(error: &ApiError) -> String {
    match error {
        ApiError::Status { endpoint, .. }
        | ApiError::Transport { endpoint, .. }
        | ApiError::Decode { endpoint, .. }
        | ApiError::RetryBudgetSpent { endpoint, .. }
        | ApiError::Invalid { endpoint, .. }
        | ApiError::Cancelled { endpoint, .. } => endpoint.clone(),
        ApiError::Login { .. } => "POST /oauth/token".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn status_error(status: u16) -> ApiError {
        ApiError::from_response("GET /x", status, b"{}", None, None)
    }

    struct Fixture {
        policy: RetryPolicy,
        budget: RetryBudget,
        pacer: Pacer,
        stats: ApiStats,
        shutdown: Shutdown,
    }

    impl Fixture {
        fn new(policy: RetryPolicy) -> Self {
            Self {
                policy,
                budget: RetryBudget::new(500),
                pacer: Pacer::new(0, 1),
                stats: ApiStats::default(),
                shutdown: Shutdown::default(),
            }
        }
        fn ctx(&self) -> RetryContext<'_> {
            RetryContext {
                policy: &self.policy,
                budget: &self.budget,
                pacer: &self.pacer,
                stats: &self.stats,
                shutdown: &self.shutdown,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_ends_a_retry_after_wait_and_says_whether_anything_was_sent() {
        let f = Fixture::new(RetryPolicy::default());
        let start = Instant::now();
        let calls = AtomicU32::new(0);
        let ctx = f.ctx();
        let (out, ()) = tokio::join!(
            execute(&ctx, |_| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Attempt::<()>::Retry {
                    reason: RetryReason::RateLimited,
                    after: Some(Duration::from_secs(170)),
                    error: status_error(429),
                }
            }),
            async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                f.shutdown.trigger();
            }
        );
        assert!(
            matches!(
                out,
                Err(ApiError::Cancelled {
                    maybe_sent: false,
                    ..
                })
            ),
            "{out:?}"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // After a 5xx, the call given up may have been processed: it says so.
        let f = Fixture::new(RetryPolicy::default());
        f.shutdown.trigger();
        let out: Result<(), _> = execute(&f.ctx(), |_| async {
            Attempt::Retry {
                reason: RetryReason::ServerError,
                after: Some(Duration::from_secs(1)),
                error: status_error(504),
            }
        })
        .await;
        assert!(
            matches!(
                out,
                Err(ApiError::Cancelled {
                    maybe_sent: true,
                    ..
                })
            ),
            "{out:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_waits_exactly_retry_after() {
        let f = Fixture::new(RetryPolicy::default());
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let out = execute(&f.ctx(), |_| async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Attempt::Retry {
                    reason: RetryReason::RateLimited,
                    after: Some(Duration::from_secs(7)),
                    error: status_error(429),
                }
            } else {
                Attempt::Done("ok")
            }
        })
        .await;
        assert_eq!(out.unwrap(), "ok");
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(f.stats.snapshot().retries_rate_limited, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_too_long_retry_after_is_not_waited_for() {
        let f = Fixture::new(RetryPolicy::default());
        let start = Instant::now();
        let out: Result<(), _> = execute(&f.ctx(), |_| async {
            Attempt::Retry {
                reason: RetryReason::RateLimited,
                after: Some(Duration::from_secs(600)),
                error: status_error(429),
            }
        })
        .await;
        assert_eq!(out.unwrap_err().status(), Some(429));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_absurd_retry_after_on_a_5xx_ends_the_retries_without_a_panic() {
        let f = Fixture::new(RetryPolicy::default());
        let after = parse_retry_after("18446744073709551615", chrono::DateTime::UNIX_EPOCH);
        assert_eq!(after, Some(Duration::from_secs(u64::MAX)));
        let out: Result<(), _> = execute(&f.ctx(), |_| async {
            Attempt::Retry {
                reason: RetryReason::ServerError,
                after,
                error: status_error(503),
            }
        })
        .await;
        assert_eq!(out.unwrap_err().status(), Some(503));
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_are_bounded_by_attempts() {
        let f = Fixture::new(RetryPolicy {
            max_attempts: 4,
            ..RetryPolicy::default()
        });
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = execute(&f.ctx(), |_| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Attempt::Retry {
                reason: RetryReason::ServerError,
                after: None,
                error: status_error(503),
            }
        })
        .await;
        assert_eq!(out.unwrap_err().status(), Some(503));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_are_bounded_by_elapsed_time() {
        let policy = RetryPolicy {
            max_attempts: 1000,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(30),
            ..RetryPolicy::default()
        };
        let f = Fixture::new(policy);
        let start = Instant::now();
        let out: Result<(), _> = execute(&f.ctx(), |_| async {
            // Each attempt itself takes 5 s before timing out.
            tokio::time::sleep(Duration::from_secs(5)).await;
            Attempt::Retry {
                reason: RetryReason::Timeout,
                after: None,
                error: status_error(504),
            }
        })
        .await;
        assert!(out.is_err());
        assert!(
            start.elapsed() <= Duration::from_secs(36),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_401_is_final() {
        let f = Fixture::new(RetryPolicy::default());
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = execute(&f.ctx(), |_| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Attempt::Retry {
                reason: RetryReason::Unauthorized,
                after: None,
                error: status_error(401),
            }
        })
        .await;
        assert_eq!(out.unwrap_err().status(), Some(401));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_budget_stops_retrying() {
        let f = Fixture::new(RetryPolicy::default());
        let f = Fixture {
            budget: RetryBudget::new(4),
            ..f
        };
        let out: Result<(), _> = execute(&f.ctx(), |_| async {
            Attempt::Retry {
                reason: RetryReason::ServerError,
                after: None,
                error: status_error(502),
            }
        })
        .await;
        assert!(matches!(out, Err(ApiError::RetryBudgetSpent { .. })));
    }

    #[test]
    fn classification_follows_the_reference() {
        assert_eq!(classify_status(429, false), Some(RetryReason::RateLimited));
        assert_eq!(classify_status(503, true), Some(RetryReason::ServerError));
        assert_eq!(classify_status(503, false), None);
        for status in [400, 403, 404, 409, 500, 501] {
            assert_eq!(classify_status(status, true), None, "{status}");
        }
    }

    #[test]
    fn retry_after_as_seconds_and_as_date() {
        use chrono::TimeZone;
        let now = chrono::Utc
            .with_ymd_and_hms(2027, 10, 31, 1, 30, 0)
            .unwrap();
        assert_eq!(parse_retry_after("12", now), Some(Duration::from_secs(12)));
        let soon = std::time::SystemTime::from(now) + Duration::from_secs(30);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(soon), now).unwrap();
        assert_eq!(parsed, Duration::from_secs(30));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn full_jitter_stays_under_the_ceiling() {
        let p = RetryPolicy::default();
        for retry in 0..30 {
            assert!(p.backoff(retry) <= p.max_delay);
        }
        assert!(p.backoff(0) <= p.base_delay);
    }
}
