//! A full cycle — plan, once, history — at the instants where calendars bite: the last half
//! hour of a year, a leap day, and the daylight-saving changes of Europe/London and
//! America/New_York, each with the metrics and daemon time zone set to that zone. The
//! product and the simulator share one clock standing at the instant, so what is asserted
//! is computed from the simulator's ground truth for the window actually used, never from
//! the day the tests happen to run.

use crate::common;

use chrono::NaiveTime;
use chrono_tz::Tz;
use common::sim::{
    client_for, cycle, instant, memory_ledger, relaxed, start_sim, transparent, transparent_changes,
};
use skill_tuner::audit;
use skill_tuner::clock::Clock;
use skill_tuner::config::schedule::Schedule;
use skill_tuner::cycle::Mode;
use skill_tuner::history::{ChangeStatus, RunOutcome};
use std::collections::BTreeMap;

/// Runs plan, once, a second plan and the history commands at `at`, in `zone`.
async fn full_cycle_at(at: &str, zone: &str) {
    let at = instant(at);
    let sim = start_sim(60, |c| {
        c.seed = 11;
        c.clock = Clock::manual(at);
    })
    .await;
    let mut settings = transparent(relaxed(&sim));
    settings.metrics.time_zone = zone.into();
    settings.daemon.time_zone = zone.into();
    let client = client_for(&sim, &settings).await;
    let ledger = memory_ledger(&sim);

    // The window: whole local days, ending at the start of today in `zone`.
    let tz: Tz = zone.parse().unwrap();
    let (start, end) = skill_tuner::cycle::collect::window(&settings.metrics, at);
    let local_today = at.with_timezone(&tz).date_naive();
    assert_eq!(end.with_timezone(&tz).date_naive(), local_today);
    assert_eq!(end.with_timezone(&tz).time(), NaiveTime::MIN);
    assert_eq!(
        start.with_timezone(&tz).date_naive(),
        local_today - chrono::Days::new(u64::from(settings.metrics.lookback_days))
    );
    assert_eq!(start.with_timezone(&tz).time(), NaiveTime::MIN);
    assert!(end <= at);

    let expected = transparent_changes(&sim, &settings);
    assert!(
        expected.len() >= 3,
        "fixture: the org at {at} needs changes, has {}",
        expected.len()
    );

    // plan: exactly the ground truth's changes, nothing written.
    let plan = cycle(&sim, &client, &settings, &ledger, Mode::Plan)
        .await
        .unwrap();
    assert_eq!(plan.outcome, RunOutcome::DryRun, "{}", plan.render_table(5));
    assert_eq!(
        plan.interval,
        skill_tuner::cycle::collect::interval_string(start, end)
    );
    assert_eq!(plan.started_at, at.to_rfc3339());
    let planned: BTreeMap<(String, String), f64> = plan
        .changes
        .iter()
        .map(|c| {
            (
                (c.agent_id.clone(), skill_id_of(&sim, &c.skill)),
                c.proposed,
            )
        })
        .collect();
    let want: BTreeMap<(String, String), f64> = expected
        .iter()
        .map(|(k, &(_, to))| (k.clone(), to))
        .collect();
    assert_eq!(planned, want);
    assert_eq!(sim.org().write_count(), 0);

    // once: the same changes, applied.
    let once = cycle(&sim, &client, &settings, &ledger, Mode::Once)
        .await
        .unwrap();
    assert_eq!(once.outcome, RunOutcome::Ok, "{}", once.render_table(5));
    let rows = ledger.changes(once.run_id).unwrap();
    assert_eq!(rows.len(), expected.len());
    for row in &rows {
        assert_eq!(row.status, ChangeStatus::Applied, "{row:?}");
        let (before, after) = expected[&(row.agent_id.clone(), row.skill_id.clone())];
        assert_eq!((row.before, row.after), (before, after));
        assert_eq!(
            sim.org().proficiency(&row.agent_id, &row.skill_id),
            Some(after)
        );
    }

    // A second plan at the same instant finds everything at its target.
    let again = cycle(&sim, &client, &settings, &ledger, Mode::Plan)
        .await
        .unwrap();
    assert!(again.changes.is_empty(), "{}", again.render_table(5));

    // history: three runs, stamped by the shared clock, newest first.
    let lines = audit::history(&ledger, 10).unwrap();
    assert_eq!(lines.len(), 3);
    let stamp = at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    for run in ledger.recent_runs(10).unwrap() {
        assert_eq!(run.started_at, stamp);
        assert_eq!(run.finished_at.as_deref(), Some(stamp.as_str()));
    }
    let rendered = audit::render_history(&lines);
    assert!(rendered.contains(&stamp), "{rendered}");
    let shown = audit::render_show(&audit::show(&ledger, once.run_id).unwrap());
    assert!(shown.contains("applied"), "{shown}");

    // The daemon's schedules in this zone: the next tick is strictly in the future.
    for expression in ["0 30 1 * * *", "0 */5 * * * *", "0 0 0 * * *"] {
        let schedule = Schedule::parse(expression, zone).unwrap();
        let next = schedule.next_after(at).unwrap();
        assert!(
            next > at,
            "{expression} in {zone}: {next} is not after {at}"
        );
    }
    sim.shutdown().await;
}

fn skill_id_of(sim: &genesys_sim::Simulator, name: &str) -> String {
    common::sim::skill_id(sim, name)
}

#[tokio::test]
async fn the_last_half_hour_of_a_year_in_utc() {
    full_cycle_at("2026-12-31T23:30:00Z", "UTC").await;
}

#[tokio::test]
async fn the_last_half_hour_of_a_year_where_it_is_already_next_year() {
    // Auckland is at 12:30 on 1 January 2027.
    full_cycle_at("2026-12-31T23:30:00Z", "Pacific/Auckland").await;
}

#[tokio::test]
async fn a_leap_day() {
    full_cycle_at("2028-02-29T12:00:00Z", "UTC").await;
    full_cycle_at("2028-02-29T12:00:00Z", "America/New_York").await;
}

#[tokio::test]
async fn new_york_springs_forward() {
    // 2027-03-14 02:00 EST → 03:00 EDT at 07:00 UTC; 07:30 UTC is 03:30 EDT.
    full_cycle_at("2027-03-14T07:30:00Z", "America/New_York").await;
}

#[tokio::test]
async fn london_springs_forward() {
    // 2027-03-28 01:00 GMT → 02:00 BST; 01:30 UTC is 02:30 BST.
    full_cycle_at("2027-03-28T01:30:00Z", "Europe/London").await;
}

#[tokio::test]
async fn london_falls_back() {
    // 2027-10-31 02:00 BST → 01:00 GMT at 01:00 UTC; 01:30 UTC is the second 01:30.
    full_cycle_at("2027-10-31T01:30:00Z", "Europe/London").await;
    // And the first 01:30 (BST), an hour earlier.
    full_cycle_at("2027-10-31T00:30:00Z", "Europe/London").await;
}

#[tokio::test]
async fn new_york_falls_back() {
    // 2027-11-07 02:00 EDT → 01:00 EST at 06:00 UTC; 06:30 UTC is the second 01:30.
    full_cycle_at("2027-11-07T06:30:00Z", "America/New_York").await;
}

#[tokio::test]
async fn windows_that_span_a_dst_change() {
    // The 14 local days before these instants include the change itself.
    full_cycle_at("2027-04-05T12:00:00Z", "Europe/London").await;
    full_cycle_at("2027-11-10T12:00:00Z", "America/New_York").await;
}
