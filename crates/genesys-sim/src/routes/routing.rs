//! Skills catalogue, queue members and group individuals.

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde_json::{json, Value};

use crate::http::errors::{ApiError, ApiResult};
use crate::http::paging::{listing, listing_without_totals, Paging};
use crate::http::query::{encode, Params};
use crate::http::render;
use crate::state::org::Org;
use crate::state::AppState;

/// Sim choice: the largest `pageSize` for queue members (the .NET SDK documents "Max value is
/// 100").
const MAX_MEMBER_PAGE: usize = 100;

/// `GET /api/v2/routing/skills?pageSize&pageNumber&name&id…`. `name` is a case-insensitive
/// prefix match (sim choice; the SDK says "results that start with this value").
pub(crate) async fn skills(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(q.as_deref());
    let paging = Paging::from_params(&params, 25, 500)?;
    let org = &app.world.org;
    let name = params.get("name").map(str::to_lowercase);
    let ids = params.get_all("id");
    let selected: Vec<u16> = (0..org.skills.len() as u16)
        .filter(|&s| {
            let skill = &org.skills[s as usize];
            name.as_ref()
                .is_none_or(|n| skill.name.to_lowercase().starts_with(n.as_str()))
                && (ids.is_empty() || ids.iter().any(|i| org.skill_by_id(i) == Some(s)))
        })
        .collect();
    let entities = selected[paging.range(selected.len())]
        .iter()
        .map(|&s| render::routing_skill(org, s))
        .collect();
    let extra = name
        .map(|n| format!("name={}", encode(&n)))
        .unwrap_or_default();
    Ok(Json(listing(
        entities,
        selected.len(),
        paging,
        "/api/v2/routing/skills",
        &extra,
    )))
}

fn members(org: &Org, keep: impl Fn(u32) -> bool) -> Vec<u32> {
    (0..org.users.len() as u32)
        .filter(|&i| org.is_active_agent(i) && keep(i))
        .collect()
}

/// `GET /api/v2/routing/queues/{id}/members` → `QueueMemberEntityListing`, which carries no
/// `total` or `pageCount`: another page follows while `nextUri` is present. Membership is
/// fixed at generation: the active agents who held the queue's skill (sim choice).
pub(crate) async fn queue_members(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(q.as_deref());
    let org = &app.world.org;
    let queue = org
        .queue_by_id(&id)
        .map(|i| &org.queues[i])
        .ok_or_else(|| ApiError::not_found(format!("Queue {id} not found")))?;
    let paging = Paging::from_params(&params, 25, MAX_MEMBER_PAGE)?;
    let all = members(org, |i| {
        org.users[i as usize].original_skills.contains(&queue.skill)
    });
    let entities = all[paging.range(all.len())]
        .iter()
        .map(|&i| {
            let uid = org.users[i as usize].id;
            json!({
                "id": uid.to_string(),
                "name": org.user_name(i),
                "user": render::user(org, i, false),
                "ringNumber": 1,
                "joined": true,
                "memberBy": "user",
                "selfUri": format!("/api/v2/routing/queues/{}/members/{uid}", queue.id),
            })
        })
        .collect();
    let path = format!("/api/v2/routing/queues/{}/members", queue.id);
    Ok(Json(listing_without_totals(
        entities,
        all.len(),
        paging,
        &path,
        "",
    )))
}

/// `GET /api/v2/groups/{id}/individuals` → `UserEntityListing`. The operation takes no query
/// parameters ("Get all individuals associated with the group", .NET SDK 270.0.0,
/// `build/docs/GroupsApi.md`): every individual comes in one answer; query parameters are
/// ignored, as the real API ignores ones it does not define.
pub(crate) async fn group_individuals(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let org = &app.world.org;
    let group = org
        .group_by_id(&id)
        .ok_or_else(|| ApiError::not_found(format!("Group {id} not found")))?;
    let all = members(org, |i| org.users[i as usize].group == Some(group));
    let entities: Vec<Value> = all.iter().map(|&i| render::user(org, i, false)).collect();
    let n = entities.len();
    Ok(Json(json!({
        "entities": entities,
        "pageSize": n,
        "pageNumber": 1,
        "total": n,
        "pageCount": 1,
        "selfUri": format!("/api/v2/groups/{}/individuals", org.groups[group as usize]),
    })))
}
