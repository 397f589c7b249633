//! OAuth client-credentials tokens: fetched once for many callers, refreshed ahead of expiry.
//!
//! - `POST https://login.<domain>/oauth/token` with HTTP Basic auth and
//!   `grant_type=client_credentials` (no scope: roles on the OAuth client decide access).
//! - Single flight: the state lock is held while a token is fetched, so 50 callers that find
//!   the token missing cause one request, not 50.
//! - A background task refreshes `refresh_margin` before `expires_in` runs out; when that
//!   fails it keeps the old token (still valid) and tries again with backoff.
//! - A 401 invalidates only the token that was refused (by generation), so a late 401 for an
//!   old token never throws away a fresh one, and wakes the refresher to fetch a new one.
//! - [`TokenManager::has_token`] tells the truth for readiness: a token valid now, or one the
//!   next request can get (the last token request worked) — not "a token was once obtained".

use super::error::{ApiError, AuthErrorBody};
use super::stats::ApiStats;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The OAuth client's id and secret. `Debug` shows the id only.
#[derive(Clone)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .finish()
    }
}

/// A bearer token handed to one request. `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<SecretString>,
    generation: u64,
}

impl AccessToken {
    pub(crate) fn bearer(&self) -> &str {
        self.value.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessToken(generation {}, [REDACTED])", self.generation)
    }
}

struct Cached {
    token: AccessToken,
    expires_at: Instant,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct AuthResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Obtains and caches access tokens.
pub struct TokenManager {
    http: reqwest::Client,
    token_url: String,
    /// `token_url` as errors and `Debug` show it: a `user:password@` in a configured login
    /// URL is a credential too.
    shown_url: String,
    credentials: Credentials,
    refresh_margin: Duration,
    state: Mutex<Option<Cached>>,
    generation: std::sync::atomic::AtomicU64,
    stats: Arc<ApiStats>,
    /// What readiness reads. Kept apart from `state`, whose lock is held during a fetch.
    health: std::sync::Mutex<Health>,
    /// Wakes the refresher when the token was refused (revoked before it expired).
    refused: tokio::sync::Notify,
}

/// The token's condition as far as this process knows it.
#[derive(Debug, Default)]
struct Health {
    /// Expiry of the cached token; `None` before the first one and after a refusal.
    expires_at: Option<Instant>,
    /// A token was obtained at least once.
    obtained: bool,
    /// The last token request failed (login down, credentials refused).
    last_fetch_failed: bool,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("token_url", &self.shown_url)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// Tokens this close to expiry are not handed out (a request takes time to arrive).
const MIN_REMAINING: Duration = Duration::from_secs(5);

/// The longest token lifetime we believe (Genesys allows at most 48 h per OAuth client).
const MAX_TOKEN_LIFETIME_SECS: u64 = 172_800;

impl TokenManager {
    pub fn new(
        http: reqwest::Client,
        token_url: String,
        credentials: Credentials,
        refresh_margin: Duration,
        stats: Arc<ApiStats>,
    ) -> Self {
        Self {
            http,
            shown_url: crate::text::redact_userinfo(&token_url).into_owned(),
            token_url,
            credentials,
            refresh_margin,
            state: Mutex::new(None),
            generation: Default::default(),
            stats,
            health: Default::default(),
            refused: tokio::sync::Notify::new(),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn client_id(&self) -> &str {
        &self.credentials.client_id
    }

    /// True while a token is valid, or refreshable: the cached one has time left, or (expired
    /// or refused) the last token request worked, so the next call gets a new one. False
    /// before the first token and once a token request failed with no valid token left.
    pub fn has_token(&self) -> bool {
        let h = self.health();
        let valid = h
            .expires_at
            .is_some_and(|t| Instant::now() + MIN_REMAINING < t);
        valid || (h.obtained && !h.last_fetch_failed)
    }

    /// A valid token: the cached one, or a freshly fetched one (one fetch for all waiters).
    pub async fn token(&self) -> Result<AccessToken, ApiError> {
        let mut state = self.state.lock().await;
        if let Some(cached) = state.as_ref() {
            if Instant::now() + MIN_REMAINING < cached.expires_at {
                return Ok(cached.token.clone());
            }
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *state = Some(fresh);
        Ok(token)
    }

    /// Records a token request's result for [`TokenManager::has_token`].
    fn note_fetch(&self, expires_at: Option<Instant>) {
        let mut h = self.health();
        match expires_at {
            Some(t) => {
                h.expires_at = Some(t);
                h.obtained = true;
                h.last_fetch_failed = false;
            }
            None => h.last_fetch_failed = true,
        }
    }

    /// Forgets `refused` if it is still the current token, so the next call fetches anew.
    pub async fn invalidate(&self, refused: &AccessToken) {
        let mut state = self.state.lock().await;
        if state
            .as_ref()
            .is_some_and(|c| c.token.generation == refused.generation)
        {
            *state = None;
            self.health().expires_at = None;
            self.refused.notify_one();
        }
    }

    /// Refreshes now if the cached token is due; on failure keeps the old one.
    /// Returns when the next refresh is due.
    async fn refresh_if_due(&self) -> Result<Instant, ApiError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(cached) = state.as_ref() {
            if now < cached.refresh_at {
                return Ok(cached.refresh_at);
            }
        }
        let fresh = self.fetch().await?;
        let next = fresh.refresh_at;
        *state = Some(fresh);
        Ok(next)
    }

    /// Runs until aborted: keeps a token fresh ahead of expiry. Never panics, never exits on error.
    pub async fn run_refresher(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            match self.refresh_if_due().await {
                Ok(next) => {
                    failures = 0;
                    // A refused (revoked) token is replaced now, not at its planned refresh:
                    // until then the daemon is not ready and starts no cycle to fetch one.
                    tokio::select! {
                        () = tokio::time::sleep_until(next) => {}
                        () = self.refused.notified() => {}
                    }
                }
                Err(error) => {
                    failures += 1;
                    let wait = Duration::from_secs(2u64.saturating_pow(failures.min(6)))
                        .mul_f64(0.5 + fastrand::f64() / 2.0);
                    tracing::warn!(%error, retry_in_s = wait.as_secs(), "token refresh failed; keeping the current token while it lasts");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn fetch(&self) -> Result<Cached, ApiError> {
        let result = self.fetch_once().await;
        self.note_fetch(result.as_ref().ok().map(|c| c.expires_at));
        result
    }

    async fn fetch_once(&self) -> Result<Cached, ApiError> {
        let login_error = |detail: String, status: Option<u16>| ApiError::Login {
            client_id: self.credentials.client_id.clone(),
            detail,
            status,
        };
        let response = self
            .http
            .post(&self.token_url)
            .basic_auth(
                &self.credentials.client_id,
                Some(self.credentials.client_secret.expose_secret()),
            )
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                self.stats.record_token_request(false);
                return Err(login_error(
                    format!(
                        "cannot reach {}: {}",
                        self.shown_url,
                        super::error::with_causes(&e.without_url())
                    ),
                    None,
                ));
            }
        };
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        if !status.is_success() {
            self.stats.record_token_request(false);
            let parsed: AuthErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            let words: Vec<String> = [
                parsed.error,
                parsed.error_description.or(parsed.description),
            ]
            .into_iter()
            .flatten()
            .collect();
            let said = if words.is_empty() {
                "no error description".to_string()
            } else {
                words.join(": ")
            };
            return Err(login_error(
                format!(
                    "HTTP {} from {}: {}",
                    status.as_u16(),
                    self.shown_url,
                    crate::text::printable(&said)
                ),
                Some(status.as_u16()),
            ));
        }
        let parsed: AuthResponse = serde_json::from_slice(&body).map_err(|e| {
            self.stats.record_token_request(false);
            login_error(
                format!(
                    "the token response from {} is not valid JSON: {e}",
                    self.shown_url
                ),
                None,
            )
        })?;
        self.stats.record_token_request(true);
        // `expires_in` is the login server's word: clamp it to what Genesys documents
        // (300 s – 48 h) with a little room, so an absurd value cannot overflow `Instant`.
        let lifetime = Duration::from_secs(
            parsed
                .expires_in
                .unwrap_or(86_400)
                .clamp(10, MAX_TOKEN_LIFETIME_SECS),
        );
        let now = Instant::now();
        let margin = self.refresh_margin.min(lifetime / 2);
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        tracing::info!(client_id = %self.credentials.client_id, expires_in_s = lifetime.as_secs(), "obtained an access token");
        Ok(Cached {
            token: AccessToken {
                value: Arc::new(SecretString::from(parsed.access_token)),
                generation,
            },
            expires_at: now + lifetime,
            refresh_at: now + lifetime - margin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn has_token_follows_the_current_token_not_the_first_one() {
        let m = TokenManager::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9/oauth/token".into(),
            Credentials {
                client_id: "id".into(),
                client_secret: SecretString::from("s"),
            },
            Duration::from_secs(60),
            Arc::new(ApiStats::default()),
        );
        assert!(!m.has_token(), "no token yet");
        m.note_fetch(Some(Instant::now() + Duration::from_secs(600)));
        assert!(m.has_token());
        // A failed refresh keeps a token that is still valid.
        m.note_fetch(None);
        assert!(m.has_token());
        // Refused (revoked): refreshable while the last token request worked …
        m.note_fetch(Some(Instant::now() + Duration::from_secs(600)));
        m.health().expires_at = None;
        assert!(m.has_token());
        // … and not once a token request failed.
        m.note_fetch(None);
        assert!(!m.has_token());
        // Expired with a failing login: not valid either.
        m.note_fetch(Some(Instant::now() + Duration::from_secs(1)));
        m.note_fetch(None);
        assert!(!m.has_token());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let creds = Credentials {
            client_id: "my-id".into(),
            client_secret: SecretString::from("s3cr3t-value"),
        };
        let token = AccessToken {
            value: Arc::new(SecretString::from("tok-value")),
            generation: 3,
        };
        let text = format!("{creds:?} {token:?}");
        assert!(text.contains("my-id"));
        assert!(
            !text.contains("s3cr3t-value") && !text.contains("tok-value"),
            "{text}"
        );
    }
}
