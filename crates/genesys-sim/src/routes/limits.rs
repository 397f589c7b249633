//! `GET /api/v2/organizations/limits/namespaces/{ns}`: the limits a client should pace to.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use crate::http::errors::{ApiError, ApiResult};
use crate::state::AppState;

/// What `inin-ratelimit-allowed` and the limits endpoint say when the sim is unlimited
/// (`rate_limit_per_minute = 0`); sim choice, a number so clients can parse it.
pub(crate) const UNLIMITED: u32 = i32::MAX as u32;

pub(crate) fn effective_rate(configured: u32) -> u32 {
    if configured == 0 {
        UNLIMITED
    } else {
        configured
    }
}

pub(crate) async fn namespace(
    State(app): State<AppState>,
    Path(ns): Path<String>,
) -> ApiResult<Json<Value>> {
    let cfg = &app.config;
    // Analytics keys are sim choices: no public document names them.
    let entries: Vec<(&str, u64)> = match ns.as_str() {
        "platform.api" => vec![
            (
                "client.credentials.token.rate.per.minute",
                effective_rate(cfg.rate_limit_per_minute) as u64,
            ),
            ("token.creation.rate.per.minute", 300),
        ],
        "analytics" => vec![
            (
                "aggregates.query.user.predicates.max",
                cfg.max_user_predicates as u64,
            ),
            (
                "aggregates.query.interval.days.max",
                cfg.max_interval_days as u64,
            ),
            ("aggregates.query.views.max", 10),
            ("aggregates.query.clauses.nesting.max", 2),
        ],
        _ => return Err(ApiError::not_found(format!("Namespace {ns} not found"))),
    };
    let entities: Vec<Value> = entries
        .into_iter()
        .map(|(key, value)| json!({ "key": key, "namespace": ns, "value": value }))
        .collect();
    // `LimitsEntityListing` has `entities` only (.NET SDK 270.0.0,
    // `build/docs/LimitsEntityListing.md`).
    Ok(Json(json!({ "entities": entities })))
}
