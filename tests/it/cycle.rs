//! End-to-end cycles against the embedded simulator: what `once` writes, what `plan` does
//! not, and every safety rule of the issue.

use crate::common;

use common::sim::{
    cycle, memory_ledger, skill_id, start_sim, test_now, transparent, transparent_changes,
};
use genesys_sim::Simulator;
use skill_tuner::config::{OnConflict, Settings};
use skill_tuner::cycle::report::CycleReport;
use skill_tuner::cycle::Mode;
use skill_tuner::demo::{settings_for, sim_secret};
use skill_tuner::genesys::GenesysClient;
use skill_tuner::history::{ChangeStatus, Ledger, RunOutcome};
use skill_tuner::runtime;

struct Rig {
    sim: Simulator,
    settings: Settings,
    client: GenesysClient,
    ledger: Ledger,
}

async fn rig(agents: usize) -> Rig {
    let sim = start_sim(agents, |_| {}).await;
    let mut settings = settings_for(&sim, 0);
    settings.breaker.max_changed_share = 1.0;
    let client = runtime::client_with_secret(&settings, sim_secret(), &sim.clock()).unwrap();
    let ledger = memory_ledger(&sim);
    Rig {
        sim,
        settings,
        client,
        ledger,
    }
}

impl Rig {
    async fn run(&self, mode: Mode) -> CycleReport {
        cycle(&self.sim, &self.client, &self.settings, &self.ledger, mode)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn once_writes_exactly_the_independently_computed_proficiencies() {
    let mut r = rig(120).await;
    r.settings = transparent(r.settings);
    let org = r.sim.org();
    let before: Vec<(String, Vec<(String, f64)>)> = org
        .agent_ids()
        .into_iter()
        .map(|a| (a.clone(), org.user_skills(&a)))
        .collect();
    let expected = transparent_changes(&r.sim, &r.settings);
    assert!(expected.len() > 10, "the seeded org has stale skills");

    let report = r.run(Mode::Once).await;
    assert_eq!(report.outcome, RunOutcome::Ok, "{}", report.render_table(5));
    assert_eq!(report.skills_up + report.skills_down, expected.len());

    let mut checked = 0;
    for (agent, skills) in before {
        for (skill, current) in skills {
            let want = expected
                .get(&(agent.clone(), skill.clone()))
                .map_or(current, |&(_, to)| to);
            let now = org.proficiency(&agent, &skill).unwrap();
            assert!(
                (now - want).abs() < 1e-9,
                "{agent}/{skill}: {now} != {want} (was {current})"
            );
            checked += 1;
        }
    }
    assert!(checked > 200);
    // One re-read and one bulk write per changed agent.
    assert_eq!(
        report
            .api
            .calls_to("PATCH /api/v2/users/{id}/routingskills/bulk") as usize,
        report.agents_changed
    );
    assert_eq!(
        report.api.calls_to("GET /api/v2/users/{id}/routingskills") as usize,
        report.agents_changed
    );
    assert_eq!(
        r.sim
            .counters()
            .count("PUT", "/api/v2/users/{id}/routingskills/bulk"),
        0
    );
}

#[tokio::test]
async fn plan_writes_nothing() {
    let r = rig(150).await;
    let report = r.run(Mode::Plan).await;
    assert_eq!(report.outcome, RunOutcome::DryRun);
    assert!(!report.changes.is_empty());
    assert!(report
        .changes
        .iter()
        .all(|c| c.status == ChangeStatus::Planned || c.status == ChangeStatus::Held));
    assert_eq!(r.sim.org().write_count(), 0);
    assert_eq!(
        r.sim
            .counters()
            .count("PATCH", "/api/v2/users/{id}/routingskills/bulk"),
        0
    );
    assert_eq!(
        r.sim
            .counters()
            .count("POST", "/api/v2/taskmanagement/workitems"),
        0
    );
    assert!(r.sim.org().webhook_posts().is_empty());
}

#[tokio::test]
async fn a_persons_concurrent_edit_is_never_overwritten() {
    let r = rig(150).await;
    let plan = r.run(Mode::Plan).await;
    let victim = plan
        .changes
        .iter()
        .find(|c| c.status == ChangeStatus::Planned)
        .unwrap()
        .clone();
    let skill_id = skill_id(&r.sim, &victim.skill);
    // Between our roster read and our write, a supervisor sets 0.75 by hand.
    r.sim
        .faults()
        .edit_on_next_read(&victim.agent_id, &skill_id, 0.75);
    let report = r.run(Mode::Once).await;
    assert_eq!(
        r.sim.org().proficiency(&victim.agent_id, &skill_id),
        Some(0.75)
    );
    assert!(report.conflicts >= 1);
    let line = report
        .changes
        .iter()
        .find(|c| c.agent_id == victim.agent_id && c.skill == victim.skill)
        .unwrap();
    assert_eq!(line.status, ChangeStatus::Conflict);
    let recorded = r.ledger.changes(report.run_id).unwrap();
    assert!(recorded
        .iter()
        .any(|c| c.agent_id == victim.agent_id && c.status == ChangeStatus::Conflict));
}

#[tokio::test]
async fn replan_on_conflict_starts_from_the_persons_value() {
    let mut r = rig(150).await;
    r.settings.apply.on_conflict = OnConflict::Replan;
    let plan = r.run(Mode::Plan).await;
    let victim = plan
        .changes
        .iter()
        .find(|c| c.status == ChangeStatus::Planned && c.proposed > c.current)
        .unwrap()
        .clone();
    let skill_id = skill_id(&r.sim, &victim.skill);
    r.sim
        .faults()
        .edit_on_next_read(&victim.agent_id, &skill_id, 0.0);
    r.run(Mode::Once).await;
    let now = r
        .sim
        .org()
        .proficiency(&victim.agent_id, &skill_id)
        .unwrap();
    // Re-planned from 0.0 with the same guardrails: at most one max_step up from it.
    assert!(
        now > 0.0 && now <= r.settings.policy.default.max_step,
        "{now}"
    );
}

#[tokio::test]
async fn empty_analytics_trips_the_breaker_and_changes_nothing() {
    let mut r = rig(150).await;
    // The simulated org only has voice: asking for chat returns no groups at all.
    r.settings.metrics.media_types = vec!["chat".into()];
    let report = r.run(Mode::Once).await;
    assert_eq!(report.outcome, RunOutcome::Breaker);
    assert_eq!(report.breaker.as_ref().unwrap().rule, "empty_metrics");
    assert_eq!(r.sim.org().write_count(), 0);
    assert_eq!(
        r.sim.org().webhook_posts().len(),
        1,
        "the breaker is alerted"
    );
}

#[tokio::test]
async fn a_mass_change_trips_the_breaker() {
    let mut r = rig(150).await;
    r.settings.breaker.max_changed_share = 0.05;
    let report = r.run(Mode::Once).await;
    assert_eq!(report.breaker.as_ref().unwrap().rule, "mass_change");
    assert_eq!(r.sim.org().write_count(), 0);
    let digest = &r.sim.org().webhook_posts()[0];
    assert!(digest["text"]
        .as_str()
        .unwrap()
        .contains("BREAKER (mass_change)"));
}

#[tokio::test]
async fn one_failing_agent_does_not_abort_the_cycle() {
    let r = rig(150).await;
    let plan = r.run(Mode::Plan).await;
    let failing = plan.changes[0].agent_id.clone();
    r.sim
        .faults()
        .fail_next(5, 500, &format!("{failing}/routingskills/bulk"));
    let report = r.run(Mode::Once).await;
    assert_eq!(report.outcome, RunOutcome::Partial);
    let failed: Vec<_> = report
        .changes
        .iter()
        .filter(|c| c.status == ChangeStatus::Failed)
        .collect();
    assert!(!failed.is_empty() && failed.iter().all(|c| c.agent_id == failing));
    let applied = report
        .changes
        .iter()
        .filter(|c| c.status == ChangeStatus::Applied)
        .count();
    assert_eq!(applied + failed.len(), report.changes.len());
    assert_eq!(
        r.sim.org().write_count() as usize,
        report.agents_changed - 1
    );
}

#[tokio::test]
async fn alerts_are_filed_once_per_change_and_digested_once_per_cycle() {
    let mut r = rig(150).await;
    r.settings.alerts.threshold = 1.0;
    let report = r.run(Mode::Once).await;
    let org = r.sim.org();
    let over: Vec<_> = report
        .changes
        .iter()
        .filter(|c| c.alert && c.status == ChangeStatus::Applied)
        .collect();
    assert!(!over.is_empty());
    assert_eq!(report.alerts.workitems_created, over.len());
    let items = org.workitems();
    for change in &over {
        let item = items
            .iter()
            .find(|w| w["externalTag"] == change.change_id.as_str())
            .unwrap();
        // Assigned to the agent's manager.
        assert_eq!(
            item["assignee"]["id"].as_str(),
            org.manager_of(&change.agent_id).as_deref()
        );
    }
    assert_eq!(org.webhook_posts().len(), 1);
    // Filing the same alerts again (a retry, a restart) finds them by externalTag.
    let again: Vec<skill_tuner::cycle::alert::AlertItem> = over
        .iter()
        .map(|c| skill_tuner::cycle::alert::AlertItem {
            change_id: c.change_id.clone(),
            agent_id: c.agent_id.clone(),
            agent_name: c.agent.clone(),
            manager_id: None,
            skill_name: c.skill.clone(),
            current: c.current,
            target: c.target.unwrap_or(c.proposed),
            proposed: c.proposed,
            held_for_review: false,
            explanation: String::new(),
            crossing: None,
        })
        .collect();
    let filed = skill_tuner::cycle::alert::file_workitems(
        &r.client,
        &r.settings.alerts,
        &again,
        test_now(),
    )
    .await;
    assert!(filed
        .iter()
        .all(|(_, f)| matches!(f, skill_tuner::cycle::alert::Filed::AlreadyThere(_))));
    assert_eq!(org.workitems().len(), items.len());
}

/// A dry run shows what would be held for review, but files nothing: the next real cycle
/// proposes those changes itself instead of waiting for reviews nobody was asked for.
#[tokio::test]
async fn a_dry_run_with_hold_for_review_leaves_nothing_waiting() {
    let mut r = rig(150).await;
    r.settings.alerts.threshold = 1.0;
    r.settings.alerts.hold_for_review = true;
    let plan = r.run(Mode::Plan).await;
    let would_hold = plan
        .changes
        .iter()
        .filter(|c| c.status == ChangeStatus::Held)
        .count();
    assert!(would_hold >= 2, "{}", plan.render_table(5));
    assert!(r.ledger.held_changes().unwrap().is_empty());
    let once = r.run(Mode::Once).await;
    assert_eq!(
        once.changes
            .iter()
            .filter(|c| c.status == ChangeStatus::Held)
            .count(),
        would_hold,
        "{}",
        once.render_table(5)
    );
    assert_eq!(r.sim.org().workitems().len(), would_hold);
}

#[tokio::test]
async fn held_changes_apply_only_after_approval() {
    let mut r = rig(150).await;
    r.settings.alerts.threshold = 1.0;
    r.settings.alerts.hold_for_review = true;
    let first = r.run(Mode::Once).await;
    let held: Vec<_> = first
        .changes
        .iter()
        .filter(|c| c.status == ChangeStatus::Held)
        .cloned()
        .collect();
    assert!(held.len() >= 2, "{}", first.render_table(5));
    let org = r.sim.org();
    let skill_of = |name: &str| skill_id(&r.sim, name);
    for c in &held {
        assert_eq!(
            org.proficiency(&c.agent_id, &skill_of(&c.skill)),
            Some(c.current),
            "held, not applied"
        );
    }
    let items = org.workitems();
    let item_of = |tag: &str| {
        items.iter().find(|w| w["externalTag"] == tag).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(org.close_workitem(&item_of(&held[0].change_id), true));
    assert!(org.close_workitem(&item_of(&held[1].change_id), false));

    let second = r.run(Mode::Once).await;
    assert_eq!(second.approved_applied, 1);
    assert_eq!(
        org.proficiency(&held[0].agent_id, &skill_of(&held[0].skill)),
        Some(held[0].proposed)
    );
    assert_eq!(
        org.proficiency(&held[1].agent_id, &skill_of(&held[1].skill)),
        Some(held[1].current)
    );
    let records = r.ledger.changes(first.run_id).unwrap();
    let status_of = |id: &str| records.iter().find(|c| c.change_id == id).unwrap().status;
    assert_eq!(status_of(&held[0].change_id), ChangeStatus::Applied);
    assert_eq!(status_of(&held[1].change_id), ChangeStatus::Rejected);
    // Still-open proposals are not proposed a second time.
    assert!(second.changes.iter().all(|c| !held[2..]
        .iter()
        .any(|h| h.agent_id == c.agent_id && h.skill == c.skill)));
}
