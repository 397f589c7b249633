//! Skill-group crossings: the simulator serves skill groups as the SDK models them (cursor
//! paging, members computed from the proficiencies in force), and a real cycle finds every
//! agent its plan moves into or out of a group — checked against the simulator's own
//! membership before and after — and warns, holds or blocks as configured.

use crate::common;

use common::sim::{client_for, cycle, memory_ledger, relaxed, start_sim};
use genesys_sim::{ProficiencyMatch, SimConfig, Simulator};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use skill_tuner::config::{CrossingGuard, Settings};
use skill_tuner::cycle::report::CycleReport;
use skill_tuner::cycle::skillgroups::Direction;
use skill_tuner::cycle::Mode;
use skill_tuner::history::ChangeStatus;
use std::collections::BTreeSet;

async fn token(http: &Client, base: &str) -> String {
    let defaults = SimConfig::default();
    let resp = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(defaults.client_id, Some(defaults.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

async fn get(http: &Client, sim: &Simulator, token: &str, path: &str) -> Value {
    let resp = http
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.json().await.unwrap()
}

/// Follows `nextUri` (an `after` cursor) from `first`; checks each page carries only the
/// listing's fields.
async fn all_pages(http: &Client, sim: &Simulator, token: &str, first: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = first.to_string();
    for _ in 0..1000 {
        let page = get(http, sim, token, &path).await;
        let keys: BTreeSet<&str> = page
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            keys.is_subset(&BTreeSet::from([
                "entities",
                "nextUri",
                "selfUri",
                "previousUri"
            ])),
            "{keys:?}"
        );
        out.extend(page["entities"].as_array().unwrap().iter().cloned());
        match page["nextUri"].as_str() {
            Some(next) => {
                assert!(next.contains("after="), "{next}");
                path = next.to_string();
            }
            None => return out,
        }
    }
    panic!("the cursor never ended");
}

#[tokio::test]
async fn the_simulator_serves_skill_groups_as_the_contract_models_them() {
    let sim = start_sim(120, |_| {}).await;
    let http = Client::new();
    let token = token(&http, &sim.base_url()).await;
    let org = sim.org();

    // The listing, one group a page: SkillGroupDefinitions, without conditions.
    let listed = all_pages(
        &http,
        &sim,
        &token,
        "/api/v2/routing/skillgroups?pageSize=1",
    )
    .await;
    let names: Vec<&str> = listed.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "Spanish 3+",
            "Billing and Claims",
            "Support, not Sales",
            "Retention seniors"
        ]
    );
    assert!(listed.iter().all(|g| g.get("skillConditions").is_none()));
    let second = get(
        &http,
        &sim,
        &token,
        "/api/v2/routing/skillgroups?pageSize=2&after=2",
    )
    .await;
    assert_eq!(second["entities"][0]["name"], "Support, not Sales");
    assert!(second["previousUri"].as_str().unwrap().contains("before=2"));
    let filtered = get(&http, &sim, &token, "/api/v2/routing/skillgroups?name=spa").await;
    assert_eq!(filtered["entities"].as_array().unwrap().len(), 1);

    // One group: its conditions, as `SkillGroupCondition`s.
    let (id, _) = org.skill_groups()[2].clone();
    let group = get(
        &http,
        &sim,
        &token,
        &format!("/api/v2/routing/skillgroups/{id}"),
    )
    .await;
    assert_eq!(group["status"], "Complete");
    let conditions = group["skillConditions"].as_array().unwrap();
    assert_eq!(conditions[1]["operation"], "Not");
    assert_eq!(
        conditions[0]["languageSkillConditions"],
        serde_json::json!([])
    );
    let entry = &conditions[0]["routingSkillConditions"][0];
    assert_eq!(entry["routingSkill"], "Technical Support");
    assert_eq!(entry["comparator"], "GreaterThanOrEqualTo");
    assert_eq!(entry["proficiency"], 4);

    // Members, cursor by cursor, as the proficiencies in force make them.
    let (spanish, _) = org.skill_groups()[0].clone();
    let path = format!("/api/v2/routing/skillgroups/{spanish}/members?pageSize=7&expand=entities");
    let members = all_pages(&http, &sim, &token, &path).await;
    let ids: Vec<String> = members
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        org.skill_group_member_ids(&spanish, ProficiencyMatch::Exact)
    );
    assert!(ids.len() > 7, "more than one page: {}", ids.len());
    assert!(members.iter().all(|m| m["name"].is_string()));
    let skill = common::sim::skill_id(&sim, "Spanish");
    assert!(org.set_proficiency(&ids[0], &skill, 2.5));
    let after = all_pages(&http, &sim, &token, &path).await;
    assert_eq!(
        after.len(),
        ids.len() - 1,
        "2.5 is below 3: out of the group"
    );
    assert!(org.set_proficiency(&ids[0], &skill, 3.0));

    // The queues a group feeds name it in `memberGroups`.
    let queues = get(&http, &sim, &token, "/api/v2/routing/queues?pageSize=100").await;
    let sales = queues["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "Sales")
        .unwrap();
    assert_eq!(sales["memberGroups"][0]["type"], "SKILLGROUP");
    assert_eq!(sales["memberGroups"][0]["id"], spanish.as_str());
    sim.shutdown().await;
}

/// Every (agent, group) the simulator's membership holds now.
fn memberships(sim: &Simulator) -> BTreeSet<(String, String)> {
    let org = sim.org();
    org.skill_groups()
        .into_iter()
        .flat_map(|(g, _)| {
            org.skill_group_member_ids(&g, ProficiencyMatch::Exact)
                .into_iter()
                .map(move |a| (a, g.clone()))
        })
        .collect()
}

struct Run {
    sim: Simulator,
    report: CycleReport,
    before: BTreeSet<(String, String)>,
    after: BTreeSet<(String, String)>,
    ledger: skill_tuner::history::Ledger,
}

async fn once_with(guard: CrossingGuard, tweak: impl FnOnce(&mut Settings)) -> Run {
    let sim = start_sim(300, |_| {}).await;
    let mut settings = relaxed(&sim);
    settings.guard.skill_group_crossings = guard;
    tweak(&mut settings);
    let client = client_for(&sim, &settings).await;
    let ledger = memory_ledger(&sim);
    let before = memberships(&sim);
    let report = cycle(&sim, &client, &settings, &ledger, Mode::Once)
        .await
        .unwrap();
    let after = memberships(&sim);
    Run {
        sim,
        report,
        before,
        after,
        ledger,
    }
}

#[tokio::test]
async fn warn_applies_and_the_crossings_are_exactly_the_membership_changes() {
    let r = once_with(CrossingGuard::Warn, |s| s.alerts.workitem.enabled = true).await;
    let g = &r.report.skill_groups;
    assert!(g.checked && g.groups == 4, "{g:?}");
    assert!(!g.crossings.is_empty(), "the demo org has crossings");
    // No miss, no false alarm: what the plan said equals what the simulator now says.
    let moved: BTreeSet<(String, String, Direction)> = r
        .before
        .symmetric_difference(&r.after)
        .map(|(a, grp)| {
            let direction = if r.after.contains(&(a.clone(), grp.clone())) {
                Direction::Joins
            } else {
                Direction::Leaves
            };
            (a.clone(), grp.clone(), direction)
        })
        .collect();
    let found: BTreeSet<(String, String, Direction)> = g
        .crossings
        .iter()
        .map(|c| (c.agent_id.clone(), c.group_id.clone(), c.direction))
        .collect();
    assert_eq!(found, moved);
    assert!(g
        .crossings
        .iter()
        .all(|c| c.certain && c.action == CrossingGuard::Warn));
    // Applied, and the supervisor told: a workitem for each crossing change under the
    // threshold too.
    let a = &r.report.alerts;
    assert!(a.skill_group_crossings > 0, "{a:?}");
    assert_eq!(
        a.workitems_created,
        a.over_threshold + a.skill_group_crossings
    );
    let items = r.sim.org().workitems();
    assert!(items.iter().any(|w| w["description"]
        .as_str()
        .unwrap_or("")
        .contains("Skill groups: the agent leaves")));
    let text = r.report.render_table(5);
    assert!(text.contains("skill groups: 4 read | crossings"), "{text}");
    r.sim.shutdown().await;
}

#[tokio::test]
async fn hold_files_review_workitems_and_moves_no_one() {
    let r = once_with(CrossingGuard::Hold, |s| s.alerts.workitem.enabled = true).await;
    let g = &r.report.skill_groups;
    assert!(!g.crossings.is_empty());
    assert_eq!(r.before, r.after, "no agent entered or left a group");
    let held: Vec<_> = r
        .report
        .changes
        .iter()
        .filter(|c| c.status == ChangeStatus::Held)
        .collect();
    assert!(!held.is_empty());
    assert_eq!(r.report.held_for_review, held.len());
    let items = r.sim.org().workitems();
    for c in &held {
        // Nothing written, a review workitem waiting.
        let skill = common::sim::skill_id(&r.sim, &c.skill);
        assert_eq!(
            r.sim.org().proficiency(&c.agent_id, &skill),
            Some(c.current)
        );
        let item = items
            .iter()
            .find(|w| w["externalTag"] == c.change_id.as_str())
            .expect("a review workitem");
        assert!(item["description"]
            .as_str()
            .unwrap()
            .contains("NOT applied"));
    }
    // The other changes were applied.
    assert!(r
        .report
        .changes
        .iter()
        .any(|c| c.status == ChangeStatus::Applied));
    r.sim.shutdown().await;
}

#[tokio::test]
async fn block_writes_nothing_that_crosses_and_records_why() {
    let r = once_with(CrossingGuard::Block, |_| {}).await;
    let g = &r.report.skill_groups;
    assert!(!g.crossings.is_empty());
    assert!(g.crossings.iter().all(|c| c.action == CrossingGuard::Block));
    assert_eq!(r.before, r.after, "no agent entered or left a group");
    let rows = r.ledger.changes(r.report.run_id).unwrap();
    let blocked: Vec<_> = rows
        .iter()
        .filter(|c| c.status == ChangeStatus::Skipped)
        .collect();
    assert!(!blocked.is_empty());
    for c in &blocked {
        let why = c.detail.as_deref().unwrap_or_default();
        assert!(
            why.contains("skill-group crossing") && why.contains("skill group"),
            "{why}"
        );
        assert_eq!(common::sim::org_value(&r.sim, c), Some(c.before));
    }
    assert_eq!(
        r.report.skipped.get("skill_group_crossing"),
        Some(&blocked.len())
    );
    assert_eq!(r.report.outcome, skill_tuner::history::RunOutcome::Ok);
    assert!(rows.iter().any(|c| c.status == ChangeStatus::Applied));
    r.sim.shutdown().await;
}

#[tokio::test]
async fn a_refused_listing_still_tunes_without_the_check() {
    let sim = start_sim(300, |_| {}).await;
    sim.faults().fail_next(1, 403, "/routing/skillgroups");
    let settings = relaxed(&sim);
    let client = client_for(&sim, &settings).await;
    let report = cycle(&sim, &client, &settings, &memory_ledger(&sim), Mode::Once)
        .await
        .unwrap();
    let g = &report.skill_groups;
    assert!(!g.checked && g.crossings.is_empty());
    assert!(
        g.notes[0].contains("routing:skillGroup:view"),
        "{:?}",
        g.notes
    );
    assert_eq!(report.outcome, skill_tuner::history::RunOutcome::Ok);
    assert!(report
        .changes
        .iter()
        .any(|c| c.status == ChangeStatus::Applied));
    assert!(report.render_table(0).contains("skill groups not read"));
    sim.shutdown().await;
}
