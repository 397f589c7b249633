//! Issued access tokens and their per-token rate-limit windows.
//!
//! Genesys limits client-credentials traffic per token (300 requests per minute by default);
//! the simulator models that as a fixed 60 s window that opens with the token's first request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Token {
    expires: Instant,
    epoch: u64,
    window_start: Option<Instant>,
    window_count: u32,
}

/// Outcome of charging one request to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charge {
    /// Allowed: requests used in this window, seconds until the window resets.
    Ok { count: u32, reset_secs: u64 },
    /// Over the limit: requests seen in this window, seconds until the window resets.
    Limited { count: u32, reset_secs: u64 },
    /// Unknown, expired or revoked.
    Invalid,
}

#[derive(Debug, Default)]
pub(crate) struct Tokens {
    map: Mutex<HashMap<String, Token>>,
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

impl Tokens {
    /// Issues a random opaque token valid for `ttl` in revocation epoch `epoch`.
    pub(crate) fn issue(&self, ttl: Duration, epoch: u64) -> String {
        let token: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(48)
            .collect();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, t| t.expires > now);
        map.insert(
            token.clone(),
            Token {
                expires: now + ttl,
                epoch,
                window_start: None,
                window_count: 0,
            },
        );
        token
    }

    /// Every token issued and not yet expired (for tests that prove no token leaks).
    pub(crate) fn issued(&self) -> Vec<String> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.keys().cloned().collect()
    }

    /// Validates `token` and charges one request against `limit` (0 = unlimited).
    pub(crate) fn charge(&self, token: &str, epoch: u64, limit: u32) -> Charge {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let Some(t) = map.get_mut(token) else {
            return Charge::Invalid;
        };
        if t.expires <= now || t.epoch != epoch {
            return Charge::Invalid;
        }
        let start = match t.window_start {
            Some(s) if now.duration_since(s) < WINDOW => s,
            _ => {
                t.window_count = 0;
                t.window_start = Some(now);
                now
            }
        };
        let reset_secs = ceil_secs(WINDOW.saturating_sub(now.duration_since(start))).max(1);
        t.window_count = t.window_count.saturating_add(1);
        if limit > 0 && t.window_count > limit {
            Charge::Limited {
                count: t.window_count,
                reset_secs,
            }
        } else {
            Charge::Ok {
                count: t.window_count,
                reset_secs,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_limits_and_revocation() {
        let tokens = Tokens::default();
        let t = tokens.issue(Duration::from_secs(60), 0);
        assert!(matches!(
            tokens.charge(&t, 0, 2),
            Charge::Ok { count: 1, .. }
        ));
        assert!(matches!(
            tokens.charge(&t, 0, 2),
            Charge::Ok { count: 2, .. }
        ));
        assert!(matches!(tokens.charge(&t, 0, 2), Charge::Limited { .. }));
        assert_eq!(tokens.charge(&t, 1, 2), Charge::Invalid);
        assert_eq!(tokens.charge("nope", 0, 2), Charge::Invalid);
    }
}
