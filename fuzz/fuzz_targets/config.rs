//! `Settings::from_toml_str` on any text: parse + validate must return Ok or a ConfigError,
//! never panic (a config file is operator input, and `check-config` runs on anything).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skill_tuner::config::Settings;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(settings) = Settings::from_toml_str(text) {
            // What check-config prints, and the run fingerprint, must work on anything valid.
            let _ = settings.to_toml();
            let _ = settings.fingerprint();
        }
    }
});
