//! JSON renderings of users and skills, shared by several endpoints.

use serde_json::{json, Map, Value};

use crate::state::org::{Org, DIVISION_NAMES};
use crate::state::skillgroups::{ProficiencyMatch, SkillGroup};

/// `UserRoutingSkill`.
pub(crate) fn user_skill(org: &Org, user: u32, skill: u16, proficiency: f64) -> Value {
    let uid = org.users[user as usize].id;
    let s = &org.skills[skill as usize];
    json!({
        "id": s.id.to_string(),
        "name": s.name,
        "proficiency": proficiency,
        "state": "active",
        "skillUri": format!("/api/v2/routing/skills/{}", s.id),
        "selfUri": format!("/api/v2/users/{uid}/routingskills/{}", s.id),
    })
}

/// All of a user's current skills as `UserRoutingSkill`s.
pub(crate) fn user_skills(org: &Org, user: u32) -> Vec<Value> {
    org.user_skills(user)
        .skills
        .iter()
        .map(|(s, p)| user_skill(org, user, *s, *p))
        .collect()
}

/// `User`, with `skills` only when expanded.
pub(crate) fn user(org: &Org, index: u32, expand_skills: bool) -> Value {
    let info = &org.users[index as usize];
    let division = info.division as usize;
    let mut m = Map::new();
    m.insert("id".into(), json!(info.id.to_string()));
    m.insert("name".into(), json!(org.user_name(index)));
    m.insert("email".into(), json!(org.user_email(index)));
    m.insert(
        "state".into(),
        json!(if info.active { "active" } else { "inactive" }),
    );
    m.insert(
        "division".into(),
        json!({
            "id": org.divisions[division].to_string(),
            "name": DIVISION_NAMES[division],
            "selfUri": format!("/api/v2/authorization/divisions/{}", org.divisions[division]),
        }),
    );
    if let Some(mgr) = info.manager {
        // `manager` is a `User`, whose `version` is required.
        let mid = org.users[mgr as usize].id;
        m.insert(
            "manager".into(),
            json!({
                "id": mid.to_string(),
                "version": org.user_skills(mgr).version,
                "selfUri": format!("/api/v2/users/{mid}"),
            }),
        );
    }
    m.insert("version".into(), json!(org.user_skills(index).version));
    m.insert(
        "selfUri".into(),
        json!(format!("/api/v2/users/{}", info.id)),
    );
    if expand_skills {
        m.insert("skills".into(), Value::Array(user_skills(org, index)));
    }
    Value::Object(m)
}

/// `RoutingSkill`.
pub(crate) fn routing_skill(org: &Org, skill: u16) -> Value {
    let s = &org.skills[skill as usize];
    json!({
        "id": s.id.to_string(),
        "name": s.name,
        "dateModified": "2025-01-15T09:30:00.000Z",
        "state": "active",
        "version": "1",
        "selfUri": format!("/api/v2/routing/skills/{}", s.id),
    })
}

/// A `Division` (or `WritableDivision`) reference.
fn division(org: &Org, division: usize) -> Value {
    json!({
        "id": org.divisions[division].to_string(),
        "name": DIVISION_NAMES[division],
        "selfUri": format!("/api/v2/authorization/divisions/{}", org.divisions[division]),
    })
}

/// `SkillGroup` (`full`: with `status` and `skillConditions`) or, in the listing,
/// `SkillGroupDefinition`. `memberCount` is counted now (the API's is an estimate that
/// follows changes with some delay).
pub(crate) fn skill_group(org: &Org, group: &SkillGroup, m: ProficiencyMatch, full: bool) -> Value {
    let mut v = json!({
        "id": group.id.to_string(),
        "name": group.name,
        "division": division(org, 0),
        "description": group.description,
        "memberCount": org.skill_group_members(group, m).len(),
        "dateModified": "2025-01-15T09:30:00.000Z",
        "dateCreated": "2025-01-15T09:30:00.000Z",
        "selfUri": format!("/api/v2/routing/skillgroups/{}", group.id),
    });
    if full {
        v["status"] = json!("Complete");
        v["skillConditions"] = json!(group
            .conditions
            .iter()
            .map(|c| c.render(&org.skills))
            .collect::<Vec<_>>());
    }
    v
}

/// `Queue`: the fields the simulator models. `memberCount` counts user members, all joined;
/// `memberGroups` names the skill groups that feed the queue (their members are not listed
/// among the queue's members: sim choice).
pub(crate) fn queue(org: &Org, q: usize, m: ProficiencyMatch) -> Value {
    let queue = &org.queues[q];
    let division = usize::from(queue.division);
    let members = queue.members.len();
    let groups: Vec<Value> = org
        .skill_groups()
        .iter()
        .filter(|g| g.queues.contains(&q))
        .map(|group| {
            json!({
                "type": "SKILLGROUP",
                "id": group.id.to_string(),
                "name": group.name,
                "division": self::division(org, 0),
                "memberCount": org.skill_group_members(group, m).len(),
                "selfUri": format!("/api/v2/routing/skillgroups/{}", group.id),
            })
        })
        .collect();
    let mut v = json!({
        "id": queue.id.to_string(),
        "name": queue.name,
        "division": {
            "id": org.divisions[division].to_string(),
            "name": DIVISION_NAMES[division],
            "selfUri": format!("/api/v2/authorization/divisions/{}", org.divisions[division]),
        },
        "dateCreated": "2025-01-15T09:30:00.000Z",
        "dateModified": "2025-01-15T09:30:00.000Z",
        "memberCount": members,
        "userMemberCount": members,
        "joinedMemberCount": members,
        "scoringMethod": "TimestampAndPriority",
        "skillEvaluationMethod": queue.method.as_api(),
        "selfUri": format!("/api/v2/routing/queues/{}", queue.id),
    });
    if !groups.is_empty() {
        v["memberGroups"] = Value::Array(groups);
    }
    v
}
