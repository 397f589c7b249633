//! Task Management endpoints: create, read, update and query workitems; list statuses.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use super::errors::{ApiError, ApiResult};
use super::server::AppState;
use super::workitems::{Workitem, STATUSES};

/// Sim choice: the largest workitem query page (the brief's 200).
const MAX_QUERY_PAGE: usize = 200;

fn json_object(body: &[u8]) -> ApiResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "The request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "The request body is not valid JSON: {e}"
        ))),
    }
}

/// An optional string field; present but not a string is a 400.
fn opt_str<'a>(m: &'a Map<String, Value>, field: &str) -> ApiResult<Option<&'a str>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid_value(
            field,
            format!("{field} must be a string"),
        )),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Workitem {id} not found"))
}

/// Checks a user or queue reference and returns its UUID.
fn reference(
    field: &str,
    id: Option<&str>,
    exists: impl Fn(&str) -> bool,
) -> ApiResult<Option<uuid::Uuid>> {
    let Some(id) = id else { return Ok(None) };
    match uuid::Uuid::parse_str(id) {
        Ok(u) if exists(id) => Ok(Some(u)),
        _ => Err(ApiError::invalid_value(
            field,
            format!("{field} {id} does not exist"),
        )),
    }
}

fn parse_due(s: Option<&str>, now: DateTime<Utc>) -> ApiResult<Option<DateTime<Utc>>> {
    let Some(s) = s else { return Ok(None) };
    let due = DateTime::parse_from_rfc3339(s)
        .map_err(|_| ApiError::invalid_value("dateDue", "dateDue must be an ISO-8601 date-time"))?
        .with_timezone(&Utc);
    if due > now + Duration::days(365) {
        return Err(ApiError::invalid_value(
            "dateDue",
            "dateDue may be at most 365 days ahead",
        ));
    }
    Ok(Some(due))
}

fn check_len(field: &str, value: &str, min: usize, max: usize) -> ApiResult<()> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ApiError::invalid_value(
            field,
            format!("{field} must be {min} to {max} characters long"),
        ));
    }
    Ok(())
}

/// `POST /api/v2/taskmanagement/workitems` (WorkitemCreate).
pub async fn create(State(app): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let m = json_object(&body)?;
    let tasks = &app.world.tasks;
    let org = &app.world.org;
    let name =
        opt_str(&m, "name")?.ok_or_else(|| ApiError::invalid_value("name", "name is required"))?;
    check_len("name", name, 3, 256)?;
    let type_id = opt_str(&m, "typeId")?
        .ok_or_else(|| ApiError::invalid_value("typeId", "typeId is required"))?;
    if uuid::Uuid::parse_str(type_id).ok() != Some(tasks.worktype_id) {
        return Err(ApiError::invalid_value(
            "typeId",
            format!("Worktype {type_id} does not exist"),
        ));
    }
    let description = opt_str(&m, "description")?;
    if let Some(d) = description {
        check_len("description", d, 0, 512)?;
    }
    let assignee = reference("assigneeId", opt_str(&m, "assigneeId")?, |id| {
        org.user_by_id(id).is_some()
    })?;
    let queue = reference("queueId", opt_str(&m, "queueId")?, |id| {
        org.queue_by_id(id).is_some()
    })?;
    let priority = match m.get("priority") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::invalid_value("priority", "priority must be an integer"))?,
    };
    let now = app.world.clock.now();
    let date_due = parse_due(opt_str(&m, "dateDue")?, now)?;
    let external_tag = opt_str(&m, "externalTag")?.map(str::to_string);
    let custom_fields = match m.get("customFields") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => {
            return Err(ApiError::invalid_value(
                "customFields",
                "customFields must be an object",
            ))
        }
    };
    let item = tasks.insert(Workitem {
        id: uuid::Uuid::nil(),
        name: name.to_string(),
        description: description.map(str::to_string),
        priority,
        date_created: now,
        date_modified: now,
        date_due,
        date_closed: None,
        status: 0,
        assignee,
        queue,
        external_tag,
        custom_fields,
    });
    Ok(Json(tasks.render(&item)))
}

/// `GET /api/v2/taskmanagement/workitems/{id}`.
pub async fn get_one(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let tasks = &app.world.tasks;
    let item = tasks.get(&id).ok_or_else(|| not_found(&id))?;
    Ok(Json(tasks.render(&item)))
}

/// `PATCH /api/v2/taskmanagement/workitems/{id}` (`statusId`, `assigneeId`, `description`,
/// `priority`, `dateDue`).
pub async fn update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let tasks = &app.world.tasks;
    let org = &app.world.org;
    tasks.get(&id).ok_or_else(|| not_found(&id))?;
    let m = json_object(&body)?;
    let status = match opt_str(&m, "statusId")? {
        None => None,
        Some(s) => Some(tasks.status_by_id(s).ok_or_else(|| {
            ApiError::invalid_value("statusId", format!("Status {s} does not exist"))
        })?),
    };
    let assignee = reference("assigneeId", opt_str(&m, "assigneeId")?, |id| {
        org.user_by_id(id).is_some()
    })?;
    let description = opt_str(&m, "description")?;
    if let Some(d) = description {
        check_len("description", d, 0, 512)?;
    }
    let priority = m.get("priority").and_then(Value::as_i64);
    let date_due = parse_due(opt_str(&m, "dateDue")?, app.world.clock.now())?;
    if let Some(s) = status {
        tasks.set_status(&id, s);
    }
    let item = tasks
        .update(&id, |w| {
            if assignee.is_some() {
                w.assignee = assignee;
            }
            if let Some(d) = description {
                w.description = Some(d.to_string());
            }
            if let Some(p) = priority {
                w.priority = p;
            }
            if date_due.is_some() {
                w.date_due = date_due;
            }
        })
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(tasks.render(&item)))
}

/// Which rendered field a query filter name reads.
fn filter_value(item: &Value, name: &str) -> Option<String> {
    let v = match name {
        "externalTag" | "statusCategory" | "id" | "name" => item.get(name),
        "typeId" => item.pointer("/type/id"),
        "statusId" => item.pointer("/status/id"),
        "assigneeId" => item.pointer("/assignee/id"),
        "queueId" => item.pointer("/queue/id"),
        _ => None,
    };
    v.and_then(Value::as_str).map(str::to_string)
}

const FILTER_NAMES: [&str; 8] = [
    "externalTag",
    "statusCategory",
    "id",
    "name",
    "typeId",
    "statusId",
    "assigneeId",
    "queueId",
];

/// A parsed query filter: field name, wanted values, negated (`NEQ`/`NIN`).
type QueryFilter = (String, Vec<String>, bool);

fn parse_filters(m: &Map<String, Value>) -> ApiResult<Vec<QueryFilter>> {
    let Some(list) = m.get("filters") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| ApiError::invalid_value("filters", "filters must be an array"))?;
    let mut out = Vec::new();
    for f in list {
        let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
        if !FILTER_NAMES.contains(&name) {
            return Err(ApiError::invalid_value(
                "filters.name",
                format!("Unsupported filter name {name:?}"),
            ));
        }
        let values: Vec<String> = f
            .get("values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let op = f
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let negate = match op {
            "EQ" | "IN" => false,
            "NEQ" | "NIN" => true,
            other => {
                return Err(ApiError::invalid_value(
                    "filters.operator",
                    format!("Unsupported operator {other:?}"),
                ))
            }
        };
        if values.is_empty() || (matches!(op, "EQ" | "NEQ") && values.len() != 1) {
            return Err(ApiError::invalid_value(
                "filters.values",
                "EQ takes exactly one value, IN at least one",
            ));
        }
        out.push((name.to_string(), values, negate));
    }
    Ok(out)
}

/// `POST /api/v2/taskmanagement/workitems/query`. `after` is an opaque cursor (the position
/// of the next match); `count` is the number of matches overall (sim choice).
pub async fn query(State(app): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let m = json_object(&body)?;
    let filters = parse_filters(&m)?;
    // The real API refuses a query without an EQ filter on workbinId, assigneeId, queueId or
    // typeId (`docs/genesys-api.md` §7); the simulator accepts the three below.
    let anchored = m
        .get("filters")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter().any(|f| {
                f.get("operator").and_then(Value::as_str) == Some("EQ")
                    && f.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| ["workbinId", "assigneeId", "typeId"].contains(&n))
            })
        });
    if !anchored {
        return Err(ApiError::invalid_value(
            "filters",
            "The query requires at least one EQ filter on the workbinId, assigneeId or typeId attributes",
        ));
    }
    let page_size = match m.get("pageSize") {
        None | Some(Value::Null) => 25,
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .filter(|n| (1..=MAX_QUERY_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_value(
                    "pageSize",
                    format!("pageSize must be between 1 and {MAX_QUERY_PAGE}"),
                )
            })?,
    };
    let start = match opt_str(&m, "after")? {
        None => 0,
        Some(a) => a
            .parse::<usize>()
            .map_err(|_| ApiError::invalid_value("after", "Invalid cursor"))?,
    };
    let tasks = &app.world.tasks;
    let matching: Vec<Value> = tasks
        .all()
        .iter()
        .map(|w| tasks.render(w))
        .filter(|item| {
            filters.iter().all(|(name, values, negate)| {
                let v = filter_value(item, name);
                let hit = v.is_some_and(|v| values.iter().any(|x| x.eq_ignore_ascii_case(&v)));
                hit != *negate
            })
        })
        .collect();
    let end = start.saturating_add(page_size).min(matching.len());
    let page: Vec<Value> = matching
        .get(start.min(end)..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut out = json!({ "entities": page, "count": matching.len() });
    if end < matching.len() {
        out["after"] = json!(end.to_string());
    }
    Ok(Json(out))
}

/// `GET /api/v2/taskmanagement/worktypes/{id}/statuses`.
pub async fn statuses(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let tasks = &app.world.tasks;
    if uuid::Uuid::parse_str(&id).ok() != Some(tasks.worktype_id) {
        return Err(ApiError::not_found(format!("Worktype {id} not found")));
    }
    let entities: Vec<Value> = tasks
        .status_ids
        .iter()
        .zip(STATUSES)
        .map(|(sid, (name, category))| {
            json!({
                "id": sid.to_string(),
                "name": name,
                "category": category,
                "selfUri": format!("/api/v2/taskmanagement/worktypes/{id}/statuses/{sid}"),
            })
        })
        .collect();
    Ok(Json(json!({ "entities": entities })))
}
