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
/// Sim choice (not documented): the largest `pageSize` for the queue listing.
const MAX_QUEUE_PAGE: usize = 500;

/// A `name` filter of the queue listing: case-insensitive, with an optional leading and/or
/// trailing `*` matching anything ("leading and trailing asterisks allowed").
fn name_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.to_lowercase(), name.to_lowercase());
    let (starts, rest) = match p.strip_prefix('*') {
        Some(r) => (false, r),
        None => (true, p.as_str()),
    };
    let (ends, core) = match rest.strip_suffix('*') {
        Some(r) => (false, r),
        None => (true, rest),
    };
    match (starts, ends) {
        (true, true) => n == core,
        (true, false) => n.starts_with(core),
        (false, true) => n.ends_with(core),
        (false, false) => n.contains(core),
    }
}

/// A parameter with two values: `false` for `no` (or when absent), `true` for `yes`;
/// anything else is a 400 naming it.
fn either(params: &Params, key: &str, no: &str, yes: &str) -> ApiResult<bool> {
    match params.get(key) {
        None => Ok(false),
        Some(v) if v == no => Ok(false),
        Some(v) if v == yes => Ok(true),
        Some(other) => Err(ApiError::invalid_value(
            key,
            format!("{key} must be {no} or {yes}, got {other}"),
        )),
    }
}

/// `GET /api/v2/routing/queues?pageSize&pageNumber&sortOrder&name&id…&divisionId…` →
/// `QueueEntityListing`, sorted by name. No simulated queue has a peer or a canned-response
/// library, so `peerId`, `cannedResponseLibraryId` and `hasPeer=true` select none;
/// `expand=identityresolution` adds nothing (not modelled).
pub(crate) async fn queues(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(q.as_deref());
    let paging = Paging::from_params(&params, 25, MAX_QUEUE_PAGE)?;
    let descending = either(&params, "sortOrder", "asc", "desc")?;
    let has_peer = either(&params, "hasPeer", "false", "true")?;
    let org = &app.world.org;
    let name = params.get("name");
    let ids = params.get_all("id");
    let divisions = params.get_all("divisionId");
    let none_match = has_peer
        || !params.get_all("peerId").is_empty()
        || params.get("cannedResponseLibraryId").is_some();
    let mut selected: Vec<usize> = (0..org.queues.len())
        .filter(|&i| {
            let queue = &org.queues[i];
            let division = org.divisions[usize::from(queue.division)];
            !none_match
                && name.is_none_or(|n| name_matches(n, &queue.name))
                && (ids.is_empty() || ids.iter().any(|id| org.queue_by_id(id) == Some(i)))
                && (divisions.is_empty()
                    || divisions
                        .iter()
                        .any(|d| uuid::Uuid::parse_str(d).is_ok_and(|d| d == division)))
        })
        .collect();
    selected.sort_by(|&a, &b| {
        let (x, y) = (&org.queues[a].name, &org.queues[b].name);
        x.to_lowercase().cmp(&y.to_lowercase()).then(x.cmp(y))
    });
    if descending {
        selected.reverse();
    }
    let entities = selected[paging.range(selected.len())]
        .iter()
        .map(|&i| render::queue(org, i, app.config.proficiency_match))
        .collect();
    let mut extra: Vec<String> = Vec::new();
    for key in ["sortOrder", "name", "hasPeer", "cannedResponseLibraryId"] {
        if let Some(v) = params.get(key) {
            extra.push(format!("{key}={}", encode(v)));
        }
    }
    for key in ["id", "divisionId", "peerId", "expand"] {
        for v in params.get_all(key) {
            extra.push(format!("{key}={}", encode(&v)));
        }
    }
    Ok(Json(listing(
        entities,
        selected.len(),
        paging,
        "/api/v2/routing/queues",
        &extra.join("&"),
    )))
}

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
/// fixed at generation (sim choice): in the open-loop org, the active agents who held the
/// queue's skill; in a twin, the agents placed on the queue.
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
    let all = &queue.members;
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

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn queue_names_match_with_leading_and_trailing_asterisks() {
        assert!(name_matches("billing", "Billing"));
        assert!(!name_matches("bill", "Billing"));
        assert!(name_matches("bill*", "Billing"));
        assert!(name_matches("*ing", "Billing"));
        assert!(name_matches("*lli*", "Billing"));
        assert!(!name_matches("*x*", "Billing"));
        assert!(name_matches("*", "Billing"));
    }
}
