//! When the next scheduled cycle fires: the schedule's next tick plus its jitter.

use crate::clock::Clock;
use crate::config::schedule::Schedule;
use chrono::{DateTime, Utc};

/// The schedule's next tick and when it fires (the tick plus a random jitter).
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticks {
    pub tick: Option<DateTime<Utc>>,
    pub fire: Option<DateTime<Utc>>,
}

impl Ticks {
    /// The first tick after `now`: at start-up, and when a reload swaps the schedule in.
    pub fn first(schedule: &Schedule, now: DateTime<Utc>, jitter_secs: u64) -> Self {
        let tick = schedule.next_after(now);
        Self {
            tick,
            fire: with_jitter(tick, jitter_secs),
        }
    }

    /// The tick after this one fired.
    pub fn following(self, schedule: &Schedule, now: DateTime<Utc>, jitter_secs: u64) -> Self {
        let tick = following_tick(schedule, self.tick, now);
        Self {
            tick,
            fire: with_jitter(tick, jitter_secs),
        }
    }
}

/// Sleeps until a wall-clock instant; re-evaluated every loop turn, so a clock step is
/// corrected within a second.
pub(super) async fn sleep_until_wall(clock: &Clock, at: Option<DateTime<Utc>>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The tick after `previous`; ticks missed while the process could not run are not caught up.
fn following_tick(
    schedule: &Schedule,
    previous: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let base = previous.map_or(now, |p| p.max(now - chrono::Duration::seconds(1)));
    let next = schedule.next_after(base)?;
    if next < now {
        schedule.next_after(now)
    } else {
        Some(next)
    }
}

fn with_jitter(tick: Option<DateTime<Utc>>, jitter_secs: u64) -> Option<DateTime<Utc>> {
    let tick = tick?;
    if jitter_secs == 0 {
        return Some(tick);
    }
    // Validation bounds the jitter to a day; the arithmetic stays checked regardless.
    let ms = fastrand::u64(0..=jitter_secs.saturating_mul(1000));
    let delay = chrono::Duration::try_milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))?;
    tick.checked_add_signed(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn following_tick_does_not_catch_up_missed_ticks() {
        let s = Schedule::parse("0 * * * * *", "UTC").unwrap();
        let prev = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 5, 30).unwrap();
        assert_eq!(
            following_tick(&s, Some(prev), now),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 6, 0).unwrap())
        );
        // Fired a little early (timer granularity): the same tick is not taken twice.
        let now = prev - chrono::Duration::milliseconds(5);
        assert_eq!(
            following_tick(&s, Some(prev), now),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap())
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for _ in 0..100 {
            let j = with_jitter(Some(t), 30).unwrap();
            assert!(j >= t && j <= t + chrono::Duration::seconds(30));
        }
        assert_eq!(with_jitter(Some(t), 0), Some(t));
        assert_eq!(with_jitter(None, 5), None);
    }
}
