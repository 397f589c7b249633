//! Typed API errors carrying what Genesys support asks for: status, code, message, correlation id.

use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// The API's `ErrorBody` (all fields optional; .NET SDK 270.0.0, `build/docs/ErrorBody.md`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorBody {
    pub message: Option<String>,
    pub code: Option<String>,
    pub status: Option<u16>,
    pub context_id: Option<String>,
    pub limit: Option<LimitRef>,
}

/// The limit named in a 429 body.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct LimitRef {
    pub key: Option<String>,
    pub namespace: Option<String>,
    pub value: Option<u64>,
}

/// The OAuth endpoint's error body (`AuthErrorResponse`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthErrorBody {
    pub error: Option<String>,
    pub description: Option<String>,
    pub error_description: Option<String>,
}

/// A failed API call, after the retry layer has given up or decided not to retry.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API answered with a non-success status.
    #[error("{endpoint}: HTTP {status}{code}: {message}{correlation}",
        code = opt_prefix(" ", code.as_deref()),
        message = message.as_deref().unwrap_or("(no message)"),
        correlation = opt_wrap(" (correlation id ", correlation_id.as_deref(), ")"))]
    Status {
        endpoint: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        correlation_id: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The login failed; names the client id and the server's words, never the secret.
    #[error("login failed for OAuth client id `{client_id}`: {detail}")]
    Login {
        client_id: String,
        detail: String,
        /// The token endpoint's HTTP status, when it answered.
        status: Option<u16>,
    },
    /// No answer: connect error, reset, or timeout.
    #[error("{endpoint}: {kind}: {}", with_causes(source))]
    Transport {
        endpoint: String,
        kind: TransportKind,
        #[source]
        source: reqwest::Error,
    },
    /// The body was not the JSON we expected (malformed, truncated, or a changed shape).
    #[error("{endpoint}: unexpected response body: {reason}{correlation}",
        correlation = opt_wrap(" (correlation id ", correlation_id.as_deref(), ")"))]
    Decode {
        endpoint: String,
        reason: String,
        correlation_id: Option<String>,
    },
    /// Retrying stopped because the shared retry budget is spent (an outage is not fed with retries).
    #[error("{endpoint}: giving up, the retry budget is spent (last error: {last})")]
    RetryBudgetSpent {
        endpoint: String,
        last: Box<ApiError>,
    },
    /// A request we refused to send (e.g. more than 50 skills in one bulk write).
    #[error("{endpoint}: {reason}")]
    Invalid { endpoint: String, reason: String },
    /// The client was shut down while the call waited (pacing, `Retry-After`, backoff), so
    /// it was given up. `maybe_sent`: an earlier attempt timed out or got a 5xx, so it may
    /// have reached the server; otherwise nothing of this call was processed.
    #[error("{endpoint}: given up, the process is stopping{note}",
        note = if *maybe_sent { " (an earlier attempt may have reached the server)" } else { " (nothing was processed)" })]
    Cancelled { endpoint: String, maybe_sent: bool },
}

/// What kind of transport failure happened (timeouts are retried differently from refusals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Connect,
    Timeout,
    Other,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Connect => "connection failed",
            TransportKind::Timeout => "timed out",
            TransportKind::Other => "transport error",
        })
    }
}

fn opt_prefix(prefix: &str, value: Option<&str>) -> String {
    value.map(|v| format!("{prefix}{v}")).unwrap_or_default()
}

fn opt_wrap(open: &str, value: Option<&str>, close: &str) -> String {
    value
        .map(|v| format!("{open}{v}{close}"))
        .unwrap_or_default()
}

impl ApiError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::RetryBudgetSpent { last, .. } => last.status(),
            _ => None,
        }
    }

    /// The login server refused the client id or secret (400/401/403 from the token
    /// endpoint): retrying or restarting cannot help until the credentials are fixed.
    pub fn is_credentials_rejected(&self) -> bool {
        matches!(
            self,
            ApiError::Login {
                status: Some(400 | 401 | 403),
                ..
            }
        )
    }

    /// True when the call was given up because the process is stopping.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ApiError::Cancelled { .. })
    }

    /// The `inin-correlation-id` / `contextId` of the failed call, for support cases.
    pub fn correlation_id(&self) -> Option<&str> {
        match self {
            ApiError::Status { correlation_id, .. } | ApiError::Decode { correlation_id, .. } => {
                correlation_id.as_deref()
            }
            ApiError::RetryBudgetSpent { last, .. } => last.correlation_id(),
            _ => None,
        }
    }

    /// True for the version-mismatch answers the routing-skill writes can give
    /// (409, or 400 "... does not match the current version"): re-read and re-decide.
    pub fn is_version_conflict(&self) -> bool {
        match self {
            ApiError::Status { status: 409, .. } => true,
            ApiError::Status {
                status: 400,
                message: Some(m),
                ..
            } => m
                .to_ascii_lowercase()
                .contains("does not match the current version"),
            _ => false,
        }
    }

    /// Builds a status error from a response body (an `ErrorBody` when it parses).
    pub(crate) fn from_response(
        endpoint: &str,
        status: u16,
        body: &[u8],
        header_correlation: Option<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
        let message = parsed
            .message
            .or_else(|| {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                (!text.is_empty()).then(|| text.chars().take(200).collect())
            })
            // The server's words end up in logs and tables, and may echo org-edited names.
            .map(|m: String| crate::text::printable(&m).into_owned());
        ApiError::Status {
            endpoint: endpoint.to_string(),
            status,
            code: parsed.code,
            message,
            // The SDKs copy the header when the body has no contextId; so do we.
            correlation_id: parsed.context_id.or(header_correlation),
            retry_after,
        }
    }
}

/// An error's text with its causes (`error sending request: client error (Connect): invalid
/// peer certificate: UnknownIssuer`): reqwest's own text alone does not say whether DNS, a
/// proxy or a certificate failed. Any `user:password@` in it is shown as `***@`.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let next = c.to_string();
        // hyper and reqwest often repeat the inner text in the outer one.
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    crate::text::redact_userinfo(&text).into_owned()
}

/// Why an attempt is worth repeating; each reason has its own price in the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// 429: the server said when; free, since waiting is exactly what it asked.
    RateLimited,
    /// 502/503/504.
    ServerError,
    /// The attempt timed out.
    Timeout,
    /// Could not connect (nothing was sent).
    Connect,
    /// 401: the token was refused; refresh it once and repeat once.
    Unauthorized,
}

impl RetryReason {
    /// Its price in the retry budget.
    pub(super) fn cost(self) -> u32 {
        match self {
            RetryReason::RateLimited | RetryReason::Unauthorized => 0,
            RetryReason::ServerError | RetryReason::Connect => 5,
            RetryReason::Timeout => 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_names_code_message_and_correlation() {
        let body = br#"{"message":"Rate limit exceeded","code":"too.many.requests","status":429,"contextId":"ctx-1"}"#;
        let err = ApiError::from_response("GET /api/v2/users", 429, body, Some("hdr".into()), None);
        let text = err.to_string();
        assert_eq!(
            text,
            "GET /api/v2/users: HTTP 429 too.many.requests: Rate limit exceeded (correlation id ctx-1)"
        );
        assert_eq!(err.correlation_id(), Some("ctx-1"));
    }

    #[test]
    fn header_correlation_is_used_when_body_has_none() {
        let err = ApiError::from_response(
            "x",
            502,
            b"<html>bad gateway</html>",
            Some("hdr-9".into()),
            None,
        );
        assert_eq!(err.correlation_id(), Some("hdr-9"));
        assert!(err.to_string().contains("bad gateway"));
    }

    #[test]
    fn control_characters_in_a_server_message_are_escaped() {
        let body = br#"{"message":"no user \"Eve\u001b[2J\nFORGED\""}"#;
        let text = ApiError::from_response("x", 404, body, None, None).to_string();
        assert!(text.contains(r"Eve\x1b[2J\nFORGED"), "{text}");
        assert!(!text.contains('\n') && !text.contains('\x1b'), "{text}");
    }

    #[test]
    fn version_conflicts_are_recognised() {
        let conflict = ApiError::from_response("x", 409, b"{}", None, None);
        assert!(conflict.is_version_conflict());
        let mismatch = ApiError::from_response(
            "x",
            400,
            br#"{"message":"The version 3 does not match the current version 4"}"#,
            None,
            None,
        );
        assert!(mismatch.is_version_conflict());
        assert!(!ApiError::from_response("x", 400, b"{}", None, None).is_version_conflict());
    }
}
