//! The `inin-ratelimit-*` headers of any response, fed to the pacer as the client does:
//! absurd numbers must be capped, never overflow `Instant` and panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderMap, HeaderValue};
use skill_tuner::genesys::pacer::{Pacer, RateLimitHeaders};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let mut headers = HeaderMap::new();
    for name in [
        "inin-ratelimit-allowed",
        "inin-ratelimit-count",
        "inin-ratelimit-reset",
    ] {
        if let Some(Ok(value)) = parts.next().map(HeaderValue::from_bytes) {
            headers.insert(name, value);
        }
    }
    let parsed = RateLimitHeaders::from_headers(&headers);
    for (limit, burst) in [(0, 1), (300, 5), (u32::MAX, u32::MAX)] {
        Pacer::new(limit, burst).observe(parsed);
    }
});
