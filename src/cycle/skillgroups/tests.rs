use super::*;
use crate::cycle::plan::{Decision, PlannedItem};
use crate::genesys::models::SkillGroup as ApiGroup;
use crate::org::{Agent, Skill};
use serde_json::json;

fn catalogue() -> Vec<Skill> {
    ["Spanish", "Billing", "Claims", "Sales"]
        .iter()
        .enumerate()
        .map(|(i, n)| Skill {
            id: format!("s{i}"),
            name: n.to_string(),
        })
        .collect()
}

fn group(name: &str, conditions: serde_json::Value) -> Group {
    let api: ApiGroup = serde_json::from_value(json!({
        "id": format!("g-{name}"), "name": name, "skillConditions": conditions
    }))
    .unwrap();
    Group::from_api(&api, &catalogue(), vec![format!("Q {name}")]).unwrap()
}

fn leaf(skill: &str, comparator: &str, level: i64) -> serde_json::Value {
    json!({"routingSkill": skill, "comparator": comparator, "proficiency": level})
}

fn cond(op: &str, entries: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"operation": op, "routingSkillConditions": entries, "languageSkillConditions": []})
}

fn agent(i: usize, skills: &[(SkillIx, f64)]) -> Agent {
    Agent {
        id: format!("a{i}"),
        name: format!("Agent {i}"),
        manager_id: None,
        skills: skills.to_vec(),
        cells: Vec::new(),
        quality: None,
        csat: None,
    }
}

fn change(agent: AgentIx, skill: SkillIx, current: f64, to: f64) -> PlannedItem {
    PlannedItem {
        agent,
        skill,
        current,
        adds_skill: false,
        score: None,
        decision: Decision::Change { to },
    }
}

/// Groups covering every comparator, And/Or/Not and nesting, and agents whose planned
/// changes do or do not move them: the finder must list exactly the expected crossings.
#[test]
fn the_finder_finds_exactly_the_crossings_of_a_known_fixture() {
    let groups = vec![
        // 0: Spanish ≥ 3.
        group(
            "spanish",
            json!([cond(
                "And",
                vec![leaf("Spanish", "GreaterThanOrEqualTo", 3)]
            )]),
        ),
        // 1: Billing ≥ 3 And Claims > 1.
        group(
            "billing-claims",
            json!([cond(
                "And",
                vec![
                    leaf("Billing", "GreaterThanOrEqualTo", 3),
                    leaf("Claims", "GreaterThan", 1)
                ]
            )]),
        ),
        // 2: Billing ≤ 2, and Not Sales = 4.
        group(
            "junior-not-sales4",
            json!([
                cond("And", vec![leaf("Billing", "LessThanOrEqualTo", 2)]),
                cond("Not", vec![leaf("Sales", "EqualTo", 4)])
            ]),
        ),
        // 3: Or(Claims < 2 with child [Sales ≠ 3], Spanish = 5).
        group(
            "or-nested",
            json!([cond(
                "Or",
                vec![
                    json!({"routingSkill": "Claims", "comparator": "LessThan", "proficiency": 2,
                       "childConditions": [cond("And", vec![leaf("Sales", "NotEqualTo", 3)])]}),
                    leaf("Spanish", "EqualTo", 5),
                ]
            )]),
        ),
    ];
    let snapshot = Snapshot {
        skills: catalogue(),
        agents: vec![
            // 0: Spanish 3.0 → 2.5 leaves "spanish" (fractional below the whole number).
            agent(0, &[(0, 3.0)]),
            // 1: Spanish 3.5 → 3.0 stays in "spanish": no crossing.
            agent(1, &[(0, 3.5)]),
            // 2: Claims 1.0 → 1.5 joins billing-claims (> 1); "or-nested": Claims < 2
            //    still holds (1.5), so no crossing there.
            agent(2, &[(1, 3.0), (2, 1.0), (3, 1.0)]),
            // 3: Sales 4 → 3.5 joins junior-not-sales4 (Not EqualTo 4 now holds), and
            //    "or-nested": Claims 1 < 2 with child Sales ≠ 3: 3.5 ≠ 3 held before (4)
            //    and after → no crossing.
            agent(3, &[(1, 2.0), (2, 1.0), (3, 4.0)]),
            // 4: Sales 3.5 → 3.0 leaves "or-nested" (child Sales ≠ 3 fails).
            agent(4, &[(2, 1.0), (3, 3.5)]),
            // 5: Spanish 4.5 → 5.0 joins "or-nested" (Spanish = 5) and stays in "spanish".
            agent(5, &[(0, 4.5), (2, 3.0)]),
            // 6: Billing 2.0 → 2.5 leaves junior-not-sales4 (LessThanOrEqualTo 2).
            agent(6, &[(1, 2.0)]),
            // 7: Spanish 1.0 → 1.5 moves it nowhere.
            agent(7, &[(0, 1.0), (3, 2.0)]),
        ],
        ..Snapshot::default()
    };
    let plan = Plan {
        items: vec![
            change(0, 0, 3.0, 2.5),
            change(1, 0, 3.5, 3.0),
            change(2, 2, 1.0, 1.5),
            change(3, 3, 4.0, 3.5),
            change(4, 3, 3.5, 3.0),
            change(5, 0, 4.5, 5.0),
            change(6, 1, 2.0, 2.5),
            change(7, 0, 1.0, 1.5),
        ],
        ..Plan::default()
    };
    let found: Vec<(String, String, Direction)> =
        find_crossings(&groups, &snapshot, &plan, ProficiencyMatch::Exact)
            .into_iter()
            .map(|c| {
                assert!(c.certain);
                (c.agent_id, c.group, c.direction)
            })
            .collect();
    let expected = vec![
        ("a0".into(), "spanish".into(), Direction::Leaves),
        ("a2".into(), "billing-claims".into(), Direction::Joins),
        ("a3".into(), "junior-not-sales4".into(), Direction::Joins),
        ("a4".into(), "or-nested".into(), Direction::Leaves),
        ("a5".into(), "or-nested".into(), Direction::Joins),
        ("a6".into(), "junior-not-sales4".into(), Direction::Leaves),
    ];
    assert_eq!(found, expected);
}

#[test]
fn the_fractional_boundary_follows_the_configured_match() {
    let g = vec![group(
        "spanish",
        json!([cond(
            "And",
            vec![leaf("Spanish", "GreaterThanOrEqualTo", 3)]
        )]),
    )];
    let snapshot = Snapshot {
        skills: catalogue(),
        agents: vec![agent(0, &[(0, 3.0)]), agent(1, &[(0, 3.75)])],
        ..Snapshot::default()
    };
    let plan = Plan {
        items: vec![change(0, 0, 3.0, 2.5), change(1, 0, 3.75, 2.75)],
        ..Plan::default()
    };
    let who = |m| -> Vec<String> {
        find_crossings(&g, &snapshot, &plan, m)
            .into_iter()
            .map(|c| c.agent_id)
            .collect()
    };
    // 2.5 and 2.75 are below 3 as they are, and 2 as whole stars.
    assert_eq!(who(ProficiencyMatch::Exact), ["a0", "a1"]);
    assert_eq!(who(ProficiencyMatch::Floor), ["a0", "a1"]);
    // Rounded, 2.5 counts as 3 (stays), 2.75 as 3 (stays): no crossing.
    assert!(who(ProficiencyMatch::Round).is_empty());
    // Every comparator at the boundary, values as they are.
    use Comparator::*;
    assert!(EqualTo.holds(3.0, 3) && !EqualTo.holds(2.5, 3));
    assert!(NotEqualTo.holds(2.5, 3) && !NotEqualTo.holds(3.0, 3));
    assert!(LessThan.holds(2.5, 3) && !LessThan.holds(3.0, 3));
    assert!(GreaterThan.holds(3.5, 3) && !GreaterThan.holds(3.0, 3));
    assert!(GreaterThanOrEqualTo.holds(3.0, 3) && !GreaterThanOrEqualTo.holds(2.99, 3));
    assert!(LessThanOrEqualTo.holds(3.0, 3) && !LessThanOrEqualTo.holds(3.01, 3));
}

#[test]
fn a_language_condition_makes_a_crossing_possible_not_certain() {
    let g = vec![group(
        "spanish-or-lang",
        json!([{"operation": "And",
                "routingSkillConditions": [leaf("Billing", "GreaterThanOrEqualTo", 3)],
                "languageSkillConditions": [{"languageSkill": "French", "comparator": "GreaterThan", "proficiency": 2}]}]),
    )];
    let snapshot = Snapshot {
        skills: catalogue(),
        agents: vec![agent(0, &[(1, 3.0)])],
        ..Snapshot::default()
    };
    let plan = Plan {
        items: vec![change(0, 1, 3.0, 2.0)],
        ..Plan::default()
    };
    let found = find_crossings(&g, &snapshot, &plan, ProficiencyMatch::Exact);
    assert_eq!(found.len(), 1);
    assert!(!found[0].certain, "in the group only if French > 2");
    assert!(found[0].describe().starts_with("possibly leaves"));
}

#[test]
fn unknown_comparators_are_refused_by_name_and_terraform_child_objects_read() {
    let bad: ApiGroup = serde_json::from_value(json!({"id": "g", "name": "g", "skillConditions": [
        cond("And", vec![leaf("Billing", "Roughly", 3)])]}))
    .unwrap();
    assert_eq!(
        Group::from_api(&bad, &catalogue(), Vec::new()),
        Err(ConditionError::Comparator(Some("Roughly".into())))
    );
    let listing_only: ApiGroup = serde_json::from_value(json!({"id": "g", "name": "g"})).unwrap();
    assert_eq!(
        Group::from_api(&listing_only, &catalogue(), Vec::new()),
        Err(ConditionError::Missing)
    );
    // `childConditions` as one object, as Genesys' Terraform examples write it.
    let g = group(
        "object-child",
        json!([cond(
            "And",
            vec![
                json!({"routingSkill": "Billing", "comparator": "GreaterThan", "proficiency": 2,
            "childConditions": cond("And", vec![leaf("Claims", "GreaterThan", 1)])})
            ]
        )]),
    );
    assert_eq!(g.conditions[0].entries[0].children.len(), 1);
}
