//! `/api/v2/routing/skillgroups…`: the skill (expression) groups, one group with its
//! conditions, and its members as the proficiencies in force make them now.

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde_json::{json, Value};

use crate::http::errors::{ApiError, ApiResult};
use crate::http::paging::{cursor_listing, Cursor};
use crate::http::query::{encode, Params};
use crate::http::render;
use crate::state::skillgroups::SkillGroup;
use crate::state::AppState;

/// Sim choice (not documented; the SDK's default is 25): the largest `pageSize` of the
/// skill-group listing and of its members.
const MAX_PAGE: usize = 100;

/// `GET /api/v2/routing/skillgroups?pageSize&name&after&before` → `SkillGroupEntityListing`
/// of `SkillGroupDefinition`s, which carry no conditions (those come one group at a time).
/// `name` is a case-insensitive prefix ("names start with this value").
pub(crate) async fn list(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(q.as_deref());
    let org = &app.world.org;
    let name = params.get("name").map(str::to_lowercase);
    let selected: Vec<SkillGroup> = org
        .skill_groups()
        .into_iter()
        .filter(|g| {
            name.as_ref()
                .is_none_or(|n| g.name.to_lowercase().starts_with(n.as_str()))
        })
        .collect();
    let cursor = Cursor::from_params(&params, 25, MAX_PAGE, selected.len())?;
    let m = app.config.proficiency_match;
    let entities = selected[cursor.range(selected.len())]
        .iter()
        .map(|g| render::skill_group(org, g, m, false))
        .collect();
    let extra = params
        .get("name")
        .map(|n| format!("name={}", encode(n)))
        .unwrap_or_default();
    Ok(Json(cursor_listing(
        entities,
        selected.len(),
        cursor,
        "/api/v2/routing/skillgroups",
        &extra,
    )))
}

fn find(app: &AppState, id: &str) -> ApiResult<SkillGroup> {
    let uuid = uuid::Uuid::parse_str(id).ok();
    app.world
        .org
        .skill_groups()
        .into_iter()
        .find(|g| Some(g.id) == uuid)
        .ok_or_else(|| ApiError::not_found(format!("Skill group {id} not found")))
}

/// `GET /api/v2/routing/skillgroups/{id}` → `SkillGroup`, with its `skillConditions`.
pub(crate) async fn get_one(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let g = find(&app, &id)?;
    let m = app.config.proficiency_match;
    Ok(Json(render::skill_group(&app.world.org, &g, m, true)))
}

/// `GET /api/v2/routing/skillgroups/{id}/members?pageSize&after&before&expand=entities` →
/// `SkillGroupMemberEntityListing` of `UserReferenceWithName`, the name only with
/// `expand=entities`. Computed at each request from the proficiencies in force.
pub(crate) async fn members(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(q.as_deref());
    let g = find(&app, &id)?;
    let with_names = match params.get("expand") {
        None => false,
        Some("entities") => true,
        Some(other) => {
            return Err(ApiError::invalid_value(
                "expand",
                format!("expand must be entities, got {other}"),
            ))
        }
    };
    let org = &app.world.org;
    let all = org.skill_group_members(&g, app.config.proficiency_match);
    let cursor = Cursor::from_params(&params, 25, MAX_PAGE, all.len())?;
    let entities = all[cursor.range(all.len())]
        .iter()
        .map(|&i| {
            let uid = org.users[i as usize].id;
            let mut user = json!({
                "id": uid.to_string(),
                "selfUri": format!("/api/v2/users/{uid}"),
            });
            if with_names {
                user["name"] = json!(org.user_name(i));
            }
            user
        })
        .collect();
    let path = format!("/api/v2/routing/skillgroups/{}/members", g.id);
    let extra = if with_names { "expand=entities" } else { "" };
    Ok(Json(cursor_listing(
        entities,
        all.len(),
        cursor,
        &path,
        extra,
    )))
}
