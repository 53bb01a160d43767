//! Config files and `GATEWAY_*` values are operator input: any TOML text must load or fail
//! with a `ConfigError`, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = gateway::config::Config::from_toml(text) {
        // A config that validated must build the decoder without a panic.
        let _ = cfg.decoder();
    }
});
