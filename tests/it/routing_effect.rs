//! Tuning only where it matters: the cycle reads the queues and their evaluation methods,
//! learns from analytics which skills each queue serves, reports per skill which queues use it
//! and how, and leaves alone a skill whose every queue disregards skills (`NONE`).

use crate::common;

use common::sim::{client_for, cycle, memory_ledger, relaxed, start_sim};
use genesys_sim::{MethodMix, TwinConfig};
use skill_tuner::cycle::report::CycleReport;
use skill_tuner::cycle::routing::RoutingEffect;
use skill_tuner::cycle::Mode;
use skill_tuner::org::EvaluationMethod;

/// A dry run against a twin whose queues all use `mix`, with `tune_without_routing_effect`.
async fn plan_on_twin(mix: MethodMix, tune_anyway: bool) -> CycleReport {
    let sim = start_sim(200, |c| {
        c.twin = Some(TwinConfig {
            method_mix: mix,
            history_days: 14,
            ..TwinConfig::default()
        });
    })
    .await;
    let mut settings = relaxed(&sim);
    settings.policy.tune_without_routing_effect = tune_anyway;
    let client = client_for(&sim, &settings).await;
    let report = cycle(&sim, &client, &settings, &memory_ledger(&sim), Mode::Plan)
        .await
        .unwrap();
    sim.shutdown().await;
    report
}

#[tokio::test]
async fn a_skill_whose_queues_all_disregard_skills_is_reported_and_left_alone() {
    let none_only = MethodMix {
        best: 0.0,
        none: 1.0,
        all: 0.0,
    };
    let report = plan_on_twin(none_only, false).await;
    assert!(!report.routing.is_empty());
    for skill in &report.routing {
        assert_eq!(skill.effect, RoutingEffect::NoRoutingEffect, "{skill:?}");
        assert!(!skill.tuned);
        assert!(!skill.queues.is_empty());
        assert!(skill
            .queues
            .iter()
            .all(|q| q.method == Some(EvaluationMethod::None) && q.queue.is_some()));
    }
    assert!(report.changes.is_empty(), "{}", report.render_table(5));
    assert!(
        report
            .skipped
            .get("no_routing_effect")
            .copied()
            .unwrap_or(0)
            > 100,
        "{:?}",
        report.skipped
    );
    let text = report.render_table(5);
    assert!(text.contains("(NONE, "), "{text}");
    assert!(text.contains("no routing effect: not tuned"), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["routing"][0]["effect"], "no_routing_effect");
    assert_eq!(json["routing"][0]["queues"][0]["method"], "NONE");

    // Configurable: the same org tuned anyway.
    let anyway = plan_on_twin(none_only, true).await;
    assert!(anyway.routing.iter().all(|s| s.tuned));
    assert!(!anyway.changes.is_empty());
    assert!(anyway
        .render_table(0)
        .contains("tuned (tune_without_routing_effect)"));
}

#[tokio::test]
async fn every_skill_is_reported_with_its_queues_and_their_methods() {
    let report = plan_on_twin(MethodMix::default(), false).await;
    // The reference twin: every skill is requested on two or three queues; with this seed one
    // skill's queues are an ALL and a NONE one (matched, not ranked: still tuned), the others
    // have a BEST queue.
    for skill in &report.routing {
        let best = skill
            .queues
            .iter()
            .any(|q| q.method == Some(EvaluationMethod::Best));
        let expected = if best {
            RoutingEffect::Ranked
        } else {
            RoutingEffect::Matched
        };
        assert_eq!(skill.effect, expected, "{skill:?}");
        assert!(skill.tuned);
        assert!(skill.queues.len() >= 2, "{skill:?}");
        assert!(skill
            .queues
            .windows(2)
            .all(|w| w[0].interactions >= w[1].interactions));
    }
    let methods: std::collections::BTreeSet<_> = report
        .routing
        .iter()
        .flat_map(|s| s.queues.iter().filter_map(|q| q.method))
        .collect();
    assert_eq!(methods.len(), 3, "NONE, BEST and ALL queues: {methods:?}");
    assert!(report.case_mix);
    assert!(!report.changes.is_empty());
    // One call read every queue.
    let text = report.render_table(3);
    assert!(
        text.contains("GET /api/v2/routing/queues") && text.contains("200×1"),
        "{text}"
    );
    assert!(text.contains("expected ×"), "case-mix reasons: {text}");
    assert!(
        text.contains("(ALL, ") && text.contains("skills matched, proficiency not ranked: tuned"),
        "{text}"
    );
}

#[tokio::test]
async fn the_open_loop_org_tunes_skills_without_queue_data_as_before() {
    let sim = start_sim(60, |_| {}).await;
    let settings = relaxed(&sim);
    let client = client_for(&sim, &settings).await;
    let report = cycle(&sim, &client, &settings, &memory_ledger(&sim), Mode::Plan)
        .await
        .unwrap();
    // Its three queues (named after the first three skills) are BEST; the other skills'
    // conversations name no queue.
    let queues: Vec<_> = sim
        .org()
        .queues()
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    for skill in &report.routing {
        assert!(skill.tuned, "{skill:?}");
        if queues.contains(&skill.skill) {
            assert_eq!(skill.effect, RoutingEffect::Ranked);
            assert_eq!(skill.queues[0].queue.as_deref(), Some(skill.skill.as_str()));
        } else {
            assert_eq!(skill.effect, RoutingEffect::Unknown);
            assert!(skill.queues.is_empty() && skill.without_queue > 0);
        }
    }
    assert!(report.render_table(0).contains("no queue data: tuned"));
}

#[tokio::test]
async fn without_permission_to_list_queues_the_cycle_still_tunes() {
    let sim = start_sim(60, |_| {}).await;
    let settings = relaxed(&sim);
    let client = client_for(&sim, &settings).await;
    sim.faults().fail_next(1, 403, "/api/v2/routing/queues");
    let report = cycle(&sim, &client, &settings, &memory_ledger(&sim), Mode::Plan)
        .await
        .unwrap();
    // The methods are unknown, so no skill counts as without routing effect.
    assert!(report
        .routing
        .iter()
        .all(|s| s.tuned && s.effect == RoutingEffect::Unknown));
    assert!(!report.changes.is_empty());
}
