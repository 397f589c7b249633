//! The holdout experiment through the real cycle against the simulator: held-out skills are
//! never written (the simulator's own log of requests says so), the assignment is recorded,
//! and a pause on harm stops applying until `resume`.

use crate::common;
use common::sim::{client_for, cycle, memory_ledger, relaxed, start_sim};
use skill_tuner::cycle::Mode;
use skill_tuner::experiment::Assignment;
use skill_tuner::history::{ChangeStatus, RunOutcome};
use std::collections::BTreeSet;

/// An experiment that started before the tests' fixed day, holding out half the skills.
fn with_experiment(settings: &mut skill_tuner::config::Settings) -> Assignment {
    let e = &mut settings.experiment;
    e.enabled = true;
    e.start = "2027-05-01".into();
    e.salt = "it".into();
    e.holdout_share = 0.5;
    Assignment::of(e).unwrap()
}

#[tokio::test]
async fn no_write_touches_a_held_out_skill_and_the_tuned_ones_are_written() {
    let sim = start_sim(120, |c| {
        c.skills = 8;
        c.record = true;
    })
    .await;
    let mut settings = relaxed(&sim);
    let assignment = with_experiment(&mut settings);
    let held: BTreeSet<String> = sim
        .org()
        .skills()
        .into_iter()
        .filter(|(id, _)| assignment.is_held_out(id))
        .map(|(id, _)| id)
        .collect();
    assert!(!held.is_empty() && held.len() < 8, "{held:?}");
    let client = client_for(&sim, &settings).await;
    let ledger = memory_ledger(&sim);
    let report = cycle(&sim, &client, &settings, &ledger, Mode::Once)
        .await
        .unwrap();

    // The simulator's write log: every skill any PATCH or PUT carried.
    let mut written = BTreeSet::new();
    for x in sim.exchanges() {
        if x.method != "GET" && x.path.contains("/routingskills") {
            let body: serde_json::Value = serde_json::from_slice(&x.request_body).unwrap();
            for s in body.as_array().unwrap() {
                written.insert(s["id"].as_str().unwrap().to_string());
            }
        }
    }
    assert!(!written.is_empty(), "the cycle wrote nothing: {report:?}");
    assert!(
        written.is_disjoint(&held),
        "held-out skills written: {:?}",
        written.intersection(&held).collect::<Vec<_>>()
    );
    // The plan parked them, the report and the ledger name them.
    let x = report.experiment.as_ref().unwrap();
    assert!(x.active);
    assert_eq!(x.held_out.len(), held.len());
    assert!(report.skipped.get("held_out").copied().unwrap_or(0) > 0);
    assert!(report.render_table(5).contains("skills held out"));
    let recorded = ledger.assignments().unwrap();
    assert_eq!(recorded.len(), 8);
    for u in &recorded {
        assert_eq!(u.arm == "held_out", held.contains(&u.unit_id), "{u:?}");
        assert_eq!(u.config_hash, settings.fingerprint());
        assert_eq!(u.experiment_fingerprint, settings.experiment.fingerprint());
    }
}

#[tokio::test]
async fn a_pause_applies_nothing_until_resumed() {
    let sim = start_sim(80, |_| {}).await;
    let mut settings = relaxed(&sim);
    with_experiment(&mut settings);
    // The pause below is the ledger's; this cycle's own test must not add another.
    settings.experiment.pause_on_harm = false;
    let client = client_for(&sim, &settings).await;
    let ledger = memory_ledger(&sim);
    ledger
        .pause(None, "handle_time", "fixture: harm shown")
        .unwrap();

    let paused = cycle(&sim, &client, &settings, &ledger, Mode::Once)
        .await
        .unwrap();
    assert_eq!(paused.outcome, RunOutcome::Paused);
    assert!(!paused.changes.is_empty());
    assert!(paused
        .changes
        .iter()
        .all(|c| c.status == ChangeStatus::Skipped && c.reason.contains("paused on harm")));
    assert_eq!(sim.org().write_count(), 0);
    assert!(paused.render_table(5).contains("PAUSED ON HARM"));

    let ended = ledger.resume("tester").unwrap();
    assert_eq!(ended.len(), 1);
    assert!(ledger.active_pause().unwrap().is_none());
    assert_eq!(
        ledger.pauses().unwrap()[0].resumed_by.as_deref(),
        Some("tester")
    );
    let resumed = cycle(&sim, &client, &settings, &ledger, Mode::Once)
        .await
        .unwrap();
    assert_eq!(resumed.outcome, RunOutcome::Ok);
    assert!(sim.org().write_count() > 0);
}

#[tokio::test]
async fn effect_reads_a_few_aggregates_and_reports_every_judged_metric() {
    let sim = start_sim(120, |c| c.skills = 8).await;
    let mut settings = relaxed(&sim);
    let assignment = with_experiment(&mut settings);
    let client = client_for(&sim, &settings).await;
    let before = client.stats();
    let today = sim.clock().now().date_naive();
    let report =
        skill_tuner::experiment::measure(&client, &settings.experiment, &assignment, &[], today)
            .await
            .unwrap();
    // Baseline and experiment (11 days, one interval): three sources each, nothing per agent.
    let calls = client.stats().since(&before);
    assert_eq!(calls.total_calls(), 6, "{:?}", calls.calls);
    assert_eq!(report.days, 11);
    let names: Vec<&str> = report.metrics.iter().map(|m| m.metric.as_str()).collect();
    assert_eq!(
        names,
        [
            "handle_time",
            "transfer_rate",
            "quality",
            "csat",
            "service_level"
        ]
    );
    let aht = &report.metrics[0];
    assert!(
        aht.sample.tuned_units >= 2 && aht.sample.held_out_units >= 2,
        "{aht:?}"
    );
    assert!(aht.ci_low <= aht.estimate && aht.estimate <= aht.ci_high);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["metrics"][0]["metric"], "handle_time");
    assert!(json["metrics"][0]["verdict"]["text"].is_string());
}
