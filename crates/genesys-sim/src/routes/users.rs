//! `/api/v2/users…`: roster listing, one user, routing-skill reads and bulk writes.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde_json::Value;

use crate::http::errors::{ApiError, ApiResult};
use crate::http::paging::{listing, Paging};
use crate::http::query::{encode, Params};
use crate::http::render;
use crate::state::org::Org;
use crate::state::AppState;

/// Most skills one bulk call may carry (the Terraform provider's "Bulk API restricts skills
/// adds to 50 per call"; not documented by the SDK).
const MAX_BULK: usize = 50;
/// Sim choice (not documented): the largest `pageSize` for `/routingskills`.
const MAX_SKILL_PAGE: usize = 100;

fn find_user(org: &Org, id: &str) -> ApiResult<u32> {
    org.user_by_id(id)
        .ok_or_else(|| ApiError::not_found(format!("User {id} not found")))
}

fn wants_skills(params: &Params) -> bool {
    params.get_all("expand").iter().any(|e| e == "skills")
}

/// `GET /api/v2/users?pageSize&pageNumber&expand&state&id…`
pub(crate) async fn list(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(q.as_deref());
    let paging = Paging::from_params(&params, 25, 500)?;
    let state = params.get("state").unwrap_or("active");
    let keep_state: fn(bool) -> bool = match state {
        "active" => |a| a,
        "inactive" => |a| !a,
        "any" => |_| true,
        "deleted" => |_| false,
        other => {
            return Err(ApiError::invalid_value(
                "state",
                format!("Unknown state {other}"),
            ))
        }
    };
    let org = &app.world.org;
    let ids = params.get_all("id");
    let mut selected: Vec<u32> = if ids.is_empty() {
        (0..org.users.len() as u32).collect()
    } else {
        let mut v: Vec<u32> = ids.iter().filter_map(|id| org.user_by_id(id)).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    selected.retain(|&i| keep_state(org.users[i as usize].active));
    let expand = wants_skills(&params);
    let entities = selected[paging.range(selected.len())]
        .iter()
        .map(|&i| render::user(org, i, expand))
        .collect();
    let mut extra: Vec<String> = Vec::new();
    if let Some(s) = params.get("state") {
        extra.push(format!("state={}", encode(s)));
    }
    for e in params.get_all("expand") {
        extra.push(format!("expand={}", encode(&e)));
    }
    for id in &ids {
        extra.push(format!("id={}", encode(id)));
    }
    Ok(Json(listing(
        entities,
        selected.len(),
        paging,
        "/api/v2/users",
        &extra.join("&"),
    )))
}

/// `GET /api/v2/users/{id}?expand=skills`
pub(crate) async fn get_one(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(q.as_deref());
    let org = &app.world.org;
    let u = find_user(org, &id)?;
    Ok(Json(render::user(org, u, wants_skills(&params))))
}

/// Applies pending "person edits" queued by the fault switchboard.
fn apply_edits(org: &Org, edits: Vec<crate::state::faults::PendingEdit>) {
    for e in edits {
        if let (Some(u), Some(s)) = (org.user_by_id(&e.user_id), org.skill_by_id(&e.skill_id)) {
            org.upsert_skills(u, &[(s, e.value)]);
        }
    }
}

fn skills_listing(org: &Org, u: u32, paging: Paging) -> Value {
    let all = render::user_skills(org, u);
    let total = all.len();
    let page = all[paging.range(total)].to_vec();
    let path = format!("/api/v2/users/{}/routingskills", org.users[u as usize].id);
    listing(page, total, paging, &path, "")
}

/// `GET /api/v2/users/{id}/routingskills` — the truth right before a write.
pub(crate) async fn skills(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(q.as_deref());
    let org = &app.world.org;
    let u = find_user(org, &id)?;
    let paging = Paging::from_params(&params, 25, MAX_SKILL_PAGE)?;
    apply_edits(org, app.faults.take_edits_before(&id));
    let body = skills_listing(org, u, paging);
    apply_edits(org, app.faults.take_edits_after(&id));
    Ok(Json(body))
}

/// Validates a `[UserRoutingSkillPost]` body into (skill index, proficiency) pairs.
fn parse_skill_posts(org: &Org, body: &[u8]) -> ApiResult<Vec<(u16, f64)>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The request body is not valid JSON: {e}")))?;
    let items = value
        .as_array()
        .ok_or_else(|| ApiError::bad_request("The request body must be a JSON array of skills"))?;
    if items.len() > MAX_BULK {
        return Err(ApiError::invalid_value(
            "body",
            format!(
                "Bulk API restricts skills adds to {MAX_BULK} per call, got {}",
                items.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let id = item.get("id").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid_value(
                "id",
                format!("Entry {i}: id is required and must be a string"),
            )
        })?;
        let prof = item
            .get("proficiency")
            .and_then(Value::as_f64)
            .ok_or_else(|| {
                ApiError::invalid_value(
                    "proficiency",
                    format!("Entry {i}: proficiency is required and must be a number"),
                )
            })?;
        if !(0.0..=5.0).contains(&prof) {
            return Err(ApiError::invalid_value(
                "proficiency",
                format!("Entry {i}: proficiency {prof} is not between 0.0 and 5.0"),
            ));
        }
        let skill = org.skill_by_id(id).ok_or_else(|| {
            ApiError::invalid_value("id", format!("Entry {i}: skill {id} does not exist"))
        })?;
        out.push((skill, prof));
    }
    Ok(out)
}

/// The whole skill list after a write, in one page.
fn after_write(org: &Org, u: u32) -> Value {
    let n = org.user_skills(u).skills.len();
    skills_listing(
        org,
        u,
        Paging {
            size: n.max(25),
            number: 1,
        },
    )
}

/// `PATCH /api/v2/users/{id}/routingskills/bulk` — upserts only the listed skills.
pub(crate) async fn patch_bulk(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let org = &app.world.org;
    let u = find_user(org, &id)?;
    let changes = parse_skill_posts(org, &body)?;
    if app.faults.take_conflict(&id) {
        return Err(ApiError::conflict());
    }
    org.upsert_skills(u, &changes);
    app.world.writes.fetch_add(1, Ordering::SeqCst);
    Ok(Json(after_write(org, u)))
}

/// `PUT /api/v2/users/{id}/routingskills/bulk` — replaces every assignment. The daemon must
/// never call it; it is answered faithfully and counted so tests can assert that.
pub(crate) async fn put_bulk(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let org = &app.world.org;
    let u = find_user(org, &id)?;
    let skills = parse_skill_posts(org, &body)?;
    org.replace_skills(u, skills);
    app.world.writes.fetch_add(1, Ordering::SeqCst);
    Ok(Json(after_write(org, u)))
}
