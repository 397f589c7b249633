//! The route table and the router: which handler in `routes` serves which path, behind
//! which middleware in `gate`.

use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, post};
use axum::Router;

use crate::http::gate;
use crate::routes::{analytics, control, limits, oauth, routing, skillgroups, tasks, users};
use crate::state::AppState;

/// Every route, as `(method, template)`: the simulator's whole route table (the router below
/// serves exactly these; `tests/it/sim_contract.rs` checks that, and that each has an entry in
/// the project's API contract). Paths under `/_sim/` are the simulator's own.
const ROUTES: [(&str, &str); 24] = [
    ("POST", "/oauth/token"),
    ("POST", "/_sim/webhook"),
    ("POST", "/_sim/faults"),
    ("GET", "/api/v2/organizations/limits/namespaces/{ns}"),
    ("GET", "/api/v2/users"),
    ("GET", "/api/v2/users/{id}"),
    ("GET", "/api/v2/users/{id}/routingskills"),
    ("PATCH", "/api/v2/users/{id}/routingskills/bulk"),
    ("PUT", "/api/v2/users/{id}/routingskills/bulk"),
    ("GET", "/api/v2/routing/skills"),
    ("GET", "/api/v2/routing/queues"),
    ("GET", "/api/v2/routing/queues/{id}/members"),
    ("GET", "/api/v2/routing/skillgroups"),
    ("GET", "/api/v2/routing/skillgroups/{id}"),
    ("GET", "/api/v2/routing/skillgroups/{id}/members"),
    ("GET", "/api/v2/groups/{id}/individuals"),
    ("POST", "/api/v2/analytics/conversations/aggregates/query"),
    ("POST", "/api/v2/analytics/evaluations/aggregates/query"),
    ("POST", "/api/v2/analytics/surveys/aggregates/query"),
    ("POST", "/api/v2/taskmanagement/workitems"),
    ("POST", "/api/v2/taskmanagement/workitems/query"),
    ("GET", "/api/v2/taskmanagement/workitems/{id}"),
    ("PATCH", "/api/v2/taskmanagement/workitems/{id}"),
    ("GET", "/api/v2/taskmanagement/worktypes/{id}/statuses"),
];

/// The route table: `(method, template)` of every route the simulator serves.
pub fn route_templates() -> &'static [(&'static str, &'static str)] {
    &ROUTES
}

/// The route template a concrete path matches, if any (the counters key requests by
/// template; axum's `MatchedPath` needs a feature we don't enable).
pub(crate) fn template_for(path: &str) -> Option<&'static str> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let fits = |t: &str| {
        let ts: Vec<&str> = t.split('/').collect();
        ts.len() == segs.len()
            && ts
                .iter()
                .zip(&segs)
                .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
    };
    ROUTES
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| fits(t))
        // Prefer the template with the most static segments.
        .max_by_key(|t| t.split('/').filter(|s| !s.starts_with('{')).count())
}

/// The `/api/v2` routes the real client uses, behind the auth/rate-limit/fault gate.
fn api_routes(app: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/organizations/limits/namespaces/{ns}",
            get(limits::namespace),
        )
        .route("/api/v2/users", get(users::list))
        .route("/api/v2/users/{id}", get(users::get_one))
        .route("/api/v2/users/{id}/routingskills", get(users::skills))
        .route(
            "/api/v2/users/{id}/routingskills/bulk",
            patch(users::patch_bulk).put(users::put_bulk),
        )
        .route("/api/v2/routing/skills", get(routing::skills))
        .route("/api/v2/routing/queues", get(routing::queues))
        .route(
            "/api/v2/routing/queues/{id}/members",
            get(routing::queue_members),
        )
        .route("/api/v2/routing/skillgroups", get(skillgroups::list))
        .route(
            "/api/v2/routing/skillgroups/{id}",
            get(skillgroups::get_one),
        )
        .route(
            "/api/v2/routing/skillgroups/{id}/members",
            get(skillgroups::members),
        )
        .route(
            "/api/v2/groups/{id}/individuals",
            get(routing::group_individuals),
        )
        .route(
            "/api/v2/analytics/conversations/aggregates/query",
            post(analytics::conversations),
        )
        .route(
            "/api/v2/analytics/evaluations/aggregates/query",
            post(analytics::evaluations),
        )
        .route(
            "/api/v2/analytics/surveys/aggregates/query",
            post(analytics::surveys),
        )
        .route("/api/v2/taskmanagement/workitems", post(tasks::create))
        .route("/api/v2/taskmanagement/workitems/query", post(tasks::query))
        .route(
            "/api/v2/taskmanagement/workitems/{id}",
            get(tasks::get_one).patch(tasks::update),
        )
        .route(
            "/api/v2/taskmanagement/worktypes/{id}/statuses",
            get(tasks::statuses),
        )
        .route_layer(from_fn_with_state(app.clone(), gate::api_gate))
}

/// The whole router: login, API, simulator endpoints, all behind the edge middleware.
pub(crate) fn router(app: AppState) -> Router {
    Router::new()
        .route("/oauth/token", post(oauth::token))
        .route("/_sim/webhook", post(control::webhook))
        .route("/_sim/faults", post(control::faults))
        .merge(api_routes(&app))
        .fallback(gate::not_found)
        .method_not_allowed_fallback(gate::method_not_allowed)
        .layer(from_fn_with_state(app.clone(), gate::edge))
        .with_state(app)
}

#[cfg(test)]
mod tests {
    use super::template_for;

    #[test]
    fn templates_prefer_static_segments() {
        assert_eq!(
            template_for("/api/v2/taskmanagement/workitems/query"),
            Some("/api/v2/taskmanagement/workitems/query")
        );
        assert_eq!(
            template_for("/api/v2/taskmanagement/workitems/abc"),
            Some("/api/v2/taskmanagement/workitems/{id}")
        );
        assert_eq!(
            template_for("/api/v2/users/u1/routingskills"),
            Some("/api/v2/users/{id}/routingskills")
        );
        assert_eq!(template_for("/api/v2/nope"), None);
    }
}
