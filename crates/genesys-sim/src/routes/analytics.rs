//! The three aggregate-query endpoints: parse ([`crate::data::aquery`]) then answer
//! ([`crate::data::aggregate`]). The engine runs on a blocking thread because an unfiltered query
//! over a large org is CPU work that must not stall the server's other connections.

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;

use crate::data::aggregate::{self, AggregateResponse};
use crate::data::aquery::{self, Kind, QueryLimits};
use crate::http::errors::{ApiError, ApiResult};
use crate::state::AppState;

async fn run(app: AppState, kind: Kind, body: Bytes) -> ApiResult<Json<AggregateResponse>> {
    let limits = QueryLimits {
        max_user_predicates: app.config.max_user_predicates,
        max_interval_days: app.config.max_interval_days,
    };
    let query = aquery::parse(kind, &app.world.org, limits, &body)?;
    let world = app.world.clone();
    let now = world.clock.now();
    let answer = tokio::task::spawn_blocking(move || aggregate::answer(kind, &world, &query, now))
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal.server.error",
                "The aggregation failed",
            )
        })?;
    Ok(Json(answer))
}

pub(crate) async fn conversations(
    State(app): State<AppState>,
    body: Bytes,
) -> ApiResult<Json<AggregateResponse>> {
    run(app, Kind::Conversations, body).await
}

pub(crate) async fn evaluations(
    State(app): State<AppState>,
    body: Bytes,
) -> ApiResult<Json<AggregateResponse>> {
    run(app, Kind::Evaluations, body).await
}

pub(crate) async fn surveys(
    State(app): State<AppState>,
    body: Bytes,
) -> ApiResult<Json<AggregateResponse>> {
    run(app, Kind::Surveys, body).await
}
