//! Middleware: the edge every request passes (correlation id, latency, error-body stamping,
//! counters) and the gate in front of `/api/v2` (bearer auth, rate limit, injected faults).

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::errors::{render_body, ApiError, PendingError};
use crate::http::server::template_for;
use crate::routes::limits::effective_rate;
use crate::state::record::Exchange;
use crate::state::tokens::Charge;
use crate::state::AppState;

/// Paths under this prefix are the simulator's own (webhook sink, fault control).
const SIM_PREFIX: &str = "/_sim/";

pub(crate) async fn edge(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let cid = uuid::Uuid::new_v4().to_string();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let (req, recorded) = if app.config.record {
        let query = req.uri().query().map(str::to_string);
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (parts, body) = req.into_parts();
        let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
        let req = Request::from_parts(parts, Body::from(body.clone()));
        (req, Some((query, content_type, body)))
    } else {
        (req, None)
    };
    let template = template_for(&path).unwrap_or("<unmatched>");
    if !path.starts_with(SIM_PREFIX) {
        let delay = app.faults.delay_for(&path);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    let mut resp = next.run(req).await;
    if let Some(PendingError(body)) = resp.extensions_mut().remove::<PendingError>() {
        *resp.body_mut() = Body::from(render_body(body, &cid));
        resp.headers_mut().remove(header::CONTENT_LENGTH);
    }
    if let Ok(v) = HeaderValue::from_str(&cid) {
        resp.headers_mut().insert("inin-correlation-id", v);
    }
    if path != "/_sim/faults" {
        app.counters
            .record(&method, template, resp.status().as_u16());
    }
    match recorded {
        Some((query, content_type, request_body)) => {
            let (parts, body) = resp.into_parts();
            let response_body = to_bytes(body, usize::MAX).await.unwrap_or_default();
            app.recorder.push(Exchange {
                method,
                path,
                query,
                content_type,
                request_body: request_body.to_vec(),
                status: parts.status.as_u16(),
                response_body: response_body.to_vec(),
            });
            Response::from_parts(parts, Body::from(response_body))
        }
        None => resp,
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Cuts a response body in half and answers 200: a body the client cannot parse.
async fn truncate(resp: Response) -> Response {
    let bytes = to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let cut = if bytes.len() >= 4 {
        bytes.slice(..bytes.len() / 2)
    } else {
        axum::body::Bytes::from_static(b"{\"entities\":[{\"id\":")
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        cut,
    )
        .into_response()
}

pub(crate) async fn api_gate(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    // The 429 body names the per-minute limit; the header what one window allows.
    let limit = effective_rate(app.config.rate_limit_per_minute);
    let allowed = effective_rate(app.config.window_allowance());
    let charge = match bearer(req.headers()) {
        Some(t) => app.tokens.charge(t, app.faults.revocation_epoch()),
        None => Charge::Invalid,
    };
    let (count, reset) = match charge {
        Charge::Ok { count, reset_secs } | Charge::Limited { count, reset_secs } => {
            (count, reset_secs)
        }
        Charge::Invalid => (0, app.config.rate_window().as_secs()),
    };
    let mut resp = match charge {
        Charge::Invalid => ApiError::unauthorized().into_response(),
        Charge::Limited { .. } => ApiError::rate_limited(reset, limit).into_response(),
        Charge::Ok { .. } => {
            if let Some(secs) = app.faults.take_storm() {
                ApiError::rate_limited(secs, limit).into_response()
            } else if let Some(status) = app.faults.take_failure(&path) {
                ApiError::injected(status).into_response()
            } else {
                let resp = next.run(req).await;
                if app.faults.take_malformed(&path) {
                    truncate(resp).await
                } else {
                    resp
                }
            }
        }
    };
    let h = resp.headers_mut();
    h.insert("inin-ratelimit-count", HeaderValue::from(count));
    h.insert("inin-ratelimit-allowed", HeaderValue::from(allowed));
    h.insert("inin-ratelimit-reset", HeaderValue::from(reset));
    resp
}

/// 404 for paths the simulator does not serve.
pub(crate) async fn not_found(req: Request) -> Response {
    ApiError::not_found(format!("No resource at {}", req.uri().path())).into_response()
}

pub(crate) async fn method_not_allowed(req: Request) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method.not.allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
    .into_response()
}
