//! Task Management endpoints: create, read, update and query workitems; list statuses.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use crate::http::errors::{ApiError, ApiResult};
use crate::state::workitems::{Workitem, STATUSES};
use crate::state::AppState;

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

/// Refuses a field the simulator does not model (400 naming it) rather than ignoring it: a
/// request the real API would act on is never answered as if it had been.
fn only_fields(m: &Map<String, Value>, modelled: &[&str]) -> ApiResult<()> {
    match m.keys().find(|k| !modelled.contains(&k.as_str())) {
        Some(field) => Err(ApiError::invalid_value(
            field,
            format!("{field} is unknown or not supported by the simulator"),
        )),
        None => Ok(()),
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
pub(crate) async fn create(State(app): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let m = json_object(&body)?;
    only_fields(
        &m,
        &[
            "name",
            "typeId",
            "description",
            "assigneeId",
            "queueId",
            "priority",
            "dateDue",
            "externalTag",
            "customFields",
        ],
    )?;
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
pub(crate) async fn get_one(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let tasks = &app.world.tasks;
    let item = tasks.get(&id).ok_or_else(|| not_found(&id))?;
    Ok(Json(tasks.render(&item)))
}

/// `PATCH /api/v2/taskmanagement/workitems/{id}` (`statusId`, `assigneeId`, `description`,
/// `priority`, `dateDue`).
pub(crate) async fn update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let tasks = &app.world.tasks;
    let org = &app.world.org;
    tasks.get(&id).ok_or_else(|| not_found(&id))?;
    let m = json_object(&body)?;
    only_fields(
        &m,
        &[
            "statusId",
            "assigneeId",
            "description",
            "priority",
            "dateDue",
        ],
    )?;
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
    let priority =
        match m.get("priority") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                ApiError::invalid_value("priority", "priority must be an integer")
            })?),
        };
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

/// The filters of which a query needs at least one with `EQ`.
const ANCHOR_FILTERS: [&str; 4] = ["workbinId", "assigneeId", "queueId", "typeId"];
/// The most filters one query may carry.
const MAX_QUERY_FILTERS: usize = 3;

/// A parsed query filter.
struct QueryFilter {
    name: String,
    values: Vec<String>,
    operator: &'static str,
}

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
                format!("Filter name {name:?} is unknown or not supported by the simulator"),
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
        // The SDK's operators are EQ, NEQ, GT, LT, GTE, LTE, IN, CONTAINS, BETWEEN and
        // BEGINS_WITH; the simulator models the first two and IN.
        let operator = match op {
            "EQ" => "EQ",
            "NEQ" => "NEQ",
            "IN" => "IN",
            other => {
                return Err(ApiError::invalid_value(
                    "filters.operator",
                    format!("Operator {other:?} is unknown or not supported by the simulator"),
                ))
            }
        };
        if values.is_empty() || (operator != "IN" && values.len() != 1) {
            return Err(ApiError::invalid_value(
                "filters.values",
                "EQ and NEQ take exactly one value, IN at least one",
            ));
        }
        out.push(QueryFilter {
            name: name.to_string(),
            values,
            operator,
        });
    }
    Ok(out)
}

/// `POST /api/v2/taskmanagement/workitems/query`. `after` is an opaque cursor (the position
/// of the next match); `count` is the number of matches overall (sim choice).
pub(crate) async fn query(State(app): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let m = json_object(&body)?;
    only_fields(&m, &["filters", "pageSize", "after"])?;
    let filters = parse_filters(&m)?;
    // "This query requires at least one EQ filter on the workbinId, assigneeId, queueId or
    // typeId attributes. A maximum of three filters are allowed." (.NET SDK 270.0.0,
    // `build/docs/TaskManagementApi.md`, PostTaskmanagementWorkitemsQuery.)
    if filters.len() > MAX_QUERY_FILTERS {
        return Err(ApiError::invalid_value(
            "filters",
            format!(
                "A maximum of {MAX_QUERY_FILTERS} filters are allowed, got {}",
                filters.len()
            ),
        ));
    }
    let anchored = filters
        .iter()
        .any(|f| f.operator == "EQ" && ANCHOR_FILTERS.contains(&f.name.as_str()));
    if !anchored {
        return Err(ApiError::invalid_value(
            "filters",
            "The query requires at least one EQ filter on the workbinId, assigneeId, queueId or typeId attributes",
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
            filters.iter().all(|f| {
                let v = filter_value(item, &f.name);
                let hit = v.is_some_and(|v| f.values.iter().any(|x| x.eq_ignore_ascii_case(&v)));
                hit != (f.operator == "NEQ")
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
pub(crate) async fn statuses(
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
    Ok(Json(json!({
        "total": entities.len(),
        "entities": entities,
        "selfUri": format!("/api/v2/taskmanagement/worktypes/{id}/statuses"),
    })))
}
