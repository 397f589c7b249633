//! Cron schedules evaluated in a time zone, daylight-saving changes included.
//!
//! A setting type: config validation refuses a schedule that never fires or a spacing it
//! cannot honour, and the daemon's loop (`daemon/ticks.rs`) sleeps until each next tick.
//!
//! Why not tokio-cron-scheduler's job loop: it fixes the UTC offset when the job is created
//! (an hour off after a DST change), lets a long job overlap the next tick, and does not wait
//! for running jobs on shutdown. We compute each next tick ourselves (croner parses and
//! matches, chrono-tz maps local times) and sleep until it, behind our own overlap guard.
//!
//! Around a DST change we follow classic cron (Vixie cron, cronie):
//! - a schedule whose **hour field is a wildcard or a step** (`*`, `*/2`; sub-hourly
//!   schedules) follows real time: it fires through both passes of a repeated hour, and a gap
//!   simply has no local times to fire at (nothing is shifted);
//! - a schedule at **fixed hours** fires once per wall-clock slot: in a repeated hour only on
//!   the first pass, and a slot that falls in a gap fires once, right after the jump.
//!
//! Every tick returned is strictly after the instant asked about, so a daemon started or
//! reloaded inside a repeated hour never sees a tick in the past.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use std::time::Duration;

/// A parsed cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: Tz,
    expression: String,
    kind: Kind,
}

/// How a schedule meets a DST change (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Hour field `*` or a step: follows real time.
    RealTime,
    /// Fixed hours: once per wall-clock slot.
    WallClock,
}

/// Why a schedule was refused; names the config key.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("`{expression}` is not a cron expression ({reason}); expected 5 or 6 fields: [sec] min hour day-of-month month day-of-week, e.g. `0 0 2 * * *` for 02:00 daily")]
    Cron { expression: String, reason: String },
    #[error("`{0}` is not an IANA time zone name; expected e.g. `UTC` or `Europe/Dublin`")]
    TimeZone(String),
    #[error("`{0}` never fires; expected a schedule with at least one future run")]
    Never(String),
}

impl ScheduleError {
    /// The config key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            ScheduleError::Cron { .. } | ScheduleError::Never(_) => "daemon.schedule",
            ScheduleError::TimeZone(_) => "daemon.time_zone",
        }
    }
}

/// Upper bounds on the searches below: a schedule that needs more steps is treated as having
/// no further tick rather than spinning.
const MAX_STEPS: usize = 100_000;

/// Ticks looked at to find a schedule's shortest interval (a year of daily runs, weeks of
/// five-minute ones; enough to meet a DST change of either kind).
const SPACING_SAMPLE: usize = 20_000;

impl Schedule {
    pub fn parse(expression: &str, time_zone: &str) -> Result<Self, ScheduleError> {
        let tz: Tz = time_zone
            .parse()
            .map_err(|_| ScheduleError::TimeZone(time_zone.to_string()))?;
        // `sloppy_ranges` keeps the step forms croner 3 accepted (`0/10`, `/10`) working.
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .sloppy_ranges(true)
            .build()
            .parse(expression)
            .map_err(|e| ScheduleError::Cron {
                expression: expression.to_string(),
                reason: e.to_string(),
            })?;
        let schedule = Self {
            cron,
            tz,
            expression: expression.to_string(),
            kind: kind_of(expression),
        };
        // `0 0 0 31 4 *` parses but never fires: a daemon on it would idle forever.
        if schedule.next_after(reference_instant()).is_none() {
            return Err(ScheduleError::Never(expression.to_string()));
        }
        Ok(schedule)
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = match self.kind {
            Kind::RealTime => self.next_real_time(after),
            Kind::WallClock => self.next_wall_clock(after),
        }?;
        (next > after).then_some(next)
    }

    /// The next `n` ticks after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        std::iter::successors(self.next_after(after), |t| self.next_after(*t))
            .take(n)
            .collect()
    }

    /// The shortest time between two consecutive ticks over the next year from `from`
    /// (looking at up to `SPACING_SAMPLE` ticks); `None` for a schedule with fewer than two.
    pub fn shortest_interval(&self, from: DateTime<Utc>) -> Option<Duration> {
        let horizon = from + chrono::Duration::days(366);
        let mut shortest: Option<chrono::Duration> = None;
        let mut previous = self.next_after(from)?;
        for _ in 0..SPACING_SAMPLE {
            let Some(next) = self.next_after(previous) else {
                break;
            };
            let gap = next - previous;
            shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
            if next > horizon || gap <= chrono::Duration::seconds(1) {
                break;
            }
            previous = next;
        }
        shortest.and_then(|s| s.to_std().ok())
    }

    /// Real time: within each stretch of constant UTC offset, local time is UTC shifted, so
    /// the cron is matched at that fixed offset; at an offset change the search restarts
    /// from the change with the new offset.
    fn next_real_time(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut from = after;
        let mut inclusive = false;
        for _ in 0..MAX_STEPS {
            let offset = self.offset_at(from);
            let local = from.with_timezone(&offset);
            let candidate = self
                .cron
                .find_next_occurrence(&local, inclusive)
                .ok()?
                .with_timezone(&Utc);
            match self.next_offset_change(from, candidate) {
                None => return Some(candidate),
                Some(change) => {
                    from = change;
                    inclusive = true;
                }
            }
        }
        None
    }

    /// Wall clock: the next matching local date-time after the local time of `after`; a slot
    /// that exists twice fires at its first pass only, a slot in a gap at the end of the gap.
    fn next_wall_clock(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut probe = after.with_timezone(&self.tz).naive_local();
        for _ in 0..MAX_STEPS {
            let slot = self.cron.find_next_occurrence(&probe, false).ok()?;
            let at = match self.tz.from_local_datetime(&slot) {
                LocalResult::Single(t) => t.with_timezone(&Utc),
                LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
                LocalResult::None => self.end_of_gap(slot)?,
            };
            if at > after {
                return Some(at);
            }
            // This slot's (first) pass is already behind us: it has fired.
            probe = slot;
        }
        None
    }

    fn offset_at(&self, t: DateTime<Utc>) -> FixedOffset {
        self.tz.offset_from_utc_datetime(&t.naive_utc()).fix()
    }

    /// The first instant in `(from, until]` whose UTC offset differs from `from`'s.
    fn next_offset_change(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let start = self.offset_at(from);
        let day = chrono::Duration::days(1);
        let mut lo = from;
        while lo < until {
            let hi = (lo + day).min(until);
            if self.offset_at(hi) != start {
                return Some(self.first_change(lo, hi, start));
            }
            lo = hi;
        }
        None
    }

    /// Bisects `(lo, hi]` (offset `start` at `lo`, another at `hi`) down to the second.
    fn first_change(
        &self,
        mut lo: DateTime<Utc>,
        mut hi: DateTime<Utc>,
        start: FixedOffset,
    ) -> DateTime<Utc> {
        while hi - lo > chrono::Duration::seconds(1) {
            let mid = lo + (hi - lo) / 2;
            if self.offset_at(mid) == start {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }

    /// The instant a gap containing the local time `slot` ends (the first instant whose
    /// local time is past `slot`).
    fn end_of_gap(&self, slot: NaiveDateTime) -> Option<DateTime<Utc>> {
        let guess = Utc.from_utc_datetime(&slot);
        let day = chrono::Duration::days(1);
        let (mut lo, mut hi) = (guess - day, guess + day);
        let local = |t: DateTime<Utc>| t.with_timezone(&self.tz).naive_local();
        if local(lo) >= slot || local(hi) <= slot {
            return None;
        }
        while hi - lo > chrono::Duration::seconds(1) {
            let mid = lo + (hi - lo) / 2;
            if local(mid) > slot {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }
}

/// Which DST rule a cron expression follows, from its hour field.
fn kind_of(expression: &str) -> Kind {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let hour = match fields.as_slice() {
        [nickname] if nickname.starts_with('@') => {
            return if nickname.eq_ignore_ascii_case("@hourly") {
                Kind::RealTime
            } else {
                Kind::WallClock
            };
        }
        [_min, hour, _, _, _] => hour,
        [_sec, _min, hour, ..] => hour,
        _ => return Kind::WallClock,
    };
    if *hour == "*" || hour.contains('/') {
        Kind::RealTime
    } else {
        Kind::WallClock
    }
}

/// Where validation measures a schedule's intervals from: a fixed year (with both DST changes
/// of every zone that has them), so a config is valid or not whatever day it is checked.
fn reference_instant() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(20_454) // 2026-01-01
}

/// The most `daemon.jitter_secs` may be: the schedule's shortest interval, at most a day.
pub(crate) fn jitter_bound(schedule: &Schedule) -> Duration {
    const DAY: Duration = Duration::from_secs(86_400);
    schedule
        .shortest_interval(reference_instant())
        .map_or(DAY, |s| s.min(DAY))
}

/// The longest `daemon.min_spacing_secs` accepted.
pub(crate) const MAX_MIN_SPACING: Duration = Duration::from_secs(7 * 86_400);

/// The derived minimum spacing between cycle starts: half the schedule's shortest interval
/// over the year from `now`, at most an hour (a schedule with a single run: an hour).
pub fn default_min_spacing(schedule: &Schedule, now: DateTime<Utc>) -> Duration {
    const HOUR: Duration = Duration::from_secs(3600);
    schedule
        .shortest_interval(now)
        .map_or(HOUR, |s| (s / 2).min(HOUR))
}

/// The minimum spacing in force: the configured one, else [`default_min_spacing`].
pub fn min_spacing(configured: Option<u64>, schedule: &Schedule, now: DateTime<Utc>) -> Duration {
    configured.map_or_else(|| default_min_spacing(schedule, now), Duration::from_secs)
}

/// `check-config`'s preview: the next `n` runs in the schedule's zone and in UTC.
pub fn describe_upcoming(schedule: &Schedule, now: DateTime<Utc>, n: usize) -> String {
    let mut out = String::new();
    for t in schedule.upcoming(now, n) {
        out.push_str(&format!(
            "#   {}  ({})\n",
            t.with_timezone(&schedule.time_zone())
                .format("%Y-%m-%d %H:%M:%S %Z"),
            t.format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    if out.is_empty() {
        out.push_str("#   (no further runs)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    /// Every tick in `[from, to)`, starting from just before `from`.
    fn ticks(s: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        std::iter::successors(s.next_after(from - chrono::Duration::seconds(1)), |t| {
            s.next_after(*t)
        })
        .take_while(|t| *t < to)
        .collect()
    }

    #[test]
    fn daily_run_follows_local_time_across_dst() {
        // 02:30 daily in Dublin: UTC+1 in summer, UTC+0 in winter (DST ends 2026-10-25).
        let s = Schedule::parse("0 30 2 * * *", "Europe/Dublin").unwrap();
        let first = s.next_after(utc(2026, 10, 23, 12, 0)).unwrap();
        assert_eq!(first, utc(2026, 10, 24, 1, 30));
        assert_eq!(s.next_after(first).unwrap(), utc(2026, 10, 25, 2, 30));
    }

    #[test]
    fn a_daily_run_before_a_spring_forward_gap_runs_once() {
        // croner 3 ran this at 00:30 GMT and again at 02:00 BST.
        let s = Schedule::parse("0 30 0 * * *", "Europe/London").unwrap();
        // The local day 29 March runs from 00:00Z to 23:00Z (BST from 01:00Z).
        let day = ticks(&s, utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 23, 0));
        assert_eq!(day, [utc(2026, 3, 29, 0, 30)]);
        assert_eq!(s.next_after(day[0]).unwrap(), utc(2026, 3, 29, 23, 30));
    }

    #[test]
    fn a_fixed_slot_inside_a_gap_fires_once_right_after_the_jump() {
        // 02:30 does not exist in New York on 2027-03-14 (02:00 EST → 03:00 EDT at 07:00Z).
        let s = Schedule::parse("0 30 2 * * *", "America/New_York").unwrap();
        let day = ticks(&s, utc(2027, 3, 14, 5, 0), utc(2027, 3, 15, 5, 0));
        assert_eq!(day, [utc(2027, 3, 14, 7, 0)]);
        let next = s.next_after(day[0]).unwrap();
        assert_eq!(next, utc(2027, 3, 15, 6, 30));
    }

    #[test]
    fn a_fixed_slot_in_a_repeated_hour_fires_on_the_first_pass_only() {
        // 01:30 happens twice in New York on 2027-11-07: 05:30Z (EDT) and 06:30Z (EST).
        let s = Schedule::parse("0 30 1 * * *", "America/New_York").unwrap();
        let day = ticks(&s, utc(2027, 11, 7, 4, 0), utc(2027, 11, 8, 4, 0));
        assert_eq!(day, [utc(2027, 11, 7, 5, 30)]);
        // Started inside the repeated hour, after the first pass: tomorrow, never the past.
        let started = utc(2027, 11, 7, 6, 10);
        assert_eq!(s.next_after(started).unwrap(), utc(2027, 11, 8, 6, 30));
    }

    #[test]
    fn a_sub_hourly_schedule_fires_through_both_passes_of_a_repeated_hour() {
        // Berlin falls back at 01:00Z on 2026-10-25: local 02:00–03:00 happens twice.
        let s = Schedule::parse("0 */5 * * * *", "Europe/Berlin").unwrap();
        let hour = ticks(&s, utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0));
        assert_eq!(
            hour.len(),
            24,
            "two real hours of five-minute ticks: {hour:?}"
        );
        assert!(hour
            .windows(2)
            .all(|w| w[1] - w[0] == chrono::Duration::minutes(5)));
        // Started inside the repeated hour: the next tick is the next five minutes.
        let started = utc(2026, 10, 25, 1, 3);
        assert_eq!(s.next_after(started).unwrap(), utc(2026, 10, 25, 1, 5));
    }

    #[test]
    fn a_sub_hourly_schedule_is_not_shifted_by_a_gap() {
        // London springs forward at 01:00Z on 2027-03-28: 00:55 GMT is followed by 02:00 BST.
        let s = Schedule::parse("0 */5 * * * *", "Europe/London").unwrap();
        let around = ticks(&s, utc(2027, 3, 28, 0, 50), utc(2027, 3, 28, 1, 10));
        let want: Vec<_> = [50, 55, 60, 65]
            .map(|m| utc(2027, 3, 28, 0, 0) + chrono::Duration::minutes(m))
            .to_vec();
        assert_eq!(around, want);
    }

    /// Every zone the tests name, both changes of 2027: a daily schedule fires exactly once on
    /// the local day of the change (at 01:30, in or near the repeated or missing hour), and a
    /// five-minute schedule fires every five minutes of real time through the whole 23- or
    /// 25-hour local day.
    #[test]
    fn both_dst_changes_in_london_berlin_and_new_york() {
        use chrono::NaiveDate;
        let days = [
            ("Europe/London", (3, 28), (10, 31)),
            ("Europe/Berlin", (3, 28), (10, 31)),
            ("America/New_York", (3, 14), (11, 7)),
        ];
        for (zone, spring, fall) in days {
            let tz: Tz = zone.parse().unwrap();
            for ((month, day), hours) in [(spring, 23), (fall, 25)] {
                let date = NaiveDate::from_ymd_opt(2027, month, day).unwrap();
                let start = tz
                    .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
                    .earliest()
                    .unwrap()
                    .with_timezone(&Utc);
                let end = start + chrono::Duration::hours(hours);
                let daily = Schedule::parse("0 30 1 * * *", zone).unwrap();
                let fired = ticks(&daily, start, end);
                assert_eq!(fired.len(), 1, "{zone} {date}: {fired:?}");
                let every5 = Schedule::parse("0 */5 * * * *", zone).unwrap();
                let fired = ticks(&every5, start, end);
                assert_eq!(fired.len() as i64, hours * 12, "{zone} {date}");
                assert!(fired
                    .windows(2)
                    .all(|w| w[1] - w[0] == chrono::Duration::minutes(5)));
            }
        }
    }

    #[test]
    fn a_tick_is_always_strictly_in_the_future() {
        for (expr, tz) in [
            ("0 */5 * * * *", "Europe/Berlin"),
            ("0 30 1 * * *", "America/New_York"),
            ("0 0 2 * * *", "Europe/London"),
            ("*/20 * * * * *", "America/New_York"),
        ] {
            let s = Schedule::parse(expr, tz).unwrap();
            let mut t = utc(2026, 10, 24, 22, 0);
            while t < utc(2026, 11, 2, 8, 0) {
                let next = s.next_after(t).unwrap();
                assert!(next > t, "{expr} in {tz}: {next} after {t}");
                t += chrono::Duration::minutes(7);
            }
        }
    }

    #[test]
    fn shortest_interval_sees_the_schedule_and_its_dst_days() {
        let from = utc(2027, 1, 1, 0, 0);
        let every5 = Schedule::parse("0 */5 * * * *", "Europe/London").unwrap();
        assert_eq!(
            every5.shortest_interval(from),
            Some(Duration::from_secs(300))
        );
        // A daily run meets a 23-hour day in spring.
        let daily = Schedule::parse("0 0 2 * * *", "Europe/London").unwrap();
        assert_eq!(
            daily.shortest_interval(from),
            Some(Duration::from_secs(23 * 3600))
        );
    }

    #[test]
    fn five_and_six_field_forms_and_old_step_forms() {
        assert!(Schedule::parse("*/15 * * * *", "UTC").is_ok());
        assert!(Schedule::parse("0 */15 * * * *", "UTC").is_ok());
        // Accepted by croner 3; still accepted.
        assert!(Schedule::parse("0 0/15 * * * *", "UTC").is_ok());
        assert_eq!(kind_of("0 0/15 * * * *"), Kind::RealTime);
        assert_eq!(kind_of("0 0 */2 * * *"), Kind::RealTime);
        assert_eq!(kind_of("*/5 * * * *"), Kind::RealTime);
        assert_eq!(kind_of("0 9-17 * * *"), Kind::WallClock);
        assert_eq!(kind_of("@hourly"), Kind::RealTime);
        assert_eq!(kind_of("@daily"), Kind::WallClock);
    }

    #[test]
    fn derived_spacing_and_jitter_bounds() {
        let now = utc(2027, 1, 1, 0, 0);
        let every5 = Schedule::parse("0 */5 * * * *", "UTC").unwrap();
        assert_eq!(default_min_spacing(&every5, now), Duration::from_secs(150));
        assert_eq!(jitter_bound(&every5), Duration::from_secs(300));
        let daily = Schedule::parse("0 0 2 * * *", "UTC").unwrap();
        assert_eq!(default_min_spacing(&daily, now), Duration::from_secs(3600));
        assert_eq!(jitter_bound(&daily), Duration::from_secs(86_400));
        assert_eq!(min_spacing(Some(7), &daily, now), Duration::from_secs(7));
        assert_eq!(reference_instant(), utc(2026, 1, 1, 0, 0));
        let preview = describe_upcoming(&daily, now, 5);
        assert_eq!(preview.lines().count(), 5);
        assert!(
            preview.starts_with("#   2027-01-01 02:00:00 UTC  (2027-01-01T02:00:00Z)"),
            "{preview}"
        );
    }

    #[test]
    fn a_schedule_that_never_fires_is_refused() {
        let e = Schedule::parse("0 0 0 31 4 *", "UTC").unwrap_err();
        assert!(matches!(e, ScheduleError::Never(_)), "{e}");
        assert_eq!(e.key(), "daemon.schedule");
        // Rare is not never: 29 February comes every four years.
        let leap = Schedule::parse("0 0 0 29 2 *", "UTC").unwrap();
        assert_eq!(
            leap.next_after(utc(2026, 3, 1, 0, 0)),
            Some(utc(2028, 2, 29, 0, 0))
        );
    }

    #[test]
    fn errors_name_their_key() {
        let e = Schedule::parse("every day", "UTC").unwrap_err();
        assert_eq!(e.key(), "daemon.schedule");
        let e = Schedule::parse("0 0 2 * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(e.key(), "daemon.time_zone");
    }
}
