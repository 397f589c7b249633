//! JSON renderings of users and skills, shared by several endpoints.

use serde_json::{json, Map, Value};

use crate::state::org::{Org, DIVISION_NAMES};

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

/// `Queue`: the fields the simulator models. `memberCount` counts user members (the
/// simulator has no group members), all joined.
pub(crate) fn queue(org: &Org, q: usize) -> Value {
    let queue = &org.queues[q];
    let division = usize::from(queue.division);
    let members = queue.members.len();
    json!({
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
    })
}
