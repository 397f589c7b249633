//! Ends every wait of a client — pacing, a `Retry-After`, a backoff — when the process stops,
//! so that SIGTERM is not held up by a server that asked for minutes of patience. Requests
//! already on the wire are not cut off: their answer is what tells us whether they landed.

use std::sync::Arc;
use tokio::sync::watch;

/// A one-way switch shared by everything one client runs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }
}

impl Shutdown {
    /// From now on every wait ends at once and no new request is sent.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once [`Shutdown::trigger`] was called (at once if it already was).
    pub async fn triggered(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so `wait_for` only ends when the switch is on.
        let _ = rx.wait_for(|on| *on).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_trigger_ends_waits_started_before_and_after_it() {
        let s = Shutdown::default();
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.triggered().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished() && !s.is_triggered());
        s.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), s.triggered())
            .await
            .unwrap();
    }
}
