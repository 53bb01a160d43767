//! What the database answers: a `Retry-After` header value (seconds or an HTTP date) must parse
//! or be ignored, never panic, and never ask for a negative wait.
#![no_main]

use gateway::sink::influx::parse_retry_after;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let _ = parse_retry_after(value, now);
});
