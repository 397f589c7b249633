//! Recording every exchange (behind [`crate::SimConfig::record`]), so a test can check each
//! request a client sent and each answer the simulator gave against the API contract.

use std::sync::Mutex;

/// One request and its response, bodies kept whole.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The request's `Content-Type`, if any.
    pub content_type: Option<String>,
    pub request_body: Vec<u8>,
    pub status: u16,
    pub response_body: Vec<u8>,
}

/// The exchanges recorded so far, in the order their responses were complete.
#[derive(Debug, Default)]
pub(crate) struct Recorder(Mutex<Vec<Exchange>>);

impl Recorder {
    pub(crate) fn push(&self, exchange: Exchange) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(exchange);
    }

    pub(crate) fn snapshot(&self) -> Vec<Exchange> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
