//! Sends one API request through the whole stack: concurrency limit → pacer → token →
//! HTTP → classification → retry. Every endpoint method goes through [`Transport::send`].

use super::auth::TokenManager;
use super::error::{ApiError, TransportKind};
use super::pacer::{Pacer, RateLimitHeaders};
use super::retry::{
    self, classify_status, parse_retry_after, Attempt, RetryBudget, RetryContext, RetryPolicy,
    RetryReason,
};
use super::stats::ApiStats;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// One request, described before it is sent (so it can be sent again).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// The concrete path, e.g. `/api/v2/users/abc/routingskills`.
    pub path: String,
    /// The path template used as the metrics label, e.g. `/api/v2/users/{id}/routingskills`.
    pub template: &'static str,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Arc<Vec<u8>>>,
    /// Whether sending it twice has the same effect as once (only those are retried after a
    /// timeout or a 5xx). Reads, analytics queries and absolute-value skill writes are.
    pub idempotent: bool,
}

impl ApiRequest {
    pub fn get(path: String, template: &'static str) -> Self {
        Self {
            method: Method::GET,
            path,
            template,
            query: Vec::new(),
            body: None,
            idempotent: true,
        }
    }

    pub fn with_json<B: serde::Serialize>(
        mut self,
        method: Method,
        body: &B,
    ) -> Result<Self, ApiError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Invalid {
            endpoint: format!("{method} {}", self.template),
            reason: format!("cannot encode the request body: {e}"),
        })?;
        self.method = method;
        self.body = Some(Arc::new(bytes));
        Ok(self)
    }

    pub fn query(mut self, key: &'static str, value: impl ToString) -> Self {
        self.query.push((key, value.to_string()));
        self
    }

    pub fn not_idempotent(mut self) -> Self {
        self.idempotent = false;
        self
    }

    /// Whether the request changes something (as opposed to a read or a query).
    pub fn is_write(&self) -> bool {
        matches!(self.method, Method::PATCH | Method::PUT | Method::DELETE)
    }

    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub body: bytes::Bytes,
    pub correlation_id: Option<String>,
}

/// The shared machinery of one client.
pub struct Transport {
    pub(crate) http: reqwest::Client,
    pub(crate) api_base: Url,
    pub(crate) auth: Arc<TokenManager>,
    pub(crate) policy: RetryPolicy,
    pub(crate) budget: RetryBudget,
    pub(crate) pacer: Pacer,
    pub(crate) permits: Semaphore,
    pub(crate) stats: Arc<ApiStats>,
    pub(crate) request_timeout: Duration,
    /// Only for `Retry-After` given as an HTTP date.
    pub(crate) clock: crate::clock::Clock,
    /// Ends every wait (token, concurrency slot, pacing, retry) when the process stops.
    pub(crate) shutdown: super::shutdown::Shutdown,
}

fn correlation_of(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get("inin-correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl Transport {
    /// Sends `request` with pacing, auth and retries; returns the 2xx answer or a typed error.
    pub async fn send(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let ctx = RetryContext {
            policy: &self.policy,
            budget: &self.budget,
            pacer: &self.pacer,
            stats: &self.stats,
            shutdown: &self.shutdown,
        };
        retry::execute(&ctx, |_| self.attempt(request)).await
    }

    /// Sends and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, request: &ApiRequest) -> Result<T, ApiError> {
        self.json_traced(request).await.map(|(value, _)| value)
    }

    /// As [`Transport::json`], also returning the answer's correlation id (for the ledger).
    /// A 2xx body that does not parse (truncated by a proxy, say) is fetched once more when
    /// the request is an idempotent read or query; a second bad body is an error. A write
    /// (PATCH/PUT/DELETE) is never sent again for a bad body: its 2xx already says it
    /// landed, and resending would skip the re-read that protects a person's edit.
    pub async fn json_traced<T: DeserializeOwned>(
        &self,
        request: &ApiRequest,
    ) -> Result<(T, Option<String>), ApiError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let response = self.send(request).await?;
            match serde_json::from_slice(&response.body) {
                Ok(value) => return Ok((value, response.correlation_id)),
                Err(e) => {
                    self.stats.record_decode_error();
                    let error = ApiError::Decode {
                        endpoint: request.label(),
                        reason: e.to_string(),
                        correlation_id: response.correlation_id,
                    };
                    if !request.idempotent || request.is_write() || tries > 1 {
                        return Err(error);
                    }
                    tracing::warn!(%error, "unreadable response body; asking once more");
                    self.stats.record_retry(RetryReason::ServerError);
                }
            }
        }
    }

    async fn attempt(&self, request: &ApiRequest) -> Attempt<ApiResponse> {
        let label = request.label();
        let cancelled = |endpoint: String| {
            Attempt::Fail(ApiError::Cancelled {
                endpoint,
                maybe_sent: false,
            })
        };
        if self.shutdown.is_triggered() {
            return cancelled(label);
        }
        let token = tokio::select! {
            token = self.auth.token() => match token {
                Ok(t) => t,
                Err(e) => return Attempt::Fail(e),
            },
            () = self.shutdown.triggered() => return cancelled(label),
        };
        let permit = tokio::select! {
            permit = self.permits.acquire() => permit,
            () = self.shutdown.triggered() => return cancelled(label),
        };
        let Ok(_permit) = permit else {
            return Attempt::Fail(ApiError::Invalid {
                endpoint: label,
                reason: "the client is shutting down".into(),
            });
        };
        let Some(ticket) = self.pacer.acquire_unless(&self.shutdown).await else {
            return cancelled(label);
        };
        let url = super::region::join(&self.api_base, &request.path);
        let mut builder = self
            .http
            .request(request.method.clone(), url)
            .bearer_auth(token.bearer())
            .timeout(self.request_timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.as_ref().clone());
        }
        // Latency is measured from here: pacing and the concurrency slot are our own waits.
        let sent = std::time::Instant::now();
        let result = match builder.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(body) => Ok((status, headers, body)),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        let (status, headers, body) = match result {
            Ok(parts) => parts,
            Err(e) => {
                self.stats.record_call(&label, "error", sent.elapsed());
                let kind = if e.is_timeout() {
                    TransportKind::Timeout
                } else if e.is_connect() {
                    TransportKind::Connect
                } else {
                    TransportKind::Other
                };
                let error = ApiError::Transport {
                    endpoint: label,
                    kind,
                    source: e.without_url(),
                };
                return match kind {
                    // Nothing reached the server: safe for any method.
                    TransportKind::Connect => Attempt::Retry {
                        reason: RetryReason::Connect,
                        after: None,
                        error,
                    },
                    TransportKind::Timeout if request.idempotent => Attempt::Retry {
                        reason: RetryReason::Timeout,
                        after: None,
                        error,
                    },
                    TransportKind::Other if request.idempotent => Attempt::Retry {
                        reason: RetryReason::ServerError,
                        after: None,
                        error,
                    },
                    _ => Attempt::Fail(error),
                };
            }
        };
        self.stats
            .record_call(&label, &status.to_string(), sent.elapsed());
        ticket.answered(status, RateLimitHeaders::from_headers(&headers));
        let correlation_id = correlation_of(&headers);
        if (200..300).contains(&status) {
            return Attempt::Done(ApiResponse {
                status,
                body,
                correlation_id,
            });
        }
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.clock.now()));
        let error = ApiError::from_response(&label, status, &body, correlation_id, retry_after);
        match classify_status(status, request.idempotent) {
            Some(RetryReason::Unauthorized) => {
                tracing::info!(endpoint = %label, "access token refused (401); fetching a new one");
                self.auth.invalidate(&token).await;
                Attempt::Retry {
                    reason: RetryReason::Unauthorized,
                    after: Some(Duration::ZERO),
                    error,
                }
            }
            Some(reason) => Attempt::Retry {
                reason,
                after: retry_after,
                error,
            },
            None => Attempt::Fail(error),
        }
    }
}
