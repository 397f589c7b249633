//! The one place that reads the wall clock.
//!
//! Everything that asks "what time is it" — the metrics window, the schedule, the ledger's
//! timestamps, alert due dates, the simulator's "today" — asks a [`Clock`] handed to it, so
//! a test or a simulation can run the whole product at any instant: the last hour of a year,
//! a leap day, a daylight-saving change. Three kinds:
//!
//! - [`Clock::system`]: the real wall clock (the default everywhere);
//! - [`Clock::starting_at`]: real time shifted to start at a given instant, advancing with
//!   the monotonic clock (a daemon and a simulator in different processes can share a "now"
//!   this way; see [`NOW_ENV`]);
//! - [`Clock::manual`]: moves only when told ([`Clock::set`], [`Clock::advance`]); sleeping
//!   on it waits for someone to move it past the deadline (simulated time).
//!
//! Monotonic durations (timeouts, pacing, backoff) keep using `std::time::Instant`: they
//! measure elapsed time, not the calendar.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The variable that starts the product's clock at another instant (RFC 3339), for tests and
/// simulations that run the real binary against a simulator started with `sim --now`. Never
/// set it against a real org: the metrics window would be the wrong days.
pub const NOW_ENV: &str = "SKILL_TUNER_NOW";

/// A source of "now". Cheap to clone; clones share the same time.
#[derive(Clone)]
pub struct Clock(Arc<Source>);

enum Source {
    System,
    Shifted {
        origin: DateTime<Utc>,
        started: Instant,
    },
    Manual(watch::Sender<DateTime<Utc>>),
}

/// Why [`Clock::from_env`] refused the variable.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {NOW_ENV} = `{value}`: expected an RFC 3339 instant such as 2027-03-28T01:30:00Z ({reason})")]
pub struct ClockEnvError {
    value: String,
    reason: String,
}

impl Clock {
    /// The real wall clock.
    pub fn system() -> Self {
        Clock(Arc::new(Source::System))
    }

    /// Real time, shifted so that it reads `origin` now.
    pub fn starting_at(origin: DateTime<Utc>) -> Self {
        Clock(Arc::new(Source::Shifted {
            origin,
            started: Instant::now(),
        }))
    }

    /// A clock that reads `at` until it is moved.
    pub fn manual(at: DateTime<Utc>) -> Self {
        Clock(Arc::new(Source::Manual(watch::Sender::new(at))))
    }

    /// The system clock, or a shifted one when [`NOW_ENV`] is set.
    pub fn from_env() -> Result<Self, ClockEnvError> {
        match std::env::var(NOW_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(Self::system()),
            Err(e) => Err(ClockEnvError {
                value: String::new(),
                reason: e.to_string(),
            }),
            Ok(value) => {
                let refuse = |reason: String| ClockEnvError {
                    value: value.clone(),
                    reason,
                };
                let at = DateTime::parse_from_rfc3339(value.trim())
                    .map_err(|e| refuse(e.to_string()))?
                    .with_timezone(&Utc);
                // Years the analytics API, the ledger's timestamps and the schedule all handle;
                // a leap second (`:60`) has no place on any of them.
                use chrono::{Datelike, Timelike};
                if !(2000..2200).contains(&at.year()) || at.nanosecond() >= 1_000_000_000 {
                    return Err(refuse(
                        "outside the years 2000–2199, or a leap second".to_string(),
                    ));
                }
                Ok(Self::starting_at(at))
            }
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &*self.0 {
            Source::System => Utc::now(),
            Source::Shifted { origin, started } => chrono::Duration::from_std(started.elapsed())
                .ok()
                .and_then(|d| origin.checked_add_signed(d))
                .unwrap_or(*origin),
            Source::Manual(tx) => *tx.borrow(),
        }
    }

    /// True for the real, unshifted wall clock.
    pub fn is_system(&self) -> bool {
        matches!(&*self.0, Source::System)
    }

    /// Moves a manual clock to `at` (backwards too: a test may replay an hour). Other
    /// clocks follow real time and cannot be moved: returns false.
    pub fn set(&self, at: DateTime<Utc>) -> bool {
        match &*self.0 {
            Source::Manual(tx) => {
                tx.send_replace(at);
                true
            }
            _ => false,
        }
    }

    /// Moves a manual clock forward by `by`; false for other clocks.
    pub fn advance(&self, by: chrono::Duration) -> bool {
        match &*self.0 {
            Source::Manual(tx) => {
                tx.send_modify(|t| *t = t.checked_add_signed(by).unwrap_or(*t));
                true
            }
            _ => false,
        }
    }

    /// Waits until the clock reads `at` or later. On a real or shifted clock this is a
    /// monotonic sleep for the difference (a caller that must notice wall-clock steps wakes
    /// up periodically and asks again); on a manual clock it waits for the clock to be moved.
    pub async fn sleep_until(&self, at: DateTime<Utc>) {
        match &*self.0 {
            Source::Manual(tx) => {
                let mut rx = tx.subscribe();
                // The sender lives as long as `self`, so `wait_for` only ends when it holds.
                let _ = rx.wait_for(|now| *now >= at).await;
            }
            _ => {
                let wait = (at - self.now()).to_std().unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Source::System => f.write_str("Clock::system"),
            Source::Shifted { .. } => write!(f, "Clock::shifted({})", self.now().to_rfc3339()),
            Source::Manual(_) => write!(f, "Clock::manual({})", self.now().to_rfc3339()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 28, h, 30, 0).unwrap()
    }

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = Clock::manual(t(1));
        let other = c.clone();
        assert_eq!(c.now(), t(1));
        assert!(c.advance(chrono::Duration::hours(1)));
        assert_eq!(other.now(), t(2));
        assert!(other.set(t(0)));
        assert_eq!(c.now(), t(0));
        assert!(!Clock::system().set(t(0)));
    }

    #[test]
    fn a_shifted_clock_starts_at_its_origin_and_advances() {
        let c = Clock::starting_at(t(1));
        let now = c.now();
        assert!(now >= t(1) && now < t(1) + chrono::Duration::seconds(5));
        assert!(!c.is_system() && Clock::system().is_system());
    }

    #[tokio::test]
    async fn sleeping_on_a_manual_clock_waits_for_it_to_move() {
        let c = Clock::manual(t(1));
        let sleeper = tokio::spawn({
            let c = c.clone();
            async move { c.sleep_until(t(3)).await }
        });
        tokio::task::yield_now().await;
        c.set(t(2));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        c.set(t(3));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .unwrap()
            .unwrap();
    }
}
