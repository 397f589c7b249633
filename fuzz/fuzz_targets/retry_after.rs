//! `Retry-After` as the server sends it (delta-seconds or an HTTP date): any text parses to
//! a duration or to nothing, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skill_tuner::genesys::retry::parse_retry_after;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_retry_after(text, chrono::DateTime::UNIX_EPOCH);
    }
});
