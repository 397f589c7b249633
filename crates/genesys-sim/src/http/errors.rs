//! Genesys `ErrorBody` responses.
//!
//! Handlers return [`ApiError`]; its response carries the body as a [`PendingError`] extension
//! so the edge middleware can stamp `contextId` with the request's correlation id (the real
//! API's `contextId` equals the `inin-correlation-id` header) without every handler knowing it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// An API error, rendered as an `ErrorBody`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: String,
    pub(crate) message: String,
    /// Rarely present parts, boxed to keep `Result<_, ApiError>` small.
    pub(crate) extra: Box<Extra>,
}

/// Optional parts of an error.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra {
    /// The offending field (`details[].fieldName`).
    pub(crate) field: Option<String>,
    /// The limit that was hit (`limit{}` of a 429).
    pub(crate) limit: Option<Value>,
    /// Seconds for the `Retry-After` header.
    pub(crate) retry_after: Option<u64>,
}

/// The error body waiting for its `contextId`.
#[derive(Debug, Clone)]
pub(crate) struct PendingError(pub Map<String, Value>);

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            extra: Box::default(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad.request", message)
    }

    /// A 400 naming the offending field (`details[].fieldName`).
    pub(crate) fn invalid_value(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid.value", message);
        e.extra.field = Some(field.to_string());
        e
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not.found", message)
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
        )
    }

    pub(crate) fn conflict() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "conflict",
            "Resource conflict - Unexpected version was provided",
        )
    }

    /// A 429 in the documented wording, naming the per-token limit.
    pub(crate) fn rate_limited(retry_after: u64, limit: u32) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too.many.requests",
            format!(
                "Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"
            ),
        );
        e.extra.limit = Some(json!({
            "key": "client.credentials.token.rate.per.minute",
            "namespace": "platform.api",
            "value": limit,
        }));
        e.extra.retry_after = Some(retry_after);
        e
    }

    /// An injected failure with an arbitrary status.
    pub(crate) fn injected(status: u16) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = match status.as_u16() {
            400 => "bad.request",
            401 => "bad.credentials",
            403 => "missing.permissions",
            404 => "not.found",
            408 => "request.timeout",
            409 => "conflict",
            429 => "too.many.requests",
            502 => "bad.gateway",
            503 => "service.unavailable",
            504 => "gateway.timeout",
            _ => "internal.server.error",
        };
        let reason = status.canonical_reason().unwrap_or("Error");
        Self::new(
            status,
            code,
            format!("{reason} (injected by the simulator)"),
        )
    }

    /// The body without `contextId`.
    pub(crate) fn body(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("message".into(), json!(self.message));
        m.insert("code".into(), json!(self.code));
        m.insert("status".into(), json!(self.status.as_u16()));
        if let Some(field) = &self.extra.field {
            m.insert(
                "messageWithParams".into(),
                json!(format!("Invalid value for {{field}}: {}", self.message)),
            );
            m.insert("messageParams".into(), json!({ "field": field }));
            m.insert(
                "details".into(),
                json!([{ "errorCode": self.code, "fieldName": field }]),
            );
        }
        if let Some(limit) = &self.extra.limit {
            m.insert("limit".into(), limit.clone());
        }
        m
    }
}

/// Renders an error body with its `contextId`.
pub(crate) fn render_body(mut body: Map<String, Value>, context_id: &str) -> Vec<u8> {
    body.insert("contextId".into(), json!(context_id));
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let bytes = render_body(body.clone(), "");
        let mut resp = (self.status, bytes).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.extra.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp.extensions_mut().insert(PendingError(body));
        resp
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
