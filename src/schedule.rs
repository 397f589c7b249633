//! Cron schedules evaluated in a time zone, DST included.
//!
//! Why not tokio-cron-scheduler's job loop: it fixes the UTC offset when the job is created
//! (an hour off after a DST change), lets a long job overlap the next tick, and does not wait
//! for running jobs on shutdown (see `shared/crate-notes.md`). We compute each next tick
//! ourselves (croner + chrono-tz) and sleep until it, behind our own overlap guard.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A parsed cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: Tz,
    expression: String,
}

/// Why a schedule was refused; names the config key.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("`{expression}` is not a cron expression ({reason}); expected 5 or 6 fields: [sec] min hour day-of-month month day-of-week, e.g. `0 0 2 * * *` for 02:00 daily")]
    Cron { expression: String, reason: String },
    #[error("`{0}` is not an IANA time zone name; expected e.g. `UTC` or `Europe/Dublin`")]
    TimeZone(String),
}

impl ScheduleError {
    /// The config key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            ScheduleError::Cron { .. } => "daemon.schedule",
            ScheduleError::TimeZone(_) => "daemon.time_zone",
        }
    }
}

impl Schedule {
    pub fn parse(expression: &str, time_zone: &str) -> Result<Self, ScheduleError> {
        let tz: Tz = time_zone
            .parse()
            .map_err(|_| ScheduleError::TimeZone(time_zone.to_string()))?;
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expression)
            .map_err(|e| ScheduleError::Cron {
                expression: expression.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            cron,
            tz,
            expression: expression.to_string(),
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first tick strictly after `after`, evaluated in the schedule's time zone.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn daily_run_follows_local_time_across_dst() {
        // 02:30 daily in Dublin: UTC+1 in summer, UTC+0 in winter (DST ends 2026-10-25).
        let s = Schedule::parse("0 30 2 * * *", "Europe/Dublin").unwrap();
        let before = Utc.with_ymd_and_hms(2026, 10, 23, 12, 0, 0).unwrap();
        let first = s.next_after(before).unwrap();
        assert_eq!(first, Utc.with_ymd_and_hms(2026, 10, 24, 1, 30, 0).unwrap());
        let second = s.next_after(first).unwrap();
        assert_eq!(
            second,
            Utc.with_ymd_and_hms(2026, 10, 25, 2, 30, 0).unwrap()
        );
    }

    #[test]
    fn five_and_six_field_forms() {
        assert!(Schedule::parse("*/15 * * * *", "UTC").is_ok());
        assert!(Schedule::parse("0 */15 * * * *", "UTC").is_ok());
    }

    #[test]
    fn errors_name_their_key() {
        let e = Schedule::parse("every day", "UTC").unwrap_err();
        assert_eq!(e.key(), "daemon.schedule");
        let e = Schedule::parse("0 0 2 * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(e.key(), "daemon.time_zone");
    }
}
